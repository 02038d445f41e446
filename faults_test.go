package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// The fault matrix: the guard, its child, the disk, the config and secrets,
// each broken on purpose. Every case checks what must hold afterwards: the
// child's whole tree is gone, the journal is valid JSON with one record per
// attempt, the state file is valid and the exit code is the right one.

// liveGuard is a guard started by a fault test, its output read as it comes.
type liveGuard struct {
	cmd            *exec.Cmd
	runDir         string
	stdout, stderr *stream
	exited         chan struct{}
	code           int // once exited is closed; 128+N when signal N killed it
}

// startGuardAt starts the guard with the given run dir; stdin nil means
// /dev/null. The test's cleanup kills it if it is still running.
func startGuardAt(t *testing.T, runDir string, stdin *os.File, env []string, args ...string) *liveGuard {
	t.Helper()
	cmd := exec.Command(guardBin, append([]string{"--run-dir", runDir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The guard holds the only write ends now, so the streams end when it does.
	outW.Close()
	errW.Close()
	g := &liveGuard{cmd: cmd, runDir: runDir, stdout: newStream(outR), stderr: newStream(errR), exited: make(chan struct{})}
	go func() {
		g.code = exitStatus(cmd.Wait())
		close(g.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			_ = cmd.Process.Kill()
			<-g.exited
		}
	})
	return g
}

func mustPipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// exitStatus is the code a shell would report for a process that ended
// with err from exec.Cmd.Wait.
func exitStatus(err error) int {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err != nil {
			return -1
		}
		return 0
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// wait waits for the guard to exit and for its output to end, and returns
// its exit status.
func (g *liveGuard) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-g.exited:
	case <-time.After(tooLong):
		t.Fatalf("guard still running after %s\nstderr:\n%s", tooLong, g.stderr)
	}
	g.stdout.waitEOF(t)
	g.stderr.waitEOF(t)
	return g.code
}

// kill sends sig to the guard and waits for it to exit.
func (g *liveGuard) kill(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal guard: %v", err)
	}
	return g.wait(t)
}

// running reports whether the guard has not exited yet.
func (g *liveGuard) running() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// stream collects one output of the guard and lets a test wait for a line.
type stream struct {
	mu   sync.Mutex
	buf  []byte
	eof  bool
	more chan struct{} // closed and replaced when buf grows or the stream ends
	next int           // where expect looks for the next line
}

func newStream(r *os.File) *stream {
	s := &stream{more: make(chan struct{})}
	go func() {
		defer r.Close()
		b := make([]byte, 64<<10)
		for {
			n, err := r.Read(b)
			s.mu.Lock()
			s.buf = append(s.buf, b[:n]...)
			s.eof = err != nil
			close(s.more)
			s.more = make(chan struct{})
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *stream) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf)
}

func (s *stream) String() string { return string(s.bytes()) }

// expect waits for the next line that contains want, skipping the lines
// before it, and returns it.
func (s *stream) expect(t *testing.T, want string) string {
	t.Helper()
	deadline := time.NewTimer(tooLong)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for {
			i := bytes.IndexByte(s.buf[s.next:], '\n')
			if i < 0 {
				break
			}
			line := string(s.buf[s.next : s.next+i])
			s.next += i + 1
			if strings.Contains(line, want) {
				s.mu.Unlock()
				return line
			}
		}
		eof, more := s.eof, s.more
		s.mu.Unlock()
		if eof {
			t.Fatalf("output ended before a line with %q; it was:\n%s", want, s)
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("no line with %q within %s; output so far:\n%s", want, tooLong, s)
		}
	}
}

func (s *stream) waitEOF(t *testing.T) {
	t.Helper()
	deadline := time.NewTimer(tooLong)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		eof, more := s.eof, s.more
		s.mu.Unlock()
		if eof {
			return
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("output still open %s after the guard exited:\n%s", tooLong, s)
		}
	}
}

// sysPidfdOpen is pidfd_open(2), the same number on every Linux architecture.
const sysPidfdOpen = 434

var pidRE = regexp.MustCompile(`pid=(\d+)`)

// pidWatch holds pidfds of the processes a child reported, opened while
// they ran, so that a pid reused later is never taken for one of them.
type pidWatch struct {
	t   *testing.T
	fds map[int]int // pid -> pidfd; -1 when it had already exited
}

