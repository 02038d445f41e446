package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/configs"
	"github.com/wan22-guard/wan22-guard/gpu"
	"github.com/wan22-guard/wan22-guard/gpu/host"
	"github.com/wan22-guard/wan22-guard/gpu/nvml"
	"github.com/wan22-guard/wan22-guard/journal"
	"github.com/wan22-guard/wan22-guard/runner"
	"github.com/wan22-guard/wan22-guard/statefile"
	"github.com/wan22-guard/wan22-guard/strategies"
	"github.com/wan22-guard/wan22-guard/wan"
)

// watchConfig reloads the --config file when it changes; the next attempt
// uses the new rules. A bad edit keeps the old config and says why once.
func watchConfig(ctx context.Context, path string, cur *atomic.Pointer[configs.Config], ios *ioSet, log *logrus.Entry) func() {
	stop, err := configs.Watch(ctx, path,
		func(c *configs.Config) {
			cur.Store(c)
			fmt.Fprintf(ios.err, "%sconfig %s reloaded; the next attempt uses it\n", guardLinePrefix, path)
		},
		func(err error) {
			fmt.Fprintf(ios.err, "%sconfig %s not reloaded, keeping the config in effect: %v\n", guardLinePrefix, path, err)
		})
	if err != nil {
		log.WithError(err).Warn("cannot watch the config file")
	}
	return stop
}

// stateAdapter gives the Supervisor the statefile.Store it needs.
type stateAdapter struct {
	store  *statefile.Store
	status io.Writer
	log    *logrus.Entry
	// dirGone is set while the state file's directory is missing, so that
	// is said once, not before every attempt.
	dirGone bool
}

func newStateAdapter(c *cli.Context, stateFile, dir string, status io.Writer, log *logrus.Entry) (*stateAdapter, error) {
	opt := statefile.Options{Keep: c.Int("state-keep"), MaxAge: c.Duration("state-max-age")}
	if v := c.String("state-validate"); v != "" {
		argv := strings.Fields(v)
		opt.Validate = statefile.CommandValidator(func(ctx context.Context, argv []string, stdin []byte) (int, []byte, error) {
			out, errOut, ex := runner.Run(ctx, argv, strings.NewReader(string(stdin)))
			if ex.StartErr != nil {
				return ex.Code, nil, ex.StartErr
			}
			return ex.Code, append(out, errOut...), nil
		}, argv)
	}
	st, err := statefile.NewStore(stateFile, dir, opt)
	if err != nil {
		return nil, err
	}
	return &stateAdapter{store: st, status: status, log: log}, nil
}

func (a *stateAdapter) Snapshot(reason string) error {
	_, err := a.store.Snapshot(reason)
	if err == nil {
		if _, perr := a.store.Prune(); perr != nil {
			a.log.WithError(perr).Warn("cannot prune state snapshots")
		}
	}
	return err
}

// Check is called by the Supervisor's goroutine only.
func (a *stateAdapter) Check() error {
	err := a.store.Check()
	if errors.Is(err, statefile.ErrNoState) {
		dir := filepath.Dir(a.store.StateFile())
		_, serr := os.Stat(dir)
		switch gone := errors.Is(serr, fs.ErrNotExist); {
		case gone && !a.dirGone:
			fmt.Fprintf(a.status, "%sthe directory of the state file %s is gone; no snapshots or restores until it is back\n", guardLinePrefix, dir)
			a.dirGone = true
		case !gone:
			a.dirGone = false
		}
		return runner.NoStateFile
	}
	return err
}

func (a *stateAdapter) Restore() (string, error) {
	s, err := a.store.Restore("")
	return s.Name, err
}

func (a *stateAdapter) watch(ctx context.Context) func() {
	stop, err := statefile.Watch(ctx, a.store, func(err error) {
		a.log.WithError(err).Debug("state watch")
	})
	if err != nil {
		a.log.WithError(err).Warn("cannot watch the state file")
		return func() {}
	}
	return stop
}

// factsAdapter records GPU and host facts around each attempt and runs the
// release gate before a relaunch.
type factsAdapter struct {
	prober   *nvml.Prober
	cfg      func() *configs.Config
	once     sync.Once
	interval time.Duration
	release  time.Duration
	paths    []string
	log      *logrus.Entry
}

type factsToken struct {
	xidMu    sync.Mutex
	xids     []string
	pid      int
	baseline gpu.Facts
	hostPre  gpu.HostFacts
	sampler  *gpu.Sampler
	cancel   context.CancelFunc
}

