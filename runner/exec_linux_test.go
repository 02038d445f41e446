package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that a pump may write while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// shExit is a child that exits with code. The exhaustive tests use
// /bin/sh rather than the test binary: built with -race, that takes about
// half a second to start on a busy machine, /bin/sh milliseconds, and what
// is under test is our side of the wait.
func shExit(code int) Spec {
	return Spec{Path: "/bin/sh", Args: []string{"sh", "-c", "exit " + strconv.Itoa(code)}}
}

func TestExecLauncher_ExitCodes(t *testing.T) {
	t.Parallel()
	type job struct {
		spec Spec
		code int
	}
	var jobs []job
	for code := range 256 {
		jobs = append(jobs, job{shExit(code), code})
	}
	for _, code := range []int{0, 1, 2, 126, 127, 128, 255} {
		jobs = append(jobs, job{helperSpec(t, "exit", strconv.Itoa(code)), code})
	}
	queue := make(chan job)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for j := range queue {
				ex, err := runHelper(j.spec)
				if err != nil || ex.Code != j.code || ex.Signal != nil || ex.StartErr != nil {
					t.Errorf("%q: got %+v, %v; want Code %d and no signal", j.spec.Args, ex, err, j.code)
				}
			}
		})
	}
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	wg.Wait()
}

// runHelper runs spec to its end, for goroutines that may not call
// t.Fatal.
func runHelper(spec Spec) (Exit, error) {
	var stderr syncBuffer
	spec.Stderr = &stderr
	p, err := (&ExecLauncher{}).Start(context.Background(), spec)
	if err != nil {
		return Exit{}, err
	}
	select {
	case <-p.Done():
		return p.Wait(), nil
	case <-time.After(tooLong):
		_ = KillTree(p, tooLong)
		return Exit{}, fmt.Errorf("still running after %s; stderr: %s", tooLong, stderr.Bytes())
	}
}

func TestExecLauncher_SignalDeaths(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{
		syscall.SIGTERM, syscall.SIGKILL, syscall.SIGINT, syscall.SIGHUP,
		syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGSEGV,
	} {
		t.Run(SignalName(sig), func(t *testing.T) {
			t.Parallel()
			spec := helperSpec(t, "ready-then-die-by-signal", SignalName(sig))
			spec.Dir = t.TempDir() // a core file, should one be written, lands here
			p, rec := mustStart(t, nil, spec)
			rec.waitLine(t, p, "ready")
			if err := p.Signal(sig); err != nil {
				t.Fatalf("Signal(%s): %v", SignalName(sig), err)
			}
			ex := waitExit(t, p)
			if want := 128 + int(sig); ex.Code != want || ex.Signal != sig {
				t.Errorf("killed by %s: got Code %d Signal %v, want %d %v", SignalName(sig), ex.Code, ex.Signal, want, sig)
			}
			if ex.Uptime <= 0 {
				t.Errorf("Uptime = %v, want > 0", ex.Uptime)
			}
			if err := p.Signal(sig); err != nil {
				t.Errorf("Signal after exit = %v, want nil", err)
			}
		})
	}
}