func newPidWatch(t *testing.T) *pidWatch {
	w := &pidWatch{t: t, fds: map[int]int{}}
	t.Cleanup(func() {
		for _, fd := range w.fds {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	})
	return w
}

// add watches every "pid=N" in line ("gpid=N" included) and returns how
// many it found.
func (w *pidWatch) add(line string) int {
	w.t.Helper()
	ms := pidRE.FindAllStringSubmatch(line, -1)
	for _, m := range ms {
		pid, _ := strconv.Atoi(m[1])
		if _, ok := w.fds[pid]; ok {
			continue
		}
		fd, _, e := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
		switch {
		case e == syscall.ESRCH:
			w.fds[pid] = -1
		case e != 0:
			w.t.Fatalf("pidfd_open(%d): %v", pid, e)
		default:
			w.fds[pid] = int(fd)
		}
	}
	return len(ms)
}

// gone fails the test for each watched process that has not terminated
// within d; 0 means it must have terminated already. A terminated process
// may still be a zombie, but not one of the guard, which has exited.
func (w *pidWatch) gone(d time.Duration) {
	w.t.Helper()
	if len(w.fds) == 0 {
		w.t.Fatal("no child pid was reported; the check would prove nothing")
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		w.t.Fatal(err)
	}
	defer syscall.Close(ep)
	left := map[int32]int{}
	for pid, fd := range w.fds {
		if fd < 0 {
			continue
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			w.t.Fatal(err)
		}
		left[int32(fd)] = pid
	}
	deadline := time.Now().Add(d)
	events := make([]syscall.EpollEvent, 8)
	for len(left) > 0 {
		ms := max(int(time.Until(deadline).Milliseconds()), 0)
		n, err := syscall.EpollWait(ep, events, ms)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			w.t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for _, ev := range events[:n] {
			delete(left, ev.Fd)
		}
	}
	for _, pid := range left {
		w.t.Errorf("pid %d of the child's tree is still running: %s", pid, procStat(pid))
	}
}

func procStat(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}

// checkAttempts fails unless recs are attempts 1..len(recs) in order.
func checkAttempts(t *testing.T, recs []map[string]any) {
	t.Helper()
	for i, r := range recs {
		if r["attempt"] != float64(i+1) {
			t.Errorf("record %d is attempt %v, want %d", i, r["attempt"], i+1)
		}
	}
}

// journalLines returns the attempt log's lines, each checked to be a JSON
// object.
func journalLines(t *testing.T, runDir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, "attempts.jsonl"))
	if err != nil {
		t.Fatalf("read attempt log: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		if !json.Valid([]byte(l)) || !strings.HasPrefix(l, "{") {
			t.Errorf("attempt log line %d is not a JSON object: %q", i+1, l)
		}
	}
	return lines
}

// runState is the part of run.json the tests look at.
type runState struct {
	RunID string `json:"run_id"`
	State struct {
		Attempts int `json:"attempts"`
	} `json:"state"`
}

func readRunFile(t *testing.T, runDir string) runState {
	t.Helper()
	var rs runState
	b, err := os.ReadFile(filepath.Join(runDir, "run.json"))
	if err != nil {
		t.Fatalf("read run.json: %v", err)
	}
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatalf("run.json is not JSON: %v: %s", err, b)
	}
	return rs
}

func absPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launches returns the argv of testdata/children/launches.sh with a fresh
// counter: body i runs on the ith launch, the last one on every later one.
func launches(t *testing.T, bodies ...string) []string {
	t.Helper()
	return append([]string{"sh", absPath(t, "testdata/children/launches.sh"), filepath.Join(t.TempDir(), "launches")}, bodies...)
}

// linesWith returns the lines of out that contain one of words, ignoring case.
func linesWith(out string, words ...string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		low := strings.ToLower(l)
		for _, w := range words {
			if strings.Contains(low, w) {
				ls = append(ls, l)
				break
			}
		}
	}
	return ls
}

