package runner

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/configs"
	"github.com/wan22-guard/wan22-guard/journal"
	"github.com/wan22-guard/wan22-guard/strategies"
)

// oomArgv is the README's single-GPU A14B command.
var oomArgv = []string{"python", "generate.py", "--task", "t2v-A14B", "--size", "1280*720",
	"--ckpt_dir", "/x", "--offload_model", "True", "--convert_model_dtype"}

// plainArgv is a command that is not Wan2.2's generate.py.
var plainArgv = []string{"python", "job.py"}

// baseEnv is the child's environment as the user gave it.
var baseEnv = []string{"PATH=/usr/bin:/bin", "HOME=/home/u"}

// oomAtDecode is Wan2.2's stderr when the VAE decode runs out of GPU memory.
var oomAtDecode = []string{
	"[2025-07-28 12:00:00,000] INFO: Generating video ...",
	"100%|██████████| 40/40 [21:13<00:00, 31.83s/it]",
	"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.60 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.02 GiB is free.",
}

var defaultConfig = sync.OnceValues(configs.Default)

// testConfig returns a copy of the embedded defaults, changed by edit.
func testConfig(t testing.TB, edit func(c *configs.Config)) func() *configs.Config {
	t.Helper()
	def, err := defaultConfig()
	if err != nil {
		t.Fatalf("configs.Default: %v", err)
	}
	c := *def
	c.Runtime.PhaseTimeouts = maps.Clone(def.Runtime.PhaseTimeouts)
	c.Classes = maps.Clone(def.Classes)
	if edit != nil {
		edit(&c)
	}
	return func() *configs.Config { return &c }
}

func ptr[T any](v T) *T { return &v }

// harness is a Supervisor wired to fakes.
type harness struct {
	t        testing.TB
	sup      *Supervisor
	clock    *FakeClock
	launcher *FakeLauncher
	journal  *fakeJournal
	events   *eventLog
	signals  chan os.Signal
	status   bytes.Buffer
}

// newHarness returns a Supervisor that plays scripts, with jitter 0.5. With
// auto the clock moves itself on every wait.
func newHarness(t testing.TB, auto bool, scripts ...Script) *harness {
	h := &harness{t: t, clock: newFakeClock(auto), journal: &fakeJournal{}, events: &eventLog{}, signals: make(chan os.Signal)}
	h.launcher = newFakeLauncher(t, h.clock, scripts...)
	h.launcher.OnLaunch = func(n int, _ Spec) { h.events.add("launch %d", n) }
	h.sup = &Supervisor{
		Launcher: h.launcher,
		Clock:    h.clock,
		Journal:  h.journal,
		Observer: &fakeObserver{log: h.events},
		Jitter:   func() float64 { return 0.5 },
		Signals:  h.signals,
	}
	return h
}

// options returns Options for argv with the default config.
func (h *harness) options(argv []string) Options {
	return Options{
		Argv:   slices.Clone(argv),
		Env:    slices.Clone(baseEnv),
		Status: &h.status,
		RunID:  "r1",
		Config: testConfig(h.t, nil),
	}
}

type runResult struct {
	res Result
	err error
}

// start runs the Supervisor in its own goroutine.
func (h *harness) start(ctx context.Context, o Options) <-chan runResult {
	ch := make(chan runResult, 1)
	go func() {
		res, err := h.sup.Run(ctx, o)
		ch <- runResult{res, err}
	}()
	return ch
}

// wait waits for a run started with start.
func (h *harness) wait(ch <-chan runResult) (Result, error) {
	h.t.Helper()
	select {
	case r := <-ch:
		return r.res, r.err
	case <-time.After(tooLong):
		h.t.Fatalf("Run did not return within %s; launches %d, events %q", tooLong, h.launcher.Launches(), h.events.get())
		return Result{}, nil
	}
}

// run runs the Supervisor to the end.
func (h *harness) run(o Options) (Result, error) {
	h.t.Helper()
	return h.wait(h.start(context.Background(), o))
}

// send delivers a signal to the Supervisor.
func (h *harness) send(sig os.Signal) {
	h.t.Helper()
	select {
	case h.signals <- sig:
	case <-time.After(tooLong):
		h.t.Fatalf("Supervisor did not take %v within %s", sig, tooLong)
	}
}

// wantGiveUp checks that err is a *GiveUpError wrapping cause.
func wantGiveUp(t testing.TB, err, cause error) *GiveUpError {
	t.Helper()
	var gu *GiveUpError
	if !errors.As(err, &gu) {
		t.Fatalf("Run error = %v, want a *GiveUpError wrapping %v", err, cause)
	}
	if !errors.Is(err, cause) {
		t.Fatalf("Run error = %v (cause %v), want it to wrap %v", err, gu.Cause, cause)
	}
	return gu
}

func classes(recs []journal.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Class)
	}
	return out
}

func actions(recs []journal.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Action)
	}
	return out
}

func reasons(recs []journal.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Reason)
	}
	return out
}

func delaysMS(recs []journal.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.DelayMS)
	}
	return out
}

// flagValue returns the value after flag in argv.
func flagValue(argv []string, flag string) (string, bool) {
	i := slices.Index(argv, flag)
	if i < 0 || i+1 >= len(argv) {
		return "", false
	}
	return argv[i+1], true
}

func TestState_String(t *testing.T) {
	t.Parallel()
	tests := []struct {
		st   State
		want string
	}{
		{Starting, "Starting"},
		{Running, "Running"},
		{BackingOff, "BackingOff"},
		{Stopping, "Stopping"},
		{Exited, "Exited"},
		{Failed, "Failed"},
		{State(42), "State(42)"},
	}
	for _, tt := range tests {
		if got := tt.st.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q, want %q", int(tt.st), got, tt.want)
		}
	}
}

