package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/natefinch/lumberjack.v2"
)

// FileName is the name of the current attempt log inside the run directory.
// Rotated backups are named attempts-<UTC timestamp>.jsonl, and
// attempts-<UTC timestamp>.jsonl.gz once compressed.
const FileName = "attempts.jsonl"

// Sentinel errors returned by Write and Close.
var (
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("journal closed")
	// ErrTimeout means a write or Close did not finish within
	// Options.WriteTimeout. The write goes on in the background.
	ErrTimeout = errors.New("journal write timed out")
	// ErrBusy means the record was dropped because an earlier write has not
	// finished yet.
	ErrBusy = errors.New("journal busy with an earlier write")
	// ErrInvalidRecord means part of a record could not be encoded and was
	// left out; the rest of the record was written.
	ErrInvalidRecord = errors.New("invalid journal record")
)

// Options set how the attempt log is rotated.
type Options struct {
	// MaxSizeMB is the size in megabytes at which attempts.jsonl is rotated;
	// 0 means 100.
	MaxSizeMB int
	// MaxBackups is how many rotated files are kept; 0 keeps them all.
	MaxBackups int
	// MaxAgeDays is how many days rotated files are kept; 0 keeps them
	// whatever their age.
	MaxAgeDays int
	// Compress gzips rotated files.
	Compress bool
	// WriteTimeout bounds how long Write and Close wait for the disk; 0
	// means 2 seconds.
	WriteTimeout time.Duration
}

// DefaultOptions returns 100 MB files, 10 backups, no age limit, gzip on and
// a 2 second write timeout.
func DefaultOptions() Options {
	return Options{MaxSizeMB: 100, MaxBackups: 10, MaxAgeDays: 0, Compress: true, WriteTimeout: defaultWriteTimeout}
}

const defaultWriteTimeout = 2 * time.Second

// Journal appends attempt records to <dir>/attempts.jsonl. Its methods are
// safe for concurrent use; records are written one at a time.
type Journal struct {
	dir     string
	path    string
	timeout time.Duration
	log     *logrus.Logger
	sink    *sink

	// slot holds one token while a write (or Close) owns the file; the
	// fields below it belong to whoever holds it.
	slot chan struct{}
	last os.FileInfo // the file the writer has open; nil when it has none open

	mu       sync.Mutex
	closed   bool
	failing  bool // the last write failed; the next failure is not reported again
	failures int
}

// sink sits between logrus and the file. It keeps the write error for Write
// to return instead of letting logrus print it on stderr, and after a failed
// write it starts the next one on a fresh line, in case the failed one left
// half a line behind.
type sink struct {
	w     io.WriteCloser
	fresh bool
	err   error
}

func (s *sink) Write(p []byte) (int, error) {
	b := p
	if s.fresh {
		b = make([]byte, 0, len(p)+1)
		b = append(append(b, '\n'), p...)
	}
	if _, err := s.w.Write(b); err != nil {
		s.err = err
		return len(p), nil
	}
	s.fresh = false
	return len(p), nil
}