func TestFault_GuardKilledThenRestarted(t *testing.T) {
	t.Parallel()
	t.Run("mid-attempt", func(t *testing.T) {
		t.Parallel()
		argv := launches(t,
			"exit 1",
			`echo "pid=$$" >&2; while :; do echo tick; sleep 0.05; done`,
			"exit 0")
		args := append([]string{"--max-attempts", "5", "--backoff-initial", "1ms", "--backoff-max", "2ms", "--exit-code", "child", "--"}, argv...)
		runDir := filepath.Join(t.TempDir(), "run")
		a := startGuardAt(t, runDir, nil, nil, args...)
		pids := newPidWatch(t)
		pids.add(a.stderr.expect(t, "pid="))
		a.stdout.expect(t, "tick")
		if code := a.kill(t, syscall.SIGKILL); code != 137 {
			t.Fatalf("first guard: exit %d, want 137", code)
		}
		pids.gone(tooLong)
		restart(t, runDir, args, 1)
	})
	t.Run("mid-backoff", func(t *testing.T) {
		t.Parallel()
		argv := launches(t, `echo "pid=$$" >&2; exit 1`, "exit 0")
		// With full jitter a 1h backoff is all but sure to be long enough
		// to be killed in.
		args := append([]string{"--max-attempts", "5", "--backoff-initial", "1h", "--backoff-max", "1h", "--exit-code", "child", "--"}, argv...)
		runDir := filepath.Join(t.TempDir(), "run")
		a := startGuardAt(t, runDir, nil, nil, args...)
		pids := newPidWatch(t)
		pids.add(a.stderr.expect(t, "pid="))
		a.stderr.expect(t, "next: backoff in")
		if code := a.kill(t, syscall.SIGKILL); code != 137 {
			t.Fatalf("first guard: exit %d, want 137", code)
		}
		pids.gone(0)
		restart(t, runDir, args, 1)
	})
	t.Run("mid-restore", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// The child corrupts the state through a hard link in another
		// directory, which the guard's watch on the state file's directory
		// does not see; so the validator's first run on the bad state is the
		// guard's own check after the attempt, just before it restores.
		state := filepath.Join(dir, "state", "state.json")
		link := filepath.Join(dir, "link", "state.json")
		good := []byte(`{"version":1,"step":3}`)
		for _, d := range []string{filepath.Dir(state), filepath.Dir(link)} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(state, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(state, link); err != nil {
			t.Fatal(err)
		}
		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		validate := strings.Join([]string{"sh", absPath(t, "testdata/children/validate.sh"), filepath.Join(dir, "hung"), fifo}, " ")
		argv := launches(t, "exit 1", "printf 'not json' >"+link+"; exit 1", "exit 0")
		args := append([]string{"--state-file", state, "--state-validate", validate, "--max-attempts", "5",
			"--backoff-initial", "1ms", "--backoff-max", "2ms", "--exit-code", "child", "--"}, argv...)
		runDir := filepath.Join(dir, "run")
		a := startGuardAt(t, runDir, nil, nil, args...)
		pids := newPidWatch(t)
		pids.add(readFifo(t, fifo))
		if code := a.kill(t, syscall.SIGKILL); code != 137 {
			t.Fatalf("first guard: exit %d, want 137", code)
		}
		pids.gone(tooLong)
		b := restart(t, runDir, args, 1)
		if !strings.Contains(b.stderr.String(), "restored snapshot") {
			t.Errorf("the restarted guard did not restore the state file:\n%s", b.stderr)
		}
		got, err := os.ReadFile(state)
		if err != nil || !bytes.Equal(got, good) {
			t.Errorf("state file after the run = %q (%v), want %q", got, err, good)
		}
		snaps, err := filepath.Glob(filepath.Join(runDir, "states", "*.snap"))
		if err != nil || len(snaps) == 0 {
			t.Errorf("no state snapshots in the run dir (%v)", err)
		}
	})
}

// readFifo reads the first line written to the named pipe path.
func readFifo(t *testing.T, path string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(path) // blocks until a writer opens and closes it
		got <- string(b)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(tooLong):
		// Open the pipe for writing ourselves so the reader returns.
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatalf("nothing written to %s within %s", path, tooLong)
	}
	return ""
}