func TestExecLauncher_BinaryPassThrough(t *testing.T) {
	t.Parallel()
	const n = 4 << 20
	var stdout, stderr syncBuffer
	spec := helperSpec(t, "binary-out", strconv.Itoa(n))
	spec.Stdout, spec.Stderr = &stdout, &stderr
	p, _ := mustStart(t, nil, spec)
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0", ex)
	}
	for seed, got := range [][]byte{stdout.Bytes(), stderr.Bytes()} {
		want := patternOf(seed+1, n)
		var seen [256]bool
		for _, c := range want[:65521] {
			seen[c] = true
		}
		if slices.Contains(seen[:], false) {
			t.Fatal("pattern misses byte values")
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, want %d identical ones (first difference at %d)", Stream(seed+1), len(got), n, firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// longLineChecker checks the long line chunk by chunk as it passes.
type longLineChecker struct {
	ref []byte // longPeriod repeated, longer than any chunk by a period
	n   int
	bad bool
}

func (c *longLineChecker) Write(p []byte) (int, error) {
	if len(c.ref) < len(p)+len(longPeriod) {
		c.ref = []byte(strings.Repeat(longPeriod, (len(p)+2*len(longPeriod))/len(longPeriod)))
	}
	off := c.n % len(longPeriod)
	if !bytes.Equal(p, c.ref[off:off+len(p)]) {
		c.bad = true
	}
	c.n += len(p)
	return len(p), nil
}

func TestExecLauncher_LongLineKeepsMemoryFlat(t *testing.T) {
	t.Parallel()
	const n = 64 << 20
	var out longLineChecker
	spec := helperSpec(t, "long-line", strconv.Itoa(n))
	spec.Stdout = &out
	p, rec := mustStart(t, nil, spec)
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0", ex)
	}
	if out.n != n || out.bad {
		t.Errorf("passed through %d bytes (some wrong: %v), want %d exact", out.n, out.bad, n)
	}
	for i, sp := range p.out.split {
		if c := cap(sp.buf); c > DefaultMaxLine {
			t.Errorf("%s splitter holds %d bytes, want at most %d", Stream(i+1), c, DefaultMaxLine)
		}
	}
	// Under load a chunk may skip the scanner; the line then restarts
	// after the gap, so check that it is a stretch of the pattern.
	lines := rec.stream(Stdout)
	ref := strings.Repeat(longPeriod, DefaultMaxLine/len(longPeriod)+2)
	if len(lines) != 1 || len(lines[0]) != DefaultMaxLine || !strings.Contains(ref, lines[0]) {
		t.Errorf("sink got %d lines (%d bytes), want one line of the pattern cut to %d", len(lines), len(strings.Join(lines, "")), DefaultMaxLine)
	}
}

func TestExecLauncher_PartialLineReachesStdoutAtOnce(t *testing.T) {
	t.Parallel()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	defer outW.Close()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	spec := helperSpec(t, "partial-line-then-wait-for-stdin")
	spec.Stdin, spec.Stdout = inR, outW
	p, rec := mustStart(t, nil, spec)
	inR.Close()

	if err := outR.SetReadDeadline(time.Now().Add(tooLong)); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len(partialHead))
	if _, err := io.ReadFull(outR, head); err != nil {
		t.Fatalf("reading the partial line: %v; stderr:\n%s", err, strings.Join(rec.stream(Stderr), "\n"))
	}
	if string(head) != partialHead {
		t.Fatalf("got %q, want %q", head, partialHead)
	}
	if _, err := inW.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, len(partialRest))
	if _, err := io.ReadFull(outR, rest); err != nil || string(rest) != partialRest {
		t.Fatalf("rest = %q, %v; want %q", rest, err, partialRest)
	}
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0", ex)
	}
	if got, want := rec.stream(Stdout), []string{partialHead + strings.TrimSuffix(partialRest, "\n")}; !slices.Equal(got, want) {
		t.Errorf("sink lines = %q, want %q", got, want)
	}
}

func TestExecLauncher_ProgressBarLines(t *testing.T) {
	t.Parallel()
	var stderr syncBuffer
	spec := helperSpec(t, "progress")
	spec.Stderr = &stderr
	p, rec := mustStart(t, nil, spec)
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0", ex)
	}
	want := []string{
		"  0%|          | 0/40",
		" 50%|#####     | 20/40",
		"100%|##########| 40/40",
		"denoising 3/40",
		"RuntimeError: CUDA error: out of memory",
		"done",
		"last",
	}
	if got := rec.stream(Stderr); !slices.Equal(got, want) {
		t.Errorf("sink lines:\n%q\nwant\n%q", got, want)
	}
	if got := p.Tail(); !slices.Equal(got, want) {
		t.Errorf("Tail() = %q, want %q", got, want)
	}
	if got, want := string(stderr.Bytes()), strings.Join(progressWrites, ""); got != want {
		t.Errorf("stderr passed through as %q, want %q", got, want)
	}
}

