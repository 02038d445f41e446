package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wan22-guard/wan22-guard/journal"
)

// Script is what one fake launch does.
type Script struct {
	// Stdout and Stderr are the lines the child prints, stdout first. Each
	// goes to Spec.Sink and, with a newline, to Spec.Stdout or Spec.Stderr.
	Stdout, Stderr []string
	// ExitCode is the code the child exits with; with Signal set and no
	// ExitCode it is 128+Signal.
	ExitCode int
	// Signal is the signal that killed the child, or nil.
	Signal os.Signal
	// RunFor is how long the child runs: the fake clock is advanced by it
	// before the child exits, and it is the attempt's uptime.
	RunFor time.Duration
	// StartErr makes the launch a start failure (exit code 127).
	StartErr error
	// BlockUntilSignal keeps the child running until it gets a signal not
	// in Ignore (it then exits 128+sig), or the test calls Exit.
	BlockUntilSignal bool
	// Ignore lists signals a blocking child survives. SIGKILL always kills.
	Ignore []os.Signal
	// WriteFile is written non-empty when the child exits 0; a relative
	// path is taken relative to Spec.Dir, as the child would.
	WriteFile string
}

// FakeLauncher plays one Script per launch, with no OS process.
type FakeLauncher struct {
	t       testing.TB
	clock   *FakeClock
	scripts []Script
	// OnLaunch, when set, is called in Launch with the launch number (from
	// 1) before the child prints anything.
	OnLaunch func(n int, spec Spec)

	mu       sync.Mutex
	specs    []Spec
	procs    []*FakeProcess
	launched chan struct{} // closed and replaced at every launch
}

var _ Launcher = (*FakeLauncher)(nil)

// newFakeLauncher returns a launcher that plays scripts in order; a launch
// past the last script fails the test.
func newFakeLauncher(t testing.TB, clk *FakeClock, scripts ...Script) *FakeLauncher {
	return &FakeLauncher{t: t, clock: clk, scripts: scripts, launched: make(chan struct{})}
}

// Launch records spec and plays the next script.
func (l *FakeLauncher) Launch(_ context.Context, spec Spec) (Process, error) {
	if len(spec.Args) == 0 {
		return nil, ErrEmptyArgv
	}
	l.mu.Lock()
	n := len(l.specs) + 1
	rec := spec
	rec.Args = slices.Clone(spec.Args)
	rec.Env = slices.Clone(spec.Env)
	l.specs = append(l.specs, rec)
	var sc Script
	if n <= len(l.scripts) {
		sc = l.scripts[n-1]
	} else {
		l.t.Errorf("launch %d: only %d scripts (argv %q)", n, len(l.scripts), spec.Args)
		sc = Script{StartErr: fmt.Errorf("no script for launch %d", n)}
	}
	now := l.clock.Now()
	p := &FakeProcess{
		pid: 1000 + n, script: sc, spec: spec, clock: l.clock,
		start: now, lastOut: now, done: make(chan struct{}), signalled: make(chan struct{}),
	}
	l.procs = append(l.procs, p)
	l.mu.Unlock()

	if l.OnLaunch != nil {
		l.OnLaunch(n, rec)
	}
	if sc.StartErr != nil {
		p.pid = 0
		p.exit(Exit{Code: 127, StartErr: sc.StartErr})
	} else {
		for _, line := range sc.Stdout {
			p.Emit(Stdout, line)
		}
		for _, line := range sc.Stderr {
			p.Emit(Stderr, line)
		}
		if !sc.BlockUntilSignal {
			l.clock.Advance(sc.RunFor)
			p.Exit(sc.ExitCode)
		}
	}
	l.mu.Lock()
	close(l.launched)
	l.launched = make(chan struct{})
	l.mu.Unlock()
	return p, nil
}

// Launches returns how many launches there were.
func (l *FakeLauncher) Launches() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.specs)
}

// Spec returns the spec of launch n (from 1).
func (l *FakeLauncher) Spec(n int) Spec {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n < 1 || n > len(l.specs) {
		l.t.Fatalf("no launch %d (%d launches)", n, len(l.specs))
	}
	return l.specs[n-1]
}

