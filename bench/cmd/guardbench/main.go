// Command guardbench measures wan22-guard side by side with running a command
// directly, under tini, under dumb-init and under a minimal C pipe copier:
// start-up overhead, pass-through throughput, the wrapper's CPU and peak RSS,
// the relaunch gap, SIGTERM delivery latency and partial-line latency. It
// prints a Markdown table to stdout and writes the same text to -out.
//
// bench/run.sh builds the helpers (bench/cmd/benchchild, bench/cmd/pipecopy)
// and runs it; see that script for the usual invocation.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

// config is what the flags set.
type config struct {
	guard, tini, dumbInit, pipecopy, child string
	work, out                              string
	outBytes, errBytes                     int64
	repsStartup, repsPass, repsRelaunch    int
	repsTerm, repsPartial                  int
	relaunchAttempts                       int
	partialCount                           int
	partialInterval                        time.Duration
}

// wrapper is one way of running the child.
type wrapper struct {
	name    string
	path    string // empty for the direct run
	direct  bool
	guard   bool
	missing string // why it is not available; empty when it is
}

type bench struct {
	cfg      config
	wrappers []*wrapper
	runSeq   int
	notes    []string
	errs     map[string][]string
}

func main() {
	var c config
	flag.StringVar(&c.guard, "guard", "bin/wan22-guard", "wan22-guard binary")
	flag.StringVar(&c.tini, "tini", "", "tini binary (empty: column n/a)")
	flag.StringVar(&c.dumbInit, "dumb-init", "", "dumb-init binary (empty: column n/a)")
	flag.StringVar(&c.pipecopy, "pipecopy", "", "C pipe copier binary (empty: column n/a)")
	flag.StringVar(&c.child, "child", "", "benchchild binary")
	flag.StringVar(&c.work, "work", "", "scratch directory (default: a new temporary directory)")
	flag.StringVar(&c.out, "out", "bench/results.md", "write the results here as well as to stdout (empty: stdout only)")
	flag.Int64Var(&c.outBytes, "out-bytes", gib, "bytes the pass-through child writes to stdout")
	flag.Int64Var(&c.errBytes, "err-bytes", 256*mib, "bytes the pass-through child writes to stderr")
	flag.IntVar(&c.repsStartup, "reps-startup", 21, "repetitions of the start-up test")
	flag.IntVar(&c.repsPass, "reps-pass", 7, "repetitions of each pass-through test")
	flag.IntVar(&c.repsRelaunch, "reps-relaunch", 3, "runs of the relaunch test")
	flag.IntVar(&c.relaunchAttempts, "relaunch-attempts", 20, "launches per relaunch run")
	flag.IntVar(&c.repsTerm, "reps-term", 15, "repetitions of the SIGTERM test")
	flag.IntVar(&c.repsPartial, "reps-partial", 3, "runs of the partial-line test")
	flag.IntVar(&c.partialCount, "partial-count", 150, "partial lines per partial-line run")
	flag.DurationVar(&c.partialInterval, "partial-interval", 4*time.Millisecond, "pause between partial lines")
	flag.Parse()
	if c.child == "" {
		fatalf("-child is required")
	}
	if c.work == "" {
		d, err := os.MkdirTemp("", "guardbench")
		if err != nil {
			fatalf("%v", err)
		}
		defer os.RemoveAll(d)
		c.work = d
	}
	b := &bench{cfg: c, errs: map[string][]string{}}
	b.wrappers = []*wrapper{
		{name: "direct", direct: true},
		newWrapper("tini", c.tini),
		newWrapper("dumb-init", c.dumbInit),
		newWrapper("C pipecopy", c.pipecopy),
		newWrapper("wan22-guard", c.guard),
	}
	b.wrappers[4].guard = true
	if b.wrappers[4].missing != "" {
		fatalf("wan22-guard: %s", b.wrappers[4].missing)
	}
	if _, err := os.Stat(c.child); err != nil {
		fatalf("child: %v", err)
	}
	for _, w := range b.wrappers {
		if w.missing != "" {
			b.notes = append(b.notes, fmt.Sprintf("%s not measured: %s.", w.name, w.missing))
		}
	}

	started := time.Now()
	startup := b.runStartup()
	passNull := b.runPass(false)
	passPipe := b.runPass(true)
	relaunch := b.runRelaunch()
	term := b.runTerm()
	partial := b.runPartial()
	elapsed := time.Since(started)

	text := b.report(startup, passNull, passPipe, relaunch, term, partial, elapsed)
	fmt.Print(text)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(text), 0o644); err != nil {
			fatalf("%v", err)
		}
	}
}

