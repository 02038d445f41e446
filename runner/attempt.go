package runner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/configs"
	"github.com/wan22-guard/wan22-guard/journal"
	"github.com/wan22-guard/wan22-guard/strategies"
	"github.com/wan22-guard/wan22-guard/wan"
)

// scanSink feeds the classifier from the pump's scanner goroutine and tells
// the Supervisor when the phase changes.
type scanSink struct {
	mu      sync.Mutex
	rules   func() *classify.Rules // the rules, asked for when the first line comes
	sc      *classify.Scanner
	phase   classify.Phase
	changed chan classify.Phase // size 1, latest phase wins
	seed    int64               // base_seed read from "Generation job args", -1 until seen
	// wantSeed is whether to look for the seed at all (seed pinning on).
	wantSeed bool
}

var seedRE = regexp.MustCompile(`base_seed=(-?\d+)`)

func newScanSink(rules func() *classify.Rules, wantSeed bool) *scanSink {
	return &scanSink{rules: rules, phase: classify.PhaseStart, changed: make(chan classify.Phase, 1), seed: -1, wantSeed: wantSeed}
}

// scanner returns the attempt's scanner, made on first use. Call with mu held.
func (k *scanSink) scanner() *classify.Scanner {
	if k.sc == nil {
		k.sc = classify.NewScanner(k.rules())
	}
	return k.sc
}

func (k *scanSink) Line(_ Stream, line []byte) {
	k.mu.Lock()
	sc := k.scanner()
	sc.Line(line)
	p := sc.Phase()
	if k.wantSeed && k.seed < 0 && len(line) > 20 && containsJobArgs(line) {
		if m := seedRE.FindSubmatch(line); m != nil {
			if v, err := strconv.ParseInt(string(m[1]), 10, 64); err == nil && v >= 0 {
				k.seed = v
			}
		}
	}
	changed := p != k.phase
	k.phase = p
	k.mu.Unlock()
	if changed {
		select {
		case <-k.changed:
		default:
		}
		k.changed <- p
	}
}

func containsJobArgs(line []byte) bool {
	return bytes.Contains(line, []byte("Generation job args"))
}

func (k *scanSink) verdict(o classify.Outcome) classify.Result {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.scanner().Verdict(o)
}

func (k *scanSink) seenSeed() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.seed
}