// WaitLaunch waits until launch n (from 1) has been made and returns its process.
func (l *FakeLauncher) WaitLaunch(n int) *FakeProcess {
	l.t.Helper()
	deadline := time.After(tooLong)
	for {
		l.mu.Lock()
		if len(l.procs) >= n {
			p := l.procs[n-1]
			l.mu.Unlock()
			return p
		}
		ch := l.launched
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			l.t.Fatalf("launch %d not made within %s", n, tooLong)
		}
	}
}

// FakeProcess is a child played from a Script.
type FakeProcess struct {
	pid    int
	script Script
	spec   Spec
	clock  *FakeClock
	start  time.Time
	done   chan struct{}

	mu        sync.Mutex
	ex        Exit
	exited    bool
	lastOut   time.Time
	tail      []string
	signals   []os.Signal
	signalled chan struct{} // closed and replaced at every Signal
}

var _ Process = (*FakeProcess)(nil)

// Pid returns 1000+n for launch n, 0 for a start failure.
func (p *FakeProcess) Pid() int { return p.pid }

// Signal records sig; a blocking child exits 128+sig unless it ignores sig.
func (p *FakeProcess) Signal(sig os.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	close(p.signalled)
	p.signalled = make(chan struct{})
	fatal := p.script.BlockUntilSignal && !p.exited &&
		(sig == syscall.SIGKILL || !slices.Contains(p.script.Ignore, sig))
	p.mu.Unlock()
	if fatal {
		n := int(sig.(syscall.Signal))
		p.exit(Exit{Code: 128 + n, Signal: sig, Uptime: p.clock.Now().Sub(p.start)})
	}
	return nil
}

// Signals returns the signals the child got, in order.
func (p *FakeProcess) Signals() []os.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.signals)
}

// WaitSignals waits until the child has got n signals.
func (p *FakeProcess) WaitSignals(t testing.TB, n int) []os.Signal {
	t.Helper()
	deadline := time.After(tooLong)
	for {
		p.mu.Lock()
		if len(p.signals) >= n {
			got := slices.Clone(p.signals)
			p.mu.Unlock()
			return got
		}
		ch := p.signalled
		p.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("child %d got %v, not %d signals within %s", p.pid, p.Signals(), n, tooLong)
		}
	}
}

// Done is closed when the child has exited.
func (p *FakeProcess) Done() <-chan struct{} { return p.done }

// Wait blocks until the child has exited.
func (p *FakeProcess) Wait() Exit {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ex
}

// Tail returns a copy of the lines printed.
func (p *FakeProcess) Tail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.tail)
}

// LastOutput is the fake time of the last line printed.
func (p *FakeProcess) LastOutput() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastOut
}

// Emit prints one line now, the way the pump would pass it on.
func (p *FakeProcess) Emit(s Stream, line string) {
	p.mu.Lock()
	p.lastOut = p.clock.Now()
	p.tail = append(p.tail, line)
	if n := p.spec.TailLines; n > 0 && len(p.tail) > n {
		p.tail = p.tail[len(p.tail)-n:]
	}
	p.mu.Unlock()
	w := p.spec.Stdout
	if s == Stderr {
		w = p.spec.Stderr
	}
	if w != nil {
		_, _ = io.WriteString(w, line+"\n")
	}
	if p.spec.Sink != nil {
		p.spec.Sink.Line(s, []byte(line))
	}
}

// Exit ends the child with code, as the script's Signal says, or as a
// clean exit that writes WriteFile.
func (p *FakeProcess) Exit(code int) {
	ex := Exit{Code: code, Uptime: p.clock.Now().Sub(p.start)}
	if sig := p.script.Signal; sig != nil {
		ex.Signal = sig
		if ex.Code == 0 {
			ex.Code = 128 + int(sig.(syscall.Signal))
		}
	}
	if ex.Code == 0 && p.script.WriteFile != "" {
		path := p.script.WriteFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.spec.Dir, path)
		}
		if err := os.WriteFile(path, []byte("fake video\n"), 0o644); err != nil {
			panic(err)
		}
	}
	p.exit(ex)
}

func (p *FakeProcess) exit(ex Exit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	p.exited = true
	p.ex = ex
	close(p.done)
}

// FakeClock is a Clock the test moves. Timers fire when Advance passes
// them; with Auto set, After moves the clock itself and fires at once, for
// runs where the only thing waited on is the backoff.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	auto    bool
	timers  []fakeTimer
	afters  []time.Duration // every After, in order
	seen    int             // afters consumed by WaitAfter
	changed chan struct{}   // closed and replaced at every After
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

