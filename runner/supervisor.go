package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// State is where the Supervisor is.
type State int

// The Supervisor's states.
const (
	Starting State = iota
	Running
	BackingOff
	Stopping
	Exited
	Failed
)

func (s State) String() string {
	switch s {
	case Starting:
		return "Starting"
	case Running:
		return "Running"
	case BackingOff:
		return "BackingOff"
	case Stopping:
		return "Stopping"
	case Exited:
		return "Exited"
	case Failed:
		return "Failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Journal receives one record per attempt. Write must not block for long;
// an error is reported once by the Supervisor and the run goes on.
type Journal interface {
	Write(r journal.Record) error
}

// StateStore keeps snapshots of the user's state file. Implemented by
// statefile.Store; nil when the run has no state file.
type StateStore interface {
	// Snapshot saves the state file if it is valid.
	Snapshot(reason string) error
	// Check validates the state file as it is now.
	Check() error
	// Restore writes the last good snapshot over the state file and returns its name.
	Restore() (string, error)
}

// Observer is told about the run as it goes (metrics, the status line).
// Methods are called from the Supervisor's goroutine and must not block.
type Observer interface {
	AttemptStarted(attempt int, argv []string)
	AttemptEnded(rec journal.Record)
	BackingOff(d time.Duration)
}

// Facts is what the Supervisor asks of the GPU and host around an attempt.
// Implemented in main from the gpu package; nil means no facts.
type Facts interface {
	// Before is called just after launch, off the launch path, and returns
	// facts to record and a token that After and Release get back.
	Before(ctx context.Context, pid int) any
	// After stops sampling and returns what to put in the record.
	After(ctx context.Context, token any, rec *journal.Record)
	// Release waits until the attempt's GPU memory is back. It returns
	// evidence text when it did not come back in time ("" when it did).
	Release(ctx context.Context, token any) string
}

// Options are the Supervisor's inputs for one run.
type Options struct {
	Argv    []string // the child's argv as the user gave it
	Env     []string // the child's base environment
	Dir     string
	Stdin   io.Reader
	Stdout  io.Writer // the child's stdout goes here
	Stderr  io.Writer // the child's stderr goes here
	Status  io.Writer // the guard's own lines ("[wan22-guard] ...")
	RunID   string
	RunFile string // run.json path; "" = not saved

	// Config returns the configuration in effect; it is asked before each
	// attempt so a reloaded config applies to the next attempt.
	Config func() *configs.Config
	// Overrides from flags, applied on top of Config's runtime.
	MaxAttempts     int
	Deadline        time.Duration
	NoOutputTimeout *time.Duration
	PhaseTimeouts   map[string]time.Duration
	Grace           time.Duration
	BackoffInitial  *time.Duration
	BackoffMax      *time.Duration

	// PinSeed and SetSaveFile make retries comparable for Wan2.2 commands.
	PinSeed     bool
	SetSaveFile bool
	// StartRung, when set, enters the named ladder at a rung before attempt 1 (pre-flight).
	StartRung func(cmd wan.Command) (ladder string, rung int, why string)
	// Resume continues from run.json even when the command changed.
	Resume bool
	// LaunchEarly lets the first attempt of a fresh run start before
	// Config returns (Config may then block while it loads); set it only
	// when nothing given on the command line needs the config checked
	// before the launch.
	LaunchEarly bool
}

// Supervisor is the attempt loop: launch, watch, classify, decide, act.
// Only it waits.
type Supervisor struct {
	Launcher Launcher
	Clock    Clock
	Journal  Journal
	States   StateStore
	Facts    Facts
	Observer Observer
	Log      *logrus.Entry
	// Jitter returns a number in [0,1) for each backoff delay.
	Jitter func() float64
	// Signals carries the signals the guard received; they are forwarded to
	// the child's group, and SIGINT/SIGTERM stop the run.
	Signals <-chan os.Signal

	mu    sync.Mutex
	state State
}

// Result is how a run ended.
type Result struct {
	Attempts int
	Last     classify.Outcome
	Verdict  classify.Result
	Decision strategies.Decision
	// Signal is the signal that interrupted the guard, or nil.
	Signal   os.Signal
	Argv     []string
	SaveFile string
	Records  []journal.Record
}

// GiveUpError says why the Supervisor stopped without a success.
type GiveUpError struct {
	Cause error
	Last  classify.Outcome
	Class classify.Class
}

func (e *GiveUpError) Error() string {
	return fmt.Sprintf("gave up after %s: %v", e.Class, e.Cause)
}

func (e *GiveUpError) Unwrap() error { return e.Cause }

// Errors a GiveUpError wraps.
var (
	ErrBudgetExhausted = errors.New("attempt budget spent")
	ErrNeedsUser       = errors.New("needs the user")
	ErrShutdown        = errors.New("shut down")
	ErrInterrupted     = errors.New("interrupted")
)

// State returns the Supervisor's current state.
func (s *Supervisor) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Supervisor) setState(st State) {
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
}

func (s *Supervisor) statusf(o *Options, format string, a ...any) {
	if o.Status == nil {
		return
	}
	// Status lines quote the child's argv, its error and its output, which
	// may carry secrets; they get the same redaction as the journal.
	_, _ = io.WriteString(o.Status, "[wan22-guard] "+journal.RedactLine(fmt.Sprintf(format, a...))+"\n")
}

// Run supervises the command until it succeeds, the budget is spent, a
// strategy stops it, or ctx ends. It returns the Result and, when the run
// did not succeed, a *GiveUpError.
func (s *Supervisor) Run(ctx context.Context, o Options) (Result, error) {
	if len(o.Argv) == 0 {
		return Result{}, errors.New("no command to run")
	}
	if s.Clock == nil {
		s.Clock = RealClock{}
	}
	if s.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.Log = logrus.NewEntry(l)
	}
	if s.Jitter == nil {
		s.Jitter = func() float64 { return 0.5 }
	}
	log := s.Log.WithField("component", "runner")
	s.setState(Starting)

	cmd := wan.Parse(o.Argv)
	run := loadRun(o, cmd, log)
	o.RunID = run.RunID
	if o.RunFile != "" {
		live := filepath.Join(filepath.Dir(o.RunFile), liveFileName)
		if prev, ok := readLive(live); ok {
			if prev.alive() {
				s.statusf(&o, "another guard (pid %d) is running in this run dir; its processes are left alone", prev.Pid)
			} else if pids := KillLeftovers(prev.RunID, 5*time.Second); len(pids) > 0 {
				// The last guard was killed before its run ended; what its
				// child's tree left running (ranks in their own sessions)
				// would hold the GPU the next attempt needs.
				s.statusf(&o, "killed %d processes left running by the previous guard of run %s: %v", len(pids), prev.RunID, pids)
			}
		}
		writeLive(live, o.RunID)
		defer os.Remove(live)
		restored, err := restoreOriginals(originalsDir(&o))
		for _, p := range restored {
			s.statusf(&o, "put back %s, which a killed guard had left patched", p)
		}
		if err != nil {
			s.statusf(&o, "cannot put back a config file a killed guard left patched: %v", err)
		}
	}
	started := s.Clock.Now()
	if !run.Started.IsZero() {
		started = run.Started
	} else {
		run.Started = started
	}
	if run.State.Version == 0 { // not resumed from run.json
		run.State = strategies.NewRunState()
		if o.StartRung != nil {
			if lad, rung, why := o.StartRung(cmd); lad != "" {
				run.State.Rungs[lad] = rung
				s.statusf(&o, "pre-flight: %s", why)
				log.WithFields(logrus.Fields{"ladder": lad, "rung": rung, "reason": why}).Info("pre-flight start rung")
			}
		}
	}
	if cmd.IsWan() && o.PinSeed && cmd.Seed >= 0 && run.State.Seed < 0 {
		run.State.Seed = cmd.Seed
	}
	if cmd.IsWan() && o.SetSaveFile && run.State.SaveFile == "" {
		if cmd.SaveFile != "" {
			run.State.SaveFile = cmd.SaveFile
		} else {
			run.State.SaveFile = defaultSaveFile(cmd, o.RunID)
		}
	}

	var res Result
	// The attempt log and run.json live in the same run dir: one line says
	// it cannot be written, not one per file or per attempt.
	var writeErrSaid bool
	for {
		attempt := run.State.Attempts + 1
		var cfg *configs.Config
		var pol strategies.Policy
		patch := strategies.Patch{Argv: o.Argv, Env: o.Env}
		// The first attempt of a fresh run needs nothing from the config
		// before its launch; with LaunchEarly it starts while the config
		// is still loading, and the config is read once the child runs.
		if !(o.LaunchEarly && run.State.Attempts == 0 && noRungTaken(run.State)) {
			cfg = o.Config()
			pol = s.policy(cfg, &o)
			if attempt > pol.MaxAttempts && run.State.Attempts > 0 {
				s.setState(Failed)
				return res, &GiveUpError{Cause: ErrBudgetExhausted, Last: res.Last, Class: res.Verdict.Class}
			}
			var err error
			if patch, err = strategies.PlanState(o.Argv, o.Env, cmd, &pol, run.State); err != nil {
				s.setState(Failed)
				return res, fmt.Errorf("apply ladder: %w", err)
			}
		}
		argv := patch.Argv
		if cmd.IsWan() {
			argv = strategies.Prepare(argv, run.State.Seed, run.State.SaveFile)
		}
		res.Argv = argv
		res.SaveFile = run.State.SaveFile

		if s.States != nil {
			if err := s.States.Check(); err != nil && !errors.Is(err, errNoStateFile) {
				name, rerr := s.States.Restore()
				if rerr == nil {
					s.statusf(&o, "state file failed validation (%v); restored snapshot %s", err, name)
					log.WithError(err).WithField("snapshot", name).Warn("state restored before launch")
				}
			}
			if err := s.States.Snapshot("before-attempt"); err != nil {
				log.WithError(err).Debug("state snapshot skipped")
			}
		}

		rec, outcome, verdict, sig := s.attempt(ctx, &o, cfg, attempt, argv, patch, run.State)
		if cfg == nil {
			cfg = o.Config()
			pol = s.policy(cfg, &o)
		}
		res.Attempts = attempt
		res.Last = outcome
		res.Verdict = verdict

		var stateInvalid bool
		if s.States != nil && verdict.Class != classify.ClassSuccess {
			if err := s.States.Check(); err != nil && !errors.Is(err, errNoStateFile) {
				stateInvalid = true
			}
		}
		if stateInvalid && !outcome.StateInvalid {
			outcome.StateInvalid = true
			verdict = s.reverdict(rec, outcome, verdict)
			fillVerdict(&rec, verdict)
			res.Last, res.Verdict = outcome, verdict
		}

		now := s.Clock.Now()
		dec := strategies.Decide(strategies.Input{
			Result:  verdict,
			Outcome: outcome,
			Attempt: attempt,
			Started: started,
			Now:     now,
			Uptime:  outcome.Uptime,
			State:   run.State,
			Cmd:     cmd,
			Policy:  &pol,
			Jitter:  s.Jitter(),
		})
		res.Decision = dec
		run.State = dec.State
		run.State.Attempts = attempt
		if run.State.Seed < 0 && rec.SeedSeen > 0 && o.PinSeed && cmd.IsWan() {
			// Pin the seed Wan2.2 chose on its own so retries are comparable.
			run.State.Seed = rec.SeedSeen
		}
		fillDecision(&rec, dec)
		res.Records = append(res.Records, rec)
		if s.Journal != nil {
			if err := s.Journal.Write(rec); err != nil && !writeErrSaid {
				writeErrSaid = true
				s.statusf(&o, "cannot write the attempt log (%v); the run goes on", err)
			}
		}
		if s.Observer != nil {
			s.Observer.AttemptEnded(rec)
		}
		run.Last = &rec
		// A run the guard ended by its own decision is finished, and the same
		// command next time starts afresh; one it was stopped in (a signal,
		// the guard killed) is resumed by the next guard.
		run.Done = dec.Action.Final() && sig == nil
		if err := saveRun(o, run); err != nil {
			log.WithError(err).Debug("cannot save run.json")
			if !writeErrSaid {
				writeErrSaid = true
				s.statusf(&o, "cannot save %s (%v); the run goes on", o.RunFile, err)
			}
		}
		s.summary(&o, rec, pol.MaxAttempts, dec)

		if sig != nil {
			res.Signal = sig
			s.setState(Exited)
			return res, &GiveUpError{Cause: ErrInterrupted, Last: outcome, Class: classify.ClassInterrupted}
		}
		switch dec.Action {
		case strategies.ActionNone:
			s.setState(Exited)
			return res, nil
		case strategies.ActionGuide:
			s.printWorkflow(&o, cfg, dec, verdict, argv, cmd)
			s.setState(Failed)
			return res, &GiveUpError{Cause: ErrNeedsUser, Last: outcome, Class: verdict.Class}
		case strategies.ActionShutdown:
			s.setState(Failed)
			return res, &GiveUpError{Cause: ErrShutdown, Last: outcome, Class: verdict.Class}
		case strategies.ActionGiveUp:
			s.setState(Failed)
			if dec.Workflow != "" {
				s.printWorkflow(&o, cfg, dec, verdict, argv, cmd)
			}
			return res, &GiveUpError{Cause: ErrBudgetExhausted, Last: outcome, Class: verdict.Class}
		case strategies.ActionRestore:
			if s.States != nil {
				name, err := s.States.Restore()
				if err != nil {
					s.statusf(&o, "cannot restore the state file: %v", err)
				} else {
					s.statusf(&o, "restored state snapshot %s", name)
				}
			}
		}
		if dec.Delay > 0 {
			s.setState(BackingOff)
			if s.Observer != nil {
				s.Observer.BackingOff(dec.Delay)
			}
			if sig, stop := s.sleep(ctx, dec.Delay); stop {
				res.Signal = sig
				s.setState(Exited)
				return res, &GiveUpError{Cause: ErrInterrupted, Last: outcome, Class: classify.ClassInterrupted}
			}
		}
	}
}

