package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

const procRoot = "/proc"

// nvidiaDevPrefix is what the fd links of a process using an NVIDIA GPU
// point at: /dev/nvidia0..N, /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-caps/...
const nvidiaDevPrefix = "/dev/nvidia"

// procStat is what TreeRSS needs from /proc/<pid>/stat.
type procStat struct {
	ppid int
	rss  uint64 // pages
}

// procScanner reads /proc/<pid>/stat files through one reused buffer.
type procScanner struct {
	root string
	buf  []byte
}

// table reads the parent and resident size of every process under root.
// Processes that exit during the scan are left out.
func (s *procScanner) table() (map[int]procStat, error) {
	names, err := readNames(s.root)
	if err != nil {
		return nil, err
	}
	t := make(map[int]procStat, len(names))
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		st, err := s.stat(pid)
		if err != nil {
			continue // gone, or not ours to read
		}
		t[pid] = st
	}
	return t, nil
}

// stat reads and parses /proc/<pid>/stat.
func (s *procScanner) stat(pid int) (procStat, error) {
	f, err := os.Open(s.root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	defer f.Close()
	if s.buf == nil {
		s.buf = make([]byte, 1024)
	}
	n := 0
	for {
		m, err := f.Read(s.buf[n:])
		n += m
		if err == io.EOF || m == 0 {
			break
		}
		if err != nil {
			return procStat{}, err
		}
		if n == len(s.buf) {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
	}
	return parseStat(s.buf[:n])
}

// parseStat parses the line of /proc/<pid>/stat. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("parse stat: no command name")
	}
	// After ") ": state(3) ppid(4) ... rss(24), so ppid is the 2nd field
	// and rss the 22nd.
	var st procStat
	field := 0
	rest := b[i+1:]
	for len(rest) > 0 && field < 22 {
		rest = bytes.TrimLeft(rest, " ")
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			j = len(rest)
		}
		tok := bytes.TrimSpace(rest[:j])
		rest = rest[j:]
		field++
		switch field {
		case 2:
			v, err := strconv.Atoi(string(tok))
			if err != nil {
				return procStat{}, fmt.Errorf("parse stat ppid: %w", err)
			}
			st.ppid = v
		case 22:
			v, err := strconv.ParseInt(string(tok), 10, 64)
			if err != nil {
				return procStat{}, fmt.Errorf("parse stat rss: %w", err)
			}
			st.rss = uint64(max(v, 0))
		}
	}
	if field < 22 {
		return procStat{}, errors.New("parse stat: too few fields")
	}
	return st, nil
}

// readNames lists a directory without sorting or stat-ing its entries.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// tree returns roots (those present in t) and all their descendants, sorted.
func tree(t map[int]procStat, roots []int) []int {
	children := make(map[int][]int, len(t))
	for pid, st := range t {
		children[st.ppid] = append(children[st.ppid], pid)
	}
	seen := make(map[int]bool)
	var out, queue []int
	for _, r := range roots {
		if _, ok := t[r]; ok && !seen[r] {
			seen[r] = true
			queue = append(queue, r)
		}
	}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, pid)
		for _, c := range children[pid] {
			if !seen[c] {
				seen[c] = true
				queue = append(queue, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TreeRSS returns the resident memory in bytes of pid and all its living
// descendants, and their pids (sorted, pid included when alive). A pid that
// no longer exists gives 0, nil, nil. The error is only for an unreadable
// /proc.
func TreeRSS(pid int) (total uint64, pids []int, err error) {
	return TreeRSSOf([]int{pid})
}

// TreeRSSOf is TreeRSS over several roots, each process counted once. Pass
// the child's pid together with the orphans reparented to the guard (its
// other children) to cover everything an attempt left running.
func TreeRSSOf(roots []int) (total uint64, pids []int, err error) {
	return treeRSS(procRoot, roots)
}

func treeRSS(root string, roots []int) (uint64, []int, error) {
	s := procScanner{root: root}
	if pages, pids, ok := s.walkRSS(roots); ok {
		return pages * uint64(os.Getpagesize()), pids, nil
	}
	t, err := s.table()
	if err != nil {
		return 0, nil, fmt.Errorf("read process table: %w", err)
	}
	pids := tree(t, roots)
	var pages uint64
	for _, p := range pids {
		pages += t[p].rss
	}
	return pages * uint64(os.Getpagesize()), pids, nil
}

// DescendantsOf returns the living descendants of pid (children,
// grandchildren, ...), sorted, without pid itself.
func DescendantsOf(pid int) ([]int, error) {
	return descendantsOf(procRoot, pid)
}

func descendantsOf(root string, pid int) ([]int, error) {
	s := procScanner{root: root}
	t, err := s.table()
	if err != nil {
		return nil, fmt.Errorf("read process table: %w", err)
	}
	all := tree(t, []int{pid})
	return slices.DeleteFunc(all, func(p int) bool { return p == pid }), nil
}

// HoldersOfNvidiaDevices returns the pids (sorted) of all processes that
// hold a /dev/nvidia* file open, found by reading /proc/*/fd links. Unlike
// NVML's process list it gives pids of this pid namespace, so it works inside
// containers. Processes whose fds we may not read are left out; the caller
// itself is included when it has NVML open. On a machine without NVIDIA
// devices the result is empty.
func HoldersOfNvidiaDevices() ([]int, error) {
	names, err := readNames(procRoot)
	if err != nil {
		return nil, fmt.Errorf("read process table: %w", err)
	}
	var pids []int
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return holders(procRoot, pids), nil
}

// NvidiaHoldersAmong returns those of pids (sorted, each once) that hold a
// /dev/nvidia* file open. It reads only their fd tables, so it is much
// cheaper than HoldersOfNvidiaDevices on a busy machine.
func NvidiaHoldersAmong(pids []int) []int {
	return holders(procRoot, pids)
}

func holders(root string, pids []int) []int {
	var out []int
	for _, pid := range pids {
		if holdsNvidia(root, pid) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func holdsNvidia(root string, pid int) bool {
	dir := root + "/" + strconv.Itoa(pid) + "/fd"
	fds, err := readNames(dir)
	if err != nil {
		return false // gone, or not ours to read
	}
	for _, fd := range fds {
		target, err := os.Readlink(dir + "/" + fd)
		if err == nil && strings.HasPrefix(target, nvidiaDevPrefix) {
			return true
		}
	}
	return false
}

// walkRSS sums the resident pages of roots and their descendants by walking
// down /proc/<pid>/task/<tid>/children, reading only the tree's own stat
// files instead of every process's. ok is false where the kernel does not
// offer the children files; the caller then scans the whole table.
func (s *procScanner) walkRSS(roots []int) (pages uint64, pids []int, ok bool) {
	seen := make(map[int]bool)
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		st, err := s.stat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		pids = append(pids, pid)
		pages += st.rss
		kids, ok := s.children(pid)
		if !ok {
			return 0, nil, false
		}
		queue = append(queue, kids...)
	}
	if len(pids) == 0 {
		return 0, nil, false // let the table scan say why
	}
	slices.Sort(pids)
	return pages, pids, true
}

// children lists pid's children from its threads' children files.
func (s *procScanner) children(pid int) ([]int, bool) {
	dir := s.root + "/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		if _, serr := os.Stat(s.root + "/" + strconv.Itoa(pid)); serr == nil {
			return nil, false // a process without task files: no children files either
		}
		return nil, true // exited meanwhile
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if _, serr := os.Stat(dir + "/" + t.Name()); serr == nil {
					return nil, false // the kernel has no children files
				}
			}
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out, true
}