func TestSupervisor_FirstAttemptSucceeds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, false, Script{
		Stdout: []string{"hello"}, Stderr: []string{"world"}, RunFor: 3 * time.Second,
	})
	h.sup.Facts = &fakeFacts{log: h.events}
	var stdout, stderr bytes.Buffer
	o := h.options(plainArgv)
	o.Stdout, o.Stderr = &stdout, &stderr

	res, err := h.run(o)
	if err != nil {
		t.Fatalf("Run error = %v, want nil", err)
	}
	if res.Attempts != 1 {
		t.Errorf("Result.Attempts = %d, want 1", res.Attempts)
	}
	if len(res.Records) != 1 {
		t.Fatalf("got %d records, want 1", len(res.Records))
	}
	rec := res.Records[0]
	if rec.Class != string(classify.ClassSuccess) || rec.Action != string(strategies.ActionNone) || rec.Reason != string(strategies.ReasonSucceeded) {
		t.Errorf("record class/action/reason = %s/%s/%s, want success/none/succeeded", rec.Class, rec.Action, rec.Reason)
	}
	if rec.Attempt != 1 || rec.RunID != "r1" || rec.DurationMS != 3000 || rec.ExitCode != 0 {
		t.Errorf("record attempt/run_id/duration_ms/exit_code = %d/%s/%d/%d, want 1/r1/3000/0", rec.Attempt, rec.RunID, rec.DurationMS, rec.ExitCode)
	}
	if rec.Ladder != "" || rec.Rung != 0 || rec.RungName != "" {
		t.Errorf("record ladder/rung/rung_name = %q/%d/%q, want none", rec.Ladder, rec.Rung, rec.RungName)
	}
	if !slices.Equal(rec.Tail, []string{"hello", "world"}) {
		t.Errorf("record tail = %q, want [hello world]", rec.Tail)
	}
	if rec.GPUModel != "Fake H100" {
		t.Errorf("record gpu_model = %q, want the one Facts.After set", rec.GPUModel)
	}
	if res.Signal != nil || res.Decision.Action != strategies.ActionNone {
		t.Errorf("Result.Signal/Decision.Action = %v/%s, want nil/none", res.Signal, res.Decision.Action)
	}
	if got := h.sup.State(); got != Exited {
		t.Errorf("State() = %s, want Exited", got)
	}
	if stdout.String() != "hello\n" || stderr.String() != "world\n" {
		t.Errorf("child stdout/stderr = %q/%q, want hello/world passed through", stdout.String(), stderr.String())
	}
	if got := h.status.String(); got != "[wan22-guard] attempt 1/8 succeeded after 3s\n" {
		t.Errorf("status = %q", got)
	}
	spec := h.launcher.Spec(1)
	wantEnv := append(slices.Clone(baseEnv), EnvRunID+"=r1")
	if !slices.Equal(spec.Args, plainArgv) || spec.Path != "python" || !slices.Equal(spec.Env, wantEnv) {
		t.Errorf("spec path/args/env = %q/%q/%q, want the command as given plus %s", spec.Path, spec.Args, spec.Env, EnvRunID)
	}
	if spec.TailLines != 200 || spec.MaxLine != 8192 {
		t.Errorf("spec tail_lines/max_line = %d/%d, want the config's 200/8192", spec.TailLines, spec.MaxLine)
	}
	want := []string{"started 1", "launch 1", "before 1001", "after 1001", "release 1001", "ended 1 success"}
	if got := h.events.get(); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	if h.journal.writes != 1 || len(h.journal.records) != 1 || h.journal.records[0].Class != "success" {
		t.Errorf("journal got %d writes, records %v; want the one record", h.journal.writes, classes(h.journal.records))
	}
}

func TestSupervisor_StartError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, Script{StartErr: &StartError{Name: "python", Err: ErrCommandNotFound}})
	h.sup.Facts = &fakeFacts{log: h.events}
	res, err := h.run(h.options(plainArgv))
	gu := wantGiveUp(t, err, ErrNeedsUser)
	if gu.Class != classify.ClassMissingDep {
		t.Errorf("GiveUpError.Class = %s, want missing_dep for a command not found", gu.Class)
	}
	if len(res.Records) != 1 {
		t.Fatalf("got %d records, want 1", len(res.Records))
	}
	rec := res.Records[0]
	if rec.ExitCode != 127 || rec.StartError != "python: command not found" {
		t.Errorf("record exit_code/start_error = %d/%q, want 127/%q", rec.ExitCode, rec.StartError, "python: command not found")
	}
	if !strings.HasPrefix(h.status.String(), "[wan22-guard] python: command not found\n") {
		t.Errorf("status = %q, want the start error first", h.status.String())
	}
	want := []string{"started 1", "launch 1", "ended 1 " + rec.Class}
	if got := h.events.get(); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q (no facts for a child that never ran)", got, want)
	}
}

