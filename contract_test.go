package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/runner"
	"github.com/wan22-guard/wan22-guard/strategies"
)

// TestExitCode_Contract checks the exit-code table of the package doc, code
// by code, through the function the binary uses.
func TestExitCode_Contract(t *testing.T) {
	t.Parallel()
	giveUp := func(cls classify.Class) error { return &runner.GiveUpError{Cause: runner.ErrNeedsUser, Class: cls} }
	res := func(cls classify.Class, d strategies.Decision) runner.Result {
		return runner.Result{Verdict: classify.Result{Class: cls}, Decision: d, Last: classify.Outcome{ExitCode: 1}}
	}
	exhausted := strategies.Decision{Action: strategies.ActionGuide, Reason: strategies.ReasonLadderExhausted}
	tests := []struct {
		name string
		mode string
		res  runner.Result
		err  error
		want int
	}{
		{"success", exitModeContract, runner.Result{}, nil, ExitOK},
		{"internal error", exitModeContract, runner.Result{}, errors.New("apply ladder: boom"), ExitInternal},
		{"missing_dep needs the user", exitModeContract, res(classify.ClassMissingDep, strategies.Decision{Action: strategies.ActionGuide}), giveUp(classify.ClassMissingDep), ExitNeedsUser},
		{"config needs the user", exitModeContract, res(classify.ClassConfig, strategies.Decision{Action: strategies.ActionShutdown}), giveUp(classify.ClassConfig), ExitNeedsUser},
		{"cuda_env needs the user", exitModeContract, res(classify.ClassCUDAEnv, strategies.Decision{Action: strategies.ActionGuide}), giveUp(classify.ClassCUDAEnv), ExitNeedsUser},
		{"disk_full needs the user", exitModeContract, res(classify.ClassDiskFull, strategies.Decision{Action: strategies.ActionShutdown}), giveUp(classify.ClassDiskFull), ExitNeedsUser},
		{"cuda_oom ladder ran out", exitModeContract, res(classify.ClassCUDAOOM, exhausted), giveUp(classify.ClassCUDAOOM), ExitInfeasible},
		{"host_oom ladder ran out", exitModeContract, res(classify.ClassHostOOM, exhausted), giveUp(classify.ClassHostOOM), ExitInfeasible},
		{"quantization ladder ran out", exitModeContract, res(classify.ClassQuantizationTimeout, exhausted), giveUp(classify.ClassQuantizationTimeout), ExitInfeasible},
		{"nccl budget spent", exitModeContract, res(classify.ClassNCCL, strategies.Decision{Action: strategies.ActionGiveUp}), giveUp(classify.ClassNCCL), ExitTransient},
		{"network budget spent", exitModeContract, res(classify.ClassNetwork, strategies.Decision{Action: strategies.ActionGiveUp}), giveUp(classify.ClassNetwork), ExitTransient},
		{"unknown budget spent", exitModeContract, res(classify.ClassUnknown, strategies.Decision{Action: strategies.ActionGiveUp}), giveUp(classify.ClassUnknown), ExitTransient},
		{"gpu fault", exitModeContract, res(classify.ClassGPUFault, strategies.Decision{Action: strategies.ActionGuide}), giveUp(classify.ClassGPUFault), ExitGPUFault},
		{"not found", exitModeContract, runner.Result{Last: classify.Outcome{StartErr: "x: command not found", ExitCode: 127}}, giveUp(classify.ClassMissingDep), ExitNotFound},
		{"not executable", exitModeContract, runner.Result{Last: classify.Outcome{StartErr: "x: permission denied", ExitCode: 126}}, giveUp(classify.ClassMissingDep), ExitNotExecutable},
		{"SIGINT", exitModeContract, runner.Result{Signal: syscall.SIGINT}, giveUp(classify.ClassInterrupted), 130},
		{"SIGTERM", exitModeContract, runner.Result{Signal: syscall.SIGTERM}, giveUp(classify.ClassInterrupted), 143},
		{"child mode returns the child's code", exitModeChild, runner.Result{Verdict: classify.Result{Class: classify.ClassNCCL}, Last: classify.Outcome{ExitCode: 9}}, giveUp(classify.ClassNCCL), 9},
		{"child mode keeps 128+N", exitModeChild, runner.Result{Last: classify.Outcome{ExitCode: 137, Signal: "SIGKILL"}}, giveUp(classify.ClassHostOOM), 137},
	}
	for _, tt := range tests {
		if got := exitCode(tt.mode, tt.res, tt.err); got != tt.want {
			t.Errorf("exitCode(%s) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestE2E_InfeasibleWhenLadderRunsOut(t *testing.T) {
	t.Parallel()
	ckpt := mkckpt(t, "t2v-A14B")
	g := guard(t, []string{"FAKEWAN_VRAM_GB=12", "FAKEWAN_STEP_MS=0", "FAKEWAN_LOAD_MS=0"},
		"--backoff-initial", "1ms", "--backoff-max", "2ms", "--max-attempts", "20", "--no-preflight", "--",
		"python3", fakewan(t), "--task", "t2v-A14B", "--size", "1280*720", "--ckpt_dir", ckpt,
		"--offload_model", "True", "--convert_model_dtype", "--sample_steps", "2", "--save_file", filepath.Join(t.TempDir(), "o.mp4"))
	if g.code != ExitInfeasible {
		t.Fatalf("exit = %d, want %d (ladder ran out)\nstderr:\n%s", g.code, ExitInfeasible, g.stderr)
	}
	recs := g.records(t)
	last := recs[len(recs)-1]
	if last["class"] != "cuda_oom" || last["reason"] != string(strategies.ReasonLadderExhausted) {
		t.Errorf("last record: class %v reason %v, want cuda_oom and %s", last["class"], last["reason"], strategies.ReasonLadderExhausted)
	}
	if !strings.Contains(g.stderr, "nvidia-smi") {
		t.Errorf("stderr does not show the vram-detection workflow:\n%s", g.stderr)
	}
}

func TestE2E_GPUFaultExitCode(t *testing.T) {
	t.Parallel()
	g := guard(t, nil, "--backoff-initial", "1ms", "--",
		"sh", "-c", "echo 'RuntimeError: CUDA error: an illegal memory access was encountered' >&2; exit 1")
	if g.code != ExitGPUFault {
		t.Fatalf("exit = %d, want %d\nstderr:\n%s", g.code, ExitGPUFault, g.stderr)
	}
	if recs := g.records(t); recs[0]["class"] != "gpu_fault" {
		t.Errorf("class = %v, want gpu_fault", recs[0]["class"])
	}
}

func TestE2E_NoGPUFactsRecorded(t *testing.T) {
	t.Parallel()
	g := guard(t, nil, "--", "true")
	if g.code != 0 {
		t.Fatalf("exit = %d\nstderr:\n%s", g.code, g.stderr)
	}
	rec := g.records(t)[0]
	gpus, _ := rec["gpus"].(map[string]any)
	before, _ := gpus["before"].(map[string]any)
	if before == nil || before["available"] != false || before["reason"] == "" {
		t.Errorf("record gpus = %v, want before.available false with a reason", rec["gpus"])
	}
	host, _ := rec["host"].(map[string]any)
	if host == nil || host["before"] == nil {
		t.Errorf("record host = %v, want before/after host facts", rec["host"])
	}
}

func TestE2E_DoctorWithoutGPU(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(guardBin, "doctor", "--json", "--", "python3", "generate.py", "--task", "t2v-A14B", "--size", "1280*720", "--ckpt_dir", filepath.Join(t.TempDir(), "missing"))
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("doctor: %v, want exit 1 (the checkpoint dir is missing)\n%s", err, out)
	}
	var rep struct {
		OK       bool `json:"ok"`
		Findings []struct{ Check, Level, Detail, Fix string }
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("doctor --json: %v: %s", err, out)
	}
	levels := map[string]string{}
	for _, f := range rep.Findings {
		levels[f.Check] = f.Level
	}
	if levels["gpu"] != "WARN" || levels["checkpoints"] != "FAIL" || levels["config"] != "OK" {
		t.Errorf("findings = %+v, want gpu WARN (no GPU), checkpoints FAIL, config OK", rep.Findings)
	}
}

func TestE2E_GuardAsPID1(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not available")
	}
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("cannot make a PID namespace here: %v", err)
	}
	runDir := filepath.Join(t.TempDir(), "run")
	// The child leaves three orphans that exit on their own, prints ready,
	// waits for SIGTERM and exits 7 on it.
	script := "for i in 1 2 3; do (sleep 0.01 &) ; done; trap 'exit 7' TERM; echo ready >&2; while :; do sleep 0.05; done"
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", guardBin, "--run-dir", runDir, "--exit-code", "child", "--", "sh", "-c", script)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	r := bufio.NewReader(stderr)
	waitLine(t, r, "ready")
	// The guard is unshare's child, PID 1 inside the namespace.
	guardPid := childOf(t, cmd.Process.Pid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", guardPid)); err != nil || !regexp.MustCompile(`NSpid:\s+\d+\s+1\n`).Match(b) {
		t.Fatalf("pid %d is not PID 1 of its namespace: %v\n%s", guardPid, err, b)
	}
	if err := syscall.Kill(guardPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("exit: %v, want the child's 7", err)
	}
}