var _ Clock = (*FakeClock)(nil)

// newFakeClock returns a clock at a fixed instant.
func newFakeClock(auto bool) *FakeClock {
	return &FakeClock{now: time.Date(2025, 7, 28, 12, 0, 0, 0, time.UTC), auto: auto, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that gets the fake time once Advance reaches d
// from now.
func (c *FakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.afters = append(c.afters, d)
	close(c.changed)
	c.changed = make(chan struct{})
	if c.auto && d > 0 {
		c.advance(d)
	}
	if d <= 0 || c.auto {
		ch <- c.now
	} else {
		c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	}
	c.mu.Unlock()
	return ch
}

// Advance moves the clock by d and fires the timers it passes.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(d)
}

func (c *FakeClock) advance(d time.Duration) {
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- c.now
	}
	clear(c.timers[len(kept):])
	c.timers = kept
}

// Afters returns the duration of every After call so far.
func (c *FakeClock) Afters() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.afters)
}

// WaitAfter waits for the next After(d) not yet waited for.
func (c *FakeClock) WaitAfter(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(tooLong)
	for {
		c.mu.Lock()
		for i := c.seen; i < len(c.afters); i++ {
			if c.afters[i] == d {
				c.seen = i + 1
				c.mu.Unlock()
				return
			}
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no After(%s) within %s; calls: %v", d, tooLong, c.Afters())
		}
	}
}

// fakeJournal keeps the records; Write fails with err when set.
type fakeJournal struct {
	mu      sync.Mutex
	err     error
	writes  int
	records []journal.Record
}

var _ Journal = (*fakeJournal)(nil)

func (j *fakeJournal) Write(r journal.Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.writes++
	if j.err != nil {
		return j.err
	}
	j.records = append(j.records, r)
	return nil
}

// eventLog is a list of what happened, shared by fakes that need an order.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, a...))
}

func (l *eventLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// fakeStates is an in-memory StateStore. Check returns checks in order,
// then nil.
type fakeStates struct {
	log      *eventLog
	checks   []error
	snapshot string // what Restore names
}

var _ StateStore = (*fakeStates)(nil)

func (s *fakeStates) Snapshot(reason string) error {
	s.log.add("snapshot %s", reason)
	return nil
}

func (s *fakeStates) Check() error {
	var err error
	if len(s.checks) > 0 {
		err, s.checks = s.checks[0], s.checks[1:]
	}
	if err != nil {
		s.log.add("check: %v", err)
	} else {
		s.log.add("check")
	}
	return err
}

func (s *fakeStates) Restore() (string, error) {
	s.log.add("restore %s", s.snapshot)
	return s.snapshot, nil
}

// fakeObserver logs the calls, with the Supervisor's state at each when
// state is set.
type fakeObserver struct {
	log   *eventLog
	state func() State
}

var _ Observer = (*fakeObserver)(nil)

func (o *fakeObserver) at() string {
	if o.state == nil {
		return ""
	}
	return " [" + o.state().String() + "]"
}

func (o *fakeObserver) AttemptStarted(attempt int, argv []string) {
	o.log.add("started %d%s", attempt, o.at())
}

func (o *fakeObserver) AttemptEnded(rec journal.Record) {
	o.log.add("ended %d %s%s", rec.Attempt, rec.Class, o.at())
}

func (o *fakeObserver) BackingOff(d time.Duration) {
	o.log.add("backing off %s%s", d, o.at())
}

// fakeFacts hands out one token per attempt and fills the record from it.
type fakeFacts struct {
	log      *eventLog
	oomKills int
	release  string // evidence Release returns
}

var _ Facts = (*fakeFacts)(nil)

type factsToken struct{ pid int }

func (f *fakeFacts) Before(_ context.Context, pid int) any {
	f.log.add("before %d", pid)
	return factsToken{pid}
}

func (f *fakeFacts) After(_ context.Context, token any, rec *journal.Record) {
	tk, ok := token.(factsToken)
	if !ok {
		f.log.add("after: bad token %v", token)
		return
	}
	f.log.add("after %d", tk.pid)
	rec.GPUModel = "Fake H100"
	rec.OOMKills = f.oomKills
}

func (f *fakeFacts) Release(_ context.Context, token any) string {
	f.log.add("release %v", token.(factsToken).pid)
	return f.release
}

// errFake is what failing fakes return.
var errFake = errors.New("fake failure")
