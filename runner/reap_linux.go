package runner

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, linux/prctl.h

// procReaper is process-wide because SIGCHLD and wait4(-1) are: a process
// can have only one reaper.
var procReaper reaper

// reaper reaps every child of the process. Children started by ExecLauncher
// are registered under their pid and get their wait status delivered; any
// other child (an orphan adopted as PID 1 or as subreaper) is just reaped.
type reaper struct {
	once sync.Once
	// forkMu closes the window between fork and registration. A launch
	// holds it for reading from fork until its pid is registered; the
	// reaper holds it for writing while it reaps, so it never reaps a child
	// that is not registered yet, and a status is never kept for a pid
	// that nobody will claim (that pid could be reused by a later child).
	// Signal holds it for reading too, so a pid cannot be reaped and reused
	// between its "has it exited?" check and kill; KillTree holds it for
	// writing while it scans /proc and kills, for both reasons.
	forkMu sync.RWMutex

	mu       sync.Mutex
	children map[int]*ExecProcess
	changed  chan struct{} // closed and replaced after each pass that reaped something

	orphans atomic.Uint64 // unregistered children reaped
}

// exitStatus is what the reaper hands a registered process.
type exitStatus struct {
	ws syscall.WaitStatus
	at time.Time
}

// StartReaper starts the process-wide reaper once; later calls do nothing.
// ExecLauncher, Run and KillTree start it themselves.
//
// Once it runs it reaps every child of the process, so nothing else in the
// guard may wait for children of its own: os/exec's Cmd.Wait and
// os.Process.Wait would fail with ECHILD ("wait: no child processes") or
// lose the status. Start auxiliary commands with Run or ExecLauncher.
func StartReaper() {
	procReaper.once.Do(procReaper.start)
}

// BecomeSubreaper marks the guard as a child subreaper (prctl
// PR_SET_CHILD_SUBREAPER): orphans of the child's tree are reparented to the
// guard instead of to init, so the reaper reaps them and KillTree can find
// them. Not needed when the guard is PID 1.
func BecomeSubreaper() error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0, 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("set child subreaper: %w", e)
	}
	return nil
}

func (r *reaper) start() {
	r.children = make(map[int]*ExecProcess)
	r.changed = make(chan struct{})
	// One slot is enough: SIGCHLDs coalesce anyway, and each wake-up reaps
	// until nothing is left.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	go r.run(sigc)
}

func (r *reaper) run(sigc <-chan os.Signal) {
	for {
		r.reapAll()
		<-sigc
	}
}

func (r *reaper) reapAll() {
	r.forkMu.Lock()
	defer r.forkMu.Unlock()
	reaped := false
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			break // ECHILD: no children; 0: none has exited
		}
		reaped = true
		r.mu.Lock()
		p := r.children[pid]
		delete(r.children, pid)
		r.mu.Unlock()
		if p == nil {
			r.orphans.Add(1)
			continue
		}
		p.reaped(exitStatus{ws: ws, at: time.Now()})
	}
	if reaped {
		r.mu.Lock()
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
}

// register must be called with forkMu held for reading.
func (r *reaper) register(pid int, p *ExecProcess) {
	r.mu.Lock()
	r.children[pid] = p
	r.mu.Unlock()
}

// changes returns a channel that is closed the next time the reaper reaps
// anything. Take it before looking at /proc, then wait on it.
func (r *reaper) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// running returns the pids of registered children not yet reaped.
func (r *reaper) running() map[int]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	pids := make(map[int]bool, len(r.children))
	for pid := range r.children {
		pids[pid] = true
	}
	return pids
}