func newFactsAdapter(c *cli.Context, cfg func() *configs.Config, runDir string, log *logrus.Entry) *factsAdapter {
	p := nvml.New()
	p.Preload()
	f := &factsAdapter{
		prober: p,
		cfg:    cfg,
		paths:  []string{runDir},
		log:    log.WithField("component", "facts"),
	}
	if c.IsSet("sample-interval") {
		f.interval = c.Duration("sample-interval")
	}
	if c.IsSet("gpu-release-timeout") {
		f.release = c.Duration("gpu-release-timeout")
	}
	return f
}

// settings returns the sampling interval and release timeout: the flags',
// else the config's (read once the child runs, not before).
func (f *factsAdapter) settings() (interval, release time.Duration) {
	f.once.Do(func() {
		rt := f.cfg().Runtime
		if f.interval == 0 {
			f.interval = rt.SampleInterval.D()
		}
		if f.release == 0 {
			f.release = rt.GPUReleaseTimeout.D()
		}
		if f.interval <= 0 {
			f.interval = 2 * time.Second
		}
	})
	return f.interval, f.release
}

func (f *factsAdapter) Close() { _ = f.prober.Close() }

func (f *factsAdapter) probe(ctx context.Context) gpu.Facts {
	facts, err := f.prober.Probe(ctx)
	if err != nil && !errors.Is(err, gpu.ErrUnavailable) {
		f.log.WithError(err).Debug("gpu probe")
	}
	return facts
}

func (f *factsAdapter) Before(ctx context.Context, pid int) any {
	t := &factsToken{pid: pid}
	t.baseline = f.probe(ctx)
	t.hostPre, _ = host.Read(ctx, f.paths...)
	sctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	interval, _ := f.settings()
	t.sampler = gpu.NewSampler(f.prober, interval, func() []int { return []int{pid} })
	t.sampler.Start(sctx)
	if t.baseline.Available {
		go func() {
			_ = f.prober.WatchXid(sctx, func(dev int, xid uint64) {
				t.xidMu.Lock()
				if len(t.xids) < 16 {
					t.xids = append(t.xids, fmt.Sprintf("GPU %d: Xid %d", dev, xid))
				}
				t.xidMu.Unlock()
			})
		}()
	}
	return t
}

func (f *factsAdapter) After(ctx context.Context, token any, rec *journal.Record) {
	t, ok := token.(*factsToken)
	if !ok {
		return
	}
	peaks := t.sampler.Stop()
	t.cancel()
	// The Xid watcher notices the cancel within half a second; what it
	// reported so far is what counts, so After does not wait for it.
	t.xidMu.Lock()
	rec.Xid = strings.Join(t.xids, "; ")
	t.xidMu.Unlock()
	rec.PeakRSSBytes = int64(peaks.PeakRSSBytes)
	rec.PeakVRAMBytes = int64(peaks.PeakVRAMTotal)
	post, _ := host.Read(ctx, f.paths...)
	if post.OOMKills > t.hostPre.OOMKills {
		rec.OOMKills = post.OOMKills - t.hostPre.OOMKills
	}
	if b, err := json.Marshal(beforeAfter[gpu.HostFacts]{Before: t.hostPre, After: post}); err == nil {
		rec.Host = b
	}
	after := t.baseline
	if t.baseline.Available {
		after = f.probe(ctx)
		if len(t.baseline.Devices) > 0 {
			rec.GPUModel = t.baseline.Devices[0].Name
		}
	}
	// Without NVML the record still says so ("available": false and why).
	if b, err := json.Marshal(beforeAfter[gpu.Facts]{Before: t.baseline, After: after}); err == nil {
		rec.GPUs = b
	}
}

// beforeAfter is how host and GPU facts appear in an attempt record.
type beforeAfter[T any] struct {
	Before T `json:"before"`
	After  T `json:"after"`
}

func (f *factsAdapter) Release(ctx context.Context, token any) string {
	t, ok := token.(*factsToken)
	if !ok || !t.baseline.Available {
		return ""
	}
	_, release := f.settings()
	res, err := gpu.WaitReleased(ctx, f.prober, t.baseline, func() []int { return []int{t.pid} }, gpu.GateOptions{Deadline: release})
	if err != nil || res.Released {
		return ""
	}
	return res.Evidence
}

