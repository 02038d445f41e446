package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tooLong bounds every wait in these tests; a run that takes longer failed.
const tooLong = 60 * time.Second

var guardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wan22-guard-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	guardBin = filepath.Join(dir, "wan22-guard")
	build := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", guardBin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build wan22-guard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// guardRun is one finished run of the guard binary.
type guardRun struct {
	code           int
	stdout, stderr string
	runDir         string
}

// records reads the attempt log of the run.
func (g guardRun) records(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(g.runDir, "attempts.jsonl"))
	if err != nil {
		t.Fatalf("open attempt log: %v\nstderr:\n%s", err, g.stderr)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("attempt log line is not JSON: %v: %q", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// guard runs the binary with args, env added to ours, in dir (a temp dir
// when ""), and waits for it with a deadline.
func guard(t *testing.T, env []string, args ...string) guardRun {
	t.Helper()
	runDir := filepath.Join(t.TempDir(), "run")
	full := append([]string{"--run-dir", runDir}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), tooLong)
	defer cancel()
	cmd := exec.CommandContext(ctx, guardBin, full...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run guard: %v", err)
		}
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("guard did not finish within %s\nstderr:\n%s", tooLong, se.String())
	}
	return guardRun{code: code, stdout: so.String(), stderr: se.String(), runDir: runDir}
}

func fakewan(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("testdata/fakewan/generate.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mkckpt(t *testing.T, task string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ckpt")
	out, err := exec.Command("python3", "testdata/fakewan/mkckpt.py", dir, task).CombinedOutput()
	if err != nil {
		t.Fatalf("mkckpt: %v: %s", err, out)
	}
	return dir
}

func argOf(rec map[string]any, flag string) string {
	argv, _ := rec["argv"].([]any)
	for i, a := range argv {
		s, _ := a.(string)
		if s == flag && i+1 < len(argv) {
			v, _ := argv[i+1].(string)
			return v
		}
		if strings.HasPrefix(s, flag+"=") {
			return strings.TrimPrefix(s, flag+"=")
		}
	}
	return ""
}

func TestE2E_SuccessPassesThrough(t *testing.T) {
	t.Parallel()
	g := guard(t, nil, "--", "sh", "-c", "printf 'out\\n'; printf 'err\\n' >&2")
	if g.code != 0 {
		t.Fatalf("exit = %d, want 0\nstderr:\n%s", g.code, g.stderr)
	}
	if g.stdout != "out\n" {
		t.Errorf("stdout = %q, want %q", g.stdout, "out\n")
	}
	if !strings.HasPrefix(g.stderr, "err\n") {
		t.Errorf("stderr = %q, want the child's line first", g.stderr)
	}
	recs := g.records(t)
	if len(recs) != 1 || recs[0]["class"] != "success" {
		t.Fatalf("records = %v, want one success", recs)
	}
}

func TestE2E_RelaunchesUntilBudget(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		mode string
		want int
	}{
		{"child code", "child", 3},
		{"contract code", "contract", ExitTransient},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := guard(t, nil, "--max-attempts", "3", "--backoff-initial", "1ms", "--backoff-max", "2ms", "--exit-code", tt.mode, "--", "sh", "-c", "echo boom >&2; exit 3")
			if g.code != tt.want {
				t.Fatalf("exit = %d, want %d\nstderr:\n%s", g.code, tt.want, g.stderr)
			}
			recs := g.records(t)
			if len(recs) != 3 {
				t.Fatalf("got %d records, want 3", len(recs))
			}
			for i, r := range recs {
				if r["attempt"] != float64(i+1) || r["exit_code"] != float64(3) {
					t.Errorf("record %d = attempt %v exit %v", i, r["attempt"], r["exit_code"])
				}
			}
			if n := strings.Count(g.stderr, "[wan22-guard] attempt "); n != 3 {
				t.Errorf("stderr has %d attempt summaries, want 3:\n%s", n, g.stderr)
			}
		})
	}
}

