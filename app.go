package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/wan22-guard/wan22-guard/configs"
)

// The guard's own exit codes (see the package doc for the whole contract).
const (
	ExitOK             = 0
	ExitUsage          = 2
	ExitConfig         = 3
	ExitInternal       = 4
	ExitNeedsUser      = 10
	ExitInfeasible     = 11
	ExitTransient      = 12
	ExitGPUFault       = 13
	ExitNotExecutable  = 126
	ExitNotFound       = 127
	ExitSignalBase     = 128
	envPrefix          = "WAN22_GUARD_"
	defaultRunDir      = ".wan22-guard"
	exitModeContract   = "contract"
	exitModeChild      = "child"
	guardLinePrefix    = "[wan22-guard] "
	defaultJournalSize = 100
)

// exitError carries an exit code out of a cli action.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitf(code int, format string, a ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, a...)}
}

func envs(name string) []string { return []string{envPrefix + name} }

// run is the whole program: it parses args, runs the command and returns
// the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, guardLinePrefix+ee.msg)
		}
		return ee.code
	}
	if errors.Is(err, configs.ErrInvalid) {
		fmt.Fprintln(stderr, guardLinePrefix+err.Error())
		return ExitConfig
	}
	fmt.Fprintln(stderr, guardLinePrefix+oneLine(err.Error()))
	return ExitUsage
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	io := &ioSet{in: stdin, out: stdout, err: stderr}
	runCmd := runCommand(io)
	app := &cli.App{
		Name:      "wan22-guard",
		Usage:     "run a Wan2.2 generation command, diagnose each failure, recover and relaunch",
		UsageText: "wan22-guard [run] [flags] -- COMMAND [ARG...]\n   wan22-guard COMMAND [flags] [args]",
		Version:   version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     runCmd.Flags,
		Action:    runCmd.Action,
		Commands: []*cli.Command{
			runCmd,
			explainCommand(io),
			configCommand(io),
			stateCommand(io),
			workflowCommand(io),
			doctorCommand(io),
			statsCommand(io),
		},
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		ExitErrHandler:       func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return exitf(ExitUsage, "%v (see --help)", err)
		},
	}
	for _, c := range app.Commands {
		if c.OnUsageError == nil {
			c.OnUsageError = app.OnUsageError
		}
	}
	return app
}

// ioSet is the program's standard streams.
type ioSet struct {
	in       io.Reader
	out, err io.Writer
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice != 0
}

// loadConfig loads the defaults and the --config file on top.
func loadConfig(c *cli.Context) (*configs.Config, error) {
	cfg, err := configs.Load(c.String("config"))
	if err != nil {
		if errors.Is(err, configs.ErrInvalid) {
			return nil, exitf(ExitConfig, "%v", err)
		}
		return nil, exitf(ExitConfig, "%v", err)
	}
	return cfg, nil
}

var configFlag = &cli.StringFlag{Name: "config", Usage: "YAML file laid over the built-in defaults", EnvVars: envs("CONFIG")}
var runDirFlag = &cli.StringFlag{Name: "run-dir", Value: defaultRunDir, Usage: "where attempts.jsonl, run.json, states/ and workflows/ live", EnvVars: envs("RUN_DIR")}