// childOf returns the first child of pid, which must exist by now.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	f := strings.Fields(string(b))
	if len(f) == 0 {
		t.Fatalf("pid %d has no child", pid)
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

func TestE2E_MetricsMoveDuringRun(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	// Attempt 1 fails at once; attempt 2 says ready and waits for the gate file.
	script := fmt.Sprintf("if [ -e %[1]s.1 ]; then echo ready >&2; while [ ! -e %[2]s ]; do sleep 0.02; done; exit 0; fi; touch %[1]s.1; exit 3", filepath.Join(dir, "seen"), gate)
	cmd, stderr, _, _ := startGuard(t, nil, "--listen", addr, "--backoff-initial", "1ms", "--backoff-max", "2ms", "--", "sh", "-c", script)
	waitLine(t, stderr, "ready")
	go io.Copy(io.Discard, stderr)
	body := scrape(t, "http://"+addr+"/metrics")
	if !strings.Contains(body, `wan22_guard_attempts_total{action="backoff",class="unknown"} 1`) || !strings.Contains(body, "wan22_guard_current_attempt 2") || !strings.Contains(body, "wan22_guard_child_up 1") {
		t.Errorf("metrics during attempt 2 do not show the first attempt and the running child:\n%s", grepLines(body, "wan22_guard_"))
	}
	if code := scrapeStatus(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while the child runs, want 200", code)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("guard: %v", err)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: tooLong}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func scrapeStatus(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: tooLong}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestE2E_StatsOverRotatedJournal(t *testing.T) {
	t.Parallel()
	// Each failed attempt keeps a 200-line tail of 100-byte lines (about
	// 20 KB a record), so 60 attempts pass the 1 MB rotation size.
	script := `i=0; while [ $i -lt 200 ]; do printf '%0100d\n' $i; i=$((i+1)); done; exit 3`
	runDir := filepath.Join(t.TempDir(), "run")
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("classes:\n  unknown: {budget: 100}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(guardBin, "--run-dir", runDir, "--config", cfg, "--journal-max-size", "1", "--max-attempts", "60",
		"--backoff-initial", "0s", "--backoff-max", "0s", "--", "sh", "-c", script)
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err == nil {
		t.Fatal("guard succeeded; want the budget spent")
	}
	// Count the records by hand, gzipped backups included; lumberjack
	// compresses in the background, so wait for a .gz with a deadline.
	deadline := time.Now().Add(tooLong)
	var gz []string
	for time.Now().Before(deadline) {
		gz, _ = filepath.Glob(filepath.Join(runDir, "attempts-*.jsonl.gz"))
		if len(gz) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // lumberjack gives no signal when it is done
	}
	if len(gz) == 0 {
		t.Fatalf("no gzipped backup in %s", runDir)
	}
	count := 0
	files, _ := filepath.Glob(filepath.Join(runDir, "attempts*.jsonl*"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = fh
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(fh)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"msg":"attempt"`) {
				count++
			}
		}
		fh.Close()
	}
	out, err := exec.Command(guardBin, "stats", "--json", "--run-dir", runDir).Output()
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	var st struct {
		Runs     int            `json:"runs"`
		Attempts int            `json:"attempts"`
		Outcomes map[string]int `json:"outcomes"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("stats --json: %v: %s", err, out)
	}
	if count != 60 || st.Attempts != count || st.Runs != 1 || st.Outcomes["unknown"] != count {
		t.Errorf("by hand %d records; stats says %d attempts, %d runs, outcomes %v; want 60, 60, 1, unknown: 60", count, st.Attempts, st.Runs, st.Outcomes)
	}
}

func TestE2E_LeftoversOfAKilledGuardAreKilled(t *testing.T) {
	t.Parallel()
	runDir := filepath.Join(t.TempDir(), "run")
	// The child starts a grandchild in its own session, as torchrun does
	// with its ranks: the parent-death signal does not reach it.
	script := `if [ -n "$SECOND" ]; then exit 0; fi; setsid sh -c 'echo "grandchild $$" >&2; exec sleep 600' & wait`
	args := []string{"--run-dir", runDir, "--backoff-initial", "1ms", "--", "sh", "-c", script}
	first := exec.Command(guardBin, args...)
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _ = first.Wait() })
	line := waitLine(t, bufio.NewReader(stderr), "grandchild ")
	gc, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "grandchild")))
	if err != nil {
		t.Fatalf("grandchild pid from %q: %v", line, err)
	}
	pidfd, err := unixPidfd(gc)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer syscall.Close(pidfd)
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if exited(pidfd, 0) {
		t.Fatal("the grandchild died with the guard; this test needs it to survive")
	}

	second := exec.Command(guardBin, args...)
	second.Env = append(os.Environ(), "SECOND=1")
	out, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("second guard: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "left running by the previous guard") {
		t.Errorf("second guard did not say it killed leftovers:\n%s", out)
	}
	if !exited(pidfd, tooLong) {
		_ = syscall.Kill(gc, syscall.SIGKILL)
		t.Fatalf("grandchild %d of the killed guard is still running", gc)
	}
}
