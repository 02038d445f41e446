package runner

import (
	"context"
	"io"
	"syscall"
)

// runOutputLimit caps what Run keeps of each stream.
const runOutputLimit = 4 << 20

// Run runs a short auxiliary command (nvidia-smi, a hook) to its end and
// returns what it wrote to stdout and stderr (each cut at 4 MiB) and how it
// ended. It goes through ExecLauncher and the reaper, which is the only safe
// way once the reaper runs: os/exec's Cmd.Wait would find the child already
// reaped.
//
// argv[0] is looked up in PATH; the environment is ours; a nil stdin reads
// as empty, an *os.File is passed as it is. When ctx is done first, the command's process group gets
// SIGKILL and Run returns once it is gone (Exit.Signal is SIGKILL). A
// command that cannot start gives Exit.StartErr and code 127 or 126, empty
// argv included.
func Run(ctx context.Context, argv []string, stdin io.Reader) (stdout, stderr []byte, exit Exit) {
	var out, errb cappedBuffer
	spec := Spec{Args: argv, Stdin: stdin, Stdout: &out, Stderr: &errb, TailLines: 1, MaxLine: 1}
	p, err := (&ExecLauncher{}).Start(ctx, spec)
	if err != nil {
		return nil, nil, Exit{Code: 127, StartErr: err}
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		_ = p.Signal(syscall.SIGKILL) // kill cannot refuse our own child's group
	}
	exit = p.Wait()
	return out.b, errb.b, exit
}

// cappedBuffer keeps the first runOutputLimit bytes written to it and never
// fails, so the pump keeps draining the child.
type cappedBuffer struct {
	b []byte
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := runOutputLimit - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}