func newWrapper(name, path string) *wrapper {
	w := &wrapper{name: name, path: path}
	if path == "" {
		w.missing = "not installed"
		return w
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		w.missing = path + " is not an executable file"
	}
	return w
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "guardbench: "+format+"\n", args...)
	os.Exit(2)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "guardbench: "+format+"\n", args...)
}

func (b *bench) fail(test string, w *wrapper, err error) {
	key := test + "/" + w.name
	b.errs[key] = append(b.errs[key], err.Error())
	progress("%s, %s: %v", test, w.name, err)
}

// argv is the command line that runs child under w. Each guard run gets a
// run directory of its own, so no run resumes another.
func (b *bench) argv(w *wrapper, maxAttempts int, child ...string) ([]string, error) {
	switch {
	case w.direct:
		return child, nil
	case w.guard:
		b.runSeq++
		dir := filepath.Join(b.cfg.work, "guard-runs", strconv.Itoa(b.runSeq))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		a := []string{w.path, "--run-dir", dir, "--max-attempts", strconv.Itoa(maxAttempts),
			"--backoff-initial", "0s", "--backoff-max", "0s", "--no-preflight",
			"--exit-code", "child", "--grace", "5s", "--"}
		return append(a, child...), nil
	case w.name == "tini":
		return append([]string{w.path, "-s", "--"}, child...), nil
	default:
		return append([]string{w.path, "--"}, child...), nil
	}
}

// command builds an exec.Cmd in a process group of its own, with a clean
// environment as far as the guard's settings go.
func command(argv []string, stdout, stderr *os.File) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WAN22_GUARD_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	return cmd
}

// watchdog kills cmd's process group if it runs past d.
func watchdog(cmd *exec.Cmd, d time.Duration) *time.Timer {
	return time.AfterFunc(d, func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Process.Kill()
		}
	})
}

// monoNow reads CLOCK_MONOTONIC, the clock benchchild stamps with.
func monoNow() int64 {
	var ts syscall.Timespec
	_, _, _ = syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// pipe is a blocking pipe: the write end goes to the child as is, the read
// end is read with plain read(2), outside Go's poller.
type pipe struct {
	r int
	w *os.File
}

func newPipe() (*pipe, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, err
	}
	return &pipe{r: p[0], w: os.NewFile(uintptr(p[1]), "pipe")}, nil
}

func (p *pipe) read(buf []byte) (int, error) {
	for {
		n, err := syscall.Read(p.r, buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

func (p *pipe) closeWrite() { _ = p.w.Close() }
func (p *pipe) closeRead()  { _ = syscall.Close(p.r) }

// drain reads p to EOF and returns the byte count.
func (p *pipe) drain() <-chan int64 {
	ch := make(chan int64, 1)
	go func() {
		buf := make([]byte, mib)
		var total int64
		for {
			n, err := p.read(buf)
			total += int64(n)
			if n == 0 || err != nil {
				break
			}
		}
		p.closeRead()
		ch <- total
	}()
	return ch
}

// collect reads p to EOF and returns everything.
func (p *pipe) collect() <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		var all bytes.Buffer
		buf := make([]byte, 64*1024)
		for {
			n, err := p.read(buf)
			all.Write(buf[:n])
			if n == 0 || err != nil {
				break
			}
		}
		p.closeRead()
		ch <- all.Bytes()
	}()
	return ch
}

func devNull() *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		fatalf("%v", err)
	}
	return f
}

// ---- 1. start-up -------------------------------------------------------

type startupResult map[string][]float64 // wrapper -> wall ms per run