func TestSupervisor_Backoff(t *testing.T) {
	t.Parallel()
	exit3 := func(runFor time.Duration) Script { return Script{ExitCode: 3, RunFor: runFor} }
	tests := []struct {
		name        string
		opts        func(o *Options)
		config      func(c *configs.Config)
		jitter      float64
		scripts     []Script
		wantAfters  []time.Duration
		wantActions []string
		wantReasons []string
		wantDelays  []int64
		wantCause   error
	}{
		{
			name: "max attempts spent",
			opts: func(o *Options) {
				o.MaxAttempts, o.BackoffInitial, o.BackoffMax = 3, ptr(10*time.Millisecond), ptr(time.Second)
			},
			jitter:      0.5,
			scripts:     []Script{exit3(time.Second), exit3(time.Second), exit3(time.Second)},
			wantAfters:  []time.Duration{5 * time.Millisecond, 10 * time.Millisecond},
			wantActions: []string{"backoff", "backoff", "give_up"},
			wantReasons: []string{"within_budget", "within_budget", "budget_exhausted"},
			wantDelays:  []int64{5, 10, 0},
			wantCause:   ErrBudgetExhausted,
		},
		{
			name: "jitter 0 waits the full delay",
			opts: func(o *Options) {
				o.MaxAttempts, o.BackoffInitial, o.BackoffMax = 3, ptr(10*time.Millisecond), ptr(time.Second)
			},
			jitter:      0,
			scripts:     []Script{exit3(time.Second), exit3(time.Second), exit3(time.Second)},
			wantAfters:  []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
			wantActions: []string{"backoff", "backoff", "give_up"},
			wantReasons: []string{"within_budget", "within_budget", "budget_exhausted"},
			wantDelays:  []int64{10, 20, 0},
			wantCause:   ErrBudgetExhausted,
		},
		{
			name: "stable run resets the exponent",
			opts: func(o *Options) {
				o.MaxAttempts, o.BackoffInitial, o.BackoffMax = 3, ptr(10*time.Millisecond), ptr(time.Second)
			},
			config:      func(c *configs.Config) { c.Runtime.StableAfter = configs.Duration(time.Minute) },
			jitter:      0.5,
			scripts:     []Script{exit3(time.Second), exit3(2 * time.Minute), exit3(time.Second)},
			wantAfters:  []time.Duration{5 * time.Millisecond, 5 * time.Millisecond},
			wantActions: []string{"backoff", "backoff", "give_up"},
			wantReasons: []string{"within_budget", "stable_run_reset", "budget_exhausted"},
			wantDelays:  []int64{5, 5, 0},
			wantCause:   ErrBudgetExhausted,
		},
		{
			name: "delay capped at max",
			opts: func(o *Options) {
				o.MaxAttempts, o.BackoffInitial, o.BackoffMax = 3, ptr(10*time.Millisecond), ptr(14*time.Millisecond)
			},
			jitter:      0.5,
			scripts:     []Script{exit3(time.Second), exit3(time.Second), exit3(time.Second)},
			wantAfters:  []time.Duration{5 * time.Millisecond, 7 * time.Millisecond},
			wantActions: []string{"backoff", "backoff", "give_up"},
			wantReasons: []string{"within_budget", "within_budget", "budget_exhausted"},
			wantDelays:  []int64{5, 7, 0},
			wantCause:   ErrBudgetExhausted,
		},
		{
			name: "class budget spent before max attempts",
			opts: func(o *Options) {
				o.BackoffInitial, o.BackoffMax = ptr(10*time.Millisecond), ptr(time.Second)
			},
			jitter:      0.5,
			scripts:     []Script{exit3(time.Second), exit3(time.Second), exit3(time.Second)},
			wantAfters:  []time.Duration{5 * time.Millisecond, 10 * time.Millisecond},
			wantActions: []string{"backoff", "backoff", "give_up"},
			wantReasons: []string{"within_budget", "within_budget", "class_budget_exhausted"},
			wantDelays:  []int64{5, 10, 0},
			wantCause:   ErrBudgetExhausted,
		},
		{
			name: "next delay would pass the deadline",
			opts: func(o *Options) {
				o.Deadline, o.BackoffInitial, o.BackoffMax = time.Hour, ptr(40*time.Minute), ptr(2*time.Hour)
			},
			jitter:      0.5,
			scripts:     []Script{exit3(10 * time.Minute), exit3(10 * time.Minute)},
			wantAfters:  []time.Duration{20 * time.Minute},
			wantActions: []string{"backoff", "give_up"},
			wantReasons: []string{"within_budget", "deadline_passed"},
			wantDelays:  []int64{20 * 60 * 1000, 0},
			wantCause:   ErrBudgetExhausted,
		},
		{
			name:        "deadline passed during the attempt",
			opts:        func(o *Options) { o.Deadline = 30 * time.Minute },
			jitter:      0.5,
			scripts:     []Script{exit3(45 * time.Minute)},
			wantActions: []string{"give_up"},
			wantReasons: []string{"deadline_passed"},
			wantDelays:  []int64{0},
			wantCause:   ErrBudgetExhausted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true, tt.scripts...)
			h.sup.Jitter = func() float64 { return tt.jitter }
			o := h.options(plainArgv)
			o.Config = testConfig(t, tt.config)
			tt.opts(&o)
			res, err := h.run(o)
			wantGiveUp(t, err, tt.wantCause)
			if got := h.launcher.Launches(); got != len(tt.scripts) {
				t.Errorf("launches = %d, want %d", got, len(tt.scripts))
			}
			if res.Attempts != len(tt.scripts) {
				t.Errorf("Result.Attempts = %d, want %d", res.Attempts, len(tt.scripts))
			}
			if got := h.clock.Afters(); !slices.Equal(got, tt.wantAfters) {
				t.Errorf("waits = %v, want %v", got, tt.wantAfters)
			}
			if got := actions(res.Records); !slices.Equal(got, tt.wantActions) {
				t.Errorf("actions = %q, want %q", got, tt.wantActions)
			}
			if got := reasons(res.Records); !slices.Equal(got, tt.wantReasons) {
				t.Errorf("reasons = %q, want %q", got, tt.wantReasons)
			}
			if got := delaysMS(res.Records); !slices.Equal(got, tt.wantDelays) {
				t.Errorf("delay_ms = %v, want %v", got, tt.wantDelays)
			}
			for i, r := range res.Records {
				if r.Class != string(classify.ClassUnknown) || r.ExitCode != 3 || r.Attempt != i+1 {
					t.Errorf("record %d class/exit_code/attempt = %s/%d/%d, want unknown/3/%d", i, r.Class, r.ExitCode, r.Attempt, i+1)
				}
			}
			if want := strategies.Reason(tt.wantReasons[len(tt.wantReasons)-1]); res.Decision.Reason != want {
				t.Errorf("Result.Decision.Reason = %s, want %s", res.Decision.Reason, want)
			}
			if got := h.sup.State(); got != Failed {
				t.Errorf("State() = %s, want Failed", got)
			}
		})
	}
}

