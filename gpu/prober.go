package gpu

import (
	"context"
	"sync"
)

// Prober reads the GPU facts of the machine.
//
// Probe returns one of:
//   - Facts with Available set and a nil error;
//   - Facts{Available: false, Reason: "..."} and an error wrapping
//     ErrUnavailable when there is no GPU, no driver or no libnvidia-ml, or
//     (wrapping ErrTimeout as well) when the driver did not answer in time;
//   - the context's error when ctx ended first.
//
// Probe never panics, may be called any number of times and is safe for
// concurrent use. Every call is bounded in time even when the driver hangs.
type Prober interface {
	Probe(ctx context.Context) (Facts, error)
}

// FakeResult is one scripted answer of a FakeProber.
type FakeResult struct {
	Facts Facts
	Err   error
}

// FakeProber is a Prober for tests. Probe returns the entries of Seq in
// order, one per call, and then Facts and Err for every call after that (so
// a test can script memory that comes back after N probes). It returns
// ctx.Err() without consuming an entry when ctx has ended. Safe for
// concurrent use; use it by pointer.
type FakeProber struct {
	Facts Facts
	Err   error
	Seq   []FakeResult

	mu    sync.Mutex
	calls int
}

var _ Prober = (*FakeProber)(nil)

// Probe returns the next scripted answer.
func (p *FakeProber) Probe(ctx context.Context) (Facts, error) {
	if err := ctx.Err(); err != nil {
		return Facts{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.calls
	p.calls++
	if n < len(p.Seq) {
		return p.Seq[n].Facts, p.Seq[n].Err
	}
	return p.Facts, p.Err
}

// Calls returns how many times Probe has answered.
func (p *FakeProber) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}
