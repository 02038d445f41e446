package statefile

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// waitForLatest waits, up to tooLong, until the store's latest snapshot
// holds want; snapped receives a value after each new snapshot.
func waitForLatest(t *testing.T, s *Store, snapped <-chan Snapshot, want []byte) {
	t.Helper()
	deadline := time.NewTimer(tooLong)
	defer deadline.Stop()
	for {
		if data, _, err := s.Show(""); err == nil && bytes.Equal(data, want) {
			return
		}
		select {
		case <-snapped:
		case <-deadline.C:
			l, _ := s.List()
			t.Fatalf("no snapshot of %.30q after %s; have %v", want, tooLong, names(l))
		}
	}
}

// newWatchedStore returns a store whose OnSnapshot feeds the channel.
func newWatchedStore(t *testing.T) (*Store, chan Snapshot) {
	snapped := make(chan Snapshot, 100)
	s := newTestStore(t, "state.json", Options{Keep: 100, OnSnapshot: func(sn Snapshot) {
		select {
		case snapped <- sn:
		default:
		}
	}})
	return s, snapped
}

func TestWatch_SnapshotsValidVersions(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, snapped := newWatchedStore(t)
	var errs []error
	stop, err := Watch(t.Context(), s, func(err error) { errs = append(errs, err) })
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer stop()

	versions := [][]byte{stateJSON(1), stateJSON(2), stateJSON(3), stateJSON(4), stateJSON(5)}
	torn := stateJSON(6)[:40]
	written := make(chan error, 1)
	go func() {
		for i, v := range versions {
			if err := WriteFileAtomic(s.StateFile(), v, 0o600); err != nil {
				written <- err
				return
			}
			if i == 2 {
				// A writer that crashed mid-file, then came back.
				if err := WriteFileAtomic(s.StateFile(), torn, 0o600); err != nil {
					written <- err
					return
				}
			}
		}
		written <- nil
	}()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	waitForLatest(t, s, snapped, versions[4])
	stop()

	snaps, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range snaps {
		data, _, err := s.Show(sn.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, data) }) {
			t.Errorf("snapshot %s holds %.40q, which is not a valid version", sn.Name, data)
		}
		if sn.Reason != "watch" {
			t.Errorf("snapshot %s reason %q, want \"watch\"", sn.Name, sn.Reason)
		}
	}
	if len(errs) > 0 {
		t.Errorf("onErr got %v", errs)
	}
}

func TestWatch_InPlaceWrite(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, snapped := newWatchedStore(t)
	stop, err := Watch(t.Context(), s, nil)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer stop()
	// Another file in the same directory does not count.
	mustWrite(t, filepath.Join(filepath.Dir(s.StateFile()), "other.json"), "{}")
	mustWrite(t, s.StateFile(), string(stateJSON(1)))
	waitForLatest(t, s, snapped, stateJSON(1))
	stop()
	if l, _ := s.List(); len(l) != 1 {
		t.Errorf("List = %v, want one snapshot", names(l))
	}
}

func TestWatch_Stop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, _ := newWatchedStore(t)

	ctx, cancel := context.WithCancel(t.Context())
	stop, err := Watch(ctx, s, nil)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	cancel()
	stop() // returns once the goroutine is gone
	stop()

	stop, err = Watch(t.Context(), s, nil)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	stop()
	stop()
}

func TestWatch_MissingDir(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	root := t.TempDir()
	missing := filepath.Join(root, "gone")
	s, err := NewStore(filepath.Join(missing, "state.json"), filepath.Join(root, SnapshotDir), Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := Watch(t.Context(), s, nil)
	if err == nil || stop != nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Watch of a missing dir = %v, want an error naming %s", err, missing)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("Watch created the state file's directory")
	}
}
