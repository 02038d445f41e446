package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/configs"
	"github.com/wan22-guard/wan22-guard/journal"
	"github.com/wan22-guard/wan22-guard/runner"
	"github.com/wan22-guard/wan22-guard/statefile"
	"github.com/wan22-guard/wan22-guard/strategies"
	"github.com/wan22-guard/wan22-guard/wan"
)

func newObservers(c *cli.Context, status *statusWriter) (runner.Observer, func(ok bool), error) {
	so := &statusObserver{st: status}
	obs := multiObserver{so}
	stop := func(bool) { so.stop() }
	if addr := c.String("listen"); addr != "" {
		m, stopM, err := startMetrics(c.Context, addr)
		if err != nil {
			return nil, nil, exitf(ExitUsage, "--listen: %v", err)
		}
		obs = append(obs, m)
		stop = func(ok bool) { so.stop(); stopM(ok) }
	}
	return obs, stop, nil
}

// explainResult is what `explain --json` prints.
type explainResult struct {
	Class     classify.Class      `json:"class"`
	Rule      string              `json:"rule,omitempty"`
	Evidence  string              `json:"evidence,omitempty"`
	Line      int                 `json:"line,omitempty"`
	Phase     classify.Phase      `json:"phase"`
	Progress  classify.Progress   `json:"progress"`
	Retriable bool                `json:"retriable"`
	Action    strategies.Action   `json:"action"`
	Ladder    string              `json:"ladder,omitempty"`
	Workflow  string              `json:"workflow,omitempty"`
	Remedy    string              `json:"remedy,omitempty"`
	RootCause *classify.RootCause `json:"root_cause,omitempty"`
}

func explainCommand(ios *ioSet) *cli.Command {
	return &cli.Command{
		Name:      "explain",
		Usage:     "classify a saved log as if a child had printed it and ended that way",
		UsageText: "wan22-guard explain [--exit-code N] [--signal NAME] [--json] [FILE|-]",
		Flags: []cli.Flag{
			configFlag,
			&cli.IntFlag{Name: "exit-code", Value: 1, Usage: "the exit code the child ended with"},
			&cli.StringFlag{Name: "signal", Usage: "the signal that killed the child (SIGKILL, 9, KILL)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			var in io.Reader = ios.in
			name := "-"
			if c.NArg() > 1 {
				return exitf(ExitUsage, "explain takes one FILE")
			}
			if c.NArg() == 1 && c.Args().First() != "-" {
				name = c.Args().First()
				f, err := os.Open(name)
				if err != nil {
					return exitf(ExitUsage, "explain: %v", err)
				}
				defer f.Close()
				in = f
			}
			out := classify.Outcome{ExitCode: c.Int("exit-code")}
			if s := c.String("signal"); s != "" {
				sig, err := runner.ParseSignal(s)
				if err != nil {
					return exitf(ExitUsage, "--signal: %v", err)
				}
				out.Signal = runner.SignalName(sig)
				out.ExitCode = 128 + int(sig)
			}
			sc := classify.NewScanner(cfg.Compiled)
			sp := runner.NewLineSplitter(cfg.Runtime.MaxLine, sc.Line)
			if _, err := io.Copy(sp, in); err != nil {
				return exitf(ExitUsage, "explain: read %s: %v", name, err)
			}
			sp.Flush()
			v := sc.Verdict(out)
			pol := strategies.PolicyFrom(cfg.Classes, cfg.Ladders, cfg.Workflows...)
			cp := pol.Classes[v.Class]
			r := explainResult{Class: v.Class, Rule: v.Rule, Evidence: v.Evidence, Line: v.Line, Phase: v.Phase, Progress: v.Progress, RootCause: v.RootCause,
				Action: cp.Strategy, Ladder: cp.Ladder, Workflow: cp.Workflow}
			if v.Class == classify.ClassSuccess {
				r.Action = strategies.ActionNone
			}
			r.Retriable = retriable(cp.Strategy)
			if spec, ok := cfg.Compiled.Rule(v.Rule); ok {
				r.Remedy = spec.Remedy
			}
			if c.Bool("json") {
				b, _ := json.Marshal(r)
				fmt.Fprintln(ios.out, string(b))
				return nil
			}
			w := ios.out
			fmt.Fprintf(w, "class:     %s\n", r.Class)
			if r.Rule != "" {
				fmt.Fprintf(w, "rule:      %s\n", r.Rule)
			}
			if r.Evidence != "" {
				fmt.Fprintf(w, "evidence:  line %d: %s\n", r.Line, r.Evidence)
			}
			fmt.Fprintf(w, "phase:     %s", r.Phase)
			if r.Progress.Total > 0 {
				fmt.Fprintf(w, " (step %d/%d)", r.Progress.Step, r.Progress.Total)
			}
			fmt.Fprintln(w)
			if r.RootCause != nil {
				fmt.Fprintf(w, "root cause: rank %d, exit code %d: %s\n", r.RootCause.Rank, r.RootCause.ExitCode, r.RootCause.Error)
			}
			fmt.Fprintf(w, "retriable: %t\n", r.Retriable)
			act := string(r.Action)
			if r.Ladder != "" {
				act += " (ladder " + r.Ladder + ")"
			}
			if r.Workflow != "" {
				act += ", workflow " + r.Workflow
			}
			fmt.Fprintf(w, "action:    %s\n", act)
			if r.Remedy != "" {
				fmt.Fprintf(w, "remedy:    %s\n", r.Remedy)
			}
			return nil
		},
	}
}

func retriable(a strategies.Action) bool {
	switch a {
	case strategies.ActionRetry, strategies.ActionBackoff, strategies.ActionFallback, strategies.ActionRestore:
		return true
	}
	return false
}

func configCommand(ios *ioSet) *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "validate, print or write out the configuration",
		Subcommands: []*cli.Command{
			{
				Name:      "validate",
				Usage:     "check a config file laid over the defaults (exit 3 and FILE:LINE:COL when invalid)",
				UsageText: "wan22-guard config validate [FILE]",
				Flags:     []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					path := c.String("config")
					if c.NArg() > 0 {
						path = c.Args().First()
					}
					if _, err := configs.Load(path); err != nil {
						return exitf(ExitConfig, "%v", err)
					}
					name := path
					if name == "" {
						name = configs.DefaultName + " (built in)"
					}
					fmt.Fprintf(ios.out, "%s: ok\n", name)
					return nil
				},
			},
			{
				Name:  "print",
				Usage: "print the merged config in effect",
				Flags: []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					cfg, err := loadConfig(c)
					if err != nil {
						return err
					}
					b, err := cfg.Marshal()
					if err != nil {
						return exitf(ExitInternal, "%v", err)
					}
					fmt.Fprintf(ios.out, "# sources: %s\n", strings.Join(cfg.Sources, ", "))
					_, err = ios.out.Write(b)
					return err
				},
			},
			{
				Name:      "init",
				Usage:     "write the built-in defaults to FILE to edit (never overwrites)",
				UsageText: "wan22-guard config init FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return exitf(ExitUsage, "config init needs one FILE")
					}
					p := c.Args().First()
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
					if err != nil {
						return exitf(ExitUsage, "config init: %v", err)
					}
					if _, err := f.Write(configs.DefaultBytes()); err != nil {
						f.Close()
						return exitf(ExitInternal, "config init: %v", err)
					}
					if err := f.Close(); err != nil {
						return exitf(ExitInternal, "config init: %v", err)
					}
					fmt.Fprintf(ios.out, "wrote %s\n", p)
					return nil
				},
			},
		},
	}
}

