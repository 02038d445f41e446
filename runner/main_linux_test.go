package runner

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// helperEnv names the helper a re-executed test binary runs instead of the
// tests.
const helperEnv = "WAN22_GUARD_HELPER"

// tooLong is the deadline for every wait in these tests.
const tooLong = 30 * time.Second

// helper is a fake child: the test binary run again with helperEnv set.
type helper struct {
	run    func(args []string) int
	starts []string // helpers it launches itself
}

var helpers = map[string]helper{
	"exit":                             {run: helperExit},
	"echo-stdin":                       {run: helperEchoStdin},
	"binary-out":                       {run: helperBinaryOut},
	"long-line":                        {run: helperLongLine},
	"partial-line-then-wait-for-stdin": {run: helperPartialLine},
	"progress":                         {run: helperProgress},
	"trap-term-exit":                   {run: helperTrapTermExit},
	"ignore-term":                      {run: helperIgnoreTerm},
	"ready-then-echo-signals":          {run: helperEchoSignals},
	"ready-then-die-by-signal":         {run: helperDieBySignal},
	"hang":                             {run: helperHang},
	"spawn-setsid-grandchild":          {run: helperSpawnSetsid, starts: []string{"hang"}},
	"hold-stdout-grandchild":           {run: helperHoldStdout, starts: []string{"hang"}},
	"fork-many":                        {run: helperForkMany, starts: []string{"wait-stdin-eof"}},
	"wait-stdin-eof":                   {run: helperWaitStdinEOF},
	"guard":                            {run: helperGuard, starts: []string{"hang"}},
	"pid1":                             {run: helperPID1, starts: []string{"fork-many"}},
}

var (
	usedMu sync.Mutex
	used   = map[string]bool{}
)

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h.run(os.Args[1:]))
	}
	if err := BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		var unused []string
		for name := range helpers {
			if !used[name] {
				unused = append(unused, name)
			}
		}
		if len(unused) > 0 {
			sort.Strings(unused)
			fmt.Fprintf(os.Stderr, "helpers no test used: %v\n", unused)
			code = 1
		}
	}
	os.Exit(code)
}

func markUsed(name string) {
	usedMu.Lock()
	defer usedMu.Unlock()
	used[name] = true
	for _, s := range helpers[name].starts {
		used[s] = true
		for _, ss := range helpers[s].starts {
			used[ss] = true
		}
	}
}

// helperSpec is a Spec that runs the named helper with args.
func helperSpec(t testing.TB, name string, args ...string) Spec {
	t.Helper()
	if _, ok := helpers[name]; !ok {
		t.Fatalf("no helper %q", name)
	}
	markUsed(name)
	return rawHelperSpec(name, args...)
}

func rawHelperSpec(name string, args ...string) Spec {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return Spec{
		Path: exe,
		Args: append([]string{exe}, args...),
		Env:  append(os.Environ(), helperEnv+"="+name),
	}
}

// recorder is a LineSink that keeps every line and lets a test wait for one.
type recorder struct {
	mu      sync.Mutex
	lines   []recLine
	changed chan struct{}
}

type recLine struct {
	s    Stream
	text string
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) Line(s Stream, line []byte) {
	r.mu.Lock()
	r.lines = append(r.lines, recLine{s, string(line)})
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]recLine, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines), r.changed
}

func (r *recorder) stream(s Stream) []string {
	lines, _ := r.snapshot()
	var out []string
	for _, l := range lines {
		if l.s == s {
			out = append(out, l.text)
		}
	}
	return out
}

// waitLine waits for a stdout line that starts with prefix and returns it.
// It fails the test, showing the child's stderr, when the child ends first
// or tooLong passes.
func (r *recorder) waitLine(t *testing.T, p Process, prefix string) string {
	t.Helper()
	deadline := time.After(tooLong)
	for {
		lines, changed := r.snapshot()
		for _, l := range lines {
			if l.s == Stdout && strings.HasPrefix(l.text, prefix) {
				return l.text
			}
		}
		select {
		case <-changed:
		case <-p.Done():
			// Done comes after the last line, so one more look settles it.
			if r.has(prefix) {
				continue
			}
			t.Fatalf("child ended (%+v) before printing %q; stderr:\n%s", p.Wait(), prefix, strings.Join(r.stream(Stderr), "\n"))
		case <-deadline:
			t.Fatalf("no line %q after %s; stderr:\n%s", prefix, tooLong, strings.Join(r.stream(Stderr), "\n"))
		}
	}
}

