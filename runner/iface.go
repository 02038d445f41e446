package runner

import (
	"context"
	"io"
	"os"
	"time"
)

// Stream names which of the child's output streams a line came from.
type Stream int

// The child's two output streams.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

// String returns "stdout" or "stderr".
func (s Stream) String() string {
	if s == Stdout {
		return "stdout"
	}
	return "stderr"
}

// LineSink receives every line the child prints, split on \n and \r, without
// the terminator and capped in length. Calls come from one goroutine, in the
// order the bytes arrived per stream; line is only valid during the call.
// A slow sink never slows the child: when it falls behind, whole chunks of
// output skip the sink (they still reach the guard's own stdout/stderr).
type LineSink interface {
	Line(s Stream, line []byte)
}

// Spec describes one launch of the child.
type Spec struct {
	Path   string    // resolved executable path, or a bare name looked up in PATH
	Args   []string  // argv including argv[0]
	Env    []string  // full environment, KEY=VALUE
	Dir    string    // working directory ("" = ours)
	Stdin  io.Reader // nil = /dev/null; os.Stdin is passed as the fd itself
	Stdout io.Writer // where the child's stdout goes, byte for byte
	Stderr io.Writer // where the child's stderr goes, byte for byte
	Sink   LineSink  // may be nil
	// TailLines is how many of the last lines (both streams) Process.Tail keeps.
	TailLines int
	// MaxLine caps one line's length as seen by Sink and the tail; longer lines
	// are cut (the bytes still pass through untouched).
	MaxLine int
}

// Exit is how a process ended.
type Exit struct {
	Code     int           // exit code, or 128+N when signal N killed it; 127/126 on start errors
	Signal   os.Signal     // the signal that killed it, or nil
	StartErr error         // non-nil when the process never started
	Uptime   time.Duration // from start to exit
}

// Launcher starts child processes.
type Launcher interface {
	// Launch starts the child described by spec. A start failure is returned
	// as a Process whose Wait reports Exit.StartErr (code 127 or 126), never
	// as a panic. The returned error is only for programming errors (empty argv).
	Launch(ctx context.Context, spec Spec) (Process, error)
}

// Process is one running child and its tree.
type Process interface {
	// Pid is the child's pid (0 if it never started).
	Pid() int
	// Signal sends sig to the child's whole process group. Safe to call
	// concurrently and after exit (then it is a no-op).
	Signal(sig os.Signal) error
	// Done is closed when the child has exited and its output has been drained.
	Done() <-chan struct{}
	// Wait blocks until Done and returns how the child ended. It may be called
	// more than once.
	Wait() Exit
	// Tail returns a copy of the last lines the child printed.
	Tail() []string
	// LastOutput is when the child last wrote to stdout or stderr (its start
	// time when it has written nothing yet).
	LastOutput() time.Time
}

// Clock is the only way the Supervisor reads or waits on time.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