func openStore(c *cli.Context) (*statefile.Store, error) {
	sf := c.String("state-file")
	if sf == "" {
		return nil, exitf(ExitUsage, "--state-file is required")
	}
	st, err := statefile.NewStore(sf, filepath.Join(c.String("run-dir"), statefile.SnapshotDir), statefile.Options{Keep: c.Int("keep"), MaxAge: c.Duration("max-age")})
	if err != nil {
		return nil, exitf(ExitUsage, "state: %v", err)
	}
	return st, nil
}

// withStore opens the state-file store named by the flags for a state
// subcommand.
func withStore(fn func(c *cli.Context, st *statefile.Store) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		st, err := openStore(c)
		if err != nil {
			return err
		}
		return fn(c, st)
	}
}

func stateCommand(ios *ioSet) *cli.Command {
	flags := []cli.Flag{
		runDirFlag,
		&cli.StringFlag{Name: "state-file", Usage: "the state file the snapshots are of", EnvVars: envs("STATE_FILE")},
		&cli.IntFlag{Name: "keep", Value: statefile.DefaultKeep, Usage: "prune: snapshots to keep"},
		&cli.DurationFlag{Name: "max-age", Usage: "prune: drop snapshots older than this"},
	}
	return &cli.Command{
		Name:  "state",
		Usage: "list, show, restore or prune snapshots of the state file",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list snapshots, newest first", Flags: flags, Action: withStore(func(c *cli.Context, st *statefile.Store) error {
				snaps, err := st.List()
				if err != nil {
					return exitf(ExitInternal, "state list: %v", err)
				}
				for _, s := range snaps {
					fmt.Fprintf(ios.out, "%s\t%s\t%d bytes\t%s\n", s.Name, s.Time.Format(time.RFC3339), s.Size, s.Reason)
				}
				return nil
			})},
			{Name: "show", Usage: "print a snapshot's bytes", UsageText: "wan22-guard state show --state-file F NAME", Flags: flags, Action: withStore(func(c *cli.Context, st *statefile.Store) error {
				b, _, err := st.Show(c.Args().First())
				if err != nil {
					return exitf(ExitUsage, "state show: %v", err)
				}
				_, err = ios.out.Write(b)
				return err
			})},
			{Name: "restore", Usage: "write a snapshot (default: the last good one) over the state file", UsageText: "wan22-guard state restore --state-file F [NAME]", Flags: flags, Action: withStore(func(c *cli.Context, st *statefile.Store) error {
				s, err := st.Restore(c.Args().First())
				if err != nil {
					return exitf(ExitUsage, "state restore: %v", err)
				}
				fmt.Fprintf(ios.out, "restored %s to %s\n", s.Name, st.StateFile())
				return nil
			})},
			{Name: "prune", Usage: "apply retention (--keep, --max-age)", Flags: flags, Action: withStore(func(c *cli.Context, st *statefile.Store) error {
				n, err := st.Prune()
				if err != nil {
					return exitf(ExitInternal, "state prune: %v", err)
				}
				fmt.Fprintf(ios.out, "removed %d snapshots\n", n)
				return nil
			})},
		},
	}
}