// preflight returns the Supervisor's start-rung hook: when the request
// cannot fit the free memory of the GPUs it will use, start at the first
// rung that fits.
func (f *factsAdapter) preflight(getCfg func() *configs.Config) func(cmd wan.Command) (string, int, string) {
	return func(cmd wan.Command) (string, int, string) {
		if !cmd.IsWan() {
			return "", 0, ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		facts := f.probe(ctx)
		if !facts.Available {
			return "", 0, ""
		}
		devs := facts.Visible(os.Getenv("CUDA_VISIBLE_DEVICES"))
		if len(devs) == 0 {
			return "", 0, ""
		}
		free := ^uint64(0)
		for _, d := range devs {
			if d.MemFree < free {
				free = d.MemFree
			}
		}
		cfg := getCfg()
		pol := cfg.Classes[classify.ClassCUDAOOM]
		lad, ok := cfg.Ladder(pol.Ladder)
		if !ok {
			return "", 0, ""
		}
		st := strategies.StartRung(cmd, os.Environ(), lad, float64(free)/float64(gpu.GiB))
		if st.Rung < 0 {
			return "", 0, ""
		}
		if st.Rung >= len(lad.Rungs) {
			return "", 0, fmt.Sprintf("%s; no rung fits, trying the command as given", st.Reason)
		}
		return lad.Name, st.Rung, st.Reason
	}
}

// dryRun prints the ladder the guard would walk and launches nothing.
func dryRun(c *cli.Context, ios *ioSet, cfg *configs.Config, argv []string, cmd wan.Command) error {
	pol := strategies.PolicyFrom(cfg.Classes, cfg.Ladders, cfg.Workflows...)
	w := ios.out
	fmt.Fprintf(w, "command: %s\n", strategies.ShellJoin(journal.RedactArgv(argv)))
	if cmd.IsWan() {
		fmt.Fprintf(w, "wan2.2: task %s, size %s, frames %d, processes %d\n", cmd.EffectiveTask(), cmd.EffectiveSize(), cmd.EffectiveFrames(), cmd.WorldSize())
		if gib, basis, ok := wan.EstimatePeakGiB(cmd); ok {
			fmt.Fprintf(w, "estimated peak: %.1f GiB per GPU (%s)\n", gib, basis)
		}
	}
	for _, cls := range []classify.Class{classify.ClassCUDAOOM, classify.ClassHostOOM, classify.ClassQuantizationTimeout, classify.ClassConfig} {
		for _, phase := range []classify.Phase{"", classify.PhaseDecode} {
			if phase != "" && cls != classify.ClassCUDAOOM {
				continue
			}
			rungs, err := pol.PlanLadder(cls, argv, os.Environ(), phase)
			if err != nil {
				return exitf(ExitUsage, "dry run: %v", err)
			}
			where := ""
			if phase != "" {
				where = " at " + string(phase)
			}
			fmt.Fprintf(w, "\non %s%s (ladder %s):\n", cls, where, cfg.Classes[cls].Ladder)
			if len(rungs) == 0 {
				fmt.Fprintf(w, "  no rung applies to this command; then: %s\n", cfg.Classes[cls].Then)
				continue
			}
			for i, r := range rungs {
				fmt.Fprintf(w, "  %d. %s", i+1, r.Name)
				if len(r.Trades) > 0 {
					fmt.Fprintf(w, " (%s)", strings.Join(r.Trades, ", "))
				}
				if r.Estimated {
					fmt.Fprintf(w, " ~%.1f GiB", r.PeakGiB)
				}
				fmt.Fprintln(w)
				var env []string
				for _, ch := range r.Changes {
					if ch.Kind == strategies.ChangeEnv {
						env = append(env, ch.What+"="+ch.To)
					}
				}
				prefix := ""
				if len(env) > 0 {
					prefix = strings.Join(env, " ") + " "
				}
				fmt.Fprintf(w, "     %s%s\n", prefix, strategies.ShellJoin(journal.RedactArgv(r.Argv)))
			}
			fmt.Fprintf(w, "  then: %s\n", cfg.Classes[cls].Then)
		}
	}
	return nil
}

// statusObserver draws the terminal status line between attempts.
type statusObserver struct {
	st     *statusWriter
	mu     sync.Mutex
	last   journal.Record
	cancel context.CancelFunc
}

func (s *statusObserver) AttemptStarted(int, []string) {
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	s.mu.Unlock()
	s.st.Clear()
}

func (s *statusObserver) AttemptEnded(rec journal.Record) {
	s.mu.Lock()
	s.last = rec
	s.mu.Unlock()
}

func (s *statusObserver) BackingOff(d time.Duration) {
	if !s.st.tty {
		return
	}
	s.mu.Lock()
	rec := s.last
	ctx, cancel := context.WithCancel(context.Background())
	if s.cancel != nil {
		s.cancel()
	}
	s.cancel = cancel
	s.mu.Unlock()
	end := time.Now().Add(d)
	draw := func() time.Duration {
		left := max(time.Until(end).Round(time.Second), 0)
		where := rec.Class
		if rec.Phase != "" {
			where += " at " + rec.Phase
		}
		next := rec.Action
		if rec.RungName != "" {
			next = rec.RungName
		}
		if len(rec.Trades) > 0 {
			next = strings.Join(rec.Trades, ", ")
		}
		s.st.Transient(fmt.Sprintf("attempt %d · %s · next: %s in %s", rec.Attempt, where, next, left))
		return left
	}
	// The first line is drawn before BackingOff returns, so it shows even
	// when the wait is short; a goroutine counts it down.
	if draw() == 0 {
		return
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if draw() == 0 {
					return
				}
			}
		}
	}()
}

