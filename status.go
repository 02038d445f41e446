package main

import (
	"bytes"
	"io"
	"sync"
)

// statusWriter carries the guard's own lines to stderr. Each write is one
// or more whole lines; on a terminal a pending status line ("attempt 3/8 ...
// next in 20s") is cleared first so the child's output is never mixed into it.
type statusWriter struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	pending bool
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending {
		_, _ = io.WriteString(s.w, "\r\x1b[K")
		s.pending = false
	}
	return s.w.Write(p)
}

// Transient draws a line that the next write replaces; only on a terminal.
func (s *statusWriter) Transient(line string) {
	if !s.tty {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var b bytes.Buffer
	b.WriteString("\r\x1b[K")
	b.WriteString(guardLinePrefix)
	b.WriteString(line)
	_, _ = s.w.Write(b.Bytes())
	s.pending = true
}

// Clear removes a pending transient line.
func (s *statusWriter) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending {
		_, _ = io.WriteString(s.w, "\r\x1b[K")
		s.pending = false
	}
}