// workflowProgress is what `workflow run` remembers in the run dir.
type workflowProgress struct {
	Workflow string    `json:"workflow"`
	Done     []int     `json:"done"`
	Updated  time.Time `json:"updated"`
}

func workflowCommand(ios *ioSet) *cli.Command {
	return &cli.Command{
		Name:  "workflow",
		Usage: "guided recovery steps: list, show NAME, suggest, run NAME",
		Subcommands: []*cli.Command{
			{Name: "list", Flags: []cli.Flag{configFlag}, Action: func(c *cli.Context) error {
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				ws := append([]strategies.Workflow(nil), cfg.Workflows...)
				sort.Slice(ws, func(i, j int) bool { return ws[i].Name < ws[j].Name })
				for _, w := range ws {
					var cls []string
					for _, c := range w.Classes {
						cls = append(cls, string(c))
					}
					fmt.Fprintf(ios.out, "%-22s %s [%s]\n", w.Name, w.Title, strings.Join(cls, ", "))
				}
				return nil
			}},
			{Name: "show", UsageText: "wan22-guard workflow show NAME", Flags: []cli.Flag{configFlag}, Action: func(c *cli.Context) error {
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				w, ok := cfg.Workflow(c.Args().First())
				if !ok {
					return exitf(ExitUsage, "no workflow %q (see workflow list)", c.Args().First())
				}
				fmt.Fprint(ios.out, w.Render(nil))
				return nil
			}},
			{Name: "suggest", Usage: "the workflow for the last attempt in the run dir", Flags: []cli.Flag{configFlag, runDirFlag}, Action: func(c *cli.Context) error {
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				rec, ok, err := journal.Last(c.String("run-dir"))
				if err != nil {
					return exitf(ExitUsage, "workflow suggest: %v", err)
				}
				if !ok {
					return exitf(ExitUsage, "workflow suggest: no attempts recorded in %s", c.String("run-dir"))
				}
				name := cfg.Classes[classify.Class(rec.Class)].Workflow
				v := classify.Result{Class: classify.Class(rec.Class), Evidence: rec.Evidence, Phase: classify.Phase(rec.Phase)}
				for _, w := range cfg.Workflows {
					for _, pat := range w.Evidence {
						if re, err := regexp.Compile(pat); err == nil && re.MatchString(rec.Evidence) {
							name = w.Name
						}
					}
				}
				w, ok := cfg.Workflow(name)
				if !ok {
					fmt.Fprintf(ios.out, "last attempt: %s at %s; no workflow for it (action: %s)\n", rec.Class, rec.Phase, rec.Action)
					return nil
				}
				vars := strategies.VarsForPrint(wan.Parse(rec.Argv), v)
				vars["argv"] = strategies.ShellJoin(rec.Argv)
				fmt.Fprintf(ios.out, "last attempt %d: %s at %s\n\n", rec.Attempt, rec.Class, rec.Phase)
				fmt.Fprint(ios.out, w.Render(vars))
				return nil
			}},
			{Name: "run", UsageText: "wan22-guard workflow run NAME", Usage: "walk a workflow's steps on a terminal, running each check; progress is kept in the run dir",
				Flags:  []cli.Flag{configFlag, runDirFlag, &cli.BoolFlag{Name: "reset", Usage: "forget recorded progress"}},
				Action: func(c *cli.Context) error { return runWorkflow(c, ios) }},
		},
	}
}