func (s *statusObserver) stop() {
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	s.st.Clear()
}

// multiObserver fans the Supervisor's events out.
type multiObserver []runner.Observer

func (m multiObserver) AttemptStarted(n int, argv []string) {
	for _, o := range m {
		o.AttemptStarted(n, argv)
	}
}

func (m multiObserver) AttemptEnded(rec journal.Record) {
	for _, o := range m {
		o.AttemptEnded(rec)
	}
}

func (m multiObserver) BackingOff(d time.Duration) {
	for _, o := range m {
		o.BackingOff(d)
	}
}

// report is what --report writes.
type report struct {
	RunID     string             `json:"run_id"`
	Outcome   string             `json:"outcome"`
	ExitCode  int                `json:"exit_code"`
	Class     string             `json:"class"`
	Reason    string             `json:"reason,omitempty"`
	Message   string             `json:"message,omitempty"`
	Attempts  []reportAttempt    `json:"attempts"`
	FinalArgv []string           `json:"final_argv"`
	Output    string             `json:"output_file,omitempty"`
	OutputB   int64              `json:"output_bytes,omitempty"`
	PeakRSS   int64              `json:"peak_rss_bytes,omitempty"`
	PeakVRAM  int64              `json:"peak_vram_bytes,omitempty"`
	Trades    []string           `json:"trades,omitempty"`
	Root      *journal.RootCause `json:"root_cause,omitempty"`
}

type reportAttempt struct {
	Attempt    int    `json:"attempt"`
	Class      string `json:"class"`
	Phase      string `json:"phase,omitempty"`
	Rung       string `json:"rung,omitempty"`
	Action     string `json:"action,omitempty"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Evidence   string `json:"evidence,omitempty"`
}

func buildReport(runID string, res runner.Result, runErr error, code int) report {
	r := report{RunID: runID, ExitCode: code, Class: string(res.Verdict.Class), FinalArgv: journal.RedactArgv(res.Argv), Output: res.SaveFile}
	r.Outcome = "success"
	if runErr != nil {
		r.Outcome = "failed"
		if res.Signal != nil {
			r.Outcome = "interrupted"
		}
	}
	r.Reason = string(res.Decision.Reason)
	r.Message = res.Decision.Message
	rung := ""
	for _, rec := range res.Records {
		if rec.RungName != "" {
			rung = rec.RungName
		}
		r.Attempts = append(r.Attempts, reportAttempt{Attempt: rec.Attempt, Class: rec.Class, Phase: rec.Phase, Rung: rung, Action: rec.Action, ExitCode: rec.ExitCode, DurationMS: rec.DurationMS, Evidence: rec.Evidence})
		if rec.PeakRSSBytes > r.PeakRSS {
			r.PeakRSS = rec.PeakRSSBytes
		}
		if rec.PeakVRAMBytes > r.PeakVRAM {
			r.PeakVRAM = rec.PeakVRAMBytes
		}
		if rec.OutputBytes > 0 {
			r.OutputB = rec.OutputBytes
		}
		if len(rec.Trades) > 0 {
			r.Trades = rec.Trades
		}
		r.Root = rec.RootCause
	}
	return r
}

// writeReports writes --report and the termination log.
func writeReports(c *cli.Context, ios *ioSet, runID string, res runner.Result, runErr error, code int, log *logrus.Entry) {
	r := buildReport(runID, res, runErr, code)
	if p := c.String("report"); p != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := statefile.WriteFileAtomic(p, append(b, '\n'), 0o600); err != nil {
			fmt.Fprintf(ios.err, "%scannot write the report: %v\n", guardLinePrefix, err)
		}
	}
	term := c.String("termination-log")
	if term == "" {
		if _, err := os.Stat("/dev/termination-log"); err == nil {
			term = "/dev/termination-log"
		}
	}
	if term != "" {
		short := map[string]any{"outcome": r.Outcome, "exit_code": code, "class": r.Class, "attempts": len(r.Attempts), "reason": r.Reason}
		if len(r.Trades) > 0 {
			short["trades"] = r.Trades
		}
		b, _ := json.Marshal(short)
		if err := os.WriteFile(term, append(b, '\n'), 0o644); err != nil {
			log.WithError(err).Warn("cannot write the termination log")
		}
	}
	_ = filepath.Base
}
