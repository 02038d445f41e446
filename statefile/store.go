package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// File names inside the snapshot directory: NAME.snap holds the bytes and
// NAME.json the Snapshot that describes them. The sidecar is written second,
// so a snapshot exists only once both are on disk.
const (
	dataExt = ".snap"
	metaExt = ".json"
)

// Store keeps named, checksummed snapshots of one state file in a directory
// of its own (dir 0700, files 0600) and restores them. It is safe for
// concurrent use within one process; one run directory belongs to one guard.
type Store struct {
	mu        sync.Mutex
	stateFile string
	dir       string
	opt       Options
}

var _ StoreAPI = (*Store)(nil)

// NewStore returns a Store for stateFile that keeps its snapshots in dir,
// normally filepath.Join(runDir, SnapshotDir). dir is created with mode 0700
// (an existing one is set to 0700). The state file need not exist yet.
// Errors: negative Keep or MaxAge, or dir cannot be created.
func NewStore(stateFile, dir string, opt Options) (*Store, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new store: %w", err)
	}
	if stateFile == "" {
		return nil, errors.New("new store: empty state file path")
	}
	abs, err := filepath.Abs(stateFile)
	if err != nil {
		return nil, fmt.Errorf("new store %s: %w", stateFile, err)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("new store %s: %w", dir, err)
	}
	s := &Store{stateFile: abs, dir: absDir, opt: opt}
	if err := s.ensureDir(); err != nil {
		return nil, fmt.Errorf("new store: %w", err)
	}
	return s, nil
}

// StateFile returns the absolute path of the state file.
func (s *Store) StateFile() string { return s.stateFile }

// Dir returns the absolute path of the snapshot directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) ensureDir() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create snapshot dir %s: %w", s.dir, err)
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("create snapshot dir %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) dataPath(name string) string { return filepath.Join(s.dir, name+dataExt) }
func (s *Store) metaPath(name string) string { return filepath.Join(s.dir, name+metaExt) }

// readState reads the state file for op; a missing file is ErrNoState.
func (s *Store) readState(op string) ([]byte, error) {
	data, err := os.ReadFile(s.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s %s: %w", op, s.stateFile, ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return data, nil
}

// Check validates the current state file. It returns nil, an error matching
// ErrNoState when the file is missing, one matching ErrCorruptState (and
// wrapping the validator's error) when it is invalid, or a read error.
func (s *Store) Check() error {
	data, err := s.readState("check")
	if err != nil {
		return err
	}
	if err := validate(s.opt.Validate, s.stateFile, data); err != nil {
		return corrupt("check", s.stateFile, err)
	}
	return nil
}

// Snapshot reads the state file and, if it validates, stores it as a new
// snapshot tagged with reason. When the content equals the latest snapshot
// and that one still verifies, nothing is written and the latest is
// returned. Errors: ErrNoState, ErrCorruptState (wrapping the validator's
// error), or a read or write error naming the path.
func (s *Store) Snapshot(reason string) (Snapshot, error) {
	data, err := s.readState("snapshot")
	if err != nil {
		return Snapshot{}, err
	}
	if err := validate(s.opt.Validate, s.stateFile, data); err != nil {
		return Snapshot{}, corrupt("snapshot", s.stateFile, err)
	}
	snap, added, err := s.add(data, reason)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", s.stateFile, err)
	}
	if added && s.opt.OnSnapshot != nil {
		s.opt.OnSnapshot(snap)
	}
	return snap, nil
}

func (s *Store) add(data []byte, reason string) (Snapshot, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snaps, err := s.list()
	if err != nil {
		return Snapshot{}, false, err
	}
	snap := newSnapshot(snaps, data, reason, s.stateFile, s.opt.Now(), s.taken)
	if len(snaps) > 0 && snaps[0].SHA256 == snap.SHA256 && snaps[0].Size == snap.Size {
		// Equal bytes also prove the stored copy intact: data hashes to the
		// recorded checksum.
		if old, err := os.ReadFile(s.dataPath(snaps[0].Name)); err == nil && bytes.Equal(old, data) {
			return snaps[0], false, nil
		}
	}
	meta, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return Snapshot{}, false, err
	}
	if err := s.ensureDir(); err != nil {
		return Snapshot{}, false, err
	}
	// The data first, then the sidecar that makes it a snapshot; one
	// directory fsync after both makes both renames durable.
	if err := writeFileAtomic(s.dataPath(snap.Name), data, 0o600, false); err != nil {
		return Snapshot{}, false, fmt.Errorf("write %s: %w", s.dataPath(snap.Name), err)
	}
	if err := WriteFileAtomic(s.metaPath(snap.Name), append(meta, '\n'), 0o600); err != nil {
		_ = os.Remove(s.dataPath(snap.Name))
		return Snapshot{}, false, err
	}
	return snap, true, nil
}