func (b *bench) runStartup() startupResult {
	progress("start-up: X -- /bin/true, %d runs each", b.cfg.repsStartup)
	res := startupResult{}
	null := devNull()
	defer null.Close()
	for rep := -1; rep < b.cfg.repsStartup; rep++ {
		for _, w := range b.wrappers {
			if w.missing != "" {
				continue
			}
			argv, err := b.argv(w, 1, "/bin/true")
			if err != nil {
				b.fail("startup", w, err)
				continue
			}
			cmd := command(argv, null, null)
			t0 := time.Now()
			err = cmd.Run()
			d := time.Since(t0)
			if err != nil {
				b.fail("startup", w, err)
				continue
			}
			if rep >= 0 { // rep -1 warms the page cache
				res[w.name] = append(res[w.name], float64(d.Nanoseconds())/1e6)
			}
		}
	}
	return res
}

// ---- 2. pass-through ---------------------------------------------------

type passRun struct {
	mibps    float64
	cpuPerGi float64 // wrapper's own CPU seconds per GiB passed; NaN for direct
	rssMiB   float64 // wrapper's peak RSS; NaN for direct
}

type passResult map[string][]passRun

func (b *bench) runPass(toPipe bool) passResult {
	dest := "/dev/null"
	if toPipe {
		dest = "pipe"
	}
	progress("pass-through to %s: %d MiB stdout + %d MiB stderr, %d runs each",
		dest, b.cfg.outBytes/mib, b.cfg.errBytes/mib, b.cfg.repsPass)
	res := passResult{}
	for rep := 0; rep < b.cfg.repsPass; rep++ {
		for _, w := range b.wrappers {
			if w.missing != "" {
				continue
			}
			r, err := b.passOnce(w, toPipe)
			if err != nil {
				b.fail("pass-"+dest, w, err)
				continue
			}
			res[w.name] = append(res[w.name], r)
			progress("  %-11s %s: %7.1f MiB/s  cpu %.3f s/GiB  rss %.1f MiB",
				w.name, dest, r.mibps, r.cpuPerGi, r.rssMiB)
		}
	}
	return res
}

func (b *bench) passOnce(w *wrapper, toPipe bool) (passRun, error) {
	ruFile := filepath.Join(b.cfg.work, "writer.rusage")
	_ = os.Remove(ruFile)
	argv, err := b.argv(w, 1, b.cfg.child, "write",
		strconv.FormatInt(b.cfg.outBytes, 10), strconv.FormatInt(b.cfg.errBytes, 10), ruFile)
	if err != nil {
		return passRun{}, err
	}
	var outP, errP *pipe
	var stdout, stderr *os.File
	if toPipe {
		if outP, err = newPipe(); err != nil {
			return passRun{}, err
		}
		if errP, err = newPipe(); err != nil {
			outP.closeRead()
			outP.closeWrite()
			return passRun{}, err
		}
		stdout, stderr = outP.w, errP.w
	} else {
		stdout, stderr = devNull(), devNull()
	}
	cmd := command(argv, stdout, stderr)
	t0 := time.Now()
	err = cmd.Start()
	_ = stdout.Close()
	_ = stderr.Close()
	if err != nil {
		if toPipe {
			outP.closeRead()
			errP.closeRead()
		}
		return passRun{}, err
	}
	dog := watchdog(cmd, 3*time.Minute)
	defer dog.Stop()
	var outN, errN <-chan int64
	if toPipe {
		outN, errN = outP.drain(), errP.drain()
	}
	var peak procPeak
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if !w.direct {
		wg.Add(1)
		go func() {
			defer wg.Done()
			peak.sample(cmd.Process.Pid, stop)
		}()
	}
	waitErr := cmd.Wait()
	var gotOut, gotErr int64 = -1, -1
	if toPipe {
		gotOut, gotErr = <-outN, <-errN
	}
	wall := time.Since(t0)
	close(stop)
	wg.Wait()
	if waitErr != nil {
		return passRun{}, fmt.Errorf("%v", waitErr)
	}
	if toPipe && (gotOut != b.cfg.outBytes || gotErr < b.cfg.errBytes) {
		return passRun{}, fmt.Errorf("read %d bytes of stdout (want %d) and %d of stderr (want at least %d)",
			gotOut, b.cfg.outBytes, gotErr, b.cfg.errBytes)
	}
	writerCPU, err := readWriterCPU(ruFile)
	if err != nil {
		return passRun{}, err
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return passRun{}, errors.New("no rusage")
	}
	all := tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	passed := float64(b.cfg.outBytes+b.cfg.errBytes) / gib
	r := passRun{
		mibps:    float64(b.cfg.outBytes+b.cfg.errBytes) / mib / wall.Seconds(),
		cpuPerGi: math.NaN(),
		rssMiB:   math.NaN(),
	}
	if !w.direct {
		own := all - writerCPU
		if own < 0 {
			own = 0
		}
		r.cpuPerGi = own / passed
		r.rssMiB = float64(peak.hwmKiB) / 1024
		if peak.hwmKiB == 0 {
			r.rssMiB = float64(ru.Maxrss) / 1024
		}
	}
	return r, nil
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// readWriterCPU reads the "utime_us stime_us" benchchild write leaves behind.
func readWriterCPU(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("writer's rusage: %w", err)
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, fmt.Errorf("writer's rusage: %q", data)
	}
	u, err1 := strconv.ParseInt(f[0], 10, 64)
	s, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("writer's rusage: %q", data)
	}
	return float64(u+s) / 1e6, nil
}