func runWorkflow(c *cli.Context, ios *ioSet) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	w, ok := cfg.Workflow(c.Args().First())
	if !ok {
		return exitf(ExitUsage, "no workflow %q (see workflow list)", c.Args().First())
	}
	f, isFile := ios.in.(*os.File)
	if !isFile || !isTerminal(f) || !isTerminal(ios.out) {
		fmt.Fprint(ios.out, w.Render(nil))
		return nil
	}
	dir := filepath.Join(c.String("run-dir"), "workflows")
	progPath := filepath.Join(dir, w.Name+".json")
	var prog workflowProgress
	if !c.Bool("reset") {
		if err := statefile.LoadJSON(progPath, &prog); err != nil && !errors.Is(err, statefile.ErrNoState) {
			fmt.Fprintf(ios.err, "%sprogress file unreadable, starting over: %v\n", guardLinePrefix, err)
		}
	}
	prog.Workflow = w.Name
	done := map[int]bool{}
	for _, d := range prog.Done {
		done[d] = true
	}
	in := bufio.NewReader(ios.in)
	fmt.Fprintf(ios.out, "%s\n\n", w.Title)
	for i, st := range w.Steps {
		n := i + 1
		if done[n] {
			fmt.Fprintf(ios.out, "%d. [done] %s\n", n, st.Instruction)
			continue
		}
		fmt.Fprintf(ios.out, "%d. %s\n", n, st.Instruction)
		if st.Check != nil && len(st.Check.Command) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			out, errOut, ex := runner.Run(ctx, st.Check.Command, nil)
			cancel()
			text := string(out) + string(errOut)
			fmt.Fprintf(ios.out, "   $ %s\n", strategies.ShellJoin(st.Check.Command))
			for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
				fmt.Fprintf(ios.out, "   | %s\n", l)
			}
			pass := ex.StartErr == nil && ex.Code == 0
			if pass && st.Check.Expect != "" {
				re, err := regexp.Compile(st.Check.Expect)
				pass = err == nil && re.MatchString(text)
			}
			fmt.Fprintf(ios.out, "   check: %s\n", map[bool]string{true: "OK", false: "not yet"}[pass])
		}
		if st.Expected != "" {
			fmt.Fprintf(ios.out, "   expected: %s\n", st.Expected)
		}
		for _, t := range st.Tips {
			fmt.Fprintf(ios.out, "   tip: %s\n", t)
		}
		fmt.Fprint(ios.out, "   done? [y = done, s = skip, q = quit] ")
		line, err := in.ReadString('\n')
		ans := strings.TrimSpace(strings.ToLower(line))
		if err != nil || ans == "q" {
			fmt.Fprintln(ios.out)
			break
		}
		if ans == "y" || ans == "yes" {
			prog.Done = append(prog.Done, n)
			prog.Updated = time.Now().UTC()
			if err := os.MkdirAll(dir, 0o700); err == nil {
				if err := statefile.SaveJSON(progPath, prog); err != nil {
					fmt.Fprintf(ios.err, "%scannot save progress: %v\n", guardLinePrefix, err)
				}
			}
		}
	}
	fmt.Fprintf(ios.out, "progress: %d/%d steps done (kept in %s)\n", len(prog.Done), len(w.Steps), progPath)
	return nil
}

func statsCommand(ios *ioSet) *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "recovery statistics over every attempt log (rotated and gzipped too)",
		UsageText: "wan22-guard stats [--run-dir DIR ...] [--json] [--since DURATION]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "run-dir", Value: cli.NewStringSlice(defaultRunDir), Usage: "run dirs to read (repeatable)", EnvVars: envs("RUN_DIR")},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.DurationFlag{Name: "since", Usage: "only attempts that started within this duration, e.g. 168h"},
		},
		Action: func(c *cli.Context) error {
			var since time.Time
			if d := c.Duration("since"); d > 0 {
				since = time.Now().Add(-d)
			}
			var t journal.Tally
			bad := 0
			for _, dir := range c.StringSlice("run-dir") {
				rs, err := journal.ReadAll(dir, since, func(r journal.Record) error { t.Add(r); return nil })
				if err != nil {
					return exitf(ExitUsage, "stats: %v", err)
				}
				bad += rs.Bad
			}
			s := t.Stats()
			if c.Bool("json") {
				b, _ := json.MarshalIndent(s, "", "  ")
				fmt.Fprintln(ios.out, string(b))
			} else if err := s.Text(ios.out); err != nil {
				return err
			}
			if bad > 0 {
				fmt.Fprintf(ios.err, "%sskipped %s malformed journal lines\n", guardLinePrefix, strconv.Itoa(bad))
			}
			return nil
		},
	}
}