// errNoStateFile is what a StateStore's Check returns when there is no
// state file yet; that is not a reason to restore.
var errNoStateFile = errors.New("no state file")

// NoStateFile is returned by StateStore adapters for a state file that does not exist yet.
var NoStateFile = errNoStateFile

// sleep waits d, or until ctx ends or a stop signal arrives.
func (s *Supervisor) sleep(ctx context.Context, d time.Duration) (os.Signal, bool) {
	t := s.Clock.After(d)
	for {
		select {
		case <-t:
			return nil, false
		case <-ctx.Done():
			return nil, true
		case sig := <-s.Signals:
			if isStop(sig) {
				return sig, true
			}
		}
	}
}

func isStop(sig os.Signal) bool {
	return sig == syscall.SIGINT || sig == syscall.SIGTERM
}

func (s *Supervisor) policy(cfg *configs.Config, o *Options) strategies.Policy {
	rt := cfg.Runtime
	pol := strategies.PolicyFrom(cfg.Classes, cfg.Ladders, cfg.Workflows...)
	pol.MaxAttempts = rt.MaxAttempts
	pol.Deadline = rt.Deadline.D()
	pol.StableAfter = rt.StableAfter.D()
	pol.Backoff = strategies.Backoff{Initial: rt.Backoff.Initial.D(), Max: rt.Backoff.Max.D(), Multiplier: rt.Backoff.Multiplier}
	if o.MaxAttempts > 0 {
		pol.MaxAttempts = o.MaxAttempts
	}
	if o.Deadline > 0 {
		pol.Deadline = o.Deadline
	}
	if o.BackoffInitial != nil {
		pol.Backoff.Initial = *o.BackoffInitial
		if pol.Backoff.Max < pol.Backoff.Initial {
			pol.Backoff.Max = pol.Backoff.Initial
		}
	}
	if o.BackoffMax != nil {
		pol.Backoff.Max = *o.BackoffMax
		if pol.Backoff.Initial > pol.Backoff.Max {
			pol.Backoff.Initial = pol.Backoff.Max
		}
	}
	return pol
}

