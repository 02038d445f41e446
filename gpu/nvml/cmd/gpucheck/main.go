// Command gpucheck prints what wan22-guard's GPU layer sees on this machine,
// as JSON on stdout: the NVML probe (with its one-line summary), host facts,
// the holders of /dev/nvidia*, whether Xid events can be watched, and the
// peaks the Sampler records over a process tree for a while.
//
//	gpucheck [-pid PID] [-for 2s] [-every 100ms]
//
// -pid names the root of the tree to sample (default: gpucheck itself).
// Exit status: 0 when NVML answered with GPU facts, 1 when it gave
// gpu.ErrUnavailable or another error, 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/wan22-guard/wan22-guard/gpu"
	"github.com/wan22-guard/wan22-guard/gpu/host"
	"github.com/wan22-guard/wan22-guard/gpu/nvml"
)

type report struct {
	Summary      string         `json:"summary"`
	ProbeMs      float64        `json:"probe_ms"`
	ProbeError   string         `json:"probe_error,omitempty"`
	Facts        gpu.Facts      `json:"facts"`
	Host         gpu.HostFacts  `json:"host"`
	HostError    string         `json:"host_error,omitempty"`
	Holders      []int          `json:"nvidia_holders"`
	HoldersError string         `json:"nvidia_holders_error,omitempty"`
	Xid          string         `json:"xid"`
	XidEvents    []xidEvent     `json:"xid_events,omitempty"`
	TreePid      int            `json:"tree_pid"`
	TreePids     []int          `json:"tree_pids"`
	Peaks        gpu.Peaks      `json:"peaks"`
	Gate         gpu.GateResult `json:"gate"`
	CloseError   string         `json:"close_error,omitempty"`
}

type xidEvent struct {
	Dev int    `json:"dev"`
	Xid uint64 `json:"xid"`
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("gpucheck", flag.ContinueOnError)
	pid := fs.Int("pid", os.Getpid(), "root pid of the process tree to sample")
	dur := fs.Duration("for", 2*time.Second, "how long to sample")
	every := fs.Duration("every", 100*time.Millisecond, "sampling interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur+30*time.Second)
	defer cancel()

	p := nvml.New()
	var r report
	start := time.Now()
	f, err := p.Probe(ctx)
	r.ProbeMs = float64(time.Since(start).Microseconds()) / 1000
	r.Facts, r.Summary = f, gpu.Summary(f)
	if err != nil {
		r.ProbeError = err.Error()
	}

	hf, herr := host.Read(ctx, ".", os.TempDir())
	r.Host = hf
	if herr != nil {
		r.HostError = herr.Error()
	}
	r.Holders, err = gpu.HoldersOfNvidiaDevices()
	if err != nil {
		r.HoldersError = err.Error()
	}

	xidCtx, xidCancel := context.WithTimeout(ctx, *dur)
	events := make(chan xidEvent, 64)
	xidDone := make(chan error, 1)
	go func() {
		xidDone <- p.WatchXid(xidCtx, func(dev int, xid uint64) {
			select {
			case events <- xidEvent{dev, xid}:
			default:
			}
		})
	}()

	r.TreePid = *pid
	s := gpu.NewSampler(p, *every, func() []int { return []int{*pid} })
	s.Start(ctx)
	select {
	case <-time.After(*dur):
	case <-ctx.Done():
	}
	r.Peaks = s.Stop()
	_, r.TreePids, _ = gpu.TreeRSS(*pid)

	xidCancel()
	switch xerr := <-xidDone; {
	case xerr == nil:
		r.Xid = "watched"
	case errors.Is(xerr, gpu.ErrUnavailable):
		r.Xid = "unavailable: " + xerr.Error()
	default:
		r.Xid = "error: " + xerr.Error()
	}
	close(events)
	for e := range events {
		r.XidEvents = append(r.XidEvents, e)
	}

	r.Gate, _ = gpu.WaitReleased(ctx, p, f, func() []int { return nil }, gpu.GateOptions{Deadline: 5 * time.Second})

	if err := p.Close(); err != nil {
		r.CloseError = err.Error()
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "gpucheck:", err)
		return 1
	}
	if !f.Available {
		return 1
	}
	return 0
}
