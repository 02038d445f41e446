package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Zero values of ExecLauncher's fields.
const (
	DefaultDrainWait = 200 * time.Millisecond
	DefaultDrainMax  = 5 * time.Second
)

var _ Launcher = (*ExecLauncher)(nil)

// ExecLauncher starts real child processes.
//
// The child leads its own process group, so Signal reaches everything it
// starts that stays in the group. It gets SIGKILL as its parent-death
// signal: the kernel sends it when the thread that forked the child exits,
// so the goroutine that forks stays locked to its thread until the child has
// exited (golang/go#27505), and a guard killed with SIGKILL takes the child
// with it. Because the child's group is not the terminal's foreground
// group, a child that reads a terminal passed as Stdin is stopped (SIGTTIN).
//
// The process-wide reaper (see StartReaper) collects the exit status; do not
// wait for children any other way in the same process.
type ExecLauncher struct {
	// DrainWait and DrainMax bound how long output is still read after the
	// child exited, for grandchildren that keep its stdout or stderr open:
	// reading goes on while output keeps coming, and stops once the pipes
	// have been idle for DrainWait, or DrainMax after the exit at the
	// latest. Then the pipes are closed and Done is closed. What the child
	// itself wrote before it exited is never cut short by a slow
	// Spec.Stdout, since only time spent waiting for output counts. Zero
	// means DefaultDrainWait and DefaultDrainMax.
	DrainWait time.Duration
	DrainMax  time.Duration
}

// Launch starts the child; see Start. ctx only bounds the start: cancelling
// it later does not stop the child, the caller does that with Signal and
// KillTree, so that it decides the grace period.
func (l *ExecLauncher) Launch(ctx context.Context, spec Spec) (Process, error) {
	p, err := l.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Start starts the child described by spec and returns it with its output
// pumps running.
//
// Outcomes:
//   - started: a running process; Wait gives its code, or 128+N when
//     signal N killed it;
//   - the command cannot be found (a bare name is looked up in the PATH of
//     spec.Env, else ours): a process that has already ended with code 127
//     and a StartError wrapping ErrCommandNotFound;
//   - it is found but cannot be run, or ctx is already done: code 126 and a
//     StartError wrapping ErrCannotExecute (or ctx's error);
//   - spec.Args is empty: a nil process and ErrEmptyArgv.
//
// A nil spec.Env means our own environment; of a key given twice the last
// value wins, as with os/exec. A relative path is taken relative to
// spec.Dir, as the child sees it. An *os.File as spec.Stdin becomes the
// child's fd 0 itself and is put in blocking mode, as os/exec does; any
// other reader is copied in through a pipe.
func (l *ExecLauncher) Start(ctx context.Context, spec Spec) (*ExecProcess, error) {
	if len(spec.Args) == 0 {
		return nil, fmt.Errorf("launch: %w", ErrEmptyArgv)
	}
	name := spec.Path
	if name == "" {
		name = spec.Args[0]
	}
	if err := ctx.Err(); err != nil {
		return startFailed(126, &StartError{Name: name, Err: err}), nil
	}
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	env = dedupEnv(env)
	path, code, err := resolve(name, spec.Dir, env)
	if err != nil {
		return startFailed(code, &StartError{Name: name, Err: err}), nil
	}
	cio, err := openChildIO(spec.Stdin)
	if err != nil {
		return startFailed(126, &StartError{Name: name, Err: fmt.Errorf("%w: %w", ErrCannotExecute, err)}), nil
	}
	StartReaper()

	p := &ExecProcess{
		status:   make(chan exitStatus, 1),
		reapedCh: make(chan struct{}),
		done:     make(chan struct{}),
		launched: make(chan struct{}),
		stdinW:   cio.stdinW,
		drain:    cmp.Or(max(l.DrainWait, 0), DefaultDrainWait),
		drainMax: cmp.Or(max(l.DrainMax, 0), DefaultDrainMax),
	}
	attr := &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   env,
		Files: []uintptr{cio.stdin, cio.outW.Fd(), cio.errW.Fd()},
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	started := make(chan error, 1)
	go p.spawn(path, spec.Args, attr, started)
	err = <-started
	cio.closeChildEnds()
	if err != nil {
		cio.closeOurEnds()
		return startFailed(126, &StartError{Name: name, Err: execError(err)}), nil
	}

	p.out = newOutput(p.start, spec.TailLines)
	p.out.start(cio.outR, cio.errR, spec.Stdout, spec.Stderr, spec.Sink, spec.MaxLine)
	if cio.stdinW != nil {
		go copyStdin(cio.stdinW, spec.Stdin)
	}
	close(p.launched)
	return p, nil
}

// ExecProcess is a child started by ExecLauncher. Its methods are safe for
// concurrent use.
type ExecProcess struct {
	pid   int
	start time.Time

	exited   atomic.Bool     // set by the reaper, under its forkMu
	status   chan exitStatus // from the reaper, once
	reapedCh chan struct{}   // closed when the reaper has collected the child
	launched chan struct{}   // closed when Start has started the pumps
	done     chan struct{}
	exit     Exit

	out             *output
	stdinW          *os.File // our end of the stdin pipe, or nil
	drain, drainMax time.Duration
}

var _ Process = (*ExecProcess)(nil)

// Pid returns the child's pid, or 0 if it never started.
func (p *ExecProcess) Pid() int { return p.pid }

// Signal sends sig to the child's process group. After the child has been
// reaped it does nothing and returns nil.
func (p *ExecProcess) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v: %w", sig, ErrUnknownSignal)
	}
	if p.pid == 0 {
		return nil
	}
	procReaper.forkMu.RLock()
	defer procReaper.forkMu.RUnlock()
	if p.exited.Load() {
		return nil
	}
	if err := syscall.Kill(-p.pid, s); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("signal %s to group %d: %w", SignalName(s), p.pid, err)
	}
	return nil
}