// summary prints the one line per attempt.
func (s *Supervisor) summary(o *Options, rec journal.Record, max int, dec strategies.Decision) {
	dur := time.Duration(rec.DurationMS) * time.Millisecond
	how := fmt.Sprintf("exit %d", rec.ExitCode)
	if rec.Signal != "" {
		how = "killed by " + rec.Signal
	}
	if rec.StartError != "" {
		how = rec.StartError
	}
	if rec.Class == string(classify.ClassSuccess) {
		s.statusf(o, "attempt %d/%d succeeded after %s", rec.Attempt, max, roundDur(dur))
		return
	}
	where := rec.Class
	if rec.Phase != "" && rec.Phase != string(classify.PhaseStart) {
		where += " at " + rec.Phase
	}
	line := fmt.Sprintf("attempt %d/%d failed: %s (%s after %s)", rec.Attempt, max, where, how, roundDur(dur))
	switch dec.Action {
	case strategies.ActionRetry, strategies.ActionBackoff, strategies.ActionFallback, strategies.ActionRestore:
		next := string(dec.Action)
		if dec.Action == strategies.ActionFallback && dec.RungName != "" {
			next = "fallback " + dec.RungName
		}
		if len(dec.Trades) > 0 {
			next += " (" + strings.Join(dec.Trades, ", ") + ")"
		}
		line += fmt.Sprintf("; next: %s in %s", next, roundDur(dec.Delay))
	default:
		line += fmt.Sprintf("; %s: %s", dec.Action, dec.Message)
	}
	s.statusf(o, "%s", line)
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}

