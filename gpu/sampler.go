package gpu

import (
	"context"
	"maps"
	"sync"
	"time"
)

// DefaultSampleInterval is the Sampler's interval when none is given.
const DefaultSampleInterval = time.Second

// Peaks is the most memory an attempt was seen to use.
type Peaks struct {
	PeakRSSBytes  uint64         `json:"peak_rss_bytes"`            // process tree RSS
	PeakVRAMBytes map[int]uint64 `json:"peak_vram_bytes,omitempty"` // device index -> peak MemUsed
	PeakVRAMTotal uint64         `json:"peak_vram_total"`           // peak of MemUsed summed over devices in one sample
	Samples       int            `json:"samples"`                   // sampling rounds taken
}

// Sampler samples the RSS of a process tree and the used memory of every GPU
// at a fixed interval while an attempt runs, and keeps the peaks. A probe or
// /proc read that fails is skipped for that round; nothing it meets is fatal.
//
// Call Start once, then Stop once; Peaks may be called at any time from any
// goroutine.
type Sampler struct {
	p        Prober
	interval time.Duration
	tree     func() []int

	mu     sync.Mutex
	peaks  Peaks
	cancel context.CancelFunc
	done   chan struct{}
}

// NewSampler returns a Sampler that probes p (nil: no GPU sampling) and sums
// the RSS of the processes tree returns together with all their descendants
// (nil: no RSS sampling), every interval (<= 0: DefaultSampleInterval).
func NewSampler(p Prober, interval time.Duration, tree func() []int) *Sampler {
	if interval <= 0 {
		interval = DefaultSampleInterval
	}
	return &Sampler{p: p, interval: interval, tree: tree}
}

// Start takes a first sample at once and then one every interval, in its own
// goroutine, until ctx ends or Stop is called. It returns immediately.
func (s *Sampler) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.mu.Lock()
	if s.cancel != nil {
		s.mu.Unlock()
		cancel()
		return
	}
	s.cancel, s.done = cancel, done
	s.mu.Unlock()
	go s.loop(ctx, done)
}

// Stop stops sampling, waits for the sampling goroutine to end and returns
// the peaks. Stop without Start returns zero Peaks; a second Stop returns the
// same peaks again.
func (s *Sampler) Stop() Peaks {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return s.Peaks()
}

// Peaks returns a copy of the peaks so far.
func (s *Sampler) Peaks() Peaks {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peaks
	p.PeakVRAMBytes = maps.Clone(p.PeakVRAMBytes)
	return p
}

func (s *Sampler) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	// The first sample is taken one interval in: a process that has just
	// been launched has no memory worth recording, and an attempt shorter
	// than the interval costs the guard nothing.
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sample(ctx)
	}
}

func (s *Sampler) sample(ctx context.Context) {
	var rss uint64
	rssOK := false
	if s.tree != nil {
		if roots := s.tree(); len(roots) > 0 {
			if total, _, err := TreeRSSOf(roots); err == nil {
				rss, rssOK = total, true
			}
		}
	}
	var facts Facts
	gpuOK := false
	if s.p != nil {
		f, err := s.p.Probe(ctx)
		gpuOK = err == nil && f.Available
		facts = f
	}
	if ctx.Err() != nil {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.peaks.Samples++
	if rssOK {
		s.peaks.PeakRSSBytes = max(s.peaks.PeakRSSBytes, rss)
	}
	if gpuOK {
		var sum uint64
		for _, d := range facts.Devices {
			if s.peaks.PeakVRAMBytes == nil {
				s.peaks.PeakVRAMBytes = make(map[int]uint64)
			}
			s.peaks.PeakVRAMBytes[d.Index] = max(s.peaks.PeakVRAMBytes[d.Index], d.MemUsed)
			sum += d.MemUsed
		}
		s.peaks.PeakVRAMTotal = max(s.peaks.PeakVRAMTotal, sum)
	}
}