// Done is closed when the child has exited and both output streams have
// been drained and scanned.
func (p *ExecProcess) Done() <-chan struct{} { return p.done }

// Wait blocks until Done and returns how the child ended.
func (p *ExecProcess) Wait() Exit {
	<-p.done
	return p.exit
}

// Tail returns a copy of the last lines the child printed.
func (p *ExecProcess) Tail() []string {
	if p.out == nil {
		return nil
	}
	return p.out.tail.get()
}

// LastOutput is when the child last wrote to stdout or stderr, or when it
// started if it has written nothing.
func (p *ExecProcess) LastOutput() time.Time {
	if p.out == nil {
		return p.start
	}
	return time.Unix(0, p.out.last.Load())
}

// Dropped is how many chunks of output skipped the LineSink and the tail
// because the sink fell behind. They still reached Spec.Stdout and
// Spec.Stderr.
func (p *ExecProcess) Dropped() int64 {
	if p.out == nil {
		return 0
	}
	return p.out.dropped.Load()
}

// spawn forks the child and then keeps the goroutine on the forking thread
// until the child has been reaped, because the parent-death signal is tied
// to that thread.
func (p *ExecProcess) spawn(path string, argv []string, attr *syscall.ProcAttr, started chan<- error) {
	runtime.LockOSThread()
	procReaper.forkMu.RLock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err == nil {
		p.pid = pid
		p.start = time.Now()
		procReaper.register(pid, p)
	}
	procReaper.forkMu.RUnlock()
	started <- err
	if err != nil {
		runtime.UnlockOSThread()
		return
	}
	st := <-p.status
	runtime.UnlockOSThread()
	p.finish(st)
}

// reaped is called by the reaper with forkMu held for writing.
func (p *ExecProcess) reaped(st exitStatus) {
	p.exited.Store(true)
	p.status <- st
	close(p.reapedCh)
}

// finish lets the pumps drain what is left, then publishes the exit.
func (p *ExecProcess) finish(st exitStatus) {
	<-p.launched
	p.out.stopAfter(time.Now(), p.drain, p.drainMax)
	if p.stdinW != nil {
		_ = p.stdinW.Close() // the child is gone; nobody reads what is left
	}
	<-p.out.done
	p.exit = exitOf(st.ws)
	p.exit.Uptime = st.at.Sub(p.start)
	close(p.done)
}

// exitOf maps a wait status the way tini does: the exit code, or 128+N when
// signal N killed the process.
func exitOf(ws syscall.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
	}
	return Exit{Code: ws.ExitStatus()}
}

func startFailed(code int, err error) *ExecProcess {
	p := &ExecProcess{
		start: time.Now(),
		done:  make(chan struct{}),
		exit:  Exit{Code: code, StartErr: err},
	}
	close(p.done)
	return p
}

// childIO holds the descriptors for one launch.
type childIO struct {
	stdin      uintptr  // the child's fd 0
	keep       *os.File // the caller's stdin file, alive until after the fork
	childEnds  []*os.File
	stdinW     *os.File
	outR, outW *os.File
	errR, errW *os.File
}

