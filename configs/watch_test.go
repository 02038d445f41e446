package configs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// watchTooLong bounds every wait for the watcher.
const watchTooLong = 10 * time.Second

// replace swaps body in at path the way editors do: a new file in the same
// directory, renamed over the old one.
func replace(t *testing.T, path, body string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".edit-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(body); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// recv waits for the next value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(watchTooLong):
		t.Fatalf("no %s within %s", what, watchTooLong)
	}
	var zero T
	return zero
}

// watched runs watch on path and hands back what its callbacks saw.
type watched struct {
	changes chan *Config
	errs    chan error
	loads   chan struct{}
	stop    func()
}

func startWatch(t *testing.T, ctx context.Context, path string) *watched {
	t.Helper()
	w := &watched{
		changes: make(chan *Config, 16),
		errs:    make(chan error, 16),
		loads:   make(chan struct{}, 16),
	}
	stop, err := watch(ctx, path,
		func(c *Config) { w.changes <- c },
		func(err error) { w.errs <- err },
		func() { w.loads <- struct{}{} })
	if err != nil {
		t.Fatalf("watch(%s) error: %v", path, err)
	}
	w.stop = stop
	return w
}

// quiet fails the test if a callback ran that the test did not wait for.
func (w *watched) quiet(t *testing.T, after string) {
	t.Helper()
	select {
	case c := <-w.changes:
		t.Errorf("after %s: onChange(max_attempts %d), want no call", after, c.Runtime.MaxAttempts)
	case err := <-w.errs:
		t.Errorf("after %s: onErr(%v), want no call", after, err)
	default:
	}
}

func TestWatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "guard.yaml")
	if err := os.WriteFile(path, []byte("runtime:\n  max_attempts: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, context.Background(), path)

	replace(t, path, "runtime:\n  max_attempts: 4\n")
	if got := recv(t, w.changes, "onChange after a valid edit"); got.Runtime.MaxAttempts != 4 {
		t.Errorf("onChange: max_attempts = %d, want 4", got.Runtime.MaxAttempts)
	}
	recv(t, w.loads, "reload")
	w.quiet(t, "a valid edit")

	broken := "runtime:\n  max_attempts: 4\n  grace: 10 parsecs\n"
	replace(t, path, broken)
	err := recv(t, w.errs, "onErr after a broken edit")
	if msg := err.Error(); !strings.HasPrefix(msg, path+":3:") || !strings.Contains(msg, "10 parsecs") {
		t.Errorf("onErr(%q), want %s:3: ... 10 parsecs", msg, path)
	}
	recv(t, w.loads, "reload")
	w.quiet(t, "a broken edit")

	replace(t, path, broken)
	recv(t, w.loads, "reload of the same broken content")
	w.quiet(t, "the same broken edit again")

	replace(t, path, "runtime:\n  max_attempts: 5\n")
	if got := recv(t, w.changes, "onChange after the fix"); got.Runtime.MaxAttempts != 5 {
		t.Errorf("onChange: max_attempts = %d, want 5", got.Runtime.MaxAttempts)
	}
	recv(t, w.loads, "reload")

	replace(t, path, broken)
	if err := recv(t, w.errs, "onErr for a broken edit after a good one"); !strings.Contains(err.Error(), "10 parsecs") {
		t.Errorf("onErr(%v), want the bad duration again", err)
	}
	recv(t, w.loads, "reload")

	other := filepath.Join(filepath.Dir(path), "other.yaml")
	if err := os.WriteFile(other, []byte("nosuch: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	replace(t, path, "runtime:\n  max_attempts: 6\n")
	if got := recv(t, w.changes, "onChange after the second fix"); got.Runtime.MaxAttempts != 6 {
		t.Errorf("onChange: max_attempts = %d, want 6 (other files in the directory are ignored)", got.Runtime.MaxAttempts)
	}
	recv(t, w.loads, "reload")

	w.stop()
	w.stop()
	w.quiet(t, "stop")
}

func TestWatch_ContextCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "guard.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	w := startWatch(t, ctx, path)
	cancel()
	done := make(chan struct{})
	go func() {
		w.stop()
		close(done)
	}()
	recv(t, done, "stop after the context ended")
}

func TestWatch_MissingDirectory(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "no", "such", "guard.yaml")
	stop, err := Watch(context.Background(), path, func(*Config) {}, func(error) {})
	if err == nil {
		t.Error("Watch(missing directory) error = nil, want one")
	}
	if stop == nil {
		t.Fatal("Watch(missing directory) stop = nil, want a no-op")
	}
	stop()
}
