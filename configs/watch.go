package configs

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long a burst of events on the config file is let settle
// before the file is read again (editors write, rename and chmod in a row).
const settle = 50 * time.Millisecond

// Watch reloads path (laid over the defaults) whenever it changes and calls
// onChange with each new valid config. A change that does not load is
// reported once through onErr, and the config in effect stays. Watch
// watches the file's directory, because editors replace files by rename.
// stop ends the watch and waits for its goroutine.
func Watch(ctx context.Context, path string, onChange func(*Config), onErr func(error)) (stop func(), err error) {
	return watch(ctx, path, onChange, onErr, func() {})
}

// watch is Watch that also calls loaded each time it has read the file and
// made its calls, including a read whose error it did not repeat.
func watch(ctx context.Context, path string, onChange func(*Config), onErr func(error), loaded func()) (stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return func() {}, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		w.Close()
		return func() {}, err
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return func() {}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		var timer *time.Timer
		var fire <-chan time.Time
		lastErr := ""
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) != abs || ev.Op == fsnotify.Chmod {
					continue
				}
				if timer == nil {
					timer = time.NewTimer(settle)
				} else {
					timer.Reset(settle)
				}
				fire = timer.C
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				onErr(err)
			case <-fire:
				fire = nil
				cfg, err := Load(abs)
				switch {
				case err == nil:
					lastErr = ""
					onChange(cfg)
				case err.Error() != lastErr:
					lastErr = err.Error()
					onErr(err)
				}
				loaded()
			}
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}