func TestExecLauncher_TrapTermChoosesExitCode(t *testing.T) {
	t.Parallel()
	p, rec := mustStart(t, nil, helperSpec(t, "trap-term-exit", "42"))
	rec.waitLine(t, p, "ready")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, p); ex.Code != 42 || ex.Signal != nil {
		t.Errorf("exit = %+v, want Code 42 and no signal", ex)
	}
}

func TestExecProcess_SignalReachesChild(t *testing.T) {
	t.Parallel()
	p, rec := mustStart(t, nil, helperSpec(t, "ready-then-echo-signals"))
	rec.waitLine(t, p, "ready")
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGTERM} {
		if err := p.Signal(sig); err != nil {
			t.Fatalf("Signal(%s): %v", SignalName(sig), err)
		}
		rec.waitLine(t, p, SignalName(sig))
	}
	if ex := waitExit(t, p); ex.Code != 3 {
		t.Errorf("exit = %+v, want 3", ex)
	}
}

// blockingSink blocks every line until release is closed.
type blockingSink struct {
	release chan struct{}
}

func (b *blockingSink) Line(Stream, []byte) { <-b.release }

// countWriter closes full once n bytes have been written to it.
type countWriter struct {
	mu   sync.Mutex
	n    int
	want int
	full chan struct{}
}

func (c *countWriter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += len(p)
	if c.n == c.want {
		close(c.full)
	}
	return len(p), nil
}

func TestExecLauncher_SlowSinkDoesNotBlockChild(t *testing.T) {
	t.Parallel()
	const n = 8 << 20
	sink := &blockingSink{release: make(chan struct{})}
	stdout := &countWriter{want: n, full: make(chan struct{})}
	stderr := &countWriter{want: n, full: make(chan struct{})}
	spec := helperSpec(t, "binary-out", strconv.Itoa(n))
	spec.Stdout, spec.Stderr, spec.Sink = stdout, stderr, sink
	p, _ := mustStart(t, nil, spec)
	release := sync.OnceFunc(func() { close(sink.release) })
	t.Cleanup(release)

	deadline := time.After(tooLong)
	for _, w := range []*countWriter{stdout, stderr} {
		select {
		case <-w.full:
		case <-deadline:
			t.Fatalf("with the sink blocked, only %d/%d and %d/%d bytes came through", stdout.count(), n, stderr.count(), n)
		}
	}
	select {
	case <-p.reapedCh:
	case <-deadline:
		t.Fatal("child did not exit while the sink was blocked")
	}
	release()
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0", ex)
	}
	if p.Dropped() == 0 {
		t.Error("Dropped() = 0, want chunks dropped while the sink was blocked")
	}
}

func TestExecLauncher_StartErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	plain := write("plain", "#!/bin/sh\n", 0o644)
	badInterp := write("bad-interp", "#!/nonexistent/interpreter\n", 0o755)
	pathDir := filepath.Join(dir, "bin")
	if err := os.Mkdir(pathDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pathDir, "tool"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    Spec
		code    int
		is      error
		message string
	}{
		{"bare name not found", Spec{Args: []string{"wan22-guard-no-such-command"}}, 127, ErrCommandNotFound,
			"wan22-guard-no-such-command: command not found"},
		{"path not found", Spec{Path: filepath.Join(dir, "missing"), Args: []string{"x"}}, 127, ErrCommandNotFound,
			filepath.Join(dir, "missing") + ": command not found"},
		{"not executable", Spec{Args: []string{plain}}, 126, ErrCannotExecute,
			plain + ": cannot execute: permission denied"},
		{"directory", Spec{Args: []string{dir}}, 126, ErrCannotExecute,
			dir + ": cannot execute: is a directory"},
		{"not executable in PATH", Spec{Args: []string{"tool"}, Env: []string{"PATH=" + pathDir}}, 126, ErrCannotExecute,
			"tool: cannot execute: permission denied"},
		{"bad interpreter", Spec{Args: []string{badInterp}}, 126, ErrCannotExecute,
			badInterp + ": cannot execute: bad interpreter: no such file or directory"},
		{"missing working directory", Spec{Args: []string{"/bin/sh"}, Dir: filepath.Join(dir, "gone")}, 126, ErrCannotExecute,
			"/bin/sh: cannot execute: stat " + filepath.Join(dir, "gone") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := (&ExecLauncher{}).Start(context.Background(), tt.spec)
			if err != nil {
				t.Fatalf("Start returned error %v, want a failed process", err)
			}
			ex := waitExit(t, p)
			if ex.Code != tt.code || !errors.Is(ex.StartErr, tt.is) || p.Pid() != 0 {
				t.Errorf("got Code %d, StartErr %v, pid %d; want %d, %v, 0", ex.Code, ex.StartErr, p.Pid(), tt.code, tt.is)
			}
			var se *StartError
			if !errors.As(ex.StartErr, &se) || ex.StartErr.Error() != tt.message {
				t.Errorf("StartErr = %q, want *StartError %q", ex.StartErr, tt.message)
			}
			if err := p.Signal(syscall.SIGTERM); err != nil || p.Tail() != nil || p.Dropped() != 0 {
				t.Errorf("failed process: Signal %v, Tail %q, Dropped %d; want nil, nil, 0", err, p.Tail(), p.Dropped())
			}
		})
	}
	if _, err := (&ExecLauncher{}).Launch(context.Background(), Spec{}); !errors.Is(err, ErrEmptyArgv) {
		t.Errorf("Launch(empty argv) error = %v, want ErrEmptyArgv", err)
	}
}