func TestE2E_StartErrors(t *testing.T) {
	t.Parallel()
	notExec := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		argv []string
		want int
	}{
		{"not found", []string{"no-such-command-wan22"}, 127},
		{"not executable", []string{notExec}, 126},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := guard(t, nil, append([]string{"--backoff-initial", "1ms", "--"}, tt.argv...)...)
			if g.code != tt.want {
				t.Fatalf("exit = %d, want %d\nstderr:\n%s", g.code, tt.want, g.stderr)
			}
			if !strings.Contains(g.stderr, "[wan22-guard]") {
				t.Errorf("stderr has no guard line:\n%s", g.stderr)
			}
		})
	}
}

func TestE2E_UsageAndConfigErrors(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("runtime:\n  max_attempts: 3\n  no_such_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := guard(t, nil, "--config", bad, "--", "true")
	if g.code != ExitConfig {
		t.Fatalf("bad config: exit = %d, want %d\nstderr:\n%s", g.code, ExitConfig, g.stderr)
	}
	if !strings.Contains(g.stderr, bad+":3:") {
		t.Errorf("bad config: stderr does not name FILE:LINE: %q", g.stderr)
	}
	g = guard(t, nil, "--no-such-flag", "--", "true")
	if g.code != ExitUsage {
		t.Fatalf("bad flag: exit = %d, want %d\nstderr:\n%s", g.code, ExitUsage, g.stderr)
	}
	g = guard(t, nil)
	if g.code != ExitUsage {
		t.Fatalf("no command: exit = %d, want %d\nstderr:\n%s", g.code, ExitUsage, g.stderr)
	}
}

func TestE2E_VAEDecodeOOMWalksLadder(t *testing.T) {
	t.Parallel()
	ckpt := mkckpt(t, "t2v-A14B")
	out := filepath.Join(t.TempDir(), "out.mp4")
	g := guard(t, []string{"FAKEWAN_VRAM_GB=56", "FAKEWAN_STEP_MS=0", "FAKEWAN_LOAD_MS=0"},
		"--backoff-initial", "1ms", "--backoff-max", "2ms", "--no-preflight", "--",
		"python3", fakewan(t), "--task", "t2v-A14B", "--size", "1280*720", "--ckpt_dir", ckpt,
		"--offload_model", "True", "--convert_model_dtype", "--sample_steps", "4", "--save_file", out)
	if g.code != 0 {
		t.Fatalf("exit = %d, want 0\nstderr:\n%s", g.code, g.stderr)
	}
	recs := g.records(t)
	if len(recs) < 2 {
		t.Fatalf("got %d records, want a failure then a success", len(recs))
	}
	first, last := recs[0], recs[len(recs)-1]
	if first["class"] != "cuda_oom" || first["phase"] != "decode" {
		t.Errorf("first attempt: class %v phase %v, want cuda_oom at decode", first["class"], first["phase"])
	}
	if last["class"] != "success" {
		t.Errorf("last attempt: class %v, want success", last["class"])
	}
	if got := argOf(last, "--size"); got != "832*480" {
		t.Errorf("final --size = %q, want 832*480", got)
	}
	if got := argOf(last, "--task"); got != "t2v-A14B" {
		t.Errorf("final --task = %q, want it unchanged", got)
	}
	for _, r := range recs[1:] {
		if argOf(r, "--base_seed") != argOf(recs[1], "--base_seed") || argOf(r, "--base_seed") == "" {
			t.Errorf("attempt %v base_seed %q, want the pinned seed", r["attempt"], argOf(r, "--base_seed"))
		}
		if strings.Contains(fmt.Sprint(r["argv"]), "--t5_cpu") {
			t.Errorf("attempt %v added --t5_cpu after a decode OOM", r["attempt"])
		}
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Errorf("output file %s missing or empty: %v", out, err)
	}
	if !strings.Contains(g.stderr, "1280*720 -> 832*480") {
		t.Errorf("stderr does not say what quality was traded:\n%s", g.stderr)
	}
}

func TestE2E_MissingCheckpointIsNotRetried(t *testing.T) {
	t.Parallel()
	g := guard(t, []string{"FAKEWAN_STEP_MS=0", "FAKEWAN_LOAD_MS=0"},
		"--backoff-initial", "1ms", "--",
		"python3", fakewan(t), "--task", "t2v-A14B", "--size", "1280*720", "--ckpt_dir", filepath.Join(t.TempDir(), "nowhere"))
	if g.code != ExitNeedsUser {
		t.Fatalf("exit = %d, want %d\nstderr:\n%s", g.code, ExitNeedsUser, g.stderr)
	}
	recs := g.records(t)
	if len(recs) != 1 || recs[0]["class"] != "missing_dep" {
		t.Fatalf("records = %d, first class %v; want one missing_dep", len(recs), recs[0]["class"])
	}
	if !strings.Contains(g.stderr, "models_t5_umt5-xxl-enc-bf16.pth") || !strings.Contains(g.stderr, "1.") {
		t.Errorf("stderr does not show the workflow with the evidence:\n%s", g.stderr)
	}
}

func TestE2E_NCCLTimeoutBacksOff(t *testing.T) {
	t.Parallel()
	ckpt := mkckpt(t, "t2v-A14B")
	marker := filepath.Join(t.TempDir(), "failed-once")
	g := guard(t, []string{"FAKEWAN_STEP_MS=0", "FAKEWAN_LOAD_MS=0", "FAKEWAN_FAIL=nccl@denoise", "FAKEWAN_FAIL_ONCE=" + marker},
		"--backoff-initial", "5ms", "--backoff-max", "10ms", "--",
		"python3", fakewan(t), "--task", "t2v-A14B", "--size", "832*480", "--ckpt_dir", ckpt, "--sample_steps", "2",
		"--save_file", filepath.Join(t.TempDir(), "o.mp4"))
	if g.code != 0 {
		t.Fatalf("exit = %d, want 0\nstderr:\n%s", g.code, g.stderr)
	}
	recs := g.records(t)
	if len(recs) != 2 || recs[0]["class"] != "nccl" || recs[0]["action"] != "backoff" {
		t.Fatalf("records: %d, first class %v action %v; want nccl then backoff then success", len(recs), recs[0]["class"], recs[0]["action"])
	}
}

func TestE2E_ChildKeepsRunningWhenRunDirUnwritable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(guardBin, "--run-dir", filepath.Join(file, "run"), "--max-attempts", "1", "--exit-code", "child", "--", "sh", "-c", "echo done; exit 7")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 {
		t.Fatalf("exit: %v, want 7\nstderr:\n%s", err, se.String())
	}
	if so.String() != "done\n" {
		t.Errorf("stdout = %q", so.String())
	}
	if !strings.Contains(se.String(), "run goes on") && !strings.Contains(se.String(), "without the attempt log") {
		t.Errorf("stderr does not say the log could not be written:\n%s", se.String())
	}
}

