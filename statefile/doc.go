// Package statefile owns the files the guard must never half-write: atomic
// replacement of a file (WriteFileAtomic), named and checksummed snapshots of
// the user's state file with restore and retention (Store), a watcher that
// snapshots every valid version the child writes (Watch), and the guard's own
// run state (SaveJSON, LoadJSON).
//
// Every write goes the way a database writes: a temp file in the target's
// directory, write, fsync, close, rename over the target, fsync the directory.
// A missing file is ErrNoState and a file that fails validation is
// ErrCorruptState; neither ever reads as an empty value.
//
// statefile knows nothing about failure classes or policy, and it runs no
// processes: a validator that needs a command gets its runner from the
// caller (CommandValidator). It must not import os/exec, logrus, go-nvml or
// the classify and strategies packages.
package statefile