// restart runs a second guard with the run dir and arguments of one that
// was killed after before records, lets it finish, and checks that the run
// went on: the old records kept, attempt numbers continued, run.json counting
// all of them.
func restart(t *testing.T, runDir string, args []string, before int) *liveGuard {
	t.Helper()
	old := journalLines(t, runDir)
	if len(old) != before {
		t.Fatalf("the killed guard left %d records, want %d", len(old), before)
	}
	if rs := readRunFile(t, runDir); rs.State.Attempts != before {
		t.Fatalf("run.json after the kill counts %d attempts, want %d", rs.State.Attempts, before)
	}
	b := startGuardAt(t, runDir, nil, nil, args...)
	if code := b.wait(t); code != 0 {
		t.Fatalf("restarted guard: exit %d, want 0\nstderr:\n%s", code, b.stderr)
	}
	lines := journalLines(t, runDir)
	if len(lines) != before+1 {
		t.Fatalf("attempt log has %d records after the restart, want %d", len(lines), before+1)
	}
	for i := range old {
		if lines[i] != old[i] {
			t.Errorf("record %d changed across the restart:\nbefore %s\nafter  %s", i+1, old[i], lines[i])
		}
	}
	recs := guardRun{runDir: runDir}.records(t)
	checkAttempts(t, recs)
	if last := recs[len(recs)-1]; last["class"] != "success" {
		t.Errorf("last record: class %v, want success", last["class"])
	}
	if rs := readRunFile(t, runDir); rs.State.Attempts != before+1 {
		t.Errorf("run.json counts %d attempts, want %d", rs.State.Attempts, before+1)
	}
	if want := fmt.Sprintf("attempt %d/", before+1); !strings.Contains(b.stderr.String(), want) {
		t.Errorf("restarted guard did not continue at %q:\n%s", want, b.stderr)
	}
	return b
}

func TestFault_ChildKilledBySignal(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		sig  syscall.Signal
		name string
	}{
		{syscall.SIGKILL, "SIGKILL"},
		{syscall.SIGSEGV, "SIGSEGV"},
		{syscall.SIGABRT, "SIGABRT"},
		{syscall.SIGTERM, "SIGTERM"},
		{syscall.SIGINT, "SIGINT"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			script := fmt.Sprintf(`ulimit -c 0; sleep 600 & echo "pid=$$ gpid=$!" >&2; kill -%s $$`, strings.TrimPrefix(tt.name, "SIG"))
			g := startGuardAt(t, filepath.Join(t.TempDir(), "run"), nil, nil, "--max-attempts", "1", "--exit-code", "child", "--", "sh", "-c", script)
			pids := newPidWatch(t)
			pids.add(g.stderr.expect(t, "pid="))
			if code := g.wait(t); code != 128+int(tt.sig) {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, 128+int(tt.sig), g.stderr)
			}
			pids.gone(0)
			recs := guardRun{runDir: g.runDir}.records(t)
			if len(recs) != 1 || recs[0]["signal"] != tt.name || recs[0]["exit_code"] != float64(128+int(tt.sig)) {
				t.Fatalf("records = %v, want one with signal %s and exit code %d", recs, tt.name, 128+int(tt.sig))
			}
			if want := "killed by " + tt.name; !strings.Contains(g.stderr.String(), want) {
				t.Errorf("summary does not say %q:\n%s", want, g.stderr)
			}
		})
	}
}

func TestFault_GrandchildKeepsOutputOpen(t *testing.T) {
	t.Parallel()
	// The subshell leaves sleep behind holding the child's stdout and
	// stderr; $$ in the subshell is still the child's pid.
	script := `(sleep 600 & echo "pid=$$ gpid=$!" >&2); exit 3`
	start := time.Now()
	g := startGuardAt(t, filepath.Join(t.TempDir(), "run"), nil, nil, "--max-attempts", "1", "--exit-code", "child", "--", "sh", "-c", script)
	pids := newPidWatch(t)
	if n := pids.add(g.stderr.expect(t, "pid=")); n != 2 {
		t.Fatalf("child reported %d pids, want 2", n)
	}
	if code := g.wait(t); code != 3 {
		t.Fatalf("exit %d, want 3\nstderr:\n%s", code, g.stderr)
	}
	// The drain after the child's exit is capped at DefaultDrainMax (5s);
	// the grandchild's 600s must not count.
	if took := time.Since(start); took > tooLong/2 {
		t.Errorf("guard took %s to finish after its child exited", took)
	}
	pids.gone(0)
	recs := guardRun{runDir: g.runDir}.records(t)
	if len(recs) != 1 || recs[0]["exit_code"] != float64(3) {
		t.Fatalf("records = %v, want one with exit code 3", recs)
	}
}

