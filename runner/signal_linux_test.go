package runner

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"TERM", syscall.SIGTERM},
		{"15", syscall.SIGTERM},
		{"sigkill", syscall.SIGKILL},
		{" int ", syscall.SIGINT},
		{"SIGUSR1", syscall.SIGUSR1},
		{"34", syscall.Signal(34)},
	}
	for _, tt := range tests {
		if got, err := ParseSignal(tt.in); got != tt.want || err != nil {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "0", "65", "-1", "SIGNOPE", "NOPE", "SIG"} {
		if _, err := ParseSignal(bad); !errors.Is(err, ErrUnknownSignal) {
			t.Errorf("ParseSignal(%q) error = %v, want ErrUnknownSignal", bad, err)
		}
	}
}

func TestSignalName(t *testing.T) {
	tests := []struct {
		in   os.Signal
		want string
	}{
		{syscall.SIGKILL, "SIGKILL"},
		{os.Interrupt, "SIGINT"},
		{syscall.Signal(40), "40"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := SignalName(tt.in); got != tt.want {
			t.Errorf("SignalName(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for n := 1; n <= maxSignal; n++ {
		name := SignalName(syscall.Signal(n))
		if got, err := ParseSignal(name); got != syscall.Signal(n) || err != nil {
			t.Errorf("ParseSignal(SignalName(%d) = %q) = %v, %v", n, name, got, err)
		}
	}
}
