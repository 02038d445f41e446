package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// unixPidfd opens a pidfd for pid, which turns readable when pid exits and
// cannot be fooled by pid reuse.
func unixPidfd(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

// exited reports whether the process behind pidfd exits within d.
func exited(pidfd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(d.Milliseconds()))
	return err == nil && n > 0
}