// procPeak samples VmHWM of one process from /proc until stop closes. The
// kernel keeps VmHWM as a high-water mark, so the last sample taken while the
// process is alive is its peak up to that moment.
type procPeak struct{ hwmKiB int64 }

func (p *procPeak) sample(pid int, stop <-chan struct{}) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if data, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					f := strings.Fields(rest)
					if len(f) > 0 {
						if v, err := strconv.ParseInt(f[0], 10, 64); err == nil && v > p.hwmKiB {
							p.hwmKiB = v
						}
					}
				}
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// ---- 3. relaunch gap ---------------------------------------------------

type relaunchResult struct {
	gapsMs   map[string][]float64
	launches map[string][]int
}

func (b *bench) runRelaunch() relaunchResult {
	n := b.cfg.relaunchAttempts
	progress("relaunch gap: %d launches of a child that exits 1 at once, %d runs", n, b.cfg.repsRelaunch)
	res := relaunchResult{gapsMs: map[string][]float64{}, launches: map[string][]int{}}
	for rep := 0; rep < b.cfg.repsRelaunch; rep++ {
		for _, w := range b.wrappers {
			if !(w.direct || w.guard) {
				continue
			}
			out, err := b.relaunchOnce(w, n)
			if err != nil {
				b.fail("relaunch", w, err)
				continue
			}
			starts, ends := parseStamps(out)
			res.launches[w.name] = append(res.launches[w.name], len(starts))
			for i := 0; i+1 < len(starts) && i < len(ends); i++ {
				res.gapsMs[w.name] = append(res.gapsMs[w.name], float64(starts[i+1]-ends[i])/1e6)
			}
		}
	}
	return res
}

// relaunchOnce returns the stdout of n launches of benchchild stamp: by the
// guard, or for the direct run by this process in a loop (os/exec, the floor
// any Go supervisor starts from).
func (b *bench) relaunchOnce(w *wrapper, n int) ([]byte, error) {
	p, err := newPipe()
	if err != nil {
		return nil, err
	}
	out := p.collect()
	null := devNull()
	defer null.Close()
	if w.direct {
		for i := 0; i < n; i++ {
			cmd := command([]string{b.cfg.child, "stamp"}, p.w, null)
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				p.closeWrite()
				<-out
				return nil, err
			}
		}
		p.closeWrite()
		return <-out, nil
	}
	// The default policy gives up on a class-less failure after 2 relaunches;
	// this overlay lets the run reach n launches.
	cfgPath := filepath.Join(b.cfg.work, "relaunch.yaml")
	overlay := "classes:\n  unknown:\n    strategy: backoff\n    budget: 1000\n    then: give_up\n"
	if err := os.WriteFile(cfgPath, []byte(overlay), 0o644); err != nil {
		p.closeWrite()
		<-out
		return nil, err
	}
	argv, err := b.argv(w, n, b.cfg.child, "stamp")
	if err == nil {
		argv = append([]string{argv[0], "--config", cfgPath}, argv[1:]...)
	}
	if err != nil {
		p.closeWrite()
		<-out
		return nil, err
	}
	cmd := command(argv, p.w, null)
	err = cmd.Start()
	p.closeWrite()
	if err != nil {
		<-out
		return nil, err
	}
	dog := watchdog(cmd, time.Minute)
	defer dog.Stop()
	err = cmd.Wait()
	data := <-out
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, err
	}
	return data, nil
}

