package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mathrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/configs"
	"github.com/wan22-guard/wan22-guard/journal"
	"github.com/wan22-guard/wan22-guard/runner"
	"github.com/wan22-guard/wan22-guard/strategies"
	"github.com/wan22-guard/wan22-guard/wan"
)

func runFlags() []cli.Flag {
	return []cli.Flag{
		configFlag,
		runDirFlag,
		&cli.IntFlag{Name: "max-attempts", Usage: "total launches, the first included", DefaultText: "8, from the config", EnvVars: envs("MAX_ATTEMPTS")},
		&cli.DurationFlag{Name: "deadline", Usage: "wall-clock limit for the whole run, e.g. 6h", DefaultText: "none", EnvVars: envs("DEADLINE")},
		&cli.DurationFlag{Name: "backoff-initial", Usage: "first relaunch delay", DefaultText: "10s, from the config", EnvVars: envs("BACKOFF_INITIAL")},
		&cli.DurationFlag{Name: "backoff-max", Usage: "relaunch delay cap", DefaultText: "10m, from the config", EnvVars: envs("BACKOFF_MAX")},
		&cli.DurationFlag{Name: "grace", Usage: "time between SIGTERM and SIGKILL for the child's group", DefaultText: "30s, from the config", EnvVars: envs("GRACE")},
		&cli.DurationFlag{Name: "no-output-timeout", Usage: "stop and classify as stall after this long with no output", DefaultText: "off", EnvVars: envs("NO_OUTPUT_TIMEOUT")},
		&cli.StringSliceFlag{Name: "phase-timeout", Usage: "NAME=DURATION, a watchdog per phase (repeatable), e.g. quantize=20m", EnvVars: envs("PHASE_TIMEOUT")},
		&cli.StringFlag{Name: "exit-code", Value: exitModeContract, Usage: "contract: the code says how the run ended; child: the child's last code", EnvVars: envs("EXIT_CODE")},
		&cli.StringFlag{Name: "state-file", Usage: "a state file the child reads and writes: snapshotted, watched, restored when corrupt", EnvVars: envs("STATE_FILE")},
		&cli.StringFlag{Name: "state-validate", Usage: "command that validates the state file: it gets the file's bytes on stdin, exit 0 = valid (split on spaces, no shell)", EnvVars: envs("STATE_VALIDATE")},
		&cli.IntFlag{Name: "state-keep", Value: 10, Usage: "snapshots of the state file to keep", EnvVars: envs("STATE_KEEP")},
		&cli.DurationFlag{Name: "state-max-age", Usage: "drop snapshots older than this (0 = keep)", EnvVars: envs("STATE_MAX_AGE")},
		&cli.BoolFlag{Name: "resume", Usage: "continue the run in run.json even if the command changed", EnvVars: envs("RESUME")},
		&cli.BoolFlag{Name: "dry-run", Usage: "print the ladder the guard would walk for this command and launch nothing", EnvVars: envs("DRY_RUN")},
		&cli.BoolFlag{Name: "no-preflight", Usage: "do not start at a lower rung when the request cannot fit the GPU", EnvVars: envs("NO_PREFLIGHT")},
		&cli.BoolFlag{Name: "no-pin", Usage: "do not pin --base_seed or set --save_file on Wan2.2 commands", EnvVars: envs("NO_PIN")},
		&cli.StringFlag{Name: "report", Usage: "write a JSON summary of the run to this file", EnvVars: envs("REPORT")},
		&cli.StringFlag{Name: "termination-log", Usage: "write a short JSON summary here (default /dev/termination-log when it exists)", EnvVars: envs("TERMINATION_LOG")},
		&cli.StringFlag{Name: "listen", Usage: "serve Prometheus /metrics and /healthz on this address (off by default)", EnvVars: envs("LISTEN")},
		&cli.StringFlag{Name: "log-level", Value: "warning", Usage: "the guard's own JSON log level: debug, info, warning, error", EnvVars: envs("LOG_LEVEL")},
		&cli.StringFlag{Name: "log-file", Usage: "write the guard's own JSON log here (rotated) instead of stderr", EnvVars: envs("LOG_FILE")},
		&cli.IntFlag{Name: "journal-max-size", Value: defaultJournalSize, Usage: "rotate attempts.jsonl at this many MB", EnvVars: envs("JOURNAL_MAX_SIZE")},
		&cli.IntFlag{Name: "journal-max-backups", Value: 10, Usage: "rotated journals to keep", EnvVars: envs("JOURNAL_MAX_BACKUPS")},
		&cli.IntFlag{Name: "journal-max-age", Value: 0, Usage: "days to keep rotated journals (0 = no limit)", EnvVars: envs("JOURNAL_MAX_AGE")},
		&cli.BoolFlag{Name: "journal-compress", Value: true, Usage: "gzip rotated journals", EnvVars: envs("JOURNAL_COMPRESS")},
		&cli.DurationFlag{Name: "sample-interval", Usage: "GPU memory and process-tree RSS sampling interval", DefaultText: "2s, from the config", EnvVars: envs("SAMPLE_INTERVAL")},
		&cli.DurationFlag{Name: "gpu-release-timeout", Usage: "wait this long for the last attempt's GPU memory before relaunching", DefaultText: "2m, from the config", EnvVars: envs("GPU_RELEASE_TIMEOUT")},
	}
}