func TestSupervisor_CudaOOMFallsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true,
		Script{Stderr: oomAtDecode, ExitCode: 1, RunFor: 20 * time.Minute},
		Script{Stderr: oomAtDecode, ExitCode: 1, RunFor: 20 * time.Minute},
		Script{RunFor: 15 * time.Minute},
	)
	res, err := h.run(h.options(oomArgv))
	if err != nil {
		t.Fatalf("Run error = %v, want nil", err)
	}
	if got := h.launcher.Launches(); got != 3 {
		t.Fatalf("launches = %d, want 3", got)
	}
	if got := classes(res.Records); !slices.Equal(got, []string{"cuda_oom", "cuda_oom", "success"}) {
		t.Errorf("classes = %q", got)
	}
	type rung struct {
		ladder   string
		rung     int
		name     string
		trades   []string
		phase    string
		rule     string
		progress journal.Progress
	}
	want := []rung{
		{"cuda_oom", 4, "expandable_segments", nil, "decode", "cuda_oom_allocator", journal.Progress{Step: 40, Total: 40}},
		{"cuda_oom", 7, "size_smaller", []string{"size 1280*720 -> 832*480", "lower resolution"}, "decode", "cuda_oom_allocator", journal.Progress{Step: 40, Total: 40}},
	}
	for i, w := range want {
		r := res.Records[i]
		got := rung{r.Ladder, r.Rung, r.RungName, r.Trades, r.Phase, r.Rule, r.Progress}
		if got.ladder != w.ladder || got.rung != w.rung || got.name != w.name || !slices.Equal(got.trades, w.trades) ||
			got.phase != w.phase || got.rule != w.rule || got.progress != w.progress {
			t.Errorf("record %d ladder/rung/rung_name/trades/phase/rule/progress = %+v, want %+v", i+1, got, w)
		}
		if r.Action != "fallback" || r.Reason != "next_rung" || r.DelayMS != 0 {
			t.Errorf("record %d action/reason/delay_ms = %s/%s/%d, want fallback/next_rung/0", i+1, r.Action, r.Reason, r.DelayMS)
		}
	}
	if ev := res.Records[0].Evidence; !strings.Contains(ev, "Tried to allocate 2.60 GiB") {
		t.Errorf("record 1 evidence = %q, want the OOM line", ev)
	}

	alloc := "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
	for n := 1; n <= 3; n++ {
		spec := h.launcher.Spec(n)
		if slices.Contains(spec.Args, "--t5_cpu") {
			t.Errorf("launch %d argv %q has --t5_cpu after a decode OOM", n, spec.Args)
		}
		for _, flag := range []string{"--task", "--ckpt_dir", "--offload_model"} {
			got, _ := flagValue(spec.Args, flag)
			want, _ := flagValue(oomArgv, flag)
			if got != want {
				t.Errorf("launch %d %s = %q, want %q unchanged", n, flag, got, want)
			}
		}
		if got := slices.Contains(spec.Env, alloc); got != (n > 1) {
			t.Errorf("launch %d env has %s = %v, want %v; env %q", n, alloc, got, n > 1, spec.Env)
		}
		for _, kv := range baseEnv {
			if !slices.Contains(spec.Env, kv) {
				t.Errorf("launch %d env lost %s", n, kv)
			}
		}
	}
	if got := h.launcher.Spec(2).Args; !slices.Equal(got, oomArgv) {
		t.Errorf("launch 2 argv = %q, want the command as given (the rung only sets the allocator)", got)
	}
	if got, _ := flagValue(h.launcher.Spec(3).Args, "--size"); got != "832*480" {
		t.Errorf("launch 3 --size = %q, want 832*480", got)
	}
	if got := res.Records[2].EnvChanges["PYTORCH_CUDA_ALLOC_CONF"]; got != "expandable_segments:True" {
		t.Errorf("record 3 env_changes = %v, want the allocator setting", res.Records[2].EnvChanges)
	}
	if got := res.Records[2].Size; got != "832*480" {
		t.Errorf("record 3 size = %q, want 832*480", got)
	}
	if got := h.clock.Afters(); len(got) != 0 {
		t.Errorf("waits = %v, want none: a fallback relaunches at once", got)
	}
	wantLine := "[wan22-guard] attempt 2/8 failed: cuda_oom at decode (exit 1 after 20m0s); next: fallback size_smaller (size 1280*720 -> 832*480, lower resolution) in 0s\n"
	if !strings.Contains(h.status.String(), wantLine) {
		t.Errorf("status = %q, want the line %q", h.status.String(), wantLine)
	}
}

func TestSupervisor_PinsSeedAndSaveFile(t *testing.T) {
	t.Parallel()
	argv := []string{"python", "generate.py", "--task", "t2v-A14B", "--size", "1280*720", "--ckpt_dir", "/x"}
	const saveFile = "t2v-A14B_1280x720_r1.mp4"
	h := newHarness(t, true,
		Script{
			Stdout: []string{
				"[2025-07-28 12:00:00,000] INFO: Generation job args: Namespace(task='t2v-A14B', size='1280*720', frame_num=81, ckpt_dir='/x', base_seed=1234, save_file=None)",
			},
			ExitCode: 3, RunFor: time.Minute,
		},
		Script{RunFor: time.Minute, WriteFile: saveFile},
	)
	o := h.options(argv)
	o.PinSeed, o.SetSaveFile = true, true
	o.Dir = t.TempDir()
	res, err := h.run(o)
	if err != nil {
		t.Fatalf("Run error = %v, want nil; classes %q", err, classes(res.Records))
	}
	first, second := h.launcher.Spec(1).Args, h.launcher.Spec(2).Args
	if _, ok := flagValue(first, "--base_seed"); ok {
		t.Errorf("launch 1 argv %q pins a seed before one is known", first)
	}
	if got, _ := flagValue(first, "--save_file"); got != saveFile {
		t.Errorf("launch 1 --save_file = %q, want %q", got, saveFile)
	}
	if got, _ := flagValue(second, "--base_seed"); got != "1234" {
		t.Errorf("launch 2 --base_seed = %q, want 1234; argv %q", got, second)
	}
	if got, _ := flagValue(second, "--save_file"); got != saveFile {
		t.Errorf("launch 2 --save_file = %q, want %q", got, saveFile)
	}
	if res.Records[0].SeedSeen != 1234 {
		t.Errorf("record 1 seed_seen = %d, want 1234", res.Records[0].SeedSeen)
	}
	if res.SaveFile != saveFile || res.Records[1].SaveFile != saveFile {
		t.Errorf("Result.SaveFile/record save_file = %q/%q, want %q", res.SaveFile, res.Records[1].SaveFile, saveFile)
	}
	if res.Records[1].Class != "success" || res.Records[1].OutputBytes != int64(len("fake video\n")) {
		t.Errorf("record 2 class/output_bytes = %s/%d, want success/%d", res.Records[1].Class, res.Records[1].OutputBytes, len("fake video\n"))
	}
}

func TestSupervisor_SaveFileMissing(t *testing.T) {
	t.Parallel()
	argv := []string{"python", "generate.py", "--task", "t2v-A14B", "--ckpt_dir", "/x", "--save_file", "out.mp4"}
	h := newHarness(t, true, Script{RunFor: time.Minute})
	o := h.options(argv)
	o.SetSaveFile, o.MaxAttempts = true, 1
	o.Dir = t.TempDir()
	res, err := h.run(o)
	wantGiveUp(t, err, ErrBudgetExhausted)
	if got := res.Records[0].Class; got != string(classify.ClassSaveFailed) {
		t.Errorf("class = %s, want save_failed for a clean exit without the output file", got)
	}
}

