package runner

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestKillTree_SetsidGrandchild(t *testing.T) {
	t.Parallel()
	p, rec := mustStart(t, nil, helperSpec(t, "spawn-setsid-grandchild"))
	var gpid int
	if _, err := fmt.Sscanf(rec.waitLine(t, p, "grandchild "), "grandchild %d", &gpid); err != nil {
		t.Fatal(err)
	}
	rec.waitLine(t, p, "ready")
	if d := Descendants(p.Pid()); !slices.Contains(d, gpid) {
		t.Fatalf("Descendants(%d) = %v, want it to hold the grandchild %d", p.Pid(), d, gpid)
	}
	if sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(gpid), 0, 0); int(sid) != gpid {
		t.Fatalf("grandchild session = %d, want its own (%d)", sid, gpid)
	}
	if err := KillTree(p, tooLong); err != nil {
		t.Fatalf("KillTree: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", gpid)); err == nil {
		t.Errorf("grandchild %d still there after KillTree returned", gpid)
	}
	if ex := waitExit(t, p); ex.Signal != syscall.SIGKILL {
		t.Errorf("exit = %+v, want SIGKILL", ex)
	}
}

func TestKillTree_ChildIgnoringTerm(t *testing.T) {
	t.Parallel()
	p, rec := mustStart(t, nil, helperSpec(t, "ignore-term"))
	rec.waitLine(t, p, "ready")
	// An ignored signal is discarded when sent, so after this returns the
	// child has outlived SIGTERM.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := KillTree(p, tooLong); err != nil {
		t.Fatalf("KillTree: %v", err)
	}
	if ex := waitExit(t, p); ex.Code != 137 || ex.Signal != syscall.SIGKILL {
		t.Errorf("exit = %+v, want 137 SIGKILL", ex)
	}
	if err := KillTree(p, tooLong); err != nil {
		t.Errorf("second KillTree: %v", err)
	}
}

func TestKillTree_LeavesOtherChildren(t *testing.T) {
	t.Parallel()
	other, orec := mustStart(t, nil, helperSpec(t, "spawn-setsid-grandchild"))
	orec.waitLine(t, other, "ready")
	p, rec := mustStart(t, nil, helperSpec(t, "ignore-term"))
	rec.waitLine(t, p, "ready")
	if err := KillTree(p, tooLong); err != nil {
		t.Fatalf("KillTree: %v", err)
	}
	waitExit(t, p)
	select {
	case <-other.Done():
		t.Fatalf("KillTree of one child killed another: %+v", other.Wait())
	default:
	}
	if len(Descendants(other.Pid())) != 1 {
		t.Errorf("other child's tree = %v, want its grandchild left alone", Descendants(other.Pid()))
	}
}

func TestReaper_ReapsOrphansAsSubreaper(t *testing.T) {
	t.Parallel()
	var stdout syncBuffer
	spec := helperSpec(t, "fork-many", "5", "7")
	spec.Stdout = &stdout
	p, _ := mustStart(t, nil, spec)
	if ex := waitExit(t, p); ex.Code != 7 {
		t.Fatalf("exit = %+v, want 7", ex)
	}
	var pids []int
	for _, line := range strings.Split(string(stdout.Bytes()), "\n") {
		var pid int
		if _, err := fmt.Sscanf(line, "grandchild %d", &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 5 {
		t.Fatalf("got grandchildren %v, want 5", pids)
	}
	waitGone(t, pids)
}

func TestReaper_ReapsZombiesAsPID1(t *testing.T) {
	t.Parallel()
	spec := helperSpec(t, "pid1", "4", "7")
	ctx := context.Background()
	if _, stderr, ex := Run(ctx, []string{"unshare", "--pid", "--fork", "--mount-proc", "true"}, nil); ex.Code != 0 {
		t.Skipf("cannot make a pid namespace (unshare exit %d, %v): %s", ex.Code, ex.StartErr, stderr)
	}
	spec.Path = "unshare"
	spec.Args = append([]string{"unshare", "--pid", "--fork", "--mount-proc"}, spec.Args...)
	var stderr syncBuffer
	spec.Stderr = &stderr
	p, rec := mustStart(t, nil, spec)
	if ex := waitExit(t, p); ex.Code != 0 {
		t.Fatalf("exit = %+v, want 0; stderr:\n%s", ex, stderr.Bytes())
	}
	if got, want := rec.stream(Stdout), []string{"pid=1 exit=7 orphans=4 zombies=0"}; !slices.Equal(got, want) {
		t.Errorf("PID 1 reported %q, want %q; stderr:\n%s", got, want, stderr.Bytes())
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want procInfo
		ok   bool
	}{
		{"plain", "42 (python) S 7 42 42 0", procInfo{pid: 42, ppid: 7, state: 'S'}, true},
		{"comm with spaces and parens", "42 (a) b) (c) Z 1 42 42 0", procInfo{pid: 42, ppid: 1, state: 'Z'}, true},
		{"truncated", "42 (python)", procInfo{}, false},
		{"no comm", "42 python S 7", procInfo{}, false},
	}
	for _, tt := range tests {
		got, ok := parseStat(42, []byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseStat(%s) = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDescendants_Tree(t *testing.T) {
	procs := []procInfo{{pid: 1, ppid: 0, state: 'S'}, {pid: 10, ppid: 1, state: 'S'}, {pid: 11, ppid: 10, state: 'S'}, {pid: 12, ppid: 11, state: 'Z'}, {pid: 20, ppid: 1, state: 'S'}, {pid: 21, ppid: 20, state: 'S'}, {pid: 30, ppid: 10, state: 'S'}}
	if got, want := descendants(procs, 10, nil), []int{11, 30, 12}; !slices.Equal(got, want) {
		t.Errorf("descendants(10) = %v, want %v", got, want)
	}
	if got, want := descendants(procs, 1, map[int]bool{10: true}), []int{20, 21}; !slices.Equal(got, want) {
		t.Errorf("descendants(1) skipping 10 = %v, want %v", got, want)
	}
	if got := descendants(procs, 99, nil); got != nil {
		t.Errorf("descendants(99) = %v, want none", got)
	}
}