func (r *recorder) has(prefix string) bool {
	for _, l := range r.stream(Stdout) {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// mustStart launches spec with a recorder as sink (unless spec has one) and
// kills what is left of the tree when the test ends.
func mustStart(t *testing.T, l *ExecLauncher, spec Spec) (*ExecProcess, *recorder) {
	t.Helper()
	rec := newRecorder()
	if spec.Sink == nil {
		spec.Sink = rec
	}
	if l == nil {
		l = &ExecLauncher{}
	}
	p, err := l.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if p.Pid() == 0 {
		t.Fatalf("start failed: %v", p.Wait().StartErr)
	}
	t.Cleanup(func() {
		select {
		case <-p.Done():
		default:
			_ = KillTree(p, tooLong)
			<-p.Done()
		}
	})
	return p, rec
}

// waitExit waits for p to end and returns its Exit, or fails the test with
// the child's last lines.
func waitExit(t *testing.T, p Process) Exit {
	t.Helper()
	select {
	case <-p.Done():
		return p.Wait()
	case <-time.After(tooLong):
		t.Fatalf("child %d still running after %s; last lines:\n%s", p.Pid(), tooLong, strings.Join(p.Tail(), "\n"))
		return Exit{}
	}
}

// waitGone waits until none of pids is in /proc any more. Every pid here is
// reaped by our reaper (we are a subreaper), so each re-check follows a reap.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.After(tooLong)
	for {
		changed := procReaper.changes()
		var left []int
		for _, pid := range pids {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("processes %v still there after %s", left, tooLong)
		}
	}
}

// Helpers. Each returns the exit code.

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func helperExit(args []string) int { return atoi(args[0]) }

func helperEchoStdin([]string) int {
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// patternBlock is the unit of helperBinaryOut's output for a stream: every
// byte value, in an order that depends on seed. Its odd length keeps its
// repeats out of step with pipe and read sizes.
func patternBlock(seed int) []byte {
	b := make([]byte, 65521)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x >> 24)
	}
	return b
}

// patternOf is what helperBinaryOut writes to the stream with seed: n bytes
// of patternBlock repeated.
func patternOf(seed, n int) []byte {
	block := patternBlock(seed)
	return bytes.Repeat(block, n/len(block)+1)[:n]
}

// helperBinaryOut writes patternOf(1, n) to stdout and patternOf(2, n) to
// stderr at the same time.
func helperBinaryOut(args []string) int {
	n := atoi(args[0])
	var wg sync.WaitGroup
	for seed, f := range []*os.File{os.Stdout, os.Stderr} {
		wg.Go(func() {
			if _, err := f.Write(patternOf(seed+1, n)); err != nil {
				os.Exit(3)
			}
		})
	}
	wg.Wait()
	return 0
}

// longPeriod is the period of helperLongLine's bytes, none of them \n or \r.
const longPeriod = "abcdefghijklmnopqrstuvwxyz"

func helperLongLine(args []string) int {
	n := atoi(args[0])
	buf := []byte(strings.Repeat(longPeriod, (1<<20)/len(longPeriod)))
	for off := 0; off < n; {
		k := min(len(buf), n-off)
		if _, err := os.Stdout.Write(buf[:k]); err != nil {
			return 3
		}
		off += k
	}
	return 0
}

const partialHead, partialRest = "step 1/2 50%", " done\n"

func helperPartialLine([]string) int {
	os.Stdout.WriteString(partialHead)
	if _, err := os.Stdin.Read(make([]byte, 1)); err != nil {
		return 3
	}
	os.Stdout.WriteString(partialRest)
	return 0
}

// progressWrites is what helperProgress writes to stderr, one write each.
var progressWrites = []string{
	"\r  0%|          | 0/40",
	"\r 50%|#####     | 20/40",
	"\r100%|##########| 40/40\n",
	"denoising 3/40\rRuntimeError: CUDA error: out of memory\r\n",
	"\r\r\rdone\r",
	"\nlast",
}

func helperProgress([]string) int {
	for _, w := range progressWrites {
		os.Stderr.WriteString(w)
	}
	return 0
}

func helperTrapTermExit(args []string) int {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	fmt.Println("ready")
	<-c
	return atoi(args[0])
}

func helperIgnoreTerm([]string) int {
	signal.Ignore(syscall.SIGTERM)
	fmt.Println("ready")
	hang()
	return 0
}