func TestSupervisor_MissingCheckpointNeedsUser(t *testing.T) {
	t.Parallel()
	const missing = "/x/models_t5_umt5-xxl-enc-bf16.pth"
	h := newHarness(t, true, Script{
		Stderr: []string{
			"Traceback (most recent call last):",
			"FileNotFoundError: [Errno 2] No such file or directory: '" + missing + "'",
		},
		ExitCode: 1, RunFor: 5 * time.Second,
	})
	res, err := h.run(h.options(oomArgv))
	gu := wantGiveUp(t, err, ErrNeedsUser)
	if gu.Class != classify.ClassMissingDep {
		t.Errorf("GiveUpError.Class = %s, want missing_dep", gu.Class)
	}
	if got := h.launcher.Launches(); got != 1 {
		t.Errorf("launches = %d, want 1", got)
	}
	rec := res.Records[0]
	if rec.Action != "guide" || rec.Reason != "needs_user" {
		t.Errorf("record action/reason = %s/%s, want guide/needs_user", rec.Action, rec.Reason)
	}
	if res.Decision.Workflow != "missing-checkpoints" {
		t.Errorf("workflow = %q, want missing-checkpoints", res.Decision.Workflow)
	}
	status := h.status.String()
	if !strings.Contains(status, "[wan22-guard] Model files missing under /x") {
		t.Errorf("status has no workflow title:\n%s", status)
	}
	var withPath string
	for _, line := range strings.Split(status, "\n") {
		if strings.Contains(line, missing) {
			withPath = line
			break
		}
	}
	if !strings.HasPrefix(withPath, "[wan22-guard] ") {
		t.Errorf("status has no guard line with the evidence path %s:\n%s", missing, status)
	}
	if got := h.sup.State(); got != Failed {
		t.Errorf("State() = %s, want Failed", got)
	}
}

func TestSupervisor_StateFile(t *testing.T) {
	t.Parallel()
	corrupt := errors.New("bad checksum")
	tests := []struct {
		name       string
		checks     []error
		scripts    []Script
		wantEvents []string
		wantClass  []string
	}{
		{
			name:    "invalid after the attempt is restored before the relaunch",
			checks:  []error{nil, corrupt, nil},
			scripts: []Script{{ExitCode: 1}, {}},
			wantEvents: []string{
				"check", "snapshot before-attempt", "started 1", "launch 1",
				"check: bad checksum", "ended 1 state_corrupt", "restore snap-3",
				"check", "snapshot before-attempt", "started 2", "launch 2", "ended 2 success",
			},
			wantClass: []string{"state_corrupt", "success"},
		},
		{
			name:    "invalid before the first attempt is restored",
			checks:  []error{corrupt},
			scripts: []Script{{}},
			wantEvents: []string{
				"check: bad checksum", "restore snap-3", "snapshot before-attempt", "started 1", "launch 1", "ended 1 success",
			},
			wantClass: []string{"success"},
		},
		{
			name:    "no state file yet is not restored",
			checks:  []error{NoStateFile, NoStateFile, NoStateFile},
			scripts: []Script{{ExitCode: 1}, {}},
			wantEvents: []string{
				"check: no state file", "snapshot before-attempt", "started 1", "launch 1",
				"check: no state file", "ended 1 unknown", "backing off 5s",
				"check: no state file", "snapshot before-attempt", "started 2", "launch 2", "ended 2 success",
			},
			wantClass: []string{"unknown", "success"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true, tt.scripts...)
			h.sup.States = &fakeStates{log: h.events, checks: tt.checks, snapshot: "snap-3"}
			res, err := h.run(h.options(plainArgv))
			if err != nil {
				t.Fatalf("Run error = %v, want nil", err)
			}
			if got := h.events.get(); !slices.Equal(got, tt.wantEvents) {
				t.Errorf("events:\n got %q\nwant %q", got, tt.wantEvents)
			}
			if got := classes(res.Records); !slices.Equal(got, tt.wantClass) {
				t.Errorf("classes = %q, want %q", got, tt.wantClass)
			}
		})
	}
}

func TestSupervisor_Signals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sig  syscall.Signal
		stop bool
	}{
		{"SIGINT stops the run", syscall.SIGINT, true},
		{"SIGTERM stops the run", syscall.SIGTERM, true},
		{"SIGHUP is only forwarded", syscall.SIGHUP, false},
		{"SIGUSR1 is only forwarded", syscall.SIGUSR1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, false, Script{
				Stderr: []string{"loading"}, BlockUntilSignal: true,
				Ignore: []os.Signal{syscall.SIGHUP, syscall.SIGUSR1},
			})
			done := h.start(context.Background(), h.options(plainArgv))
			p := h.launcher.WaitLaunch(1)
			h.send(tt.sig)
			if got := p.WaitSignals(t, 1); !slices.Equal(got, []os.Signal{tt.sig}) {
				t.Errorf("child got %v, want [%v]", got, tt.sig)
			}
			if !tt.stop {
				if got := h.sup.State(); got != Running {
					t.Errorf("State() after %v = %s, want Running", tt.sig, got)
				}
				p.Exit(0)
			}
			res, err := h.wait(done)
			if got := h.launcher.Launches(); got != 1 {
				t.Errorf("launches = %d, want 1", got)
			}
			if !tt.stop {
				if err != nil || res.Signal != nil || res.Records[0].Class != "success" {
					t.Errorf("Run = %v, signal %v, class %s; want success, no signal", err, res.Signal, res.Records[0].Class)
				}
				return
			}
			gu := wantGiveUp(t, err, ErrInterrupted)
			if gu.Class != classify.ClassInterrupted {
				t.Errorf("GiveUpError.Class = %s, want interrupted", gu.Class)
			}
			if res.Signal != tt.sig {
				t.Errorf("Result.Signal = %v, want %v", res.Signal, tt.sig)
			}
			rec := res.Records[0]
			wantCode := 128 + int(tt.sig)
			if rec.Class != "interrupted" || rec.Action != "shutdown" || rec.ExitCode != wantCode || rec.Signal != SignalName(tt.sig) {
				t.Errorf("record class/action/exit_code/signal = %s/%s/%d/%s, want interrupted/shutdown/%d/%s",
					rec.Class, rec.Action, rec.ExitCode, rec.Signal, wantCode, SignalName(tt.sig))
			}
			if got := h.sup.State(); got != Exited {
				t.Errorf("State() = %s, want Exited", got)
			}
		})
	}
}