func parseStamps(out []byte) (starts, ends []int64) {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "S":
			starts = append(starts, v)
		case "E":
			ends = append(ends, v)
		}
	}
	return starts, ends
}

// ---- 4. SIGTERM delivery -----------------------------------------------

type termResult map[string][]float64 // wrapper -> latency µs

func (b *bench) runTerm() termResult {
	progress("SIGTERM delivery: %d runs each", b.cfg.repsTerm)
	res := termResult{}
	for rep := 0; rep < b.cfg.repsTerm; rep++ {
		for _, w := range b.wrappers {
			if w.missing != "" || w.name == "C pipecopy" {
				continue
			}
			us, err := b.termOnce(w)
			if err != nil {
				b.fail("sigterm", w, err)
				continue
			}
			res[w.name] = append(res[w.name], us)
		}
	}
	return res
}

func (b *bench) termOnce(w *wrapper) (float64, error) {
	argv, err := b.argv(w, 1, b.cfg.child, "term")
	if err != nil {
		return 0, err
	}
	p, err := newPipe()
	if err != nil {
		return 0, err
	}
	null := devNull()
	defer null.Close()
	cmd := command(argv, p.w, null)
	err = cmd.Start()
	p.closeWrite()
	if err != nil {
		p.closeRead()
		return 0, err
	}
	dog := watchdog(cmd, 40*time.Second)
	defer dog.Stop()
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		defer p.closeRead()
		var acc []byte
		buf := make([]byte, 4096)
		for {
			n, err := p.read(buf)
			acc = append(acc, buf[:n]...)
			for {
				i := bytes.IndexByte(acc, '\n')
				if i < 0 {
					break
				}
				lines <- string(acc[:i])
				acc = acc[i+1:]
			}
			if n == 0 || err != nil {
				return
			}
		}
	}()
	waitLine := func(prefix string) (string, bool) {
		for l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l, true
			}
		}
		return "", false
	}
	var lat float64
	if _, ok := waitLine("ready"); !ok {
		err = errors.New("child never printed ready")
	} else {
		time.Sleep(20 * time.Millisecond) // let the wrapper go idle
		sent := monoNow()
		if kerr := syscall.Kill(cmd.Process.Pid, syscall.SIGTERM); kerr != nil {
			err = kerr
		} else if l, ok := waitLine("T "); !ok {
			err = errors.New("child never reported SIGTERM")
		} else if got, perr := strconv.ParseInt(strings.TrimPrefix(l, "T "), 10, 64); perr != nil {
			err = perr
		} else {
			lat = float64(got-sent) / 1e3
		}
	}
	for range lines {
	}
	if err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	_ = cmd.Wait()
	return lat, err
}

// ---- 5. partial lines --------------------------------------------------

type partialResult struct {
	latMs    map[string][]float64
	received map[string]int
}

func (b *bench) runPartial() partialResult {
	c := b.cfg
	progress("partial lines: %d per run every %v, %d runs each", c.partialCount, c.partialInterval, c.repsPartial)
	res := partialResult{latMs: map[string][]float64{}, received: map[string]int{}}
	for rep := 0; rep < c.repsPartial; rep++ {
		for _, w := range b.wrappers {
			if w.missing != "" {
				continue
			}
			lat, err := b.partialOnce(w)
			if err != nil {
				b.fail("partial", w, err)
				continue
			}
			res.latMs[w.name] = append(res.latMs[w.name], lat...)
			res.received[w.name] += len(lat)
		}
	}
	return res
}

