package gpu

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeClock moves forward only when the code under test waits on it.
type fakeClock struct {
	now time.Time
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func gpuFacts(devs ...Device) Facts {
	return Facts{Available: true, Devices: devs}
}

func dev(i int, freeGiB float64, procs ...GPUProcess) Device {
	return Device{Index: i, UUID: "GPU-" + string(rune('a'+i)), MemTotal: 80 * GiB, MemFree: uint64(freeGiB * GiB), Processes: procs}
}

func TestWaitReleased(t *testing.T) {
	t.Parallel()
	base := gpuFacts(dev(0, 79.5), dev(1, 79.5))
	held := gpuFacts(dev(0, 49.3, GPUProcess{Pid: 1234, UsedBytes: 30 * GiB}), dev(1, 79.5))
	short := gpuFacts(dev(0, 60), dev(1, 79.5))
	back := gpuFacts(dev(0, 79.4), dev(1, 79.2))
	swapped := gpuFacts(dev(1, 79.5), dev(0, 79.5))
	swapped.Devices[0].Index, swapped.Devices[1].Index = 0, 1 // same GPUs, indices renumbered
	oneGone := gpuFacts(dev(0, 79.5))
	someoneElse := gpuFacts(dev(0, 79.5, GPUProcess{Pid: 999, UsedBytes: GiB}), dev(1, 79.5))
	seq := func(fs ...Facts) []FakeResult {
		var out []FakeResult
		for _, f := range fs {
			out = append(out, FakeResult{Facts: f})
		}
		return out
	}
	tests := []struct {
		name         string
		baseline     Facts
		prober       *FakeProber
		holders      [][]int // per check; the last repeats
		wantReleased bool
		wantWaited   time.Duration
		wantStraggle []int
		wantEvidence string // substring
		wantProbes   int
	}{
		{
			name: "no gpu facts", baseline: Facts{Reason: "no driver"}, prober: &FakeProber{},
			wantReleased: true, wantEvidence: "no GPU facts", wantProbes: 0,
		},
		{
			name: "already released", baseline: base, prober: &FakeProber{Facts: back},
			wantReleased: true, wantProbes: 1,
		},
		{
			name: "memory comes back after three probes", baseline: base,
			prober:       &FakeProber{Seq: seq(held, held, short), Facts: back},
			wantReleased: true, wantWaited: 3 * time.Second, wantProbes: 4,
		},
		{
			name: "straggler until the deadline", baseline: base, prober: &FakeProber{Facts: held},
			wantWaited: 60 * time.Second, wantStraggle: []int{1234},
			wantEvidence: "GPU 0: 30.2 GiB still used by pid 1234 after 60s", wantProbes: 61,
		},
		{
			name: "memory short with no pid of ours", baseline: base, prober: &FakeProber{Facts: short},
			wantWaited:   60 * time.Second,
			wantEvidence: "GPU 0: 19.5 GiB still used (free 60.0 GiB, 79.5 GiB before the attempt) after 60s", wantProbes: 61,
		},
		{
			name: "within slack", baseline: base, prober: &FakeProber{Facts: gpuFacts(dev(0, 79.1), dev(1, 79.5))},
			wantReleased: true, wantProbes: 1,
		},
		{
			name: "other tenants' processes do not count", baseline: base, prober: &FakeProber{Facts: someoneElse},
			wantReleased: true, wantProbes: 1,
		},
		{
			name: "device holder keeps it held", baseline: base, prober: &FakeProber{Facts: back},
			holders:      [][]int{{1234, 1235}, {1235}, nil},
			wantReleased: true, wantWaited: 2 * time.Second, wantProbes: 3,
		},
		{
			name: "device holder until the deadline", baseline: base, prober: &FakeProber{Facts: back},
			holders:    [][]int{{1235}},
			wantWaited: 60 * time.Second, wantStraggle: []int{1235},
			wantEvidence: "pid 1235 still holding /dev/nvidia* open after 60s", wantProbes: 61,
		},
		{
			name: "probe keeps failing", baseline: base, prober: &FakeProber{Err: ErrTimeout},
			wantWaited: 60 * time.Second, wantEvidence: "GPU probe: gpu facts unavailable: query timed out after 60s", wantProbes: 61,
		},
		{
			name: "device missing", baseline: base, prober: &FakeProber{Facts: oneGone},
			wantWaited: 60 * time.Second, wantEvidence: "GPU 1: missing from the probe after 60s", wantProbes: 61,
		},
		{
			name: "devices matched by uuid", baseline: base, prober: &FakeProber{Facts: swapped},
			wantReleased: true, wantProbes: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
			checks := 0
			opt := GateOptions{
				Now:   clk.Now,
				After: clk.After,
				Holders: func(pids []int) []int {
					if !slices.Equal(pids, []int{1234, 1235}) {
						t.Errorf("Holders(%v), want the attempt's pids", pids)
					}
					defer func() { checks++ }()
					if len(tt.holders) == 0 {
						return nil
					}
					return tt.holders[min(checks, len(tt.holders)-1)]
				},
			}
			got, err := WaitReleased(t.Context(), tt.prober, tt.baseline, func() []int { return []int{1234, 1235} }, opt)
			if err != nil {
				t.Fatalf("WaitReleased error = %v", err)
			}
			if got.Released != tt.wantReleased || got.Waited != tt.wantWaited || !slices.Equal(got.Stragglers, tt.wantStraggle) {
				t.Errorf("WaitReleased = %+v, want released %v waited %v stragglers %v", got, tt.wantReleased, tt.wantWaited, tt.wantStraggle)
			}
			if !strings.Contains(got.Evidence, tt.wantEvidence) {
				t.Errorf("Evidence = %q, want it to hold %q", got.Evidence, tt.wantEvidence)
			}
			if n := tt.prober.Calls(); n != tt.wantProbes {
				t.Errorf("probes = %d, want %d", n, tt.wantProbes)
			}
		})
	}
}

func TestWaitReleased_options(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Unix(0, 0)}
	base := gpuFacts(dev(0, 79.5))
	p := &FakeProber{Facts: gpuFacts(dev(0, 79))}
	got, err := WaitReleased(t.Context(), p, base, nil, GateOptions{
		Deadline: 10 * time.Second, Interval: 4 * time.Second, Slack: 1 << 20,
		Now: clk.Now, After: clk.After,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Checks at 0, 4, 8 and at the deadline, 10.
	if got.Released || got.Waited != 10*time.Second || p.Calls() != 4 {
		t.Errorf("WaitReleased = %+v after %d probes, want not released after 10s and 4 probes", got, p.Calls())
	}
}

func TestWaitReleased_cancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	p := &FakeProber{Facts: gpuFacts(dev(0, 10))}
	never := make(chan time.Time)
	got, err := WaitReleased(ctx, p, gpuFacts(dev(0, 79)), nil, GateOptions{
		After: func(time.Duration) <-chan time.Time { cancel(); return never },
	})
	if !errors.Is(err, context.Canceled) || got.Released {
		t.Errorf("WaitReleased(cancelled) = %+v, %v, want not released and context.Canceled", got, err)
	}
	if !strings.Contains(got.Evidence, "GPU 0") {
		t.Errorf("Evidence = %q, want what was still held", got.Evidence)
	}
}