func TestFault_ChildForksThousand(t *testing.T) {
	t.Parallel()
	in, release := mustPipe(t)
	defer release.Close()
	script := `echo "pid=$$" >&2; for i in $(seq 1000); do true & done; wait; echo forked >&2; read x; exit 0`
	g := startGuardAt(t, filepath.Join(t.TempDir(), "run"), in, nil, "--max-attempts", "1", "--exit-code", "child", "--", "sh", "-c", script)
	in.Close()
	pids := newPidWatch(t)
	pids.add(g.stderr.expect(t, "pid="))
	g.stderr.expect(t, "forked")
	for pid := range pids.fds {
		if z := zombiesOf(pid, g.cmd.Process.Pid); len(z) > 0 {
			t.Errorf("zombies left under the child or the guard: %v", z)
		}
	}
	release.Close()
	if code := g.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", code, g.stderr)
	}
	pids.gone(0)
	recs := guardRun{runDir: g.runDir}.records(t)
	if len(recs) != 1 || recs[0]["class"] != "success" {
		t.Fatalf("records = %v, want one success", recs)
	}
}

// zombiesOf returns the zombies whose parent is one of parents.
func zombiesOf(parents ...int) []string {
	names, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] != "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		for _, p := range parents {
			if ppid == p {
				out = append(out, strings.TrimSpace(string(b)))
			}
		}
	}
	return out
}

func TestFault_ChildIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	const grace = 500 * time.Millisecond
	// Ignored signals stay ignored in the children, so sleep ignores
	// SIGTERM too.
	script := `trap '' TERM; sleep 600 & echo "pid=$$ gpid=$!" >&2; wait; wait`
	g := startGuardAt(t, filepath.Join(t.TempDir(), "run"), nil, nil, "--grace", grace.String(), "--", "sh", "-c", script)
	pids := newPidWatch(t)
	pids.add(g.stderr.expect(t, "pid="))
	sent := time.Now()
	if code := g.kill(t, syscall.SIGTERM); code != 143 {
		t.Fatalf("exit %d, want 143\nstderr:\n%s", code, g.stderr)
	}
	if took := time.Since(sent); took < grace {
		t.Errorf("guard exited %s after SIGTERM, before the grace of %s ran out", took, grace)
	}
	pids.gone(0)
	recs := guardRun{runDir: g.runDir}.records(t)
	if len(recs) != 1 || recs[0]["class"] != "interrupted" || recs[0]["signal"] != "SIGKILL" {
		t.Fatalf("records = %v, want one interrupted attempt ended by SIGKILL", recs)
	}
}

func TestFault_ChildClosesStdout(t *testing.T) {
	t.Parallel()
	in, release := mustPipe(t)
	defer release.Close()
	script := `echo before; exec 1>&-; echo "pid=$$ closed" >&2; read x; echo after >&2; exit 0`
	g := startGuardAt(t, filepath.Join(t.TempDir(), "run"), in, nil, "--max-attempts", "1", "--exit-code", "child", "--", "sh", "-c", script)
	in.Close()
	pids := newPidWatch(t)
	pids.add(g.stderr.expect(t, "closed"))
	g.stdout.expect(t, "before")
	if !g.running() {
		t.Fatalf("guard exited when its child closed stdout\nstderr:\n%s", g.stderr)
	}
	release.Close()
	g.stderr.expect(t, "after")
	if code := g.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", code, g.stderr)
	}
	pids.gone(0)
	if got := g.stdout.String(); got != "before\n" {
		t.Errorf("stdout = %q, want %q", got, "before\n")
	}
	recs := guardRun{runDir: g.runDir}.records(t)
	if len(recs) != 1 || recs[0]["class"] != "success" {
		t.Fatalf("records = %v, want one success", recs)
	}
}

