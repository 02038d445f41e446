package host

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead_thisMachine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := Read(t.Context(), dir)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if f.MemTotal < 64<<20 || f.MemAvailable == 0 || f.MemAvailable > f.MemTotal {
		t.Errorf("memory total %d available %d, want sane numbers", f.MemTotal, f.MemAvailable)
	}
	if f.SwapFree > f.SwapTotal {
		t.Errorf("swap free %d > total %d", f.SwapFree, f.SwapTotal)
	}
	if f.CPUs < 1 || f.Load1 < 0 {
		t.Errorf("cpus %d load1 %v, want at least one CPU and a load >= 0", f.CPUs, f.Load1)
	}
	if f.DiskFree[dir] == 0 {
		t.Errorf("DiskFree[%s] = 0, want free bytes", dir)
	}
	if f.CgroupVersion < 0 || f.CgroupVersion > 2 || f.OOMKills < 0 {
		t.Errorf("cgroup version %d oom kills %d", f.CgroupVersion, f.OOMKills)
	}
	if f.CgroupMemLimit != 0 && f.CgroupMemLimit < 1<<20 {
		t.Errorf("cgroup limit %d, want 0 or a real limit", f.CgroupMemLimit)
	}
}

func TestRead_badPathKeepsTheRest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	f, err := Read(t.Context(), dir, missing)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Read error = %v, want one naming %s", err, missing)
	}
	if _, ok := f.DiskFree[missing]; ok {
		t.Errorf("DiskFree holds %s", missing)
	}
	if f.DiskFree[dir] == 0 || f.MemTotal == 0 {
		t.Errorf("Read = %+v, want the other facts filled in", f)
	}
}

// tree writes files (path -> content) under a new temp dir.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const v1Self = `12:pids:/user.slice
9:cpu,cpuacct:/user.slice
4:memory:/docker/abc
1:name=systemd:/docker/abc
0::/docker/abc
`

func TestReader_Cgroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		want    Cgroup // Dir relative to the cgroup root
		wantErr bool
	}{
		{
			name: "v2 with a limit",
			files: map[string]string{
				"self":                               "0::/kubepods/pod1/ctr\n",
				"cg/kubepods/pod1/ctr/memory.max":    "34359738368\n",
				"cg/kubepods/pod1/ctr/memory.events": "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n",
				"cg/kubepods/pod1/memory.max":        "max\n",
			},
			want: Cgroup{Version: 2, Dir: "kubepods/pod1/ctr", MemLimit: 32 << 30, OOMKills: 2},
		},
		{
			name: "v2 parent limit is tighter",
			files: map[string]string{
				"self":                                   "0::/system.slice/job.service\n",
				"cg/system.slice/job.service/memory.max": "max\n",
				"cg/system.slice/job.service/memory.events": "oom_kill 0\n",
				"cg/system.slice/memory.max":                "1073741824\n",
			},
			want: Cgroup{Version: 2, Dir: "system.slice/job.service", MemLimit: 1 << 30},
		},
		{
			name: "v2 no limit",
			files: map[string]string{
				"self":                     "0::/user.slice\n",
				"cg/user.slice/memory.max": "max\n",
			},
			want: Cgroup{Version: 2, Dir: "user.slice"},
		},
		{
			name: "v2 container sees only its own cgroup",
			files: map[string]string{
				"self":             "0::/\n",
				"cg/memory.max":    "8589934592\n",
				"cg/memory.events": "oom_kill 7\n",
			},
			want: Cgroup{Version: 2, Dir: "", MemLimit: 8 << 30, OOMKills: 7},
		},
		{
			name: "v2 path outside the mount falls back to its root",
			files: map[string]string{
				"self":             "0::/../../host/path\n",
				"cg/memory.max":    "4294967296\n",
				"cg/memory.events": "oom_kill 1\n",
			},
			want: Cgroup{Version: 2, Dir: "", MemLimit: 4 << 30, OOMKills: 1},
		},
		{
			name: "v2 bad limit",
			files: map[string]string{
				"self":          "0::/\n",
				"cg/memory.max": "lots\n",
			},
			want:    Cgroup{Version: 2, Dir: ""},
			wantErr: true,
		},
		{
			name: "v1 with a limit",
			files: map[string]string{
				"self": v1Self,
				"cg/memory/docker/abc/memory.limit_in_bytes": "17179869184\n",
				"cg/memory/docker/abc/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n",
				"cg/memory/docker/memory.limit_in_bytes":     "9223372036854771712\n",
				"cg/memory/memory.limit_in_bytes":            "9223372036854771712\n",
				"cg/unified/memory.max":                      "1\n",
			},
			want: Cgroup{Version: 1, Dir: "memory/docker/abc", MemLimit: 16 << 30, OOMKills: 4},
		},
		{
			name: "v1 unlimited and an old kernel without oom_kill",
			files: map[string]string{
				"self":                            "4:memory:/\n",
				"cg/memory/memory.limit_in_bytes": "9223372036854771712\n",
				"cg/memory/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\n",
			},
			want: Cgroup{Version: 1, Dir: "memory"},
		},
		{
			name: "v1 container whose host path is not mounted",
			files: map[string]string{
				"self":                            "4:memory:/process_api/xyz\n",
				"cg/memory/memory.limit_in_bytes": "2147483648\n",
				"cg/memory/memory.oom_control":    "oom_kill 9\n",
			},
			want: Cgroup{Version: 1, Dir: "memory", MemLimit: 2 << 30, OOMKills: 9},
		},
		{
			name:  "no memory cgroup",
			files: map[string]string{"self": "1:name=systemd:/\n"},
			want:  Cgroup{},
		},
		{
			name:  "no cgroup file",
			files: map[string]string{"other": ""},
			want:  Cgroup{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := tree(t, tt.files)
			cgRoot := filepath.Join(root, "cg")
			r := Reader{CgroupRoot: cgRoot, SelfCgroup: filepath.Join(root, "self")}
			got, err := r.Cgroup()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Cgroup() error = %v, want error %v", err, tt.wantErr)
			}
			if tt.want.Version != 0 {
				tt.want.Dir = filepath.Join(cgRoot, tt.want.Dir)
			}
			if got != tt.want {
				t.Errorf("Cgroup() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReader_Read_usesCgroup(t *testing.T) {
	t.Parallel()
	root := tree(t, map[string]string{
		"self":             "0::/\n",
		"cg/memory.max":    "8589934592\n",
		"cg/memory.events": "oom_kill 7\n",
	})
	r := Reader{CgroupRoot: filepath.Join(root, "cg"), SelfCgroup: filepath.Join(root, "self")}
	f, err := r.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if f.CgroupVersion != 2 || f.CgroupMemLimit != 8<<30 || f.OOMKills != 7 || f.DiskFree != nil {
		t.Errorf("Read() = %+v, want cgroup v2, 8 GiB, 7 oom kills, no disks", f)
	}
}

func TestReader_Cgroup_unreadable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	r := Reader{CgroupRoot: root, SelfCgroup: root} // a directory: read fails
	if _, err := r.Cgroup(); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("Cgroup() error = %v, want a read error", err)
	}
}

func BenchmarkHost(b *testing.B) {
	ctx := b.Context()
	for b.Loop() {
		if _, err := Read(ctx, "."); err != nil {
			b.Fatal(err)
		}
	}
}