func TestSupervisor_SecondStopSignalKills(t *testing.T) {
	t.Parallel()
	h := newHarness(t, false, Script{BlockUntilSignal: true, Ignore: []os.Signal{syscall.SIGTERM}})
	done := h.start(context.Background(), h.options(plainArgv))
	p := h.launcher.WaitLaunch(1)
	h.send(syscall.SIGTERM)
	p.WaitSignals(t, 1)
	if got := h.sup.State(); got != Stopping {
		t.Errorf("State() after the first SIGTERM = %s, want Stopping", got)
	}
	h.send(syscall.SIGTERM)
	res, err := h.wait(done)
	wantGiveUp(t, err, ErrInterrupted)
	if got, want := p.Signals(), []os.Signal{syscall.SIGTERM, syscall.SIGKILL}; !slices.Equal(got, want) {
		t.Errorf("child got %v, want %v", got, want)
	}
	if res.Signal != syscall.SIGTERM || res.Records[0].ExitCode != 137 {
		t.Errorf("Result.Signal/exit_code = %v/%d, want SIGTERM/137", res.Signal, res.Records[0].ExitCode)
	}
	if got := h.launcher.Launches(); got != 1 {
		t.Errorf("launches = %d, want 1", got)
	}
}

func TestSupervisor_GraceEndsWithSIGKILL(t *testing.T) {
	t.Parallel()
	h := newHarness(t, false, Script{BlockUntilSignal: true, Ignore: []os.Signal{syscall.SIGINT}})
	o := h.options(plainArgv)
	o.Grace = 5 * time.Second
	done := h.start(context.Background(), o)
	p := h.launcher.WaitLaunch(1)
	h.send(syscall.SIGINT)
	h.clock.WaitAfter(t, 5*time.Second)
	h.clock.Advance(5 * time.Second)
	res, err := h.wait(done)
	wantGiveUp(t, err, ErrInterrupted)
	if got, want := p.Signals(), []os.Signal{syscall.SIGINT, syscall.SIGKILL}; !slices.Equal(got, want) {
		t.Errorf("child got %v, want %v", got, want)
	}
	if res.Signal != syscall.SIGINT || res.Records[0].DurationMS != 5000 {
		t.Errorf("Result.Signal/duration_ms = %v/%d, want SIGINT/5000", res.Signal, res.Records[0].DurationMS)
	}
}

func TestSupervisor_StopSignalDuringBackoff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, false, Script{ExitCode: 3, RunFor: time.Second})
	o := h.options(plainArgv)
	o.BackoffInitial = ptr(10 * time.Second)
	done := h.start(context.Background(), o)
	h.clock.WaitAfter(t, 5*time.Second)
	if got := h.sup.State(); got != BackingOff {
		t.Errorf("State() while waiting = %s, want BackingOff", got)
	}
	h.send(syscall.SIGHUP)
	h.send(syscall.SIGTERM)
	res, err := h.wait(done)
	wantGiveUp(t, err, ErrInterrupted)
	if res.Signal != syscall.SIGTERM {
		t.Errorf("Result.Signal = %v, want SIGTERM", res.Signal)
	}
	if got := h.launcher.Launches(); got != 1 {
		t.Errorf("launches = %d, want 1", got)
	}
	if res.Attempts != 1 || len(res.Records) != 1 || res.Records[0].Action != "backoff" {
		t.Errorf("attempts %d, actions %q; want the one attempt and its backoff", res.Attempts, actions(res.Records))
	}
	if got := h.sup.State(); got != Exited {
		t.Errorf("State() = %s, want Exited", got)
	}
}