// garbage returns bytes that are no text: every byte value, invalid and
// truncated UTF-8, NULs, carriage returns, escape sequences, a line longer
// than any line cap, random bytes, and no final newline.
func garbage() []byte {
	var b bytes.Buffer
	for i := range 256 {
		b.WriteByte(byte(i))
	}
	for _, s := range []string{"\xff\xfe\xfd", "\xc3\x28", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x00\x00\r\r\n", "\x1b[2J\x1b]0;title\x07", "\r100%|###|\r"} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.Write(bytes.Repeat([]byte{0xfe, 'x', 0x80}, 200<<10/3))
	b.WriteByte('\n')
	r := rand.New(rand.NewPCG(1, 2))
	for range 256 << 10 {
		b.WriteByte(byte(r.Uint32()))
	}
	b.WriteString("\xe2\x82") // cut in the middle of a rune, no newline
	return b.Bytes()
}

func TestFault_BinaryOutputPassesThrough(t *testing.T) {
	t.Parallel()
	data := garbage()
	file := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGuardAt(t, filepath.Join(t.TempDir(), "run"), nil, nil, "--max-attempts", "1", "--exit-code", "child", "--",
		"sh", "-c", `cat "$1"; cat "$1" >&2; exit 1`, "sh", file)
	if code := g.wait(t); code != 1 {
		t.Fatalf("exit %d, want 1\nstderr:\n%q", code, g.stderr)
	}
	if got := g.stdout.bytes(); !bytes.Equal(got, data) {
		t.Errorf("stdout differs from what the child wrote: %d bytes, want %d", len(got), len(data))
	}
	errOut := g.stderr.bytes()
	if !bytes.HasPrefix(errOut, data) {
		t.Fatalf("stderr does not start with what the child wrote, byte for byte")
	}
	// The child's last line has no newline; the guard's own lines follow it.
	rest := string(errOut[len(data):])
	if !strings.HasPrefix(rest, "\n[wan22-guard] ") && !strings.HasPrefix(rest, "[wan22-guard] ") {
		t.Errorf("after the child's bytes stderr has %q, want only the guard's lines", rest)
	}
	journalLines(t, g.runDir)
	recs := guardRun{runDir: g.runDir}.records(t)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	tail, _ := recs[0]["tail"].([]any)
	if len(tail) == 0 {
		t.Errorf("record has no tail")
	}
	for _, l := range tail {
		if s, _ := l.(string); !utf8.ValidString(s) {
			t.Errorf("tail line is not valid UTF-8: %q", s)
		}
	}
}

func TestFault_ForgedLinesStayInTail(t *testing.T) {
	t.Parallel()
	const forged = `{"run_id":"forged","attempt":99,"class":"success"}`
	const fake = `[wan22-guard] attempt 1/1 succeeded`
	// The lines come from the environment, so the argv in the records does
	// not hold them.
	script := `echo "$FORGED"; echo "$FORGED" >&2; echo "$FAKE" >&2; exit 1`
	g := guard(t, []string{"FORGED=" + forged, "FAKE=" + fake}, "--max-attempts", "2", "--backoff-initial", "1ms", "--backoff-max", "2ms", "--", "sh", "-c", script)
	if g.code != ExitTransient {
		t.Fatalf("exit %d, want %d\nstderr:\n%s", g.code, ExitTransient, g.stderr)
	}
	if lines := journalLines(t, g.runDir); len(lines) != 2 {
		t.Fatalf("attempt log has %d lines, want 2", len(lines))
	}
	recs := g.records(t)
	checkAttempts(t, recs)
	runID := readRunFile(t, g.runDir).RunID
	if runID == "" || runID == "forged" {
		t.Fatalf("run.json run_id = %q", runID)
	}
	for _, r := range recs {
		if r["run_id"] != runID {
			t.Errorf("attempt %v has run_id %v, want %s", r["attempt"], r["run_id"], runID)
		}
		if r["class"] == "success" {
			t.Errorf("attempt %v is a success; the child only printed one", r["attempt"])
		}
		tail, _ := json.Marshal(r["tail"])
		if !strings.Contains(string(tail), "forged") || !strings.Contains(string(tail), "attempt 1/1 succeeded") {
			t.Errorf("attempt %v tail %s lacks the child's lines", r["attempt"], tail)
		}
		rest := make(map[string]any, len(r))
		for k, v := range r {
			if k != "tail" {
				rest[k] = v
			}
		}
		b, _ := json.Marshal(rest)
		if strings.Contains(string(b), "forged") || strings.Contains(string(b), "1/1 succeeded") {
			t.Errorf("the child's lines leaked out of the tail of attempt %v: %s", r["attempt"], b)
		}
	}
	if strings.Count(g.stderr, "[wan22-guard] attempt ") != 2+2 {
		t.Errorf("stderr should hold two real summaries and the child's two fakes:\n%s", g.stderr)
	}
}

// fillTmpfs mounts a 64k tmpfs on a new directory and fills it. It skips
// the test when it cannot mount.
func fillTmpfs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "full")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return dir
		}
	}
}

