package gpu

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tooLong bounds every wait on a real child.
const tooLong = 10 * time.Second

// statLine builds a /proc/<pid>/stat line: 19 fields between ppid and rss.
func statLine(pid int, comm, state string, ppid, rss int) string {
	return fmt.Sprintf("%d (%s) %s %d%s %d 0 0 0\n", pid, comm, state, ppid, strings.Repeat(" 0", 19), rss)
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		line     string
		wantPPid int
		wantRSS  uint64
		wantErr  bool
	}{
		{"plain", statLine(42, "python", "S", 7, 1234), 7, 1234, false},
		{"name with spaces and parens", statLine(42, "a) b (c)", "R", 9, 5), 9, 5, false},
		{"zombie has no rss", statLine(43, "sh", "Z", 1, 0), 1, 0, false},
		{"no name", "42 python S 7\n", 0, 0, true},
		{"truncated", "42 (python) S 7 42\n", 0, 0, true},
		{"bad ppid", "42 (python) S x" + strings.Repeat(" 0", 19) + " 1\n", 0, 0, true},
		{"bad rss", "42 (python) S 1" + strings.Repeat(" 0", 19) + " x\n", 0, 0, true},
	}
	for _, tt := range tests {
		got, err := parseStat([]byte(tt.line))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseStat(%s) error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if err == nil && (got.ppid != tt.wantPPid || got.rss != tt.wantRSS) {
			t.Errorf("parseStat(%s) = ppid %d rss %d, want ppid %d rss %d", tt.name, got.ppid, got.rss, tt.wantPPid, tt.wantRSS)
		}
	}
}

// fakeProc writes a /proc with the given pid -> (ppid, rss pages) and fd
// links.
func fakeProc(t *testing.T, procs map[int][2]int, fds map[int][]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, pr := range procs {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		line := statLine(pid, fmt.Sprintf("proc %d", pid), "S", pr[0], pr[1])
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		for i, target := range fds[pid] {
			if err := os.Symlink(target, filepath.Join(dir, "fd", fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, junk := range []string{"self", "sys", "meminfo"} {
		if err := os.WriteFile(filepath.Join(root, junk), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestTreeRSS_fakeProc(t *testing.T) {
	t.Parallel()
	//   1 ── 10 ── 11 ── 12
	//   │     └─── 13
	//   ├── 20 (orphan reparented to 1)
	//   └── 30 ── 31
	root := fakeProc(t, map[int][2]int{
		1: {0, 100}, 10: {1, 10}, 11: {10, 20}, 12: {11, 40}, 13: {10, 80},
		20: {1, 1000}, 30: {1, 5}, 31: {30, 7},
	}, nil)
	page := uint64(os.Getpagesize())
	tests := []struct {
		name      string
		roots     []int
		wantPages uint64
		wantPids  []int
	}{
		{"child and its tree", []int{10}, 150, []int{10, 11, 12, 13}},
		{"leaf", []int{12}, 40, []int{12}},
		{"child and orphan", []int{10, 20}, 1150, []int{10, 11, 12, 13, 20}},
		{"overlapping roots count once", []int{10, 11, 12}, 150, []int{10, 11, 12, 13}},
		{"gone pid", []int{99}, 0, nil},
	}
	for _, tt := range tests {
		total, pids, err := treeRSS(root, tt.roots)
		if err != nil {
			t.Fatalf("treeRSS(%s): %v", tt.name, err)
		}
		if total != tt.wantPages*page || !slices.Equal(pids, tt.wantPids) {
			t.Errorf("treeRSS(%s) = %d, %v, want %d, %v", tt.name, total, pids, tt.wantPages*page, tt.wantPids)
		}
	}
	got, err := descendantsOf(root, 10)
	if err != nil || !slices.Equal(got, []int{11, 12, 13}) {
		t.Errorf("descendantsOf(10) = %v, %v, want [11 12 13]", got, err)
	}
	if _, _, err := treeRSS(filepath.Join(root, "missing"), []int{1}); err == nil {
		t.Error("treeRSS(missing /proc) error = nil, want error")
	}
}

func TestHolders_fakeProc(t *testing.T) {
	t.Parallel()
	root := fakeProc(t, map[int][2]int{
		10: {1, 1}, 11: {10, 1}, 12: {10, 1}, 13: {10, 1},
	}, map[int][]string{
		10: {"/dev/null", "pipe:[123]"},
		11: {"/dev/null", "/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm"},
		12: {"socket:[9]", "/dev/nvidia-uvm"},
		13: {"/dev/nvme0n1"},
	})
	got := holders(root, []int{13, 12, 11, 10, 11, 99})
	if want := []int{11, 12}; !slices.Equal(got, want) {
		t.Errorf("holders = %v, want %v", got, want)
	}
}

// startTree starts sh with two sleeping children and waits until it says
// they have been forked.
func startTree(t testing.TB) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30 & echo ready; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("child said %q, want ready", line)
		}
	case <-time.After(tooLong):
		t.Fatal("child did not say ready")
	}
	return cmd
}

func TestTreeRSS_realChild(t *testing.T) {
	t.Parallel()
	cmd := startTree(t)
	pid := cmd.Process.Pid
	total, pids, err := TreeRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 3 || !slices.Contains(pids, pid) {
		t.Errorf("TreeRSS(sh) pids = %v, want sh %d and its two sleeps", pids, pid)
	}
	if total == 0 || total > 1<<30 {
		t.Errorf("TreeRSS(sh) = %d bytes, want a small positive number", total)
	}
	desc, err := DescendantsOf(pid)
	if err != nil || len(desc) != 2 || slices.Contains(desc, pid) {
		t.Errorf("DescendantsOf(sh) = %v, %v, want the two sleeps", desc, err)
	}
	self := os.Getpid()
	_, mine, err := TreeRSSOf([]int{self})
	if err != nil || !slices.Contains(mine, self) || !slices.Contains(mine, pid) {
		t.Errorf("TreeRSSOf(test) = %v, %v, want it to hold the test %d and sh %d", mine, err, self, pid)
	}
	if got := NvidiaHoldersAmong(pids); len(got) != 0 {
		t.Errorf("NvidiaHoldersAmong(sh tree) = %v, want none", got)
	}
}

func TestTreeRSS_gonePid(t *testing.T) {
	t.Parallel()
	total, pids, err := TreeRSS(1 << 30)
	if total != 0 || pids != nil || err != nil {
		t.Errorf("TreeRSS(no such pid) = %d, %v, %v, want 0, nil, nil", total, pids, err)
	}
}

func TestHoldersOfNvidiaDevices_noGPU(t *testing.T) {
	t.Parallel()
	if m, _ := filepath.Glob("/dev/nvidia*"); len(m) > 0 {
		t.Skip("this machine has NVIDIA devices")
	}
	got, err := HoldersOfNvidiaDevices()
	if err != nil || len(got) != 0 {
		t.Errorf("HoldersOfNvidiaDevices() = %v, %v, want none", got, err)
	}
}

func BenchmarkTreeRSS(b *testing.B) {
	cmd := startTree(b)
	pid := cmd.Process.Pid
	for b.Loop() {
		if _, _, err := TreeRSS(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHoldersOfNvidiaDevices(b *testing.B) {
	for b.Loop() {
		if _, err := HoldersOfNvidiaDevices(); err != nil {
			b.Fatal(err)
		}
	}
}
