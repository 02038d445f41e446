package gpu

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults of GateOptions.
const (
	DefaultGateDeadline = 60 * time.Second
	DefaultGateInterval = time.Second
	DefaultGateSlack    = 512 << 20
)

// GateOptions tunes WaitReleased. Zero fields take the defaults.
type GateOptions struct {
	Deadline time.Duration // how long to wait in all (DefaultGateDeadline)
	Slack    uint64        // bytes of free memory a device may still lack (DefaultGateSlack)
	Interval time.Duration // between checks (DefaultGateInterval)

	Now   func() time.Time                       // time.Now
	After func(d time.Duration) <-chan time.Time // time.After
	// Holders returns those of pids that hold /dev/nvidia* open
	// (NvidiaHoldersAmong).
	Holders func(pids []int) []int
}

// GateResult is how the wait for GPU memory ended.
type GateResult struct {
	Released   bool          `json:"released"`
	Waited     time.Duration `json:"waited_ns"`
	Stragglers []int         `json:"stragglers,omitempty"` // pids still holding GPU memory or /dev/nvidia*
	Evidence   string        `json:"evidence,omitempty"`   // what was still held, for the gpu_fault class
}

// WaitReleased waits until the GPU memory the previous attempt held is
// released, so the next attempt does not start on a GPU that is still full.
// Released means, at one check:
//
//   - no pid that pids returns (the previous attempt's tree) appears in
//     NVML's process list of any device, nor holds /dev/nvidia* open; and
//   - every device of baseline (matched by UUID, else index) has free memory
//     within Slack of its baseline free memory.
//
// Outcomes:
//   - baseline is not Available (no GPU facts): Released at once, nothing
//     probed;
//   - released within Deadline: Released, Waited;
//   - Deadline passed: Released false, the Stragglers and Evidence such as
//     "GPU 0: 30.2 GiB still used by pid 1234 after 60s", nil error;
//   - ctx ended first: Released false with the evidence so far, and ctx's
//     error.
//
// A probe that fails counts as "not released yet" and its error goes into
// the evidence. pids may be nil. WaitReleased waits only through opt.After.
func WaitReleased(ctx context.Context, p Prober, baseline Facts, pids func() []int, opt GateOptions) (GateResult, error) {
	opt = opt.withDefaults()
	if !baseline.Available || p == nil {
		return GateResult{Released: true, Evidence: "no GPU facts"}, nil
	}
	start := opt.Now()
	for {
		var ours []int
		if pids != nil {
			ours = pids()
		}
		facts, err := p.Probe(ctx)
		elapsed := opt.Now().Sub(start)
		if ctx.Err() != nil {
			return GateResult{Waited: elapsed, Evidence: "interrupted"}, ctx.Err()
		}
		c := check(baseline, facts, err, ours, opt)
		if c.released() {
			return GateResult{Released: true, Waited: elapsed}, nil
		}
		if elapsed >= opt.Deadline {
			return GateResult{Waited: elapsed, Stragglers: c.stragglers(), Evidence: c.evidence(elapsed)}, nil
		}
		select {
		case <-ctx.Done():
			return GateResult{Waited: opt.Now().Sub(start), Stragglers: c.stragglers(), Evidence: c.evidence(elapsed)}, ctx.Err()
		case <-opt.After(min(opt.Interval, opt.Deadline-elapsed)):
		}
	}
}

func (o GateOptions) withDefaults() GateOptions {
	if o.Deadline <= 0 {
		o.Deadline = DefaultGateDeadline
	}
	if o.Slack == 0 {
		o.Slack = DefaultGateSlack
	}
	if o.Interval <= 0 {
		o.Interval = DefaultGateInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Holders == nil {
		o.Holders = NvidiaHoldersAmong
	}
	return o
}

// gateCheck is what one check of the gate found.
type gateCheck struct {
	probeErr error
	devices  []deviceHold // devices not back to baseline or used by our pids
	holders  []int        // our pids holding /dev/nvidia* open
}

type deviceHold struct {
	index    int
	missing  bool
	held     uint64 // bytes short of baseline free, or used by our pids
	pids     []int  // our pids on this device
	free     uint64
	baseFree uint64
}

func check(baseline, now Facts, probeErr error, ours []int, opt GateOptions) gateCheck {
	var c gateCheck
	if len(ours) > 0 {
		c.holders = opt.Holders(ours)
	}
	if probeErr != nil || !now.Available {
		c.probeErr = probeErr
		if c.probeErr == nil {
			c.probeErr = fmt.Errorf("%w: %s", ErrUnavailable, now.Reason)
		}
		return c
	}
	mine := make(map[int]bool, len(ours))
	for _, p := range ours {
		mine[p] = true
	}
	for _, b := range baseline.Devices {
		d, ok := match(now, b)
		if !ok {
			c.devices = append(c.devices, deviceHold{index: b.Index, missing: true})
			continue
		}
		h := deviceHold{index: d.Index, free: d.MemFree, baseFree: b.MemFree}
		var used uint64
		for _, gp := range d.Processes {
			if mine[gp.Pid] {
				h.pids = append(h.pids, gp.Pid)
				used += gp.UsedBytes
			}
		}
		short := d.MemFree+opt.Slack < b.MemFree
		if !short && len(h.pids) == 0 {
			continue
		}
		if b.MemFree > d.MemFree {
			h.held = b.MemFree - d.MemFree
		}
		h.held = max(h.held, used)
		c.devices = append(c.devices, h)
	}
	return c
}

// match finds baseline device b in f, by UUID when it has one.
func match(f Facts, b Device) (Device, bool) {
	for _, d := range f.Devices {
		if (b.UUID != "" && d.UUID == b.UUID) || (b.UUID == "" && d.Index == b.Index) {
			return d, true
		}
	}
	return Device{}, false
}

func (c gateCheck) released() bool {
	return c.probeErr == nil && len(c.devices) == 0 && len(c.holders) == 0
}

func (c gateCheck) stragglers() []int {
	var out []int
	out = append(out, c.holders...)
	for _, d := range c.devices {
		out = append(out, d.pids...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (c gateCheck) evidence(after time.Duration) string {
	suffix := fmt.Sprintf(" after %.0fs", after.Seconds())
	var parts []string
	if c.probeErr != nil {
		parts = append(parts, "GPU probe: "+c.probeErr.Error()+suffix)
	}
	for _, d := range c.devices {
		var s string
		switch {
		case d.missing:
			s = fmt.Sprintf("GPU %d: missing from the probe", d.index)
		case len(d.pids) > 0:
			s = fmt.Sprintf("GPU %d: %.1f GiB still used by %s", d.index, float64(d.held)/GiB, pidList(d.pids))
		default:
			s = fmt.Sprintf("GPU %d: %.1f GiB still used (free %.1f GiB, %.1f GiB before the attempt)",
				d.index, float64(d.held)/GiB, float64(d.free)/GiB, float64(d.baseFree)/GiB)
		}
		parts = append(parts, s+suffix)
	}
	if len(c.holders) > 0 {
		parts = append(parts, pidList(c.holders)+" still holding /dev/nvidia* open"+suffix)
	}
	return strings.Join(parts, "; ")
}

func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = fmt.Sprint(p)
	}
	if len(pids) == 1 {
		return "pid " + s[0]
	}
	return "pids " + strings.Join(s, ", ")
}