// partialOnce returns, for each "\rP<ns>" record the child wrote, how long
// after it was written the last byte of it could be read from the wrapper's
// stdout.
func (b *bench) partialOnce(w *wrapper) ([]float64, error) {
	c := b.cfg
	argv, err := b.argv(w, 1, c.child, "partial", strconv.Itoa(c.partialCount),
		strconv.FormatInt(c.partialInterval.Microseconds(), 10))
	if err != nil {
		return nil, err
	}
	p, err := newPipe()
	if err != nil {
		return nil, err
	}
	null := devNull()
	defer null.Close()
	cmd := command(argv, p.w, null)
	err = cmd.Start()
	p.closeWrite()
	if err != nil {
		p.closeRead()
		return nil, err
	}
	dog := watchdog(cmd, time.Minute)
	defer dog.Stop()
	done := make(chan []float64, 1)
	go func() {
		runtime.LockOSThread()
		defer p.closeRead()
		const digits = 19
		var lat []float64
		var acc []byte
		buf := make([]byte, 64*1024)
		for {
			n, err := p.read(buf)
			now := monoNow()
			acc = append(acc, buf[:n]...)
			for {
				i := bytes.IndexByte(acc, 'P')
				if i < 0 {
					acc = acc[:0]
					break
				}
				if len(acc)-i-1 < digits {
					acc = acc[i:]
					break
				}
				if v, perr := strconv.ParseInt(string(acc[i+1:i+1+digits]), 10, 64); perr == nil {
					lat = append(lat, float64(now-v)/1e6)
					acc = acc[i+1+digits:]
				} else {
					acc = acc[i+1:]
				}
			}
			if n == 0 || err != nil {
				done <- lat
				return
			}
		}
	}()
	lat := <-done
	err = cmd.Wait()
	if err != nil {
		return lat, err
	}
	if len(lat) != c.partialCount {
		return lat, fmt.Errorf("got %d of %d partial lines", len(lat), c.partialCount)
	}
	return lat, nil
}

// ---- report ------------------------------------------------------------

func median(v []float64) float64 { return percentile(v, 50) }