// taken reports whether either file of a snapshot called name exists.
func (s *Store) taken(name string) bool {
	for _, p := range []string{s.dataPath(name), s.metaPath(name)} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// List returns every snapshot, newest first, without verifying checksums.
// Sidecars that do not parse are left out (Prune removes them). A missing
// snapshot directory is an empty list.
func (s *Store) List() ([]Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list()
}

func (s *Store) list() ([]Snapshot, error) {
	snaps, _, err := s.scan()
	return snaps, err
}

// scan reads the snapshot directory: the snapshots, newest first, and the
// files that belong to no snapshot (temp files, broken sidecars, data
// without a sidecar).
func (s *Store) scan() (snaps []Snapshot, stray []string, err error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots %s: %w", s.dir, err)
	}
	names := map[string]bool{}
	var datas []string
	for _, e := range entries {
		n := e.Name()
		switch {
		case !e.Type().IsRegular():
			continue
		case strings.HasSuffix(n, metaExt) && !strings.HasPrefix(n, "."):
			snap, ok := s.readMeta(strings.TrimSuffix(n, metaExt))
			if !ok {
				stray = append(stray, n)
				continue
			}
			snaps = append(snaps, snap)
			names[snap.Name] = true
		case strings.HasSuffix(n, dataExt) && !strings.HasPrefix(n, "."):
			datas = append(datas, n)
		default:
			stray = append(stray, n)
		}
	}
	for _, n := range datas {
		if !names[strings.TrimSuffix(n, dataExt)] {
			stray = append(stray, n)
		}
	}
	sortNewestFirst(snaps)
	return snaps, stray, nil
}

// readMeta reads the sidecar of name; ok is false when it is missing,
// unreadable, or does not describe name.
func (s *Store) readMeta(name string) (Snapshot, bool) {
	if checkName(name) != nil {
		return Snapshot{}, false
	}
	b, err := os.ReadFile(s.metaPath(name))
	if err != nil {
		return Snapshot{}, false
	}
	var snap Snapshot
	if err := json.Unmarshal(b, &snap); err != nil || snap.Name != name || !validMeta(snap) {
		return Snapshot{}, false
	}
	return snap, true
}

// load reads a snapshot's bytes and verifies them (ErrChecksum).
func (s *Store) load(snap Snapshot) ([]byte, error) {
	data, err := os.ReadFile(s.dataPath(snap.Name))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: %w", snap.Name, ErrChecksum, err)
	}
	if err := verifyBytes(snap, data); err != nil {
		return nil, err
	}
	return data, nil
}

// Latest returns the newest snapshot whose bytes still match its checksum,
// skipping corrupt ones. With none, the error matches ErrNoSnapshot.
func (s *Store) Latest() (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, _, err := s.latest()
	return snap, err
}

func (s *Store) latest() (Snapshot, []byte, error) {
	snaps, err := s.list()
	if err != nil {
		return Snapshot{}, nil, err
	}
	for _, snap := range snaps {
		if data, err := s.load(snap); err == nil {
			return snap, data, nil
		}
	}
	return Snapshot{}, nil, noGoodSnapshot(s.dir, len(snaps))
}

// get returns the named snapshot ("" = latest good) and its verified bytes.
func (s *Store) get(name string) (Snapshot, []byte, error) {
	if name == "" {
		return s.latest()
	}
	if err := checkName(name); err != nil {
		return Snapshot{}, nil, err
	}
	snap, ok := s.readMeta(name)
	if !ok {
		return Snapshot{}, nil, fmt.Errorf("snapshot %s in %s: %w", name, s.dir, ErrNoSnapshot)
	}
	data, err := s.load(snap)
	if err != nil {
		return Snapshot{}, nil, err
	}
	return snap, data, nil
}

// Show returns the bytes and description of the named snapshot ("" = the
// latest good one) after verifying its checksum. Errors: ErrNoSnapshot,
// ErrChecksum.
func (s *Store) Show(name string) ([]byte, Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, data, err := s.get(name)
	if err != nil {
		return nil, Snapshot{}, fmt.Errorf("show: %w", err)
	}
	return data, snap, nil
}

// Restore verifies the named snapshot ("" = the latest good one) and
// atomically writes its bytes over the state file, keeping the file's mode
// (0600 when it did not exist). Errors: ErrNoSnapshot, ErrChecksum (the
// state file is then untouched), or a write error naming the state file.
func (s *Store) Restore(name string) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, data, err := s.get(name)
	if err != nil {
		return Snapshot{}, fmt.Errorf("restore: %w", err)
	}
	perm := os.FileMode(0o600)
	if fi, err := os.Stat(s.stateFile); err == nil && fi.Mode().IsRegular() {
		perm = fi.Mode().Perm()
	}
	if err := WriteFileAtomic(s.stateFile, data, perm); err != nil {
		return Snapshot{}, fmt.Errorf("restore %s: %w", snap.Name, err)
	}
	return snap, nil
}

// Prune applies retention: it keeps the Keep newest snapshots, drops those
// older than MaxAge, and never drops the newest snapshot that still
// verifies. It also removes files that belong to no snapshot (leftovers of
// a crash). removed counts snapshots only.
func (s *Store) Prune() (removed int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snaps, stray, err := s.scan()
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	good := -1
	for i, snap := range snaps {
		if _, err := s.load(snap); err == nil {
			good = i
			break
		}
	}
	var errs []error
	for _, i := range pruneDrop(snaps, good, s.opt.Keep, s.opt.MaxAge, s.opt.Now()) {
		name := snaps[i].Name
		// The sidecar goes first: without it the snapshot no longer exists,
		// and a data file left behind is a stray for the next Prune.
		if err := os.Remove(s.metaPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
		if err := os.Remove(s.dataPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, n := range stray {
		if err := os.Remove(filepath.Join(s.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("prune %s: %w", s.dir, err)
	}
	return removed, nil
}
