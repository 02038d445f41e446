package runner

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// signalNames are the names SignalName gives and ParseSignal accepts.
var signalNames = [...]struct {
	sig  syscall.Signal
	name string
}{
	{syscall.SIGABRT, "SIGABRT"},
	{syscall.SIGALRM, "SIGALRM"},
	{syscall.SIGBUS, "SIGBUS"},
	{syscall.SIGCHLD, "SIGCHLD"},
	{syscall.SIGCONT, "SIGCONT"},
	{syscall.SIGFPE, "SIGFPE"},
	{syscall.SIGHUP, "SIGHUP"},
	{syscall.SIGILL, "SIGILL"},
	{syscall.SIGINT, "SIGINT"},
	{syscall.SIGIO, "SIGIO"},
	{syscall.SIGKILL, "SIGKILL"},
	{syscall.SIGPIPE, "SIGPIPE"},
	{syscall.SIGPROF, "SIGPROF"},
	{syscall.SIGPWR, "SIGPWR"},
	{syscall.SIGQUIT, "SIGQUIT"},
	{syscall.SIGSEGV, "SIGSEGV"},
	{syscall.SIGSTKFLT, "SIGSTKFLT"},
	{syscall.SIGSTOP, "SIGSTOP"},
	{syscall.SIGSYS, "SIGSYS"},
	{syscall.SIGTERM, "SIGTERM"},
	{syscall.SIGTRAP, "SIGTRAP"},
	{syscall.SIGTSTP, "SIGTSTP"},
	{syscall.SIGTTIN, "SIGTTIN"},
	{syscall.SIGTTOU, "SIGTTOU"},
	{syscall.SIGURG, "SIGURG"},
	{syscall.SIGUSR1, "SIGUSR1"},
	{syscall.SIGUSR2, "SIGUSR2"},
	{syscall.SIGVTALRM, "SIGVTALRM"},
	{syscall.SIGWINCH, "SIGWINCH"},
	{syscall.SIGXCPU, "SIGXCPU"},
	{syscall.SIGXFSZ, "SIGXFSZ"},
}

// maxSignal is the highest signal number on Linux (SIGRTMAX).
const maxSignal = 64

// SignalName returns sig's name as in signal.h ("SIGKILL"), the number as
// text for a signal without a name (real-time signals), and "" for nil.
// ParseSignal accepts every name it returns.
func SignalName(sig os.Signal) string {
	if sig == nil {
		return ""
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return sig.String()
	}
	for _, n := range signalNames {
		if n.sig == s {
			return n.name
		}
	}
	return strconv.Itoa(int(s))
}

// ParseSignal reads a signal given as "SIGTERM", "TERM" or "15", in any
// case. Anything else, 0 included, is an error wrapping ErrUnknownSignal.
func ParseSignal(name string) (syscall.Signal, error) {
	s := strings.ToUpper(strings.TrimSpace(name))
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("%w: %q", ErrUnknownSignal, name)
		}
		return syscall.Signal(n), nil
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	for _, n := range signalNames {
		if n.name == s {
			return n.sig, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownSignal, name)
}