func runCommand(ios *ioSet) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run COMMAND, recover from its failures and relaunch it (the default command)",
		UsageText: "wan22-guard [run] [flags] -- COMMAND [ARG...]",
		Flags:     runFlags(),
		Action: func(c *cli.Context) error {
			return doRun(c, ios)
		},
	}
}

func newRunID() string {
	var b [4]byte
	_, _ = cryptoRead(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

var cryptoRead = rand.Read

func buildLogger(c *cli.Context, ios *ioSet) (*logrus.Entry, error) {
	l := logrus.New()
	l.SetFormatter(&logrus.JSONFormatter{})
	l.SetOutput(ios.err)
	lvl, err := logrus.ParseLevel(c.String("log-level"))
	if err != nil {
		return nil, exitf(ExitUsage, "--log-level: %v", err)
	}
	l.SetLevel(lvl)
	if p := c.String("log-file"); p != "" {
		l.SetOutput(&lumberjack.Logger{Filename: p, MaxSize: 20, MaxBackups: 3, Compress: true})
	}
	return logrus.NewEntry(l), nil
}

func parsePhaseTimeouts(list []string) (map[string]time.Duration, error) {
	m := map[string]time.Duration{}
	for _, s := range list {
		name, val, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, exitf(ExitUsage, "--phase-timeout %q: want NAME=DURATION, e.g. quantize=20m", s)
		}
		d, err := time.ParseDuration(val)
		if err != nil || d < 0 {
			return nil, exitf(ExitUsage, "--phase-timeout %q: bad duration %q", s, val)
		}
		m[name] = d
	}
	return m, nil
}

func doRun(c *cli.Context, ios *ioSet) error {
	argv := c.Args().Slice()
	if len(argv) == 0 {
		return exitf(ExitUsage, "no command given: wan22-guard [flags] -- COMMAND [ARG...]")
	}
	mode := c.String("exit-code")
	if mode != exitModeContract && mode != exitModeChild {
		return exitf(ExitUsage, "--exit-code must be contract or child, got %q", mode)
	}
	log, err := buildLogger(c, ios)
	if err != nil {
		return err
	}
	// The config loads while the rest of the set-up runs: it is the larger
	// part of the time before the child starts.
	type loaded struct {
		cfg *configs.Config
		err error
	}
	cfgC := make(chan loaded, 1)
	go func() {
		cfg, err := loadConfig(c)
		cfgC <- loaded{cfg, err}
	}()
	// Signals are caught from here on; one that comes before the child
	// starts waits in the channel and reaches it at once.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	if err := runner.BecomeSubreaper(); err != nil {
		log.WithError(err).Debug("cannot become a child subreaper")
	}
	phaseTimeouts, err := parsePhaseTimeouts(c.StringSlice("phase-timeout"))
	if err != nil {
		return err
	}
	// With only the built-in config (checked by the tests) and nothing on
	// the command line to check against it, the child is launched while the
	// config still loads; otherwise everything is checked first.
	early := c.String("config") == "" && len(phaseTimeouts) == 0 && !c.Bool("dry-run")
	var cur atomic.Pointer[configs.Config]
	var waitCfg sync.Once
	getCfg := func() *configs.Config {
		waitCfg.Do(func() {
			ld := <-cfgC
			if ld.err != nil {
				// Only the embedded defaults load here, and the tests load
				// them: this is a broken build, and the child is not started
				// or dies with the guard.
				fmt.Fprintf(ios.err, "%s%v\n", guardLinePrefix, ld.err)
				os.Exit(ExitInternal)
			}
			if cur.Load() == nil {
				cur.Store(ld.cfg)
			}
		})
		return cur.Load()
	}
	if !early {
		ld := <-cfgC
		if ld.err != nil {
			return ld.err
		}
		cfg := ld.cfg
		cfgC <- ld
		known := map[string]bool{}
		for _, p := range cfg.Phases {
			known[string(p.Name)] = true
		}
		for _, p := range []classify.Phase{classify.PhaseStart, classify.PhaseDecode, classify.PhaseDenoise, classify.PhaseDone} {
			known[string(p)] = true
		}
		for name := range phaseTimeouts {
			if !known[name] {
				return exitf(ExitUsage, "--phase-timeout: unknown phase %q", name)
			}
		}
		if c.Bool("dry-run") {
			return dryRun(c, ios, cfg, argv, wan.Parse(argv))
		}
	}

	runDir := c.String("run-dir")
	runID := newRunID()

	sup := &runner.Supervisor{
		Launcher: &runner.ExecLauncher{},
		Clock:    runner.RealClock{},
		Log:      log,
		Jitter:   func() float64 { return mathrand.Float64() },
	}
	sup.Signals = sigs

	status := &statusWriter{w: ios.err, tty: isTerminal(ios.err)}
	runFile := filepath.Join(runDir, "run.json")
	runDirErr := os.MkdirAll(runDir, 0o700)
	if runDirErr != nil {
		// Said once here; run.json and snapshots are not tried again.
		fmt.Fprintf(ios.err, "%scannot create run dir %s (%v); running without the attempt log, run.json and state snapshots\n", guardLinePrefix, runDir, runDirErr)
		runFile = ""
	} else {
		j, err := journal.Open(runDir, journal.Options{
			MaxSizeMB: c.Int("journal-max-size"), MaxBackups: c.Int("journal-max-backups"),
			MaxAgeDays: c.Int("journal-max-age"), Compress: c.Bool("journal-compress"),
		})
		if err != nil {
			fmt.Fprintf(ios.err, "%scannot open the attempt log in %s (%v); the run goes on\n", guardLinePrefix, runDir, err)
		} else {
			defer j.Close()
			sup.Journal = j
		}
	}
	if p := c.String("config"); p != "" {
		stop := watchConfig(c.Context, p, &cur, ios, log)
		defer stop()
	}
	var stateStore *stateAdapter
	if sf := c.String("state-file"); sf != "" {
		stateStore, err = newStateAdapter(c, sf, filepath.Join(runDir, "states"), status, log)
		var pathErr *fs.PathError
		switch {
		case err == nil:
			sup.States = stateStore
			stop := stateStore.watch(c.Context)
			defer stop()
		case !errors.As(err, &pathErr):
			return exitf(ExitUsage, "--state-file: %v", err)
		case runDirErr == nil:
			// Logging never stops the job: without a snapshot directory
			// the child still runs, only nothing can be restored.
			fmt.Fprintf(ios.err, "%scannot keep snapshots of the state file (%v); the run goes on without them\n", guardLinePrefix, err)
		}
	}

	opts := runner.Options{
		Argv: argv, Env: os.Environ(), Stdin: ios.in, Stdout: ios.out, Stderr: ios.err, Status: status,
		RunID: runID, RunFile: runFile,
		Config:      getCfg,
		LaunchEarly: early,
		MaxAttempts: c.Int("max-attempts"), Deadline: c.Duration("deadline"),
		PhaseTimeouts: phaseTimeouts, Grace: c.Duration("grace"),
		PinSeed: !c.Bool("no-pin"), SetSaveFile: !c.Bool("no-pin"),
		Resume: c.Bool("resume"),
	}
	if c.IsSet("no-output-timeout") {
		d := c.Duration("no-output-timeout")
		opts.NoOutputTimeout = &d
	}
	if c.IsSet("backoff-initial") {
		d := c.Duration("backoff-initial")
		opts.BackoffInitial = &d
	}
	if c.IsSet("backoff-max") {
		d := c.Duration("backoff-max")
		opts.BackoffMax = &d
	}
	facts := newFactsAdapter(c, getCfg, runDir, log)
	sup.Facts = facts
	defer facts.Close()
	if !c.Bool("no-preflight") {
		opts.StartRung = facts.preflight(getCfg)
	}
	obs, stopObs, err := newObservers(c, status)
	if err != nil {
		return err
	}
	sup.Observer = obs

	res, runErr := sup.Run(c.Context, opts)
	stopObs(runErr == nil)
	if status.tty {
		printSummaryTable(status, res)
	}
	code := exitCode(mode, res, runErr)
	writeReports(c, ios, runID, res, runErr, code, log)
	if runErr != nil {
		var gu *runner.GiveUpError
		if !errors.As(runErr, &gu) {
			return exitf(ExitInternal, "%v", runErr)
		}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// exitCode maps how the run ended to the exit code (see the package doc).
func exitCode(mode string, res runner.Result, err error) int {
	if err == nil {
		return ExitOK
	}
	var gu *runner.GiveUpError
	if !errors.As(err, &gu) {
		return ExitInternal
	}
	last := res.Last
	if last.StartErr != "" && (last.ExitCode == ExitNotFound || last.ExitCode == ExitNotExecutable) {
		return last.ExitCode
	}
	if mode == exitModeChild {
		// Like tini: what the child exited with, 128+N if signal N killed it.
		return last.ExitCode
	}
	if res.Signal != nil {
		if s, ok := res.Signal.(syscall.Signal); ok {
			return ExitSignalBase + int(s)
		}
	}
	return contractCode(res.Verdict.Class, res.Decision)
}

// contractCode is the contract's code for a run that ended without success
// on class cls with decision d.
func contractCode(cls classify.Class, d strategies.Decision) int {
	switch cls {
	case classify.ClassInterrupted:
		return ExitSignalBase + int(syscall.SIGTERM)
	case classify.ClassGPUFault:
		return ExitGPUFault
	case classify.ClassConfig, classify.ClassMissingDep, classify.ClassCUDAEnv, classify.ClassDiskFull, classify.ClassStateCorrupt:
		return ExitNeedsUser
	case classify.ClassCUDAOOM, classify.ClassHostOOM, classify.ClassQuantizationTimeout, classify.ClassQuantizationError:
		if d.Reason == strategies.ReasonLadderExhausted {
			return ExitInfeasible
		}
		if d.Action == strategies.ActionGuide || d.Action == strategies.ActionShutdown {
			return ExitNeedsUser
		}
		return ExitTransient
	}
	if d.Action == strategies.ActionGuide {
		return ExitNeedsUser
	}
	return ExitTransient
}

// printSummaryTable prints one row per attempt for a person at a terminal.
func printSummaryTable(w io.Writer, res runner.Result) {
	if len(res.Records) < 2 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, guardLinePrefix+"attempt\tclass\tphase\tran\tnext\t")
	for _, r := range res.Records {
		next := r.Action
		if r.RungName != "" {
			next += " " + r.RungName
		}
		fmt.Fprintf(tw, "%s%d\t%s\t%s\t%s\t%s\t\n", guardLinePrefix, r.Attempt, r.Class, r.Phase, (time.Duration(r.DurationMS) * time.Millisecond).Round(time.Second), next)
	}
	_ = tw.Flush()
}