func openChildIO(stdin io.Reader) (c *childIO, err error) {
	c = &childIO{}
	defer func() {
		if err != nil {
			c.closeChildEnds()
			c.closeOurEnds()
		}
	}()
	switch in := stdin.(type) {
	case nil:
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		c.stdin = f.Fd()
		c.childEnds = append(c.childEnds, f)
	case *os.File:
		c.stdin = in.Fd()
		c.keep = in
	default:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		c.stdin = r.Fd()
		c.childEnds = append(c.childEnds, r)
		c.stdinW = w
	}
	if c.outR, c.outW, err = os.Pipe(); err != nil {
		return nil, err
	}
	c.childEnds = append(c.childEnds, c.outW)
	if c.errR, c.errW, err = os.Pipe(); err != nil {
		return nil, err
	}
	c.childEnds = append(c.childEnds, c.errW)
	growPipe(c.outW)
	growPipe(c.errW)
	return c, nil
}

// pipeSize is what the child's output pipes are grown to. With the
// default 64 KiB a fast writer blocks every 64 KiB until the pump catches
// up; a larger pipe lets the child run ahead while the pump wakes less often.
const pipeSize = 1 << 20

// growPipe sets f's pipe buffer to pipeSize where the kernel allows it
// (unprivileged users are capped by /proc/sys/fs/pipe-max-size); failing
// leaves the default, which is only slower.
func growPipe(f *os.File) {
	sc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = sc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
	})
}

// closeChildEnds closes our copies of the descriptors the child inherited,
// so that end of file on its output means every writer is gone.
func (c *childIO) closeChildEnds() {
	for _, f := range c.childEnds {
		_ = f.Close() // nothing was written through these here
	}
	c.childEnds = nil
	runtime.KeepAlive(c.keep)
}

func (c *childIO) closeOurEnds() {
	for _, f := range []*os.File{c.stdinW, c.outR, c.errR} {
		if f != nil {
			_ = f.Close() // the child never ran
		}
	}
}

// copyStdin feeds a Spec.Stdin that is not a file to the child. It ends when
// the reader does or when the child is gone (finish closes w); a reader that
// blocks forever keeps this goroutine until it returns.
func copyStdin(w *os.File, r io.Reader) {
	_, _ = io.Copy(w, r) // EPIPE or a closed pipe: the child stopped reading
	_ = w.Close()
}

// resolve finds the executable like a shell: a name with a slash is used as
// it is, a bare name is looked up in PATH. It returns the shell's exit code
// for a failure.
func resolve(name, dir string, env []string) (string, int, error) {
	if dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			return "", 126, fmt.Errorf("%w: %w", ErrCannotExecute, err)
		} else if !fi.IsDir() {
			return "", 126, fmt.Errorf("%w: chdir %s: %w", ErrCannotExecute, dir, syscall.ENOTDIR)
		}
	}
	if strings.Contains(name, "/") {
		err := checkExecutable(inDir(dir, name))
		switch {
		case err == nil:
			return name, 0, nil
		case errors.Is(err, fs.ErrNotExist):
			return "", 127, ErrCommandNotFound
		default:
			return "", 126, fmt.Errorf("%w: %w", ErrCannotExecute, err)
		}
	}
	var denied error
	for _, d := range filepath.SplitList(lookupEnv(env, "PATH")) {
		if d == "" {
			d = "."
		}
		path := filepath.Join(d, name)
		err := checkExecutable(inDir(dir, path))
		if err == nil {
			return path, 0, nil
		}
		if denied == nil && !errors.Is(err, fs.ErrNotExist) {
			denied = err
		}
	}
	if denied != nil {
		return "", 126, fmt.Errorf("%w: %w", ErrCannotExecute, denied)
	}
	return "", 127, ErrCommandNotFound
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return syscall.EISDIR
	}
	if err := syscall.Access(path, 1 /* X_OK */); err != nil {
		return err
	}
	return nil
}

func inDir(dir, path string) string {
	if dir == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

func lookupEnv(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// dedupEnv keeps the last value of each key, as os/exec does, so that a
// value appended to os.Environ() wins (a child's getenv takes the first).
func dedupEnv(env []string) []string {
	seen := make(map[string]bool, len(env))
	out := make([]string, 0, len(env))
	for i := len(env) - 1; i >= 0; i-- {
		key, _, _ := strings.Cut(env[i], "=")
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, env[i])
	}
	slices.Reverse(out)
	return out
}

// execError explains an error from fork or exec; the file was found, so
// most of them mean it cannot be run.
func execError(err error) error {
	if errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("%w: bad interpreter: %w", ErrCannotExecute, err)
	}
	return fmt.Errorf("%w: %w", ErrCannotExecute, err)
}
