package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// v1Unlimited is the smallest memory.limit_in_bytes that means "no limit"
// (the kernel reports PAGE_COUNTER_MAX rounded to pages, about 2^63).
const v1Unlimited = 1 << 62

// Cgroup is the memory cgroup the guard runs in.
type Cgroup struct {
	Version int    // 2, 1, or 0 when no memory cgroup was found
	Dir     string // the cgroup's directory under the mount
	// MemLimit is the tightest memory limit of the cgroup and its ancestors
	// visible under the mount, in bytes; 0 = none.
	MemLimit uint64
	// OOMKills counts processes the kernel OOM killer killed in this cgroup
	// (and, on v2, its descendants). Compare it before and after an
	// attempt: a rise means host_oom.
	OOMKills int
}

// Cgroup finds the guard's memory cgroup from SelfCgroup and reads its limit
// and oom_kill count. On a hybrid machine the v1 memory controller wins,
// since that is where memory is accounted. When the cgroup's own directory
// is not under the mount (a container that sees only its own cgroup), the
// mount's root stands for it. A missing /proc/self/cgroup gives Version 0
// and no error; a missing limit file means no limit; a missing oom_kill
// line (kernels before 4.13 on v1) means 0.
func (r Reader) Cgroup() (Cgroup, error) {
	root, self := r.CgroupRoot, r.SelfCgroup
	if root == "" {
		root = DefaultCgroupRoot
	}
	if self == "" {
		self = DefaultSelfCgroup
	}
	b, err := os.ReadFile(self)
	if errors.Is(err, fs.ErrNotExist) {
		return Cgroup{}, nil
	}
	if err != nil {
		return Cgroup{}, fmt.Errorf("read cgroup: %w", err)
	}
	v1Path, v2Path, hasV1, hasV2 := parseSelfCgroup(b)
	switch {
	case hasV1:
		return readV1(filepath.Join(root, "memory"), v1Path)
	case hasV2:
		return readV2(root, v2Path)
	}
	return Cgroup{}, nil
}

// parseSelfCgroup reads /proc/<pid>/cgroup: "ID:controllers:path" lines,
// where v2 is "0::path" and the v1 memory controller is a line whose
// controller list holds "memory".
func parseSelfCgroup(b []byte) (v1Path, v2Path string, hasV1, hasV2 bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Path, hasV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1Path, hasV1 = parts[2], true
			}
		}
	}
	return v1Path, v2Path, hasV1, hasV2
}

// ownDir is the cgroup's directory under mount, or mount itself when the
// path is not there.
func ownDir(mount, path string) string {
	dir := filepath.Join(mount, filepath.Clean("/"+path))
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return mount
}

// ancestors returns dir and its parents up to and including mount.
func ancestors(mount, dir string) []string {
	out := []string{dir}
	for dir != mount && strings.HasPrefix(dir, mount) {
		dir = filepath.Dir(dir)
		out = append(out, dir)
	}
	return out
}

func readV2(mount, path string) (Cgroup, error) {
	mount = filepath.Clean(mount)
	cg := Cgroup{Version: 2, Dir: ownDir(mount, path)}
	var errs []error
	for _, d := range ancestors(mount, cg.Dir) {
		lim, ok, err := readLimit(filepath.Join(d, "memory.max"), func(s string) (uint64, bool, error) {
			if s == "max" {
				return 0, false, nil
			}
			v, err := strconv.ParseUint(s, 10, 64)
			return v, err == nil, err
		})
		if err != nil {
			errs = append(errs, err)
		}
		if ok && (cg.MemLimit == 0 || lim < cg.MemLimit) {
			cg.MemLimit = lim
		}
	}
	n, err := readKey(filepath.Join(cg.Dir, "memory.events"), "oom_kill")
	if err != nil {
		errs = append(errs, err)
	}
	cg.OOMKills = n
	return cg, errors.Join(errs...)
}

func readV1(mount, path string) (Cgroup, error) {
	mount = filepath.Clean(mount)
	cg := Cgroup{Version: 1, Dir: ownDir(mount, path)}
	var errs []error
	for _, d := range ancestors(mount, cg.Dir) {
		lim, ok, err := readLimit(filepath.Join(d, "memory.limit_in_bytes"), func(s string) (uint64, bool, error) {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, false, err
			}
			return v, v < v1Unlimited, nil
		})
		if err != nil {
			errs = append(errs, err)
		}
		if ok && (cg.MemLimit == 0 || lim < cg.MemLimit) {
			cg.MemLimit = lim
		}
	}
	n, err := readKey(filepath.Join(cg.Dir, "memory.oom_control"), "oom_kill")
	if err != nil {
		errs = append(errs, err)
	}
	cg.OOMKills = n
	return cg, errors.Join(errs...)
}

// readLimit reads a one-value limit file; a missing file is no limit.
func readLimit(file string, parse func(string) (uint64, bool, error)) (uint64, bool, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read cgroup limit: %w", err)
	}
	v, ok, err := parse(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false, fmt.Errorf("parse cgroup limit %s: %w", file, err)
	}
	return v, ok, nil
}

// readKey reads the value of key from a flat-keyed file ("key value"
// lines); a missing file or key is 0.
func readKey(file, key string) (int, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cgroup events: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("parse %s in %s: %w", key, file, err)
		}
		return n, nil
	}
	return 0, nil
}
