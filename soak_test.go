package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Load on one guard process: many attempts, many goroutines' worth of
// relaunches, and a child that prints as fast as it can. Speed is measured
// in bench/, not here; these tests check that nothing grows or goes missing.

// procSample is what the soak test reads of the guard in /proc.
type procSample struct {
	rssKiB  int
	threads int
	fds     map[string]bool // "fd -> target"
}

func sampleProc(t *testing.T, pid int) procSample {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read guard status: %v", err)
	}
	s := procSample{fds: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKiB, _ = strconv.Atoi(f[0])
		case "Threads":
			s.threads, _ = strconv.Atoi(f[0])
		}
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read guard fds: %v", err)
	}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			s.fds[e.Name()+" -> "+target] = true
		}
	}
	return s
}

// steadyFDs counts the descriptors open in both samples. Each launch opens
// pipes and run.json's temp file for a moment, each with a name of its own,
// so what two samples a few attempts apart share is what the guard keeps.
func steadyFDs(a, b procSample) int {
	n := 0
	for fd := range a.fds {
		if b.fds[fd] {
			n++
		}
	}
	return n
}

func TestSoak_ThousandAttemptsInOneGuard(t *testing.T) {
	t.Parallel()
	// Past 1024 consecutive failures Multiplier^(n-1) overflows, which once
	// turned a 0s backoff into centuries; so the long run goes past it.
	n, early, late := 1100, 100, 1090
	if testing.Short() {
		n, early, late = 200, 50, 190
	}
	// Each sample is taken at two summary lines three attempts apart.
	// The unknown class allows two relaunches by default; raise it so the
	// attempt budget is what ends the run.
	cfg := filepath.Join(t.TempDir(), "soak.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("classes:\n  unknown: {budget: %d}\n", n)), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g := startGuardAt(t, filepath.Join(t.TempDir(), "run"), nil, nil, "--config", cfg,
		"--max-attempts", strconv.Itoa(n), "--backoff-initial", "0s", "--backoff-max", "0s", "--exit-code", "child", "--", "false")
	sampleAt := func(attempt int) (procSample, int) {
		g.stderr.expect(t, fmt.Sprintf("attempt %d/%d failed", attempt, n))
		first := sampleProc(t, g.cmd.Process.Pid)
		g.stderr.expect(t, fmt.Sprintf("attempt %d/%d failed", attempt+3, n))
		return first, steadyFDs(first, sampleProc(t, g.cmd.Process.Pid))
	}
	a, aFDs := sampleAt(early)
	b, bFDs := sampleAt(late)
	if code := g.wait(t); code != 1 {
		t.Fatalf("exit %d, want 1 (the child's code)\nstderr:\n%s", code, g.stderr)
	}
	t.Logf("%d attempts in %s; at attempt %d: RSS %d KiB, %d threads, %d fds; at %d: RSS %d KiB, %d threads, %d fds",
		n, time.Since(start).Round(time.Millisecond), early, a.rssKiB, a.threads, aFDs, late, b.rssKiB, b.threads, bFDs)
	if !strings.Contains(g.stderr.String(), "next: backoff in 0s") {
		t.Errorf("a 0s backoff was not taken as given:\n%s", g.stderr.String()[:min(2000, len(g.stderr.String()))])
	}
	if bFDs > aFDs+2 {
		t.Errorf("open fds grew from %d at attempt %d to %d at %d:\n%v\n%v", aFDs, early, bFDs, late, a.fds, b.fds)
	}
	if b.threads > a.threads+4 {
		t.Errorf("threads grew from %d at attempt %d to %d at %d", a.threads, early, b.threads, late)
	}
	// Result.Records keeps each attempt's record for --report (about 2 KiB
	// each here), so some growth is expected; a leak per attempt would be more.
	if grow := b.rssKiB - a.rssKiB; grow > 6<<10 {
		t.Errorf("RSS grew by %d KiB between attempt %d and %d", grow, early, late)
	}
	recs := guardRun{runDir: g.runDir}.records(t)
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	checkAttempts(t, recs)
}