func TestFault_RunDirOnFullDisk(t *testing.T) {
	t.Parallel()
	full := fillTmpfs(t)
	g := startGuardAt(t, filepath.Join(full, "run"), nil, nil, "--max-attempts", "2", "--backoff-initial", "1ms", "--backoff-max", "2ms",
		"--exit-code", "child", "--", "sh", "-c", `echo "pid=$$"; exit 7`)
	pids := newPidWatch(t)
	pids.add(g.stdout.expect(t, "pid="))
	if code := g.wait(t); code != 7 {
		t.Fatalf("exit %d, want 7\nstderr:\n%s", code, g.stderr)
	}
	pids.gone(0)
	if n := strings.Count(g.stdout.String(), "pid="); n != 2 {
		t.Errorf("child ran %d times, want 2", n)
	}
	said := linesWith(g.stderr.String(), "cannot", "no space")
	if len(said) != 1 {
		t.Errorf("the guard should say once that it cannot write; it said:\n%s", strings.Join(said, "\n"))
	}
}

func TestFault_RunDirUnwritable(t *testing.T) {
	t.Parallel()
	for _, withState := range []bool{false, true} {
		t.Run(fmt.Sprintf("state file %v", withState), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, "file")
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--max-attempts", "2", "--backoff-initial", "1ms", "--backoff-max", "2ms", "--exit-code", "child"}
			state := filepath.Join(dir, "state.json")
			good := []byte(`{"version":1}`)
			if withState {
				if err := os.WriteFile(state, good, 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--state-file", state)
			}
			args = append(args, "--", "sh", "-c", `echo "pid=$$"; exit 7`)
			g := startGuardAt(t, filepath.Join(file, "run"), nil, nil, args...)
			pids := newPidWatch(t)
			pids.add(g.stdout.expect(t, "pid="))
			if code := g.wait(t); code != 7 {
				t.Fatalf("exit %d, want 7\nstderr:\n%s", code, g.stderr)
			}
			pids.gone(0)
			if n := strings.Count(g.stdout.String(), "pid="); n != 2 {
				t.Errorf("child ran %d times, want 2", n)
			}
			said := linesWith(g.stderr.String(), "cannot", "not a directory")
			if len(said) != 1 {
				t.Errorf("the guard should say once that it cannot write; it said:\n%s", strings.Join(said, "\n"))
			}
			if withState {
				if got, err := os.ReadFile(state); err != nil || !bytes.Equal(got, good) {
					t.Errorf("state file = %q (%v), want it unchanged", got, err)
				}
			}
		})
	}
}

func TestFault_RunDirDeletedDuringRun(t *testing.T) {
	t.Parallel()
	runDir := filepath.Join(t.TempDir(), "run")
	argv := launches(t, "rm -rf "+runDir+"; exit 1", "exit 0")
	g := startGuardAt(t, runDir, nil, nil, append([]string{"--max-attempts", "3", "--backoff-initial", "1ms", "--backoff-max", "2ms", "--"}, argv...)...)
	if code := g.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", code, g.stderr)
	}
	if s := g.stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
		t.Errorf("guard crashed:\n%s", s)
	}
	recs := guardRun{runDir: runDir}.records(t)
	checkAttempts(t, recs)
	if len(recs) != 2 || recs[1]["class"] != "success" {
		t.Fatalf("records = %v, want the failure then the success in a recreated run dir", recs)
	}
	if fi, err := os.Stat(runDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("recreated run dir: %v %v, want mode 0700", fi, err)
	}
}