// percentile is the nearest-rank percentile; NaN for no samples.
func percentile(v []float64, p float64) float64 {
	var s []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	if k < 0 {
		k = 0
	}
	return s[k]
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "n/a"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func ratio(v, base float64) string {
	if math.IsNaN(v) || math.IsNaN(base) || base == 0 {
		return ""
	}
	return fmt.Sprintf(" (×%.2f)", v/base)
}

func (b *bench) report(st startupResult, pn, pp passResult, rl relaunchResult, tr termResult,
	pr partialResult, elapsed time.Duration) string {
	c := b.cfg
	names := make([]string, len(b.wrappers))
	for i, w := range b.wrappers {
		names[i] = w.name
	}
	const guard = "wan22-guard"
	var sb strings.Builder
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&sb, "# wan22-guard benchmark\n\n")
	fmt.Fprintf(&sb, "%s · host %s · %d CPUs · load %s · %s/%s · bench took %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(),
		strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "),
		runtime.GOOS, runtime.GOARCH, elapsed.Round(time.Second))
	fmt.Fprintf(&sb, "Guard: `%s` (%s). Cells give the median; ratios are to the direct run unless marked.\n\n",
		c.guard, guardVersion(c.guard))

	fmt.Fprintf(&sb, "| metric | %s | target | guard meets it |\n", strings.Join(names, " | "))
	fmt.Fprintf(&sb, "|---|%s---|---|\n", strings.Repeat("---|", len(names)))

	missing := func(n string) bool {
		for _, w := range b.wrappers {
			if w.name == n {
				return w.missing != ""
			}
		}
		return true
	}
	row := func(metric string, cells map[string]string, target, verdict string) {
		fmt.Fprintf(&sb, "| %s |", metric)
		for _, n := range names {
			v, ok := cells[n]
			switch {
			case ok:
			case missing(n):
				v = "n/a"
			default:
				v = "—"
			}
			fmt.Fprintf(&sb, " %s |", v)
		}
		fmt.Fprintf(&sb, " %s | %s |\n", target, verdict)
	}
	verdict := func(v, limit float64) string {
		if math.IsNaN(v) {
			return "not measured"
		}
		if v < limit {
			return "yes"
		}
		return "**no**"
	}
	errCell := func(test, n string) (string, bool) {
		if e := b.errs[test+"/"+n]; len(e) > 0 {
			return fmt.Sprintf("error ×%d", len(e)), true
		}
		return "", false
	}

	// 1. start-up
	{
		base := median(st["direct"])
		cells := map[string]string{}
		for _, n := range names {
			if missing(n) {
				continue
			}
			m := median(st[n])
			switch {
			case n == "direct":
				cells[n] = fmtNum(m)
			case len(st[n]) > 0:
				cells[n] = fmt.Sprintf("%s (+%s ms, ×%.1f)", fmtNum(m), fmtNum(m-base), m/base)
			}
			if e, ok := errCell("startup", n); ok && len(st[n]) == 0 {
				cells[n] = e
			}
		}
		row(fmt.Sprintf("start-up `X -- /bin/true`, wall ms (%d runs)", c.repsStartup), cells,
			"added < 1 ms", verdict(median(st[guard])-base, 1))
	}

	// 2. pass-through
	passRows := func(dest string, pr passResult) {
		field := func(n string, f func(passRun) float64) float64 {
			var v []float64
			for _, r := range pr[n] {
				v = append(v, f(r))
			}
			return median(v)
		}
		mibps := func(r passRun) float64 { return r.mibps }
		cpu := func(r passRun) float64 { return r.cpuPerGi }
		rss := func(r passRun) float64 { return r.rssMiB }
		test := "pass-" + dest
		base := field("direct", mibps)
		ref := field("C pipecopy", cpu)
		t, cc, rr := map[string]string{}, map[string]string{}, map[string]string{}
		for _, n := range names {
			if missing(n) {
				continue
			}
			if e, ok := errCell(test, n); ok && len(pr[n]) == 0 {
				t[n], cc[n], rr[n] = e, e, e
				continue
			}
			t[n] = fmtNum(field(n, mibps))
			if n != "direct" {
				t[n] += ratio(field(n, mibps), base)
				cc[n] = fmtNum(field(n, cpu))
				if n == guard {
					if !math.IsNaN(ref) && ref > 0 {
						cc[n] += fmt.Sprintf(" (×%.2f of C pipecopy)", field(n, cpu)/ref)
					}
				}
				rr[n] = fmtNum(field(n, rss))
			}
		}
		row(fmt.Sprintf("pass-through → %s, MiB/s (%d runs)", dest, c.repsPass), t, "", "")
		row(fmt.Sprintf("wrapper CPU s/GiB → %s", dest), cc, "< 3.6 s/GiB", verdict(field(guard, cpu), 3.6))
		row(fmt.Sprintf("wrapper peak RSS MiB → %s", dest), rr, "< 12 MiB", verdict(field(guard, rss), 12))
	}
	passRows("/dev/null", pn)
	passRows("pipe", pp)

	// 3. relaunch
	{
		cells := map[string]string{}
		for _, n := range []string{"direct", guard} {
			g := rl.gapsMs[n]
			if len(g) == 0 {
				if e, ok := errCell("relaunch", n); ok {
					cells[n] = e
				}
				continue
			}
			cells[n] = fmt.Sprintf("%s (p90 %s)", fmtNum(median(g)), fmtNum(percentile(g, 90)))
			if n != "direct" {
				cells[n] += ratio(median(g), median(rl.gapsMs["direct"]))
			}
		}
		row("relaunch gap, ms (exit → next child's main)", cells, "< 2 ms (supervisord 4–6 ms)",
			verdict(median(rl.gapsMs[guard]), 2))
	}

	// 4. SIGTERM
	{
		cells := map[string]string{}
		base := median(tr["direct"])
		for _, n := range names {
			if missing(n) || n == "C pipecopy" {
				continue
			}
			if len(tr[n]) == 0 {
				if e, ok := errCell("sigterm", n); ok {
					cells[n] = e
				}
				continue
			}
			cells[n] = fmt.Sprintf("%s (p90 %s)", fmtNum(median(tr[n])), fmtNum(percentile(tr[n], 90)))
			if n != "direct" {
				cells[n] += ratio(median(tr[n]), base)
			}
		}
		row(fmt.Sprintf("SIGTERM delivery, µs (%d runs)", c.repsTerm), cells, "", "")
	}

	// 5. partial lines
	{
		cells := map[string]string{}
		base := median(pr.latMs["direct"])
		for _, n := range names {
			if missing(n) {
				continue
			}
			l := pr.latMs[n]
			if len(l) == 0 {
				if e, ok := errCell("partial", n); ok {
					cells[n] = e
				}
				continue
			}
			cells[n] = fmt.Sprintf("%s (p99 %s)", fmtNum(median(l)), fmtNum(percentile(l, 99)))
			if n != "direct" {
				cells[n] += ratio(median(l), base)
			}
		}
		row(fmt.Sprintf("partial-line latency, ms (%d×%d lines)", c.repsPartial, c.partialCount), cells,
			"< 1 ms", verdict(median(pr.latMs[guard]), 1))
	}

	fmt.Fprintf(&sb, "\nHow each number is taken:\n\n")
	for _, s := range []string{
		"Runs are interleaved round-robin across the columns, so background load hits them alike.",
		"Every guard run gets a fresh `--run-dir` and `--max-attempts N --backoff-initial 0s --backoff-max 0s --no-preflight --exit-code child --grace 5s`; tini runs as `tini -s --`, dumb-init as `dumb-init --`, the C pipecopy (bench/cmd/pipecopy: poll, read/write 64 KiB, no scanning) as `pipecopy --`.",
		"Start-up: wall time from fork to reaped exit of `X -- /bin/true`, stdout and stderr on /dev/null, after one unmeasured warm-up run per column; the added ms are the column's median minus the direct median.",
		fmt.Sprintf("Pass-through: benchchild writes %d MiB of 128-byte text lines to stdout and %d MiB to stderr from two threads at once, in 128 KiB writes. MiB/s = (stdout+stderr bytes) / wall time from start until the wrapper is reaped and, for the pipe, both read ends hit EOF. The pipe reader is this harness (blocking read(2), 1 MiB buffers, bytes discarded and counted; stdout must match exactly).", c.outBytes/mib, c.errBytes/mib),
		"Wrapper CPU: wait4's rusage of the wrapper (utime+stime, which includes its reaped writer child) minus the writer's own RUSAGE_SELF, which the writer records just before exiting; divided by the GiB passed (stdout+stderr). tini and dumb-init pass the descriptors through and copy nothing.",
		"Wrapper peak RSS: VmHWM of the wrapper process alone, read from /proc/PID/status every 10 ms while it runs (the kernel keeps it as a high-water mark).",
		"Relaunch gap: the guard runs with a `--config` overlay that gives the `unknown` class (what a bare exit 1 is) a budget of 1000 relaunches with backoff, instead of the default 2. The child (static C) prints CLOCK_MONOTONIC on entry to main and just before _exit(1); gap = next launch's entry stamp minus the previous exit stamp, so it covers process teardown, reaping, the guard's bookkeeping, fork/exec and the next child's start. The direct column is this harness relaunching the same child in an os/exec loop, the floor for any Go supervisor. tini and dumb-init do not relaunch.",
		"SIGTERM: the child blocks SIGTERM, prints `ready` and waits in sigtimedwait; 20 ms after reading `ready` the harness stamps CLOCK_MONOTONIC and sends SIGTERM to the wrapper (direct: to the child); latency = the child's receive stamp minus the send stamp. The C pipecopy forwards no signals.",
		fmt.Sprintf("Partial lines: the child writes `\\rP<CLOCK_MONOTONIC ns>` with no newline every %v; the harness reads the wrapper's stdout with blocking read(2) on a locked thread and stamps each record when its last byte arrives; latency = arrival stamp minus the child's stamp.", c.partialInterval),
		"n/a: the tool is not installed; —: the metric does not apply (no wrapper process in the direct run, no relaunching in tini and dumb-init, no signal forwarding in the C pipecopy).",
		"Verdicts compare the guard's median (start-up: median minus the direct median) with the target. The machine may be shared: absolute numbers move with its load, ratios less so.",
	} {
		fmt.Fprintf(&sb, "- %s\n", s)
	}
	for _, n := range b.notes {
		fmt.Fprintf(&sb, "- %s\n", n)
	}
	if len(rl.launches[guard]) > 0 {
		fmt.Fprintf(&sb, "- Guard launches per relaunch run: %v (asked for %d).\n", rl.launches[guard], c.relaunchAttempts)
	}
	if len(pr.received) > 0 {
		var parts []string
		for _, n := range names {
			if v, ok := pr.received[n]; ok {
				parts = append(parts, fmt.Sprintf("%s %d", n, v))
			}
		}
		fmt.Fprintf(&sb, "- Partial-line records received: %s (of %d each).\n", strings.Join(parts, ", "), c.repsPartial*c.partialCount)
	}
	if len(b.errs) > 0 {
		var keys []string
		for k := range b.errs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&sb, "\nErrors:\n\n")
		for _, k := range keys {
			e := b.errs[k]
			fmt.Fprintf(&sb, "- %s: %d× — %s\n", k, len(e), e[0])
		}
	}
	return sb.String()
}

func guardVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "version unknown"
	}
	return strings.TrimSpace(string(out))
}
