package statefile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fixture is a store under contract test plus the hands of the world around
// it: the child writing the state file, bit rot in a snapshot, a directory
// that goes away.
type fixture interface {
	StoreAPI
	Prune() (int, error)
	Show(name string) ([]byte, Snapshot, error)
	statePath() string
	writeState(t *testing.T, data []byte)
	readState(t *testing.T) []byte // nil when missing
	corrupt(t *testing.T, name string)
	breakStateDir(t *testing.T, err syscall.Errno) // ENOENT: removed; ENOTDIR: a file now
}

type diskFixture struct {
	*Store
	stateDir string
}

func newDiskFixture(t *testing.T, opt Options) fixture {
	root := t.TempDir()
	stateDir := filepath.Join(root, "work")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(filepath.Join(stateDir, "state.json"), filepath.Join(root, ".wan22-guard", SnapshotDir), opt)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return &diskFixture{Store: s, stateDir: stateDir}
}

func (f *diskFixture) statePath() string { return f.StateFile() }

func (f *diskFixture) writeState(t *testing.T, data []byte) {
	t.Helper()
	// A plain write, as a careless child does it: a crash can leave it torn.
	if err := os.WriteFile(f.StateFile(), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *diskFixture) readState(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(f.StateFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *diskFixture) corrupt(t *testing.T, name string) {
	t.Helper()
	p := f.dataPath(name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *diskFixture) breakStateDir(t *testing.T, errno syscall.Errno) {
	t.Helper()
	if err := os.RemoveAll(f.stateDir); err != nil {
		t.Fatal(err)
	}
	if errno == syscall.ENOTDIR {
		if err := os.WriteFile(f.stateDir, []byte("not a directory"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type memFixture struct{ *MemStore }

func newMemFixture(t *testing.T, opt Options) fixture {
	m, err := NewMemStore("/work/state.json", opt)
	if err != nil {
		t.Fatalf("NewMemStore: %v", err)
	}
	return memFixture{m}
}

func (f memFixture) statePath() string                 { return f.StateFile() }
func (f memFixture) writeState(_ *testing.T, b []byte) { f.SetState(b) }

func (f memFixture) readState(t *testing.T) []byte {
	b, err := f.State()
	if errors.Is(err, ErrNoState) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f memFixture) corrupt(t *testing.T, name string) {
	t.Helper()
	if err := f.CorruptSnapshot(name); err != nil {
		t.Fatal(err)
	}
}

func (f memFixture) breakStateDir(_ *testing.T, errno syscall.Errno) { f.FailState(errno) }

func TestStore_Contract(t *testing.T) {
	t.Parallel()
	testStoreContract(t, newDiskFixture)
}

func TestMemStore_Contract(t *testing.T) {
	t.Parallel()
	testStoreContract(t, newMemFixture)
}

var nameRE = regexp.MustCompile(`^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}(-\d+)?$`)

// testStoreContract is the behaviour every StoreAPI implementation shares.
func testStoreContract(t *testing.T, newStore func(t *testing.T, opt Options) fixture) {
	snap := func(t *testing.T, f fixture, reason string) Snapshot {
		t.Helper()
		s, err := f.Snapshot(reason)
		if err != nil {
			t.Fatalf("Snapshot(%q): %v", reason, err)
		}
		return s
	}
	latest := func(t *testing.T, f fixture) Snapshot {
		t.Helper()
		s, err := f.Latest()
		if err != nil {
			t.Fatalf("Latest: %v", err)
		}
		return s
	}
	list := func(t *testing.T, f fixture) []Snapshot {
		t.Helper()
		l, err := f.List()
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		return l
	}
	wantState := func(t *testing.T, f fixture, want []byte) {
		t.Helper()
		if got := f.readState(t); !bytes.Equal(got, want) {
			t.Fatalf("state file = %.40q, want %.40q", got, want)
		}
	}
	wantErr := func(t *testing.T, what string, err, target error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Fatalf("%s: error %v, want %v", what, err, target)
		}
	}

	v1, v2, v3 := stateJSON(1), stateJSON(2), stateJSON(3)

	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock()
		f := newStore(t, Options{Now: clk.Now})
		f.writeState(t, v1)
		if err := f.Check(); err != nil {
			t.Fatalf("Check: %v", err)
		}
		s1 := snap(t, f, "launch")
		sum := sha256.Sum256(v1)
		want := Snapshot{Seq: 1, Time: clk.Now(), Size: int64(len(v1)), SHA256: hex.EncodeToString(sum[:]), Reason: "launch", Source: f.statePath()}
		want.Name = s1.Name
		if !sameSnapshot(s1, want) {
			t.Errorf("Snapshot = %+v, want %+v", s1, want)
		}
		if !nameRE.MatchString(s1.Name) || !strings.HasPrefix(s1.Name, "20261129T094512.123Z-"+want.SHA256[:8]) {
			t.Errorf("name %q does not match %s", s1.Name, nameRE)
		}

		clk.Advance(time.Minute)
		f.writeState(t, v2)
		s2 := snap(t, f, "watch")
		if got := names(list(t, f)); !slices.Equal(got, []string{s2.Name, s1.Name}) {
			t.Errorf("List = %v, want [%s %s]", got, s2.Name, s1.Name)
		}
		if got := latest(t, f); !sameSnapshot(got, s2) {
			t.Errorf("Latest = %+v, want %+v", got, s2)
		}

		got, err := f.Restore(s1.Name)
		if err != nil || !sameSnapshot(got, s1) {
			t.Fatalf("Restore(%s) = %+v, %v; want %+v", s1.Name, got, err, s1)
		}
		wantState(t, f, v1)
		if got, err := f.Restore(""); err != nil || !sameSnapshot(got, s2) {
			t.Fatalf(`Restore("") = %+v, %v; want %+v`, got, err, s2)
		}
		wantState(t, f, v2)

		data, got, err := f.Show(s1.Name)
		if err != nil || !bytes.Equal(data, v1) || !sameSnapshot(got, s1) {
			t.Errorf("Show(%s) = %.20q, %+v, %v; want v1", s1.Name, data, got, err)
		}
	})

	t.Run("truncated state is rejected", func(t *testing.T) {
		t.Parallel()
		f := newStore(t, Options{})
		f.writeState(t, v1)
		s1 := snap(t, f, "launch")
		f.writeState(t, v2[:len(v2)/2]) // the child died mid-write

		_, err := f.Snapshot("watch")
		wantErr(t, "Snapshot of a torn file", err, ErrCorruptState)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Offset < 0 || !strings.Contains(err.Error(), f.statePath()) {
			t.Errorf("Snapshot error %q: want a *ParseError with an offset and the path", err)
		}
		wantErr(t, "Check of a torn file", f.Check(), ErrCorruptState)
		if n := len(list(t, f)); n != 1 {
			t.Errorf("List has %d snapshots after a rejected one, want 1", n)
		}

		got, err := f.Restore("")
		if err != nil || !sameSnapshot(got, s1) {
			t.Fatalf(`Restore("") = %+v, %v; want %+v`, got, err, s1)
		}
		wantState(t, f, v1)
		if err := f.Check(); err != nil {
			t.Errorf("Check after restore: %v", err)
		}
	})

	t.Run("empty state is rejected", func(t *testing.T) {
		t.Parallel()
		f := newStore(t, Options{Validate: func(string, []byte) error { return nil }})
		f.writeState(t, nil)
		_, err := f.Snapshot("launch")
		wantErr(t, "Snapshot of an empty file", err, ErrCorruptState)
		wantErr(t, "Check of an empty file", f.Check(), ErrCorruptState)
	})

	t.Run("corrupt snapshot is skipped", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock()
		f := newStore(t, Options{Now: clk.Now})
		f.writeState(t, v1)
		s1 := snap(t, f, "a")
		clk.Advance(time.Second)
		f.writeState(t, v2)
		s2 := snap(t, f, "b")
		f.corrupt(t, s2.Name)

		if got := latest(t, f); !sameSnapshot(got, s1) {
			t.Errorf("Latest = %s, want %s (the newest one is corrupt)", got.Name, s1.Name)
		}
		_, err := f.Restore(s2.Name)
		wantErr(t, "Restore of a corrupt snapshot", err, ErrChecksum)
		wantState(t, f, v2)
		_, _, err = f.Show(s2.Name)
		wantErr(t, "Show of a corrupt snapshot", err, ErrChecksum)

		if got, err := f.Restore(""); err != nil || !sameSnapshot(got, s1) {
			t.Fatalf(`Restore("") = %+v, %v; want %+v`, got, err, s1)
		}
		wantState(t, f, v1)

		// The same content as the corrupt latest is stored again.
		clk.Advance(time.Second)
		f.writeState(t, v2)
		s3 := snap(t, f, "c")
		if s3.Name == s2.Name || s3.SHA256 != s2.SHA256 || s3.Seq != 3 {
			t.Errorf("Snapshot after corruption = %+v, want a new snapshot of v2", s3)
		}
		if got := latest(t, f); !sameSnapshot(got, s3) {
			t.Errorf("Latest = %s, want %s", got.Name, s3.Name)
		}
	})

	t.Run("all snapshots corrupt", func(t *testing.T) {
		t.Parallel()
		f := newStore(t, Options{})
		f.writeState(t, v1)
		s1 := snap(t, f, "a")
		f.corrupt(t, s1.Name)
		f.writeState(t, v2)
		_, err := f.Latest()
		wantErr(t, "Latest", err, ErrNoSnapshot)
		_, err = f.Restore("")
		wantErr(t, `Restore("")`, err, ErrNoSnapshot)
		wantState(t, f, v2)
	})

	t.Run("duplicates are not stored", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock()
		var added atomic.Int32
		f := newStore(t, Options{Now: clk.Now, OnSnapshot: func(Snapshot) { added.Add(1) }})
		f.writeState(t, v1)
		s1 := snap(t, f, "a")
		clk.Advance(time.Second)
		if again := snap(t, f, "b"); !sameSnapshot(again, s1) {
			t.Errorf("second Snapshot of v1 = %+v, want the first %+v", again, s1)
		}
		if n := len(list(t, f)); n != 1 || added.Load() != 1 {
			t.Errorf("after a duplicate: %d snapshots, %d OnSnapshot calls; want 1, 1", n, added.Load())
		}
		f.writeState(t, v2)
		snap(t, f, "c")
		f.writeState(t, v1) // back to v1: not the latest, so it is stored
		s3 := snap(t, f, "d")
		if s3.Seq != 3 || len(list(t, f)) != 3 || added.Load() != 3 {
			t.Errorf("after v1 v2 v1: seq %d, %d snapshots, %d calls; want 3, 3, 3", s3.Seq, len(list(t, f)), added.Load())
		}
	})

	t.Run("names unique within a millisecond", func(t *testing.T) {
		t.Parallel()
		f := newStore(t, Options{Now: newFakeClock().Now})
		var got []string
		for _, v := range [][]byte{v1, v2, v1, v2} {
			f.writeState(t, v)
			got = append(got, snap(t, f, "x").Name)
		}
		slices.Sort(got)
		if len(slices.Compact(got)) != 4 {
			t.Errorf("names %v are not unique", got)
		}
		for _, n := range got {
			if !nameRE.MatchString(n) {
				t.Errorf("name %q does not match %s", n, nameRE)
			}
		}
	})

	t.Run("retention keeps the newest", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock()
		f := newStore(t, Options{Keep: 3, Now: clk.Now})
		var all []string
		for i := range 6 {
			f.writeState(t, stateJSON(i))
			all = append(all, snap(t, f, "x").Name)
			clk.Advance(time.Minute)
		}
		n, err := f.Prune()
		if err != nil || n != 3 {
			t.Fatalf("Prune = %d, %v; want 3, nil", n, err)
		}
		want := []string{all[5], all[4], all[3]}
		if got := names(list(t, f)); !slices.Equal(got, want) {
			t.Errorf("List after Prune = %v, want %v", got, want)
		}
		if n, err := f.Prune(); err != nil || n != 0 {
			t.Errorf("second Prune = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("retention by age keeps the newest good", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock()
		f := newStore(t, Options{MaxAge: time.Hour, Now: clk.Now})
		f.writeState(t, v1)
		snap(t, f, "a")
		clk.Advance(10 * time.Minute)
		f.writeState(t, v2)
		s2 := snap(t, f, "b")
		clk.Advance(2 * time.Hour)
		n, err := f.Prune()
		if err != nil || n != 1 {
			t.Fatalf("Prune = %d, %v; want 1, nil", n, err)
		}
		if got := names(list(t, f)); !slices.Equal(got, []string{s2.Name}) {
			t.Errorf("List after Prune = %v, want [%s]", got, s2.Name)
		}
	})

	t.Run("retention never drops the newest good", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock()
		f := newStore(t, Options{Keep: 1, Now: clk.Now})
		f.writeState(t, v1)
		s1 := snap(t, f, "a")
		clk.Advance(time.Second)
		f.writeState(t, v2)
		s2 := snap(t, f, "b")
		f.corrupt(t, s2.Name)
		if n, err := f.Prune(); err != nil || n != 0 {
			t.Fatalf("Prune = %d, %v; want 0 (s2 is within Keep, s1 is the newest good)", n, err)
		}
		if got := latest(t, f); !sameSnapshot(got, s1) {
			t.Errorf("Latest = %s, want %s", got.Name, s1.Name)
		}
		clk.Advance(time.Second)
		f.writeState(t, v3)
		s3 := snap(t, f, "c")
		if n, err := f.Prune(); err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want 2", n, err)
		}
		if got := names(list(t, f)); !slices.Equal(got, []string{s3.Name}) {
			t.Errorf("List = %v, want [%s]", got, s3.Name)
		}
	})

	t.Run("missing state file", func(t *testing.T) {
		t.Parallel()
		f := newStore(t, Options{})
		_, err := f.Snapshot("launch")
		wantErr(t, "Snapshot", err, ErrNoState)
		if !strings.Contains(err.Error(), f.statePath()) {
			t.Errorf("Snapshot error %q does not name %s", err, f.statePath())
		}
		wantErr(t, "Check", f.Check(), ErrNoState)
		_, err = f.Latest()
		wantErr(t, "Latest", err, ErrNoSnapshot)
		for _, name := range []string{"", "nope", "../../etc/passwd", "..", ".hidden", "a/b"} {
			_, err = f.Restore(name)
			wantErr(t, "Restore("+name+")", err, ErrNoSnapshot)
		}
		if got := list(t, f); len(got) != 0 {
			t.Errorf("List = %v, want none", names(got))
		}
		if n, err := f.Prune(); n != 0 || err != nil {
			t.Errorf("Prune = %d, %v; want 0, nil", n, err)
		}
		if f.readState(t) != nil {
			t.Error("a failed Restore created the state file")
		}
	})

	t.Run("state directory removed", func(t *testing.T) {
		t.Parallel()
		f := newStore(t, Options{})
		f.writeState(t, v1)
		s1 := snap(t, f, "launch")
		f.breakStateDir(t, syscall.ENOENT)

		_, err := f.Snapshot("watch")
		wantErr(t, "Snapshot", err, ErrNoState)
		wantErr(t, "Check", f.Check(), ErrNoState)
		_, err = f.Restore("")
		wantErr(t, "Restore", err, fs.ErrNotExist)
		if !strings.Contains(err.Error(), f.statePath()) {
			t.Errorf("Restore error %q does not name %s", err, f.statePath())
		}
		if got := latest(t, f); !sameSnapshot(got, s1) {
			t.Errorf("Latest = %s, want %s", got.Name, s1.Name)
		}
	})

	t.Run("state directory is a file", func(t *testing.T) {
		t.Parallel()
		f := newStore(t, Options{})
		f.writeState(t, v1)
		s1 := snap(t, f, "launch")
		f.breakStateDir(t, syscall.ENOTDIR)

		for what, err := range map[string]error{
			"Snapshot": func() error { _, err := f.Snapshot("watch"); return err }(),
			"Check":    f.Check(),
			"Restore":  func() error { _, err := f.Restore(s1.Name); return err }(),
		} {
			wantErr(t, what, err, syscall.ENOTDIR)
			if errors.Is(err, ErrNoState) || !strings.Contains(err.Error(), f.statePath()) {
				t.Errorf("%s error %q: want it to name %s and not be ErrNoState", what, err, f.statePath())
			}
		}
		if got := latest(t, f); !sameSnapshot(got, s1) {
			t.Errorf("Latest = %s, want %s", got.Name, s1.Name)
		}
	})
}