// blockedReader blocks until release is closed, then reads as empty.
type blockedReader struct {
	release chan struct{}
}

func (b blockedReader) Read([]byte) (int, error) {
	<-b.release
	return 0, io.EOF
}

func TestExecLauncher_Stdin(t *testing.T) {
	t.Parallel()
	fileR, fileW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fileR.Close() }) // after the parallel subtests
	if _, err := fileW.WriteString("from a file\n"); err != nil {
		t.Fatal(err)
	}
	fileW.Close()
	tests := []struct {
		name  string
		stdin io.Reader
		want  string
	}{
		{"nil reads as empty", nil, ""},
		{"reader is copied", strings.NewReader("from a reader\n"), "from a reader\n"},
		{"file is passed", fileR, "from a file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			spec := helperSpec(t, "echo-stdin")
			spec.Stdin, spec.Stdout = tt.stdin, &out
			p, _ := mustStart(t, nil, spec)
			if ex := waitExit(t, p); ex.Code != 0 {
				t.Fatalf("exit = %+v, want 0", ex)
			}
			if got := string(out.Bytes()); got != tt.want {
				t.Errorf("echoed %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	exe := helperSpec(t, "echo-stdin").Path
	t.Run("output and code", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, ex := Run(context.Background(), []string{"env", helperEnv + "=echo-stdin", exe}, strings.NewReader("ping"))
		if string(stdout) != "ping" || len(stderr) != 0 || ex.Code != 0 {
			t.Errorf("Run = %q, %q, %+v; want \"ping\", \"\", code 0", stdout, stderr, ex)
		}
	})
	t.Run("cancel kills", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		defer close(release)
		// The child echoes stdin; the first read of our stdin cancels.
		stdin := cancelReader{cancel: cancel, r: blockedReader{release}}
		_, _, ex := Run(ctx, []string{"env", helperEnv + "=echo-stdin", exe}, stdin)
		if ex.Code != 128+int(syscall.SIGKILL) || ex.Signal != syscall.SIGKILL {
			t.Errorf("Run after cancel = %+v, want SIGKILL", ex)
		}
	})
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		_, _, ex := Run(context.Background(), []string{"wan22-guard-no-such-command"}, nil)
		if ex.Code != 127 || !errors.Is(ex.StartErr, ErrCommandNotFound) {
			t.Errorf("Run = %+v, want 127", ex)
		}
		if _, _, ex := Run(context.Background(), nil, nil); ex.Code != 127 || !errors.Is(ex.StartErr, ErrEmptyArgv) {
			t.Errorf("Run(nil) = %+v, want 127 ErrEmptyArgv", ex)
		}
	})
}

type cancelReader struct {
	cancel context.CancelFunc
	r      io.Reader
}

func (c cancelReader) Read(p []byte) (int, error) {
	c.cancel()
	return c.r.Read(p)
}