func TestSupervisor_ContextCancelStopsChild(t *testing.T) {
	t.Parallel()
	h := newHarness(t, false, Script{BlockUntilSignal: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := h.start(ctx, h.options(plainArgv))
	p := h.launcher.WaitLaunch(1)
	cancel()
	res, err := h.wait(done)
	wantGiveUp(t, err, ErrInterrupted)
	if got := p.Signals(); len(got) == 0 || got[0] != syscall.SIGTERM {
		t.Errorf("child got %v, want SIGTERM first", got)
	}
	if got := h.launcher.Launches(); got != 1 || res.Records[0].Class != "interrupted" {
		t.Errorf("launches %d, class %s; want 1, interrupted", got, res.Records[0].Class)
	}
}

func TestSupervisor_Watchdogs(t *testing.T) {
	t.Parallel()
	t.Run("no output", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, false, Script{Stderr: []string{"loading"}, BlockUntilSignal: true})
		o := h.options(plainArgv)
		o.NoOutputTimeout, o.MaxAttempts = ptr(10*time.Second), 1
		done := h.start(context.Background(), o)
		p := h.launcher.WaitLaunch(1)
		h.clock.WaitAfter(t, 10*time.Second)
		h.clock.Advance(6 * time.Second)
		p.Emit(Stderr, "still loading")
		h.clock.Advance(4 * time.Second)
		// The child spoke 4s ago: the watchdog waits the 6s left.
		h.clock.WaitAfter(t, 6*time.Second)
		if got := p.Signals(); len(got) != 0 {
			t.Fatalf("child got %v before it was silent for 10s", got)
		}
		h.clock.Advance(6 * time.Second)
		res, err := h.wait(done)
		wantGiveUp(t, err, ErrBudgetExhausted)
		if got := p.Signals(); !slices.Equal(got, []os.Signal{syscall.SIGTERM}) {
			t.Errorf("child got %v, want [SIGTERM]", got)
		}
		rec := res.Records[0]
		if rec.Watchdog != string(classify.WatchdogNoOutput) || rec.Class != string(classify.ClassStall) {
			t.Errorf("record watchdog/class = %s/%s, want no_output/stall", rec.Watchdog, rec.Class)
		}
		if res.Last.Watchdog != classify.WatchdogNoOutput || rec.ExitCode != 143 || rec.DurationMS != 16000 {
			t.Errorf("outcome watchdog %s, exit_code %d, duration_ms %d; want no_output, 143, 16000", res.Last.Watchdog, rec.ExitCode, rec.DurationMS)
		}
		if got, want := h.clock.Afters(), []time.Duration{10 * time.Second, 6 * time.Second, 30 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("waits = %v, want %v (no-output, re-armed no-output, grace)", got, want)
		}
		if !strings.Contains(h.status.String(), "[wan22-guard] no output for 10s; stopping the child\n") {
			t.Errorf("status = %q", h.status.String())
		}
	})
	t.Run("quantize phase", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, false, Script{
			Stderr:           []string{"Loading model", "Quantizing transformer to int8"},
			BlockUntilSignal: true,
		})
		o := h.options(plainArgv)
		o.MaxAttempts = 1
		done := h.start(context.Background(), o)
		p := h.launcher.WaitLaunch(1)
		h.clock.WaitAfter(t, 30*time.Minute)
		h.clock.Advance(30 * time.Minute)
		res, err := h.wait(done)
		wantGiveUp(t, err, ErrBudgetExhausted)
		if got := p.Signals(); !slices.Equal(got, []os.Signal{syscall.SIGTERM}) {
			t.Errorf("child got %v, want [SIGTERM]", got)
		}
		rec := res.Records[0]
		if rec.Watchdog != string(classify.WatchdogPhase) || rec.Class != string(classify.ClassQuantizationTimeout) || rec.Phase != "quantize" {
			t.Errorf("record watchdog/class/phase = %s/%s/%s, want phase/quantization_timeout/quantize", rec.Watchdog, rec.Class, rec.Phase)
		}
		if !strings.Contains(h.status.String(), "[wan22-guard] phase quantize outlived its timeout of 30m0s; stopping the child\n") {
			t.Errorf("status = %q", h.status.String())
		}
	})
	t.Run("phase timeout from options", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, false, Script{Stderr: []string{"Quantizing transformer to int8"}, BlockUntilSignal: true})
		o := h.options(plainArgv)
		o.MaxAttempts, o.PhaseTimeouts = 1, map[string]time.Duration{"quantize": time.Minute}
		done := h.start(context.Background(), o)
		h.launcher.WaitLaunch(1)
		h.clock.WaitAfter(t, time.Minute)
		h.clock.Advance(time.Minute)
		res, err := h.wait(done)
		wantGiveUp(t, err, ErrBudgetExhausted)
		if rec := res.Records[0]; rec.Class != string(classify.ClassQuantizationTimeout) || rec.DurationMS != 60000 {
			t.Errorf("record class/duration_ms = %s/%d, want quantization_timeout/60000", rec.Class, rec.DurationMS)
		}
	})
}

func TestSupervisor_JournalFailureSaidOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, Script{ExitCode: 3}, Script{ExitCode: 3}, Script{})
	h.journal.err = errFake
	res, err := h.run(h.options(plainArgv))
	if err != nil {
		t.Fatalf("Run error = %v, want nil: the run goes on without the log", err)
	}
	if res.Attempts != 3 || h.journal.writes != 3 {
		t.Errorf("attempts %d, journal writes %d; want 3, 3", res.Attempts, h.journal.writes)
	}
	const said = "[wan22-guard] cannot write the attempt log (fake failure); the run goes on\n"
	if got := strings.Count(h.status.String(), said); got != 1 {
		t.Errorf("status says %q %d times, want once:\n%s", said, got, h.status.String())
	}
}

