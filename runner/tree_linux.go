package runner

import (
	"bytes"
	"golang.org/x/sys/unix"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultKillWait is how long KillTree waits when given no wait.
const DefaultKillWait = 5 * time.Second

// KillTree sends SIGKILL to p's process group and to every other descendant
// of the guard, then waits up to wait (DefaultKillWait when wait <= 0) until
// none is left, not even as a zombie.
//
// Descendants are found through /proc parent links, so processes that left
// the group (torchrun starts ranks in their own sessions) are found too, as
// long as they are still below the guard: below p, or reparented to the
// guard because it is PID 1 or a child subreaper (BecomeSubreaper).
// Orphans reparented to the guard are taken to be p's. Other children the
// guard started and that still run (Run, a second ExecLauncher child) are
// left alone with their trees.
//
// It returns nil when the tree is gone, or a *SurvivorsError naming what was
// still there when the wait ran out. It may be called after p exited and
// more than once.
func KillTree(p Process, wait time.Duration) error {
	StartReaper()
	if wait <= 0 {
		wait = DefaultKillWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	main := p.Pid()
	if main > 0 {
		_ = syscall.Kill(-main, syscall.SIGKILL) // ESRCH: the group is already empty
	}
	for {
		// Every process of the tree ends up reaped by the reaper: the last
		// one to go is reaped by its parent, which is either the guard or
		// another member still on the list. So a re-scan after each reap
		// sees every change, and nothing needs to poll.
		changed := procReaper.changes()
		if len(killStrays(main)) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			if left := killStrays(main); len(left) != 0 {
				return &SurvivorsError{Pids: left}
			}
			return nil
		}
	}
}

// killStrays sends SIGKILL to every descendant of the guard, zombies
// included, except other running registered children and their trees, and
// returns their pids. It holds the reaper's fork lock for writing: no launch
// is then between fork and registration (its fresh child would look like a
// stray), and no child of ours is reaped, so no pid on the list can be
// reused before the kill.
func killStrays(main int) []int {
	procReaper.forkMu.Lock()
	defer procReaper.forkMu.Unlock()
	skip := procReaper.running()
	delete(skip, main)
	if kids, ok := directChildren(); ok && allIn(kids, skip) {
		// Every stray descends from a direct child of the guard (orphans
		// are reparented to it), so with none there is nothing to scan.
		return nil
	}
	left := descendants(listProcs(), os.Getpid(), skip)
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL) // ESRCH: already gone
	}
	return left
}

// Descendants returns the pids of all processes below pid (children,
// their children, and so on, zombies included), read from /proc. It is a
// snapshot: processes may come and go while it reads. Without /proc it
// returns nil.
func Descendants(pid int) []int {
	return descendants(listProcs(), pid, nil)
}

// procInfo is what we need from /proc/<pid>/stat.
type procInfo struct {
	pid, ppid int
	state     byte   // R, S, D, Z, ...
	start     uint64 // clock ticks since boot
}

// procNames lists the numeric entries of /proc, one per process.
func procNames() []string {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, err := d.Readdirnames(-1)
	_ = d.Close() // read-only directory
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(names, func(n string) bool {
		_, err := strconv.Atoi(n)
		return err != nil
	})
}

func listProcs() []procInfo {
	names := procNames()
	procs := make([]procInfo, 0, len(names))
	for _, name := range names {
		pid, _ := strconv.Atoi(name)
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // gone since the directory was read
		}
		if pi, ok := parseStat(pid, b); ok {
			procs = append(procs, pi)
		}
	}
	return procs
}

// parseStat reads "pid (comm) state ppid ...". comm may hold spaces and
// parentheses, so the fields start after the last ')'.
func parseStat(pid int, b []byte) (procInfo, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return procInfo{}, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return procInfo{}, false
	}
	pi := procInfo{pid: pid, ppid: ppid, state: f[0][0]}
	if len(f) > 19 { // f[0] is field 3 (state); starttime is field 22
		pi.start, _ = strconv.ParseUint(string(f[19]), 10, 64)
	}
	return pi, true
}

func descendants(procs []procInfo, root int, skip map[int]bool) []int {
	kids := make(map[int][]int)
	for _, p := range procs {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	var out []int
	queue := slices.Clone(kids[root])
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if skip[pid] || pid == root {
			continue
		}
		out = append(out, pid)
		queue = append(queue, kids[pid]...)
	}
	return out
}

// directChildren lists the guard's own children from
// /proc/self/task/*/children, which is far cheaper than reading every
// process's stat. ok is false where the kernel does not offer the file.
func directChildren() (pids []int, ok bool) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, false
	}
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			if os.IsNotExist(err) && len(tasks) > 0 {
				// The thread may have exited; the file is missing for all
				// threads only when the kernel lacks it.
				if _, serr := os.Stat("/proc/self/task/" + t.Name()); serr != nil {
					continue
				}
			}
			return nil, false
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids, true
}

func allIn(pids []int, set map[int]bool) bool {
	for _, p := range pids {
		if !set[p] {
			return false
		}
	}
	return true
}

// EnvRunID is set in every attempt's environment to the run's ID. Every
// process of the child's tree inherits it, even one that started its own
// session and was reparented away from the guard, so a later guard can find
// what a killed guard left behind.
const EnvRunID = "WAN22_GUARD_RUN_ID"

// KillLeftovers finds the processes whose environment carries
// EnvRunID=runID (what a guard that was itself killed left running: torchrun
// ranks in their own sessions survive the parent-death signal, which reaches
// only the direct child), sends each SIGKILL and waits up to wait for them to
// exit. It returns the pids it killed.
func KillLeftovers(runID string, wait time.Duration) []int {
	if runID == "" {
		return nil
	}
	want := []byte(EnvRunID + "=" + runID + "\x00")
	self := os.Getpid()
	var killed []int
	var fds []unix.PollFd
	for _, name := range procNames() {
		pid, _ := strconv.Atoi(name)
		if pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + name + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		// A pidfd taken before the kill cannot be fooled by pid reuse.
		fd, ferr := unix.PidfdOpen(pid, 0)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			if ferr == nil {
				unix.Close(fd)
			}
			continue
		}
		killed = append(killed, pid)
		if ferr == nil {
			fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
	}
	// A pidfd turns readable when its process exits: wait on all of them.
	deadline := time.Now().Add(wait)
	for len(fds) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err != nil && err != unix.EINTR {
			break
		}
		if n <= 0 {
			continue
		}
		open := fds[:0]
		for _, f := range fds {
			if f.Revents != 0 {
				unix.Close(int(f.Fd))
				continue
			}
			open = append(open, f)
		}
		fds = open
	}
	for _, f := range fds {
		unix.Close(int(f.Fd))
	}
	return killed
}

// procStart returns pid's start time in clock ticks since boot, or 0.
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	pi, _ := parseStat(pid, b)
	return pi.start
}
