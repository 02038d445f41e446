package runner

import (
	"errors"
	"fmt"
)

// Errors a launch or a tree kill can report. Match them with errors.Is.
var (
	// ErrEmptyArgv is returned by Launch when Spec.Args is empty: a
	// programming error, not a start failure.
	ErrEmptyArgv = errors.New("empty argv")
	// ErrCommandNotFound is the cause of a start failure with exit code 127.
	ErrCommandNotFound = errors.New("command not found")
	// ErrCannotExecute is the cause of a start failure with exit code 126:
	// the file exists but cannot be run (no execute permission, a directory,
	// a bad interpreter, a missing working directory, no file descriptors).
	ErrCannotExecute = errors.New("cannot execute")
	// ErrUnknownSignal is returned by ParseSignal for a name it does not know.
	ErrUnknownSignal = errors.New("unknown signal")
)

// StartError says why a child never started, the way a shell would:
// "python: command not found", "./run.sh: cannot execute: permission denied".
// Its Err wraps ErrCommandNotFound or ErrCannotExecute.
type StartError struct {
	Name string // the command as given (Spec.Path, else Spec.Args[0])
	Err  error
}

// Error returns "name: cause".
func (e *StartError) Error() string { return e.Name + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// SurvivorsError is returned by KillTree when processes of the tree were
// still there when its wait ran out (typically stuck in uninterruptible
// sleep inside a driver call, or zombies whose parent is stuck that way).
type SurvivorsError struct {
	Pids []int
}

// Error lists the survivors.
func (e *SurvivorsError) Error() string {
	return fmt.Sprintf("processes survived SIGKILL: %v", e.Pids)
}