func TestSupervisor_ResumesFromRunFile(t *testing.T) {
	t.Parallel()
	oomFail := Script{Stderr: oomAtDecode, ExitCode: 1, RunFor: time.Minute}
	exit3 := Script{ExitCode: 3}
	otherArgv := append(slices.Clone(oomArgv), "--sample_steps", "30")
	tests := []struct {
		name string
		// fail are the first guard's two failures.
		fail Script
		// killed restores run.json as it was when attempt 3 started, as a
		// guard killed with SIGKILL leaves it; else the guard is cancelled.
		killed      bool
		argv        []string
		resume      bool
		wantAttempt int
		wantSize    string
		wantAlloc   bool
	}{
		{name: "cancelled guard, same command", fail: oomFail, argv: oomArgv, wantAttempt: 4, wantSize: "832*480", wantAlloc: true},
		{name: "killed guard, same command", fail: oomFail, killed: true, argv: oomArgv, wantAttempt: 3, wantSize: "832*480", wantAlloc: true},
		{name: "no rung taken, same command", fail: exit3, argv: oomArgv, wantAttempt: 4, wantSize: "1280*720"},
		{name: "different command starts fresh", fail: oomFail, argv: otherArgv, wantAttempt: 1, wantSize: "1280*720"},
		{name: "different command with resume", fail: oomFail, argv: otherArgv, resume: true, wantAttempt: 4, wantSize: "832*480", wantAlloc: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runFile := filepath.Join(t.TempDir(), "run.json")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h := newHarness(t, true, tt.fail, tt.fail, Script{BlockUntilSignal: true})
			var atLaunch3 []byte
			h.launcher.OnLaunch = func(n int, _ Spec) {
				if n == 3 {
					var err error
					if atLaunch3, err = os.ReadFile(runFile); err != nil {
						t.Errorf("read run.json: %v", err)
					}
					cancel()
				}
			}
			o := h.options(oomArgv)
			o.RunFile = runFile
			_, err := h.wait(h.start(ctx, o))
			wantGiveUp(t, err, ErrInterrupted)
			if tt.killed {
				if err := os.WriteFile(runFile, atLaunch3, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			h2 := newHarness(t, true, Script{})
			o2 := h2.options(tt.argv)
			o2.RunFile, o2.RunID, o2.Resume = runFile, "r2", tt.resume
			res, err := h2.run(o2)
			if err != nil {
				t.Fatalf("second guard: Run error = %v, want nil", err)
			}
			if res.Attempts != tt.wantAttempt || res.Records[0].Attempt != tt.wantAttempt {
				t.Errorf("second guard ran attempt %d (record %d), want %d", res.Attempts, res.Records[0].Attempt, tt.wantAttempt)
			}
			if want := []string{"started " + strconv.Itoa(tt.wantAttempt), "launch 1", "ended " + strconv.Itoa(tt.wantAttempt) + " success"}; !slices.Equal(h2.events.get(), want) {
				t.Errorf("second guard events = %q, want %q", h2.events.get(), want)
			}
			spec := h2.launcher.Spec(1)
			if got, _ := flagValue(spec.Args, "--size"); got != tt.wantSize {
				t.Errorf("second guard --size = %q, want %q", got, tt.wantSize)
			}
			if got := slices.Contains(spec.Env, "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"); got != tt.wantAlloc {
				t.Errorf("second guard env has the allocator setting = %v, want %v", got, tt.wantAlloc)
			}
			rf, err := LoadRunFile(runFile)
			if err != nil {
				t.Fatalf("LoadRunFile: %v", err)
			}
			if !rf.Done || rf.State.Attempts != tt.wantAttempt {
				t.Errorf("run.json done/attempts = %v/%d, want true/%d", rf.Done, rf.State.Attempts, tt.wantAttempt)
			}

			// A finished run is not resumed.
			h3 := newHarness(t, true, Script{})
			o3 := h3.options(tt.argv)
			o3.RunFile, o3.RunID = runFile, "r3"
			res, err = h3.run(o3)
			if err != nil || res.Attempts != 1 {
				t.Errorf("third guard: Run = %v, attempt %d; want a fresh run at attempt 1", err, res.Attempts)
			}
			if got := h3.launcher.Spec(1).Args; !slices.Equal(got, tt.argv) {
				t.Errorf("third guard argv = %q, want the command as given", got)
			}
		})
	}
}

func TestSupervisor_StateTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		scripts []Script
		opts    func(o *Options)
		want    []string
		final   State
	}{
		{
			name:    "backoff then success",
			scripts: []Script{{ExitCode: 3}, {}},
			want: []string{
				"started 1 [Starting]", "launch 1 [Running]", "ended 1 unknown [Running]", "backing off 5s [BackingOff]",
				"started 2 [BackingOff]", "launch 2 [Running]", "ended 2 success [Running]",
			},
			final: Exited,
		},
		{
			name:    "retry at once then give up",
			scripts: []Script{{ExitCode: 1, Stderr: []string{"NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus."}}, {ExitCode: 1}},
			opts:    func(o *Options) { o.MaxAttempts = 2 },
			want: []string{
				"started 1 [Starting]", "launch 1 [Running]", "ended 1 gpu_fault [Running]",
				"started 2 [Running]", "launch 2 [Running]", "ended 2 unknown [Running]",
			},
			final: Failed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true, tt.scripts...)
			obs := &fakeObserver{log: h.events, state: h.sup.State}
			h.sup.Observer = obs
			h.launcher.OnLaunch = func(n int, _ Spec) { h.events.add("launch %d%s", n, obs.at()) }
			if got := h.sup.State(); got != Starting {
				t.Errorf("State() before Run = %s, want Starting", got)
			}
			o := h.options(plainArgv)
			if tt.opts != nil {
				tt.opts(&o)
			}
			_, _ = h.run(o)
			if got := h.events.get(); !slices.Equal(got, tt.want) {
				t.Errorf("transitions:\n got %q\nwant %q", got, tt.want)
			}
			if got := h.sup.State(); got != tt.final {
				t.Errorf("State() after Run = %s, want %s", got, tt.final)
			}
		})
	}
}

// BenchmarkSupervisor_Relaunch measures the time from a fake child's exit
// to the next launch, with no backoff: classify, decide, journal, plan.
func BenchmarkSupervisor_Relaunch(b *testing.B) {
	n := b.N + 1
	scripts := make([]Script, n)
	for i := range scripts {
		scripts[i] = Script{ExitCode: 3}
	}
	scripts[n-1] = Script{}
	h := newHarness(b, true, scripts...)
	var (
		exited time.Time
		gaps   time.Duration
	)
	h.launcher.OnLaunch = func(k int, _ Spec) {
		if k > 1 {
			gaps += time.Since(exited)
		}
	}
	h.sup.Observer = nil
	h.sup.Launcher = launchFunc(func(ctx context.Context, spec Spec) (Process, error) {
		p, err := h.launcher.Launch(ctx, spec)
		exited = time.Now()
		return p, err
	})
	o := h.options(plainArgv)
	o.MaxAttempts, o.BackoffInitial = n, ptr(time.Duration(0))
	o.Config = testConfig(b, func(c *configs.Config) {
		cp := c.Classes[classify.ClassUnknown]
		cp.Budget = n
		c.Classes[classify.ClassUnknown] = cp
	})
	b.ResetTimer()
	res, err := h.sup.Run(context.Background(), o)
	b.StopTimer()
	if err != nil || res.Attempts != n {
		b.Fatalf("Run = %v after %d attempts, want success at %d", err, res.Attempts, n)
	}
	b.ReportMetric(float64(gaps.Nanoseconds())/float64(b.N), "ns/relaunch")
}

// launchFunc is a Launcher made of a function.
type launchFunc func(ctx context.Context, spec Spec) (Process, error)

var _ Launcher = launchFunc(nil)

func (f launchFunc) Launch(ctx context.Context, spec Spec) (Process, error) { return f(ctx, spec) }

func TestSupervisor_LaunchEarlyStartsBeforeTheConfig(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, Script{Stderr: []string{"KeyError: frames"}, ExitCode: 3}, Script{Stdout: []string{"done"}})
	o := h.options(plainArgv)
	loaded := o.Config
	release := make(chan struct{})
	o.Config = func() *configs.Config { <-release; return loaded() }
	o.LaunchEarly = true
	h.launcher.OnLaunch = func(n int, _ Spec) {
		if n == 1 {
			close(release) // the config "finishes loading" only once the child runs
		}
	}
	res, err := h.wait(h.start(context.Background(), o))
	if err != nil || res.Attempts != 2 {
		t.Fatalf("Run = %d attempts, %v; want a relaunch then success", res.Attempts, err)
	}
	if res.Records[0].Class != "unknown" || res.Records[0].Evidence == "" {
		t.Errorf("first attempt record %+v: the scanner must classify with the rules loaded after launch", res.Records[0])
	}
}