func defaultSaveFile(cmd wan.Command, runID string) string {
	task := cmd.Task
	if task == "" {
		task = "video"
	}
	size := strings.ReplaceAll(cmd.Size, "*", "x")
	if size == "" {
		return fmt.Sprintf("%s_%s.mp4", task, runID)
	}
	return fmt.Sprintf("%s_%s_%s.mp4", task, size, runID)
}

// printWorkflow prints the guided steps for the class the run stopped on,
// filled in with the evidence, phase and command.
func (s *Supervisor) printWorkflow(o *Options, cfg *configs.Config, dec strategies.Decision, v classify.Result, argv []string, cmd wan.Command) {
	if o.Status == nil || dec.Workflow == "" {
		return
	}
	w, ok := cfg.Workflow(dec.Workflow)
	if !ok {
		return
	}
	vars := strategies.VarsForPrint(wan.Parse(argv), v)
	vars["argv"] = strategies.ShellJoin(journal.RedactArgv(argv))
	text := w.Render(vars)
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString("[wan22-guard] ")
		b.WriteString(journal.RedactLine(line))
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(o.Status, b.String())
	_ = cmd
}

// noRungTaken reports whether st has no ladder rung to apply: the command
// runs as the user gave it.
func noRungTaken(st strategies.RunState) bool {
	if len(st.Steps) > 0 {
		return false
	}
	for _, r := range st.Rungs {
		if r >= 0 {
			return false
		}
	}
	return true
}
