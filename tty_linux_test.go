package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's master and slave ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pty slave: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// runOnTTY runs the guard with a terminal as stdin, stdout and stderr,
// feeds input, and returns everything the terminal showed.
func runOnTTY(t *testing.T, input string, args ...string) string {
	t.Helper()
	master, slave := openPTY(t)
	cmd := exec.Command(guardBin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	if input != "" {
		if _, err := master.Write([]byte(input)); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&out, master); close(done) }() // ends with EIO once the guard exits
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(tooLong):
		_ = cmd.Process.Kill()
		t.Fatalf("guard on a terminal did not finish within %s", tooLong)
	}
	select {
	case <-done:
	case <-time.After(tooLong):
		t.Fatal("terminal output did not end")
	}
	return out.String()
}

func TestTTY_StatusLineAndSummaryTable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := runOnTTY(t, "", "--run-dir", filepath.Join(dir, "run"), "--max-attempts", "3", "--backoff-initial", "1500ms", "--backoff-max", "1500ms", "--exit-code", "child",
		"--", "sh", "-c", "echo 'KeyError: frames' >&2; exit 1")
	if !strings.Contains(out, "next:") || !strings.Contains(out, "\x1b[K") {
		t.Errorf("no status line with a countdown on the terminal:\n%q", out)
	}
	if !strings.Contains(out, "attempt  class") && !strings.Contains(out, "attempt\x20\x20class") {
		t.Errorf("no summary table at the end:\n%s", out)
	}
}

func TestTTY_WorkflowRunRecordsProgress(t *testing.T) {
	t.Parallel()
	runDir := filepath.Join(t.TempDir(), "run")
	// Step 1 done, step 2 skipped, then quit.
	out := runOnTTY(t, "y\ns\nq\n", "workflow", "run", "--run-dir", runDir, "disk-full")
	if !strings.Contains(out, "1.") || !strings.Contains(out, "done? [y = done") {
		t.Fatalf("workflow run did not walk the steps:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(runDir, "workflows", "disk-full.json"))
	var prog struct{ Done []int }
	if err != nil || json.Unmarshal(b, &prog) != nil || len(prog.Done) != 1 || prog.Done[0] != 1 {
		t.Errorf("progress file = %s, %v; want step 1 recorded", b, err)
	}
}
