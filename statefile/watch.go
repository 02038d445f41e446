package statefile

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long Watch waits after the last event on the state
// file before reading it: a writer's truncate, writes and rename arrive as a
// burst of events and should cost one read, not one per event.
const watchDebounce = 10 * time.Millisecond

// Watch snapshots every valid version of s's state file as the child writes
// it. It watches the file's directory, not the file, because editors and
// careful programs replace a file by renaming a new one over it, which would
// end a watch on the file itself. Events for other names are ignored. After
// a burst of write, create or rename events on the state file has been quiet
// for a few milliseconds, Watch calls s.Snapshot("watch") and then s.Prune;
// a missing or invalid version (a half-written file) is skipped silently,
// since the next write brings another event.
//
// onErr (may be nil) receives other errors: failed reads, snapshot or prune
// writes, and the watcher's own errors; it is called from Watch's goroutine
// and must not block for long. Watching continues after an error.
//
// Watch returns an error when the directory cannot be watched. Otherwise it
// runs until ctx is done or stop is called; stop waits until the goroutine
// and the watcher are gone, and may be called any number of times.
func Watch(ctx context.Context, s *Store, onErr func(error)) (stop func(), err error) {
	dir := filepath.Dir(s.StateFile())
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if onErr == nil {
		onErr = func(error) {}
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		watchLoop(ctx, s, w, quit, onErr)
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}, nil
}

func watchLoop(ctx context.Context, s *Store, w *fsnotify.Watcher, quit <-chan struct{}, onErr func(error)) {
	name := s.StateFile()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-quit:
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == name && ev.Op.Has(fsnotify.Write|fsnotify.Create|fsnotify.Rename) {
				timer.Reset(watchDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			onErr(fmt.Errorf("watch %s: %w", name, err))
		case <-timer.C:
			_, err := s.Snapshot("watch")
			switch {
			case errors.Is(err, ErrNoState), errors.Is(err, ErrCorruptState):
				continue
			case err != nil:
				onErr(err)
				continue
			}
			if _, err := s.Prune(); err != nil {
				onErr(err)
			}
		}
	}
}
