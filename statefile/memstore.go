package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
)

// MemStore is an in-memory StoreAPI for tests of the code that uses a store.
// It keeps the state file and the snapshots in memory and follows the same
// rules as Store (validation, naming, deduplication, checksums, retention);
// the contract tests run against both. The extra methods play the child
// (SetState, RemoveState), inspect the result (State) and inject faults
// (FailState, CorruptSnapshot). It is safe for concurrent use.
type MemStore struct {
	mu       sync.Mutex
	path     string
	opt      Options
	state    []byte
	hasState bool
	stateErr error
	snaps    []memSnap
}

type memSnap struct {
	meta Snapshot
	data []byte
}

var _ StoreAPI = (*MemStore)(nil)

// NewMemStore returns an empty MemStore for a state file named stateFile;
// the name picks the default validator and appears in errors. Errors: as
// NewStore for the options.
func NewMemStore(stateFile string, opt Options) (*MemStore, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new store: %w", err)
	}
	if stateFile == "" {
		return nil, errors.New("new store: empty state file path")
	}
	return &MemStore{path: stateFile, opt: opt}, nil
}

// StateFile returns the state file's name as given.
func (m *MemStore) StateFile() string { return m.path }

// SetState replaces the state file's content, as the child would (no
// validation; a torn write is just shorter data).
func (m *MemStore) SetState(data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state, m.hasState = slices.Clone(data), true
}

// RemoveState deletes the state file.
func (m *MemStore) RemoveState() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state, m.hasState = nil, false
}

// State returns a copy of the state file's content, or ErrNoState.
func (m *MemStore) State() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.hasState {
		return nil, fmt.Errorf("state %s: %w", m.path, ErrNoState)
	}
	return slices.Clone(m.state), nil
}

// FailState makes every later read and write of the state file fail with err
// (as an *fs.PathError), as when its directory is gone (syscall.ENOENT) or
// is not a directory (syscall.ENOTDIR). A nil err ends the failure.
func (m *MemStore) FailState(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stateErr = err
}

// CorruptSnapshot flips one bit of the named snapshot's stored bytes, as
// bit rot or a stray write would. Errors: ErrNoSnapshot.
func (m *MemStore) CorruptSnapshot(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.snaps {
		if m.snaps[i].meta.Name == name {
			if len(m.snaps[i].data) == 0 {
				m.snaps[i].data = []byte{0}
			} else {
				m.snaps[i].data[len(m.snaps[i].data)/2] ^= 0x01
			}
			return nil
		}
	}
	return fmt.Errorf("corrupt snapshot %s: %w", name, ErrNoSnapshot)
}

func (m *MemStore) readState(op string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stateErr != nil {
		err := &fs.PathError{Op: "open", Path: m.path, Err: m.stateErr}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: %w", op, m.path, ErrNoState)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !m.hasState {
		return nil, fmt.Errorf("%s %s: %w", op, m.path, ErrNoState)
	}
	return slices.Clone(m.state), nil
}

// Check validates the current state, as Store.Check.
func (m *MemStore) Check() error {
	data, err := m.readState("check")
	if err != nil {
		return err
	}
	if err := validate(m.opt.Validate, m.path, data); err != nil {
		return corrupt("check", m.path, err)
	}
	return nil
}

// Snapshot stores the current state if it validates, as Store.Snapshot.
func (m *MemStore) Snapshot(reason string) (Snapshot, error) {
	data, err := m.readState("snapshot")
	if err != nil {
		return Snapshot{}, err
	}
	if err := validate(m.opt.Validate, m.path, data); err != nil {
		return Snapshot{}, corrupt("snapshot", m.path, err)
	}
	m.mu.Lock()
	snaps := m.list()
	snap := newSnapshot(snaps, data, reason, m.path, m.opt.Now(), m.taken)
	if len(snaps) > 0 && snaps[0].SHA256 == snap.SHA256 {
		if _, err := m.load(snaps[0].Name); err == nil {
			m.mu.Unlock()
			return snaps[0], nil
		}
	}
	m.snaps = append(m.snaps, memSnap{meta: snap, data: data})
	m.mu.Unlock()
	if m.opt.OnSnapshot != nil {
		m.opt.OnSnapshot(snap)
	}
	return snap, nil
}

func (m *MemStore) taken(name string) bool {
	return slices.ContainsFunc(m.snaps, func(s memSnap) bool { return s.meta.Name == name })
}

// List returns every snapshot, newest first, as Store.List.
func (m *MemStore) List() ([]Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list(), nil
}

func (m *MemStore) list() []Snapshot {
	snaps := make([]Snapshot, 0, len(m.snaps))
	for _, s := range m.snaps {
		snaps = append(snaps, s.meta)
	}
	sortNewestFirst(snaps)
	return snaps
}

// load returns a copy of the named snapshot's verified bytes.
func (m *MemStore) load(name string) ([]byte, error) {
	for _, s := range m.snaps {
		if s.meta.Name == name {
			if err := verifyBytes(s.meta, s.data); err != nil {
				return nil, err
			}
			return slices.Clone(s.data), nil
		}
	}
	return nil, fmt.Errorf("snapshot %s in memory: %w", name, ErrNoSnapshot)
}

func (m *MemStore) get(name string) (Snapshot, []byte, error) {
	snaps := m.list()
	if name == "" {
		for _, s := range snaps {
			if data, err := m.load(s.Name); err == nil {
				return s, data, nil
			}
		}
		return Snapshot{}, nil, noGoodSnapshot("memory", len(snaps))
	}
	if err := checkName(name); err != nil {
		return Snapshot{}, nil, err
	}
	data, err := m.load(name)
	if err != nil {
		return Snapshot{}, nil, err
	}
	i := slices.IndexFunc(snaps, func(s Snapshot) bool { return s.Name == name })
	return snaps[i], data, nil
}

// Latest returns the newest snapshot that verifies, as Store.Latest.
func (m *MemStore) Latest() (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap, _, err := m.get("")
	return snap, err
}

// Show returns a snapshot's verified bytes, as Store.Show.
func (m *MemStore) Show(name string) ([]byte, Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap, data, err := m.get(name)
	if err != nil {
		return nil, Snapshot{}, fmt.Errorf("show: %w", err)
	}
	return data, snap, nil
}

// Restore writes a verified snapshot over the state, as Store.Restore.
func (m *MemStore) Restore(name string) (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap, data, err := m.get(name)
	if err != nil {
		return Snapshot{}, fmt.Errorf("restore: %w", err)
	}
	if m.stateErr != nil {
		err := &fs.PathError{Op: "open", Path: m.path, Err: m.stateErr}
		return Snapshot{}, fmt.Errorf("restore %s: write %s: %w", snap.Name, m.path, err)
	}
	m.state, m.hasState = data, true
	return snap, nil
}

// Prune applies retention, as Store.Prune.
func (m *MemStore) Prune() (removed int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snaps := m.list()
	good := -1
	for i, s := range snaps {
		if _, err := m.load(s.Name); err == nil {
			good = i
			break
		}
	}
	drop := map[string]bool{}
	for _, i := range pruneDrop(snaps, good, m.opt.Keep, m.opt.MaxAge, m.opt.Now()) {
		drop[snaps[i].Name] = true
	}
	m.snaps = slices.DeleteFunc(m.snaps, func(s memSnap) bool { return drop[s.meta.Name] })
	return len(drop), nil
}