func TestFault_StateDirRemovedDuringRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(stateDir, "state.json")
	if err := os.WriteFile(state, []byte(`{"version":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := launches(t, "rm -rf "+stateDir+"; exit 1", "exit 0")
	runDir := filepath.Join(dir, "run")
	g := startGuardAt(t, runDir, nil, nil, append([]string{"--state-file", state, "--max-attempts", "3", "--backoff-initial", "1ms", "--backoff-max", "2ms", "--"}, argv...)...)
	if code := g.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", code, g.stderr)
	}
	s := g.stderr.String()
	if strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
		t.Errorf("guard crashed:\n%s", s)
	}
	if said := linesWith(s, "is gone"); len(said) != 1 || !strings.Contains(said[0], stateDir) {
		t.Errorf("want one line saying the state file's directory %s is gone; stderr:\n%s", stateDir, s)
	}
	recs := guardRun{runDir: runDir}.records(t)
	checkAttempts(t, recs)
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
}

func TestFault_BadConfig(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		body string
	}{
		{"malformed yaml", "runtime:\n  max_attempts: [\n"},
		{"unknown key", "runtime:\n  max_attempt: 3\n"},
		{"100k-char pattern", "rules:\n  - name: long\n    class: nccl\n    pattern: '" + strings.Repeat("a", 100_000) + "'\n"},
		{"nested repetition", "rules:\n  - name: nested\n    class: nccl\n    pattern: '(((a{1000}){1000}){1000})'\n"},
		{"10 MB file", "# padding\n" + strings.Repeat("#"+strings.Repeat("x", 99)+"\n", 100_000)},
		{"symlink loop", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := filepath.Join(dir, "my.yaml")
			if tt.body == "" {
				if err := os.Symlink(filepath.Join(dir, "other.yaml"), cfg); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(cfg, filepath.Join(dir, "other.yaml")); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(cfg, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(cfg)
			marker := filepath.Join(dir, "launched")
			g := guard(t, nil, "--config", cfg, "--", "touch", marker)
			if g.code != ExitConfig {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", g.code, ExitConfig, g.stderr)
			}
			lines := strings.Split(strings.TrimRight(g.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], cfg) || !strings.HasPrefix(lines[0], "[wan22-guard] ") {
				t.Errorf("stderr should be one guard line naming %s; it is:\n%s", cfg, g.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the child was launched")
			}
			if _, err := os.Stat(g.runDir); err == nil {
				t.Errorf("the run dir was created")
			}
			after, err := os.Lstat(cfg)
			if err != nil || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() || after.Mode() != before.Mode() {
				t.Errorf("config file changed: %v %v", after, err)
			}
			if tt.body != "" {
				if got, _ := os.ReadFile(cfg); string(got) != tt.body {
					t.Errorf("config file content changed")
				}
			}
		})
	}
}

func TestFault_SecretsNeverWritten(t *testing.T) {
	t.Parallel()
	const secret = "abc123"
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	if err := os.WriteFile(state, []byte(`{"version":1,"step":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	// The child shows what it got (argv on stdout, its environment in a
	// traceback on stderr), then fails on a class that prints a workflow
	// quoting the evidence line.
	script := `echo "argv: $*"
echo 'Traceback (most recent call last):' >&2
echo '  File "generate.py", line 12, in <module>' >&2
echo "    login()  # HF_TOKEN=$HF_TOKEN" >&2
echo "ModuleNotFoundError: No module named 'easydict' (HF_TOKEN=$HF_TOKEN)" >&2
exit 1`
	g := guard(t, []string{"HF_TOKEN=" + secret},
		"--report", report, "--state-file", state, "--max-attempts", "2", "--backoff-initial", "1ms", "--backoff-max", "2ms",
		"--", "sh", "-c", script, "sh", "--hf_token", secret, "--api-key="+secret, "--db-password", secret)
	if g.code != ExitNeedsUser {
		t.Fatalf("exit %d, want %d\nstderr:\n%s", g.code, ExitNeedsUser, g.stderr)
	}
	// The child's environment and argv reach it unchanged, and its own
	// output passes through untouched.
	if want := "argv: --hf_token abc123 --api-key=abc123 --db-password abc123\n"; g.stdout != want {
		t.Errorf("stdout = %q, want %q", g.stdout, want)
	}
	if !strings.Contains(g.stderr, "No module named 'easydict' (HF_TOKEN=abc123)\n") {
		t.Errorf("the child's stderr did not pass through unchanged:\n%s", g.stderr)
	}
	if !strings.Contains(g.stderr, "[wan22-guard] 1. ") {
		t.Fatalf("no workflow was printed, so the check below proves little:\n%s", g.stderr)
	}
	for _, l := range strings.Split(g.stderr, "\n") {
		if strings.HasPrefix(l, "[wan22-guard]") && strings.Contains(l, secret) {
			t.Errorf("guard line shows the secret: %s", l)
		}
	}
	files := []string{report}
	err := filepath.WalkDir(g.runDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("read %s: %v", f, err)
			continue
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret", f)
		}
	}
	if !bytes.Contains(mustRead(t, filepath.Join(g.runDir, "attempts.jsonl")), []byte("[REDACTED]")) {
		t.Errorf("the attempt log has no redacted value; did the secret reach it at all?")
	}
	checkMode(t, g.runDir, 0o700)
	checkMode(t, filepath.Join(g.runDir, "attempts.jsonl"), 0o600)
	checkMode(t, filepath.Join(g.runDir, "run.json"), 0o600)
	snaps, _ := filepath.Glob(filepath.Join(g.runDir, "states", "*"))
	if len(snaps) == 0 {
		t.Errorf("no state snapshots were taken")
	}
	for _, s := range snaps {
		checkMode(t, s, 0o600)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("stat: %v", err)
		return
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}
