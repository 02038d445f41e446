package statefile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newTestStore returns a Store for root/work/NAME with snapshots in
// root/run/states.
func newTestStore(t *testing.T, name string, opt Options) *Store {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(filepath.Join(root, "work", name), filepath.Join(root, "run", SnapshotDir), opt)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return s
}

func TestNewStore_Errors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	file := filepath.Join(root, "file")
	mustWrite(t, file, "x")
	tests := []struct {
		name  string
		state string
		dir   string
		opt   Options
		want  string
	}{
		{"negative keep", "s.json", root, Options{Keep: -1}, "keep -1"},
		{"negative max age", "s.json", root, Options{MaxAge: -time.Second}, "max age -1s"},
		{"empty state path", "", root, Options{}, "empty state file path"},
		{"dir under a file", "s.json", filepath.Join(file, SnapshotDir), Options{}, filepath.Join(file, SnapshotDir)},
	}
	for _, tt := range tests {
		s, err := NewStore(tt.state, tt.dir, tt.opt)
		if err == nil || s != nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewStore(%s) = %v, %v; want an error containing %q", tt.name, s, err, tt.want)
		}
	}
	if _, err := NewStore("s.json", filepath.Join(file, SnapshotDir), Options{}); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("NewStore under a file = %v, want ENOTDIR", err)
	}
}

func TestStore_Permissions(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, SnapshotDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, "state.json")
	s, err := NewStore(state, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("snapshot dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if err := os.WriteFile(state, stateJSON(1), 0o640); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot("launch")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range listDir(t, dir) {
		if fi, err := os.Stat(filepath.Join(dir, e)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, %v; want 0600", e, fi.Mode().Perm(), err)
		}
	}
	if _, err := s.Restore(snap.Name); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("restored state mode = %v, %v; want 0640 (kept)", fi.Mode().Perm(), err)
	}
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(snap.Name); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("recreated state mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestStore_SnapshotsAreNeverRewritten(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	s := newTestStore(t, "state.json", Options{Keep: 1, Now: clk.Now})
	mustWrite(t, s.StateFile(), string(stateJSON(1)))
	snap, err := s.Snapshot("launch")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{s.dataPath(snap.Name), s.metaPath(snap.Name)}
	before := make([]os.FileInfo, len(files))
	for i, p := range files {
		if before[i], err = os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Hour)
	if _, err := s.Snapshot("again"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	for i, p := range files {
		after, err := os.Stat(p)
		if err != nil || !os.SameFile(before[i], after) || !after.ModTime().Equal(before[i].ModTime()) {
			t.Errorf("%s was replaced or modified", filepath.Base(p))
		}
	}
}

func TestStore_SnapshotFormat(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, "state.json", Options{Now: newFakeClock().Now})
	mustWrite(t, s.StateFile(), string(stateJSON(1)))
	snap, err := s.Snapshot("launch")
	if err != nil {
		t.Fatal(err)
	}
	wantOnly(t, s.Dir(), snap.Name+".json", snap.Name+".snap")
	data, err := os.ReadFile(s.dataPath(snap.Name))
	if err != nil || !bytes.Equal(data, stateJSON(1)) {
		t.Errorf("%s.snap = %.30q, %v; want the state's bytes", snap.Name, data, err)
	}
	var meta Snapshot
	if err := LoadJSON(s.metaPath(snap.Name), &meta); err != nil || !sameSnapshot(meta, snap) {
		t.Errorf("sidecar = %+v, %v; want %+v", meta, err, snap)
	}
}

func TestStore_PruneRemovesStrays(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, "state.json", Options{})
	mustWrite(t, s.StateFile(), string(stateJSON(1)))
	snap, err := s.Snapshot("launch")
	if err != nil {
		t.Fatal(err)
	}
	strays := map[string]string{
		".x.snap.tmp-123":              "half a temp file",
		"20260101T000000.000Z-aa.snap": "data without a sidecar",
		"20260101T000000.000Z-bb.json": "{not json",
		"20260101T000000.000Z-cc.json": `{"name": "someone-else"}`,
	}
	for n, content := range strays {
		mustWrite(t, filepath.Join(s.Dir(), n), content)
	}
	if l, err := s.List(); err != nil || len(l) != 1 {
		t.Fatalf("List = %v, %v; want only %s", names(l), err, snap.Name)
	}
	if n, err := s.Prune(); err != nil || n != 0 {
		t.Fatalf("Prune = %d, %v; want 0, nil", n, err)
	}
	wantOnly(t, s.Dir(), snap.Name+".json", snap.Name+".snap")
}

func TestStore_SnapshotDirRemoved(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, "state.json", Options{})
	mustWrite(t, s.StateFile(), string(stateJSON(1)))
	if err := os.RemoveAll(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Latest(); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("Latest = %v, want ErrNoSnapshot", err)
	}
	if _, err := s.Snapshot("launch"); err != nil {
		t.Errorf("Snapshot after the dir was removed = %v, want it recreated", err)
	}
}

func TestStore_SnapshotWriteFails(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, "state.json", Options{})
	mustWrite(t, s.StateFile(), string(stateJSON(1)))
	// The snapshot dir's place is taken by a regular file.
	if err := os.RemoveAll(s.Dir()); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s.Dir(), "x")
	_, err := s.Snapshot("launch")
	if err == nil || !strings.Contains(err.Error(), s.Dir()) {
		t.Errorf("Snapshot = %v, want an error naming %s", err, s.Dir())
	}
	if _, err := s.List(); err == nil {
		t.Error("List of a snapshot dir that is a file = nil error")
	}
}

func TestStore_Validators(t *testing.T) {
	t.Parallel()
	errNoSteps := errors.New("no steps")
	tests := []struct {
		name  string
		file  string
		opt   Options
		data  string
		want  error
		wrap  error
		valid bool
	}{
		{"yaml valid", "state.yaml", Options{}, "step: 3\n", nil, nil, true},
		{"yaml torn", "state.yaml", Options{}, "step: [3,\n", ErrCorruptState, nil, false},
		{"custom rejects", "state.json", Options{Validate: func(string, []byte) error { return errNoSteps }}, "{}", ErrCorruptState, errNoSteps, false},
		{"custom accepts non-json", "state.json", Options{Validate: func(string, []byte) error { return nil }}, "{", nil, nil, true},
		{"binary non-empty", "state.pt", Options{}, "\x00", nil, nil, true},
	}
	for _, tt := range tests {
		s := newTestStore(t, tt.file, tt.opt)
		mustWrite(t, s.StateFile(), tt.data)
		_, err := s.Snapshot("x")
		if tt.valid != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) || (tt.wrap != nil && !errors.Is(err, tt.wrap)) {
			t.Errorf("Snapshot(%s) = %v, want valid=%v", tt.name, err, tt.valid)
		}
	}
}

func TestStore_Concurrent(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, "state.json", Options{Keep: 3})
	mustWrite(t, s.StateFile(), string(stateJSON(0)))
	if _, err := s.Snapshot("launch"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				if err := WriteFileAtomic(s.StateFile(), stateJSON(g*100+i), 0o600); err != nil {
					errs <- err
				}
				if _, err := s.Snapshot(fmt.Sprint(g)); err != nil {
					errs <- err
				}
				if _, err := s.Prune(); err != nil {
					errs <- err
				}
				if _, err := s.Restore(""); err != nil {
					errs <- err
				}
				if _, err := s.List(); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check after concurrent use: %v", err)
	}
}