func TestExecLauncher_GrandchildHoldingStdout(t *testing.T) {
	t.Parallel()
	l := &ExecLauncher{DrainWait: 50 * time.Millisecond}
	p, rec := mustStart(t, l, helperSpec(t, "hold-stdout-grandchild"))
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0", ex)
	}
	var gpid int
	if _, err := fmt.Sscanf(rec.waitLine(t, p, "grandchild "), "grandchild %d", &gpid); err != nil {
		t.Fatal(err)
	}
	if err := KillTree(p, tooLong); err != nil {
		t.Fatalf("KillTree: %v", err)
	}
	waitGone(t, []int{gpid})
}

// gateWriter blocks its first write until gate is closed.
type gateWriter struct {
	gate chan struct{}
	syncBuffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.gate
	return g.syncBuffer.Write(p)
}

func TestExecLauncher_SlowWriterLosesNothingAfterExit(t *testing.T) {
	t.Parallel()
	// Less than a pipe holds, more than one read takes: the child exits
	// with the rest still in the pipe while our writer is stuck.
	const n = 60000
	out := &gateWriter{gate: make(chan struct{})}
	open := sync.OnceFunc(func() { close(out.gate) })
	t.Cleanup(open)
	spec := helperSpec(t, "binary-out", strconv.Itoa(n))
	spec.Stdout = out
	p, _ := mustStart(t, &ExecLauncher{DrainWait: time.Millisecond}, spec)
	select {
	case <-p.reapedCh:
	case <-time.After(tooLong):
		t.Fatal("child did not exit")
	}
	open()
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0", ex)
	}
	if got, want := out.Bytes(), patternOf(1, n); !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want all %d", len(got), n)
	}
}

func TestExecLauncher_ExitStatusNeverStolen(t *testing.T) {
	t.Parallel()
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code := (i * 7) % 256
			ex, err := runHelper(shExit(code))
			if err != nil || ex.Code != code {
				t.Errorf("child %d: exit %+v, %v; want %d", i, ex, err, code)
			}
		})
	}
	wg.Wait()
}

func TestExecLauncher_GuardKilledLeavesNoChild(t *testing.T) {
	t.Parallel()
	p, rec := mustStart(t, nil, helperSpec(t, "guard"))
	var child int
	if _, err := fmt.Sscanf(rec.waitLine(t, p, "child "), "child %d", &child); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, p); ex.Signal != syscall.SIGKILL {
		t.Errorf("guard exit = %+v, want SIGKILL", ex)
	}
	waitGone(t, []int{child})
}

// lastLineSink remembers the last line it saw on stderr.
type lastLineSink struct {
	mu   sync.Mutex
	last string
	n    int
}

func (s *lastLineSink) Line(st Stream, line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if st == Stderr {
		s.last = string(line)
	}
}

func TestExecLauncher_FloodStillScansTheLastLines(t *testing.T) {
	t.Parallel()
	// 256 MiB of lines on stderr, far past the scanner's budget, then the
	// line that matters. Bytes all pass; the scanner skips chunks in the
	// middle and still sees the end.
	const flood = 256 << 20
	script := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' 'a' | fold -w 127 >&2; echo >&2; echo 'torch.OutOfMemoryError: CUDA out of memory.' >&2", flood)
	sink := &lastLineSink{}
	stderr := &countWriter{want: -1, full: make(chan struct{})}
	spec := Spec{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Stdout: io.Discard, Stderr: stderr, Sink: sink}
	p, _ := mustStart(t, nil, spec)
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0", ex)
	}
	want := flood + flood/127 + 1 + len("torch.OutOfMemoryError: CUDA out of memory.\n")
	if got := stderr.count(); got != want {
		t.Errorf("passed %d bytes, want %d", got, want)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.last != "torch.OutOfMemoryError: CUDA out of memory." {
		t.Errorf("last line scanned = %.60q, want the OOM line", sink.last)
	}
	if p.Dropped() == 0 {
		t.Errorf("Dropped() = 0 after %d lines scanned; want the flood to skip the scanner", sink.n)
	}
}