// Open creates dir (mode 0700) if needed and attempts.jsonl in it (mode
// 0600), and returns a Journal that appends to it. It fails when the
// directory or the file cannot be created or opened for writing, or when an
// option is negative.
func Open(dir string, opt Options) (*Journal, error) {
	if opt.MaxSizeMB < 0 || opt.MaxBackups < 0 || opt.MaxAgeDays < 0 || opt.WriteTimeout < 0 {
		return nil, fmt.Errorf("open journal %s: negative option in %+v", dir, opt)
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = defaultWriteTimeout
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	s := &sink{w: &lumberjack.Logger{
		Filename:   path,
		MaxSize:    opt.MaxSizeMB,
		MaxBackups: opt.MaxBackups,
		MaxAge:     opt.MaxAgeDays,
		Compress:   opt.Compress,
	}}
	log := logrus.New()
	log.SetOutput(s)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetLevel(logrus.InfoLevel)
	return &Journal{
		dir:     dir,
		path:    path,
		timeout: opt.WriteTimeout,
		log:     log,
		sink:    s,
		slot:    make(chan struct{}, 1),
	}, nil
}

// Write appends r as one line, redacted, and returns within about
// Options.WriteTimeout, which covers waiting for a concurrent Write too. It
// never panics. Outcomes:
//
//   - nil: the record was written, or it failed while an earlier failure is
//     still unresolved (counted in Failures and not reported again);
//   - the error of the first failure after a success (or after Open): the
//     run directory is missing and cannot be recreated, the disk is full, the
//     write outlived its deadline (ErrTimeout), or an earlier write held the
//     file past the deadline and this record was dropped (ErrBusy). Each later Write tries again: a directory that was
//     deleted is recreated, and a file that was replaced is reopened;
//   - an error wrapping ErrInvalidRecord, always reported: Host or GPUs was
//     not valid JSON and the record was written without it;
//   - ErrClosed after Close.
func (j *Journal) Write(r Record) error {
	if j == nil {
		return ErrClosed
	}
	f, invalid := r.fields()
	if j.isClosed() {
		return ErrClosed
	}
	// One deadline covers waiting for an earlier write and this one.
	t := time.NewTimer(j.timeout)
	defer t.Stop()
	select {
	case j.slot <- struct{}{}:
	case <-t.C:
		if j.isClosed() {
			return ErrClosed
		}
		j.mu.Lock()
		err := j.fail(fmt.Errorf("write attempt %d: %w", r.Attempt, ErrBusy))
		j.mu.Unlock()
		return errors.Join(invalid, err)
	}
	if j.isClosed() {
		<-j.slot
		return ErrClosed
	}

	type state struct{ finished, abandoned bool } // guarded by j.mu
	st := &state{}
	done := make(chan error, 1)
	go func() {
		err := j.write(f)
		j.mu.Lock()
		st.finished = true
		var report error
		switch {
		case st.abandoned:
			// Write already counted this record as a timeout.
			if err == nil {
				j.failing = false
			}
		case err != nil:
			report = j.fail(err)
		default:
			j.failing = false
		}
		j.mu.Unlock()
		<-j.slot
		done <- report
	}()

	select {
	case err := <-done:
		return errors.Join(invalid, err)
	case <-t.C:
		j.mu.Lock()
		if st.finished {
			j.mu.Unlock()
			return errors.Join(invalid, <-done)
		}
		st.abandoned = true
		err := j.fail(fmt.Errorf("write attempt %d: %w after %s", r.Attempt, ErrTimeout, j.timeout))
		j.mu.Unlock()
		return errors.Join(invalid, err)
	}
}

// fail counts a failed write and returns err when it starts a run of
// failures, nil when one is already running. j.mu must be held.
func (j *Journal) fail(err error) error {
	j.failures++
	if j.failing {
		return nil
	}
	j.failing = true
	return err
}

func (j *Journal) isClosed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.closed
}

// write puts one record on disk. The caller holds the slot.
func (j *Journal) write(f logrus.Fields) (err error) {
	defer func() {
		if p := recover(); p != nil {
			j.reopen()
			err = fmt.Errorf("write %s: panic: %v", j.path, p)
		}
	}()
	if err := j.check(); err != nil {
		return err
	}
	j.sink.err = nil
	e := logrus.NewEntry(j.log)
	e.Data = f
	e.Info(msgAttempt)
	if err := j.sink.err; err != nil {
		j.reopen()
		j.sink.fresh = true
		return fmt.Errorf("write %s: %w", j.path, err)
	}
	fi, err := os.Stat(j.path)
	if err != nil {
		// Gone right after the write: check again next time.
		j.reopen()
		return nil
	}
	j.last = fi
	return nil
}

// check makes sure the next write reaches <dir>/attempts.jsonl. An open file
// that was deleted or replaced (the run directory was removed, or someone
// moved the file) would swallow writes without an error, so it is closed and
// the directory recreated when needed.
func (j *Journal) check() error {
	fi, err := os.Stat(j.path)
	if err == nil && (j.last == nil || os.SameFile(fi, j.last)) {
		return nil
	}
	j.reopen()
	if err == nil {
		return nil
	}
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return fmt.Errorf("recreate journal directory: %w", err)
	}
	return nil
}

// reopen closes the file so that the next write opens attempts.jsonl again.
func (j *Journal) reopen() {
	// The file is being abandoned because it failed or vanished; an error
	// closing it says nothing the caller can act on.
	_ = j.sink.w.Close()
	j.last = nil
}

// Failures returns how many records were not known to be written when Write
// returned: failed writes, writes that outlived their deadline (some of
// which may have completed later) and records dropped because an earlier
// write held the file past the deadline.
func (j *Journal) Failures() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failures
}

// Close waits up to Options.WriteTimeout for a write in progress, then closes
// the file. Later Writes return ErrClosed. Close may be called more than
// once; calls after the first return nil. It returns an error wrapping
// ErrTimeout when a write is still stuck, or the error closing the file.
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()

	t := time.NewTimer(j.timeout)
	defer t.Stop()
	select {
	case j.slot <- struct{}{}:
		// The slot is kept: nothing writes after Close.
	case <-t.C:
		return fmt.Errorf("close %s: %w", j.path, ErrTimeout)
	}
	if err := j.sink.w.Close(); err != nil {
		return fmt.Errorf("close %s: %w", j.path, err)
	}
	return nil
}