// attempt runs one launch of the child and returns its record, outcome,
// verdict, and the stop signal if the guard was told to stop.
func (s *Supervisor) attempt(ctx context.Context, o *Options, cfg *configs.Config, n int, argv []string, patch strategies.Patch, st strategies.RunState) (journal.Record, classify.Outcome, classify.Result, os.Signal) {
	log := s.Log.WithFields(logrus.Fields{"component": "runner", "attempt": n})
	// Without a config yet (LaunchEarly) the launch takes the built-in
	// sizes, the scanner takes the rules when the first line comes, and
	// the watchdogs are set from the config once the child runs.
	tailLines, maxLine := DefaultTailLines, DefaultMaxLine
	if cfg != nil {
		tailLines, maxLine = cfg.Runtime.TailLines, cfg.Runtime.MaxLine
	}
	sink := newScanSink(func() *classify.Rules {
		if cfg != nil {
			return cfg.Compiled
		}
		return o.Config().Compiled
	}, o.PinSeed)
	env := patch.Env
	if env == nil {
		env = o.Env
	}
	env = append(append([]string(nil), env...), EnvRunID+"="+o.RunID)
	restoreFiles, ferr := applyFiles(originalsDir(o), patch.Files)
	defer restoreFiles()
	if ferr != nil {
		s.statusf(o, "cannot apply config file change: %v", ferr)
	}
	if s.Observer != nil {
		s.Observer.AttemptStarted(n, argv)
	}
	s.setState(Running)
	start := s.Clock.Now()
	p, err := s.Launcher.Launch(ctx, Spec{
		Path: argv[0], Args: argv, Env: env, Dir: o.Dir,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		Sink: sink, TailLines: tailLines, MaxLine: maxLine,
	})
	if err != nil {
		ex := Exit{Code: 127, StartErr: err}
		return s.finish(o, cfg, n, argv, patch, st, start, nil, ex, sink, classify.WatchdogNone, false, nil, nil)
	}
	log.WithField("pid", p.Pid()).Debug("child started")
	// Facts before the attempt are read off the watch loop: the child is
	// already running, and a slow probe must not delay forwarding a signal.
	var tokenC chan any
	if s.Facts != nil && p.Pid() > 0 {
		tokenC = make(chan any, 1)
		go func(pid int) { tokenC <- s.Facts.Before(ctx, pid) }(p.Pid())
	}

	var (
		noOutC   <-chan time.Time
		phaseC   <-chan time.Time
		killC    <-chan time.Time
		watchdog classify.Watchdog
		stopSig  os.Signal
		curPhase = classify.PhaseStart
		rt       configs.Runtime
		haveRT   bool
		noOut    time.Duration
	)
	// Until the config is read (LaunchEarly), signals are forwarded with the
	// built-in grace and the watchdogs wait.
	grace := o.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	phaseTimeout := func(ph classify.Phase) time.Duration {
		if d, ok := o.PhaseTimeouts[string(ph)]; ok {
			return d
		}
		if !haveRT {
			return 0
		}
		return rt.PhaseTimeouts[string(ph)].D()
	}
	arm := func(c *configs.Config) {
		rt, haveRT = c.Runtime, true
		if o.Grace <= 0 {
			grace = rt.Grace.D()
		}
		noOut = rt.NoOutputTimeout.D()
		if o.NoOutputTimeout != nil {
			noOut = *o.NoOutputTimeout
		}
		if noOut > 0 {
			noOutC = s.Clock.After(noOut)
		}
		if d := phaseTimeout(curPhase); d > 0 {
			phaseC = s.Clock.After(d)
		}
	}
	var cfgC chan *configs.Config
	if cfg != nil {
		arm(cfg)
	} else {
		cfgC = make(chan *configs.Config, 1)
		go func() { cfgC <- o.Config() }()
	}
	terminate := func() {
		_ = p.Signal(syscall.SIGTERM)
		if grace > 0 {
			killC = s.Clock.After(grace)
		} else {
			_ = p.Signal(syscall.SIGKILL)
		}
	}
	done := p.Done()
	ctxDone := ctx.Done()
loop:
	for {
		select {
		case <-done:
			break loop
		case c := <-cfgC:
			cfgC = nil
			if watchdog == classify.WatchdogNone && stopSig == nil {
				arm(c)
			}
		case ph := <-sink.changed:
			curPhase = ph
			phaseC = nil
			if d := phaseTimeout(ph); d > 0 && watchdog == classify.WatchdogNone {
				phaseC = s.Clock.After(d)
			}
		case <-phaseC:
			phaseC = nil
			if watchdog == classify.WatchdogNone && stopSig == nil {
				watchdog = classify.WatchdogPhase
				s.statusf(o, "phase %s outlived its timeout of %s; stopping the child", curPhase, phaseTimeout(curPhase))
				terminate()
			}
		case <-noOutC:
			noOutC = nil
			since := s.Clock.Now().Sub(p.LastOutput())
			if since < noOut {
				noOutC = s.Clock.After(noOut - since)
				continue
			}
			if watchdog == classify.WatchdogNone && stopSig == nil {
				watchdog = classify.WatchdogNoOutput
				s.statusf(o, "no output for %s; stopping the child", roundDur(since))
				terminate()
			}
		case <-killC:
			killC = nil
			_ = p.Signal(syscall.SIGKILL)
		case sig := <-s.Signals:
			if isStop(sig) {
				if stopSig != nil {
					_ = p.Signal(syscall.SIGKILL)
					continue
				}
				stopSig = sig
				s.setState(Stopping)
				_ = p.Signal(sig)
				if grace > 0 {
					killC = s.Clock.After(grace)
				}
				continue
			}
			_ = p.Signal(sig)
		case <-ctxDone:
			ctxDone = nil // stays ready once done; do not spin on it while the child stops
			if stopSig == nil {
				stopSig = syscall.SIGTERM
				s.setState(Stopping)
				terminate()
			}
		}
	}
	ex := p.Wait()
	if ep, ok := p.(*ExecProcess); ok {
		// Only an OS child has a process group and descendants to kill.
		_ = KillTree(ep, grace)
	}
	var token any
	if tokenC != nil {
		token = <-tokenC
	}
	return s.finish(o, cfg, n, argv, patch, st, start, p, ex, sink, watchdog, stopSig != nil, stopSig, token)
}