// startGuard starts the guard without waiting; the test reads its stderr
// through the returned reader.
func startGuard(t *testing.T, env []string, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer, string) {
	t.Helper()
	runDir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(guardBin, append([]string{"--run-dir", runDir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var so bytes.Buffer
	cmd.Stdout = &so
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewReader(pr), &so, runDir
}

// waitLine reads r until a line contains want, or fails after tooLong.
func waitLine(t *testing.T, r *bufio.Reader, want string) string {
	t.Helper()
	got := make(chan string, 1)
	var seen strings.Builder
	go func() {
		for {
			line, err := r.ReadString('\n')
			seen.WriteString(line)
			if strings.Contains(line, want) {
				got <- line
				return
			}
			if err != nil {
				got <- ""
				return
			}
		}
	}()
	select {
	case l := <-got:
		if l == "" {
			t.Fatalf("stream ended before %q; saw:\n%s", want, seen.String())
		}
		return l
	case <-time.After(tooLong):
		t.Fatalf("no %q within %s", want, tooLong)
	}
	return ""
}

func TestE2E_SIGTERMStopsWithoutRelaunch(t *testing.T) {
	t.Parallel()
	cmd, stderr, _, runDir := startGuard(t, nil, "--grace", "5s", "--backoff-initial", "1ms", "--",
		"sh", "-c", "trap 'echo got-term >&2; exit 7' TERM; echo ready >&2; while :; do sleep 0.05; done")
	waitLine(t, stderr, "ready")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine(t, stderr, "got-term")
	go io.Copy(io.Discard, stderr)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 143 {
		t.Fatalf("guard exit: %v, want 143", err)
	}
	recs := guardRun{runDir: runDir}.records(t)
	if len(recs) != 1 || recs[0]["class"] != "interrupted" || recs[0]["exit_code"] != float64(7) {
		t.Fatalf("records = %v, want one interrupted attempt with the child's code 7", recs)
	}
}

func TestE2E_QuantizeHangHitsPhaseTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "wgp.py")
	body := "import sys, time, os\n" +
		"if '--quantize-transformer' in sys.argv:\n    print('Loading model (pre-quantized int8)', flush=True); sys.exit(0)\n" +
		"print('Quantizing transformer to int8 ...', flush=True)\n" +
		"time.sleep(600)\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	g := guard(t, nil, "--phase-timeout", "quantize=300ms", "--grace", "200ms", "--backoff-initial", "1ms", "--",
		"python3", script, "--profile", "4")
	recs := g.records(t)
	if len(recs) < 2 {
		t.Fatalf("got %d records, want the quantize timeout then a relaunch\nstderr:\n%s", len(recs), g.stderr)
	}
	if recs[0]["class"] != "quantization_timeout" || recs[0]["action"] != "fallback" {
		t.Errorf("first attempt: class %v action %v, want quantization_timeout and fallback", recs[0]["class"], recs[0]["action"])
	}
	if !strings.Contains(fmt.Sprint(recs[1]["argv"]), "--quantize-transformer") {
		t.Errorf("second attempt argv %v lacks the quantization rung's flag", recs[1]["argv"])
	}
	if g.code != 0 {
		t.Errorf("exit = %d, want 0\nstderr:\n%s", g.code, g.stderr)
	}
}