// helperEchoSignals prints the name of each signal it gets and exits 3
// after SIGTERM.
func helperEchoSignals([]string) int {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGHUP, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	fmt.Println("ready")
	for sig := range c {
		fmt.Println(SignalName(sig))
		if sig == syscall.SIGTERM {
			return 3
		}
	}
	return 0
}

// helperDieBySignal restores the kernel's default action for the signals
// named in args (Go turns SIGQUIT and SIGSEGV into exit 2), turns core
// dumps off, prints ready and waits to be killed.
func helperDieBySignal(args []string) int {
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	for _, a := range args {
		sig, err := ParseSignal(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
			continue // their action cannot be changed
		}
		var act [4]uint64 // SIG_DFL, no flags, no restorer, empty mask
		if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
			fmt.Fprintln(os.Stderr, "rt_sigaction:", e)
			return 3
		}
	}
	fmt.Println("ready")
	hang()
	return 0
}

// hang blocks forever on a pipe nobody writes to.
func hang() {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	_, _ = r.Read(make([]byte, 1))
	_ = w.Close()
	panic("hang returned")
}

func helperHang([]string) int {
	hang()
	return 0
}

// forkHelper starts a helper with plain ForkExec, as a Python program
// would, with fds as its stdin, stdout and stderr.
func forkHelper(name string, fds []uintptr, setsid bool) int {
	spec := rawHelperSpec(name)
	pid, err := syscall.ForkExec(spec.Path, spec.Args, &syscall.ProcAttr{
		Env:   dedupEnv(spec.Env),
		Files: fds,
		Sys:   &syscall.SysProcAttr{Setsid: setsid},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fork:", err)
		os.Exit(3)
	}
	return pid
}

func devNull() *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		panic(err)
	}
	return f
}

func helperSpawnSetsid([]string) int {
	null := devNull()
	pid := forkHelper("hang", []uintptr{null.Fd(), null.Fd(), null.Fd()}, true)
	fmt.Println("grandchild", pid)
	fmt.Println("ready")
	hang()
	return 0
}

func helperHoldStdout([]string) int {
	null := devNull()
	pid := forkHelper("hang", []uintptr{null.Fd(), os.Stdout.Fd(), os.Stderr.Fd()}, false)
	fmt.Println("grandchild", pid)
	return 0
}

// helperForkMany starts args[0] grandchildren that exit once it has exited
// (they wait for end of file on a pipe only it holds), prints their pids,
// and exits with code args[1]: its grandchildren become orphans.
func helperForkMany(args []string) int {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	null := devNull()
	for range atoi(args[0]) {
		fmt.Println("grandchild", forkHelper("wait-stdin-eof", []uintptr{r.Fd(), null.Fd(), null.Fd()}, false))
	}
	fmt.Println("ready")
	runtime.KeepAlive(w) // open until the exit closes it
	return atoi(args[1])
}

func helperWaitStdinEOF([]string) int {
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// helperGuard is a guard in miniature: it launches hang through
// ExecLauncher, prints its pid and waits to be killed.
func helperGuard([]string) int {
	spec := rawHelperSpec("hang")
	spec.Stdout, spec.Stderr = os.Stdout, os.Stderr
	p, err := (&ExecLauncher{}).Start(context.Background(), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		return 3
	}
	if p.Pid() == 0 {
		fmt.Fprintln(os.Stderr, "start:", p.Wait().StartErr)
		return 3
	}
	fmt.Println("child", p.Pid())
	hang()
	return 0
}

// helperPID1 runs as PID 1 of a new pid namespace. It launches fork-many,
// whose grandchildren become its orphans, waits until every other process
// in the namespace is gone, and reports what it saw.
func helperPID1(args []string) int {
	StartReaper()
	spec := rawHelperSpec("fork-many", args[0], args[1])
	spec.Stderr = os.Stderr
	p, err := (&ExecLauncher{}).Start(context.Background(), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	ex := p.Wait()
	deadline := time.After(tooLong)
	for {
		changed := procReaper.changes()
		left := Descendants(os.Getpid())
		if len(left) == 0 {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			fmt.Fprintln(os.Stderr, "still there:", left)
			return 3
		}
	}
	zombies := 0
	for _, pi := range listProcs() {
		if pi.state == 'Z' {
			zombies++
		}
	}
	fmt.Printf("pid=%d exit=%d orphans=%d zombies=%d\n", os.Getpid(), ex.Code, procReaper.orphans.Load(), zombies)
	return 0
}