func (s *Supervisor) finish(o *Options, cfg *configs.Config, n int, argv []string, patch strategies.Patch, st strategies.RunState, start time.Time, p Process, ex Exit, sink *scanSink, wd classify.Watchdog, interrupted bool, stopSig os.Signal, token any) (journal.Record, classify.Outcome, classify.Result, os.Signal) {
	end := s.Clock.Now()
	out := classify.Outcome{
		ExitCode:    ex.Code,
		Uptime:      ex.Uptime,
		Watchdog:    wd,
		Interrupted: interrupted,
	}
	if ex.Uptime == 0 {
		out.Uptime = end.Sub(start)
	}
	if ex.Signal != nil {
		out.Signal = SignalName(ex.Signal)
	}
	if ex.StartErr != nil {
		out.StartErr = ex.StartErr.Error()
		s.statusf(o, "%s", ex.StartErr)
	}
	var outBytes int64 = -1
	if ex.Code == 0 && ex.StartErr == nil && st.SaveFile != "" {
		path := st.SaveFile
		if !filepath.IsAbs(path) && o.Dir != "" {
			path = filepath.Join(o.Dir, path) // the child wrote it from its own working directory
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Size() == 0 {
			out.OutputMissing = true
		} else {
			outBytes = fi.Size()
		}
	}
	rec := journal.Record{
		RunID:      o.RunID,
		Attempt:    n,
		Argv:       journal.RedactArgv(argv),
		EnvChanges: journal.RedactEnv(envChanges(patch)),
		Changes:    journalChanges(patch.Changes),
		Start:      start,
		End:        end,
		DurationMS: out.Uptime.Milliseconds(),
		ExitCode:   ex.Code,
		Signal:     out.Signal,
		StartError: out.StartErr,
		Watchdog:   string(wd),
		SaveFile:   st.SaveFile,
	}
	if outBytes >= 0 {
		rec.OutputBytes = outBytes
	}
	cmd := wan.Parse(argv)
	rec.Task, rec.Size, rec.FrameNum = cmd.Task, cmd.Size, cmd.FrameNum
	if p != nil {
		tail := p.Tail()
		for i := range tail {
			tail[i] = journal.RedactLine(tail[i])
		}
		rec.Tail = tail
		if d, ok := p.(interface{ Dropped() int64 }); ok {
			rec.DroppedChunks = d.Dropped()
		}
	}
	if s.Facts != nil && token != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.Facts.After(ctx, token, &rec)
		out.OOMKills = rec.OOMKills
		out.Xid = rec.Xid
		if ev := s.Facts.Release(ctx, token); ev != "" {
			out.GPUNotReleased = ev
		}
		cancel()
	}
	if seed := sink.seenSeed(); seed >= 0 && o.PinSeed {
		rec.SeedSeen = seed
	}
	verdict := sink.verdict(out)
	fillVerdict(&rec, verdict)
	return rec, out, verdict, stopSig
}

// reverdict classifies again after the Supervisor learned more (the state
// file failed validation after the attempt).
func (s *Supervisor) reverdict(rec journal.Record, o classify.Outcome, v classify.Result) classify.Result {
	if v.Class == classify.ClassUnknown || v.Class == classify.ClassSuccess {
		v.Class = classify.ClassStateCorrupt
		v.Rule = "state_file_invalid"
		v.Evidence = "state file failed validation after the attempt"
	}
	_ = rec
	_ = o
	return v
}

func fillVerdict(rec *journal.Record, v classify.Result) {
	rec.Class = string(v.Class)
	rec.Rule = v.Rule
	rec.Evidence = journal.RedactLine(v.Evidence)
	rec.Line = v.Line
	rec.Phase = string(v.Phase)
	rec.Progress = journal.Progress{Step: v.Progress.Step, Total: v.Progress.Total}
	if v.RootCause != nil {
		rec.RootCause = &journal.RootCause{Rank: v.RootCause.Rank, ExitCode: v.RootCause.ExitCode, Error: v.RootCause.Error}
	}
}

func fillDecision(rec *journal.Record, d strategies.Decision) {
	rec.Action = string(d.Action)
	rec.DelayMS = d.Delay.Milliseconds()
	rec.Reason = string(d.Reason)
	rec.Message = d.Message
	rec.Ladder = d.Ladder
	if d.Rung >= 0 {
		rec.Rung = d.Rung + 1 // the record's rungs count from 1; 0 is none
	}
	rec.RungName = d.RungName
	rec.Trades = d.Trades
}

func envChanges(p strategies.Patch) map[string]string {
	m := map[string]string{}
	for _, c := range p.Changes {
		if c.Kind == "env" {
			m[c.What] = c.To
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// journalChanges is what this attempt's command changed against the one
// the user gave: every rung taken so far, argv, env and files.
func journalChanges(cs []strategies.Change) []journal.Change {
	if len(cs) == 0 {
		return nil
	}
	out := make([]journal.Change, len(cs))
	for i, c := range cs {
		out[i] = journal.Change{Kind: string(c.Kind), What: c.What, From: c.From, To: c.To}
	}
	return out
}