func TestE2E_TruncatedStateIsRestored(t *testing.T) {
	t.Parallel()
	ckpt := mkckpt(t, "t2v-A14B")
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	if err := os.WriteFile(state, []byte(`{"version":1,"step":0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "crashed")
	g := guard(t, []string{"FAKEWAN_STEP_MS=0", "FAKEWAN_LOAD_MS=0", "FAKEWAN_STATE=" + state, "FAKEWAN_FAIL=truncate_state", "FAKEWAN_FAIL_ONCE=" + marker},
		"--state-file", state, "--backoff-initial", "1ms", "--",
		"python3", fakewan(t), "--task", "t2v-A14B", "--size", "832*480", "--ckpt_dir", ckpt, "--sample_steps", "3",
		"--save_file", filepath.Join(dir, "o.mp4"))
	if g.code != 0 {
		t.Fatalf("exit = %d, want 0\nstderr:\n%s", g.code, g.stderr)
	}
	recs := g.records(t)
	if len(recs) != 2 {
		t.Fatalf("got %d records, want the crash then a success", len(recs))
	}
	if !strings.Contains(g.stderr, "restored") {
		t.Errorf("stderr does not say the state file was restored:\n%s", g.stderr)
	}
	b, err := os.ReadFile(state)
	if err != nil || !json.Valid(b) {
		t.Errorf("state file after the run is not valid JSON: %v %q", err, b)
	}
}

func TestE2E_ExplainJSON(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "job.log")
	text := "[2025-07-29 10:01:02,123] INFO: Generating video ...\n" +
		"100%|##########| 40/40 [17:21<00:00, 26.04s/it]\n" +
		"  File \"/w/wan/modules/vae2_1.py\", line 636, in decode\n" +
		"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.60 GiB. GPU 0 has a total capacity of 23.64 GiB\n"
	if err := os.WriteFile(log, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(guardBin, "explain", "--json", log).Output()
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("explain output is not JSON: %v: %s", err, out)
	}
	if got["class"] != "cuda_oom" || got["phase"] != "decode" || got["line"] != float64(4) || got["retriable"] != true || got["action"] != "fallback" {
		t.Errorf("explain = %v", got)
	}
}

func TestE2E_DryRunLaunchesNothing(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "ran")
	g := guard(t, nil, "--dry-run", "--", "python3", "generate.py", "--task", "t2v-A14B", "--size", "1280*720", "--ckpt_dir", "/ckpt", "--offload_model", "True", "--convert_model_dtype", "--save_file", marker)
	if g.code != 0 {
		t.Fatalf("exit = %d\nstderr:\n%s", g.code, g.stderr)
	}
	if !strings.Contains(g.stdout, "--size '832*480'") || !strings.Contains(g.stdout, "on cuda_oom at decode") {
		t.Errorf("dry run does not show the ladder:\n%s", g.stdout)
	}
	if _, err := os.Stat(g.runDir); err == nil {
		t.Errorf("dry run created the run dir")
	}
}

func TestE2E_ResumeAfterGuardKilled(t *testing.T) {
	t.Parallel()
	ckpt := mkckpt(t, "t2v-A14B")
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	args := []string{"--run-dir", runDir, "--backoff-initial", "1ms", "--backoff-max", "2ms", "--no-preflight", "--",
		"python3", fakewan(t), "--task", "t2v-A14B", "--size", "1280*720", "--ckpt_dir", ckpt,
		"--offload_model", "True", "--convert_model_dtype", "--sample_steps", "3", "--save_file", filepath.Join(dir, "o.mp4")}
	// The first guard walks two rungs (720P OOMs at decode on 56 GB) and is
	// SIGKILLed, like a pod whose node went away, while attempt 3 runs.
	first := exec.Command(guardBin, args...)
	first.Env = append(os.Environ(), "FAKEWAN_VRAM_GB=56", "FAKEWAN_STEP_MS=300", "FAKEWAN_LOAD_MS=0")
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	first.Stdout = io.Discard
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _ = first.Wait() })
	r := bufio.NewReader(stderr)
	waitLine(t, r, "attempt 2/")
	waitLine(t, r, "it/s]") // attempt 3 is stepping
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	// The second guard, same run dir and command, continues at attempt 3's
	// rung instead of starting again at 720P.
	second := exec.Command(guardBin, args...)
	second.Env = append(os.Environ(), "FAKEWAN_VRAM_GB=56", "FAKEWAN_STEP_MS=0", "FAKEWAN_LOAD_MS=0")
	var se bytes.Buffer
	second.Stderr, second.Stdout = &se, io.Discard
	if err := second.Run(); err != nil {
		t.Fatalf("second guard: %v\nstderr:\n%s", err, se.String())
	}
	recs := guardRun{runDir: runDir}.records(t)
	last := recs[len(recs)-1]
	if last["class"] != "success" || last["attempt"] != float64(3) {
		t.Fatalf("last record: attempt %v class %v; want attempt 3 (resumed) and success", last["attempt"], last["class"])
	}
	if got := argOf(last, "--size"); got != "832*480" {
		t.Errorf("resumed attempt --size = %q, want 832*480", got)
	}
	if len(recs) != 3 {
		t.Errorf("got %d records, want attempts 1, 2 from the first guard and 3 from the second", len(recs))
	}
}
