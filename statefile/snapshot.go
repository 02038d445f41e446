package statefile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SnapshotDir is the directory, inside the run directory, that holds the
// snapshots of the state file.
const SnapshotDir = "states"

// DefaultKeep is how many snapshots Prune keeps when Options.Keep is 0.
const DefaultKeep = 10

// Options tune a Store or MemStore. The zero value is usable.
type Options struct {
	// Keep is how many of the newest snapshots Prune keeps (0 = DefaultKeep).
	Keep int
	// MaxAge makes Prune drop snapshots older than this (0 = no age limit).
	MaxAge time.Duration
	// Validate decides whether the state file's bytes are a usable state
	// (nil = DefaultValidate). It is called without the store's lock held,
	// possibly from Watch's goroutine. An empty file is rejected before
	// Validate is called.
	Validate func(path string, data []byte) error
	// Now is the clock used for snapshot times and MaxAge (nil = time.Now).
	Now func() time.Time
	// OnSnapshot, if set, is called after each new snapshot is written (not
	// when identical content was already the latest), outside the lock.
	OnSnapshot func(Snapshot)
}

// withDefaults fills in defaults and rejects settings that make no sense.
func (o Options) withDefaults() (Options, error) {
	if o.Keep < 0 {
		return o, fmt.Errorf("options: keep %d: must not be negative", o.Keep)
	}
	if o.MaxAge < 0 {
		return o, fmt.Errorf("options: max age %s: must not be negative", o.MaxAge)
	}
	if o.Keep == 0 {
		o.Keep = DefaultKeep
	}
	if o.Validate == nil {
		o.Validate = DefaultValidate
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Snapshot describes one saved copy of the state file. Snapshots are written
// once and never modified; Size and SHA256 are checked whenever one is used.
type Snapshot struct {
	Name   string    `json:"name"`   // unique, sortable: 20261129T094512.123Z-<sha8>
	Seq    uint64    `json:"seq"`    // order of creation within the store, from 1
	Time   time.Time `json:"time"`   // when it was taken (UTC)
	Size   int64     `json:"size"`   // bytes
	SHA256 string    `json:"sha256"` // hex sha256 of the bytes
	Reason string    `json:"reason"` // why it was taken ("watch", "launch", ...)
	Source string    `json:"source"` // absolute path of the state file it copies
}

// StoreAPI is the part of a snapshot store the guard's runner uses. Store is
// the real one and MemStore the in-memory fake; both pass the same contract
// tests. Implementations are safe for concurrent use, and every method may be
// called any number of times.
type StoreAPI interface {
	// Snapshot copies the state file into a new snapshot if it validates.
	// Content equal to the latest snapshot (whose checksum still verifies)
	// is not stored again: that snapshot is returned. A missing state file
	// is ErrNoState, an invalid one ErrCorruptState.
	Snapshot(reason string) (Snapshot, error)
	// Latest returns the newest snapshot whose checksum verifies, or
	// ErrNoSnapshot when there is none.
	Latest() (Snapshot, error)
	// Restore verifies the named snapshot ("" = Latest) and atomically
	// writes its bytes over the state file. An unknown name is
	// ErrNoSnapshot, a failed checksum ErrChecksum; the state file is then
	// untouched.
	Restore(name string) (Snapshot, error)
	// List returns every snapshot, newest first, without verifying them.
	List() ([]Snapshot, error)
	// Check validates the current state file: nil, ErrNoState or
	// ErrCorruptState.
	Check() error
}

// checkName rejects names that could leave the snapshot directory or that no
// snapshot can have.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") ||
		strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("snapshot %q: %w", name, ErrNoSnapshot)
	}
	return nil
}

// newSnapshot describes data as the next snapshot after snaps (newest first).
// taken reports whether a name is already in use.
func newSnapshot(snaps []Snapshot, data []byte, reason, source string, now time.Time, taken func(string) bool) Snapshot {
	sum := sha256.Sum256(data)
	s := Snapshot{
		Seq:    1,
		Time:   now.UTC().Round(0),
		Size:   int64(len(data)),
		SHA256: hex.EncodeToString(sum[:]),
		Reason: reason,
		Source: source,
	}
	for _, p := range snaps {
		s.Seq = max(s.Seq, p.Seq+1)
	}
	base := s.Time.Format("20060102T150405.000Z") + "-" + s.SHA256[:8]
	s.Name = base
	// The same content in the same millisecond, after other content.
	for i := 2; taken(s.Name); i++ {
		s.Name = fmt.Sprintf("%s-%d", base, i)
	}
	return s
}

// sortNewestFirst orders snapshots by creation, newest first.
func sortNewestFirst(snaps []Snapshot) {
	slices.SortFunc(snaps, func(a, b Snapshot) int {
		if a.Seq != b.Seq {
			if a.Seq > b.Seq {
				return -1
			}
			return 1
		}
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
}

// verifyBytes checks data against what s recorded when it was taken.
func verifyBytes(s Snapshot, data []byte) error {
	if int64(len(data)) != s.Size {
		return fmt.Errorf("snapshot %s: %w: size %d, want %d", s.Name, ErrChecksum, len(data), s.Size)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != s.SHA256 {
		return fmt.Errorf("snapshot %s: %w: sha256 %.12s, want %.12s", s.Name, ErrChecksum, got, s.SHA256)
	}
	return nil
}

// validMeta reports whether s could have been written by newSnapshot.
func validMeta(s Snapshot) bool {
	if checkName(s.Name) != nil || s.Size < 0 || len(s.SHA256) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(s.SHA256)
	return err == nil
}

// pruneDrop returns the indexes into snaps (newest first) that retention
// drops: all but the keep newest, and any older than maxAge (0 = no limit).
// newestGood (-1 = none) is never dropped.
func pruneDrop(snaps []Snapshot, newestGood, keep int, maxAge time.Duration, now time.Time) []int {
	var drop []int
	for i, s := range snaps {
		if i == newestGood {
			continue
		}
		if i < keep && (maxAge == 0 || now.Sub(s.Time) <= maxAge) {
			continue
		}
		drop = append(drop, i)
	}
	return drop
}

// noGoodSnapshot is the error when no snapshot verifies; bad counts the ones
// that failed their checksum.
func noGoodSnapshot(where string, bad int) error {
	if bad > 0 {
		return fmt.Errorf("latest snapshot in %s: %w (%d failed checksum)", where, ErrNoSnapshot, bad)
	}
	return fmt.Errorf("latest snapshot in %s: %w", where, ErrNoSnapshot)
}

// corrupt wraps a validation failure of path.
func corrupt(op, path string, err error) error {
	return fmt.Errorf("%s %s: %w: %w", op, path, ErrCorruptState, err)
}

// validate applies the always-on empty check, then v.
func validate(v func(string, []byte) error, path string, data []byte) error {
	if len(data) == 0 {
		return errEmpty
	}
	return v(path, data)
}