// inProcessEnv makes the test binary run TestSoak_InProcessRunsLeakNoGoroutines
// itself instead of starting a copy of itself for it.
const inProcessEnv = "WAN22_GUARD_TEST_IN_PROCESS"

func TestSoak_InProcessRunsLeakNoGoroutines(t *testing.T) {
	if os.Getenv(inProcessEnv) == "" {
		t.Parallel()
		// run() makes its process a child subreaper and starts the
		// process-wide reaper, which would take the exit status of every
		// guard the other tests start; so this runs in a process of its own.
		ctx, cancel := context.WithTimeout(context.Background(), 2*tooLong)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSoak_InProcessRunsLeakNoGoroutines$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), inProcessEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestSoak_InProcessRunsLeakNoGoroutines")) {
			t.Fatalf("in-process run: %v\n%s", err, out)
		}
		return
	}
	ignore := []goleak.Option{
		goleak.IgnoreCurrent(),
		// lumberjack starts a goroutine per logger that never ends (the
		// runtime prints the dot in its package path as %2e).
		goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"),
		// The process-wide reaper runs for the life of the process.
		goleak.IgnoreTopFunction("github.com/wan22-guard/wan22-guard/runner.(*reaper).run"),
	}
	dir := t.TempDir()
	for i := range 50 {
		var out, errOut bytes.Buffer
		args := []string{"wan22-guard", "--run-dir", filepath.Join(dir, strconv.Itoa(i)), "--max-attempts", "2",
			"--backoff-initial", "0s", "--backoff-max", "0s", "--exit-code", "child", "--", "false"}
		if code := run(context.Background(), args, nil, &out, &errOut); code != 1 {
			t.Fatalf("run %d: exit %d, want 1\nstderr:\n%s", i, code, errOut.String())
		}
	}
	goleak.VerifyNone(t, ignore...)
}

var floodRE = regexp.MustCompile(`flood: bytes=(\d+) sha256=([0-9a-f]{64})`)

func TestSoak_ThroughputLosesNoBytes(t *testing.T) {
	t.Parallel()
	limit, secs := int64(2<<30), "10"
	if testing.Short() {
		limit, secs = 256<<20, "2"
	}
	runDir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(guardBin, "--run-dir", runDir, "--max-attempts", "1", "--exit-code", "child", "--",
		"python3", absPath(t, "testdata/children/flood.py"), strconv.FormatInt(limit, 10), secs)
	r, w := mustPipe(t)
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	type result struct {
		n   int64
		sum string
		err error
	}
	got := make(chan result, 1)
	go func() {
		h := sha256.New()
		n, err := io.CopyBuffer(h, r, make([]byte, 1<<20))
		r.Close()
		got <- result{n, hex.EncodeToString(h.Sum(nil)), err}
	}()
	var res result
	select {
	case res = <-got:
	case <-time.After(tooLong):
		t.Fatalf("guard's stdout still open after %s", tooLong)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("guard: %v\nstderr:\n%s", err, stderr.String())
	}
	if res.err != nil {
		t.Fatalf("read guard stdout: %v", res.err)
	}
	m := floodRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("the child did not report what it wrote\nstderr:\n%s", stderr.String())
	}
	want, _ := strconv.ParseInt(m[1], 10, 64)
	t.Logf("%d MiB through the guard in %s", res.n>>20, time.Since(start).Round(time.Millisecond))
	if res.n != want || res.sum != m[2] {
		t.Fatalf("guard passed %d bytes (sha256 %s), the child wrote %d (sha256 %s)", res.n, res.sum, want, m[2])
	}
	recs := guardRun{runDir: runDir}.records(t)
	if len(recs) != 1 || recs[0]["class"] != "success" {
		t.Fatalf("records = %d, want one success", len(recs))
	}
	// Dropping scan work is allowed; dropping bytes is not (checked above).
	if d, ok := recs[0]["dropped_chunks"]; ok {
		if f, isNum := d.(float64); !isNum || f < 0 {
			t.Errorf("dropped_chunks = %v, want a count >= 0", d)
		}
	}
	t.Logf("dropped_chunks: %v", recs[0]["dropped_chunks"])
}
