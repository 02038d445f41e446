package runner

import (
	"bytes"
	"time"
)

// Defaults for the zero values of Spec.MaxLine and Spec.TailLines.
const (
	DefaultMaxLine   = 8 << 10
	DefaultTailLines = 200
	// DefaultGrace is the SIGTERM-to-SIGKILL time used before the config
	// is read; it is the config's default.
	DefaultGrace = 30 * time.Second
)

// LineSplitter cuts a byte stream into lines the way the child's output is
// cut for a LineSink. A line ends at \n, at \r, or at a \r\n pair, and is
// passed on without its terminator. An empty line ended by \r is skipped, so
// a progress bar that starts every redraw with \r yields one line per
// redraw. A line longer than the cap is cut to the cap and the rest of it is
// dropped, so the splitter holds at most the cap however long a line grows.
//
// Write may be given chunks cut anywhere; the lines come out the same. The
// callback's line is valid only during the call. A LineSplitter is not safe
// for concurrent use.
//
// The runner uses one per output stream; the same type can replay a saved
// log: io.Copy(NewLineSplitter(0, fn), file), then Flush.
type LineSplitter struct {
	fn  func(line []byte)
	max int
	buf []byte // the start of the current line, at most max bytes
	// cr: the last byte seen was a \r that ended a line; crEmpty: that
	// line was empty, and counts only if a \n follows.
	cr, crEmpty bool
}

// NewLineSplitter returns a splitter that calls fn for each line, cut to
// maxLine bytes (DefaultMaxLine when maxLine <= 0).
func NewLineSplitter(maxLine int, fn func(line []byte)) *LineSplitter {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &LineSplitter{fn: fn, max: maxLine}
}

// Write splits p into lines and keeps an unfinished last line for the next
// Write or Flush. It always returns len(p), nil.
func (s *LineSplitter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > 0 && s.cr {
		if p[0] == '\n' {
			p = p[1:]
			if s.crEmpty {
				s.fn(nil) // an empty line ended by \r\n
			}
		}
		s.cr, s.crEmpty = false, false
	}
	// nl caches the next \n so that a run of \r-ended lines does not scan
	// the rest of the chunk for \n once per line.
	nl, pos := -2, 0
	for pos < len(p) {
		if nl != -1 && nl < pos {
			if nl = bytes.IndexByte(p[pos:], '\n'); nl >= 0 {
				nl += pos
			}
		}
		end := len(p)
		if nl >= 0 {
			end = nl
		}
		i := nl
		if cr := bytes.IndexByte(p[pos:end], '\r'); cr >= 0 {
			i = pos + cr
		}
		if i < 0 {
			s.keep(p[pos:])
			break
		}
		line := p[pos:i]
		if len(s.buf) > 0 {
			s.keep(line)
			line = s.buf
		}
		blank := p[i] == '\n' // an empty line counts only when ended by \n or \r\n
		pos = i + 1
		if p[i] == '\r' {
			switch {
			case pos == len(p):
				// Whether a \n follows is for the next Write to tell.
				s.cr, s.crEmpty = true, len(line) == 0
			case p[pos] == '\n':
				pos++
				blank = true
			}
		}
		if len(line) > 0 || blank {
			s.fn(line[:min(len(line), s.max)])
		}
		s.buf = s.buf[:0]
	}
	return n, nil
}

// Flush passes on the unfinished last line, if any, as a line.
func (s *LineSplitter) Flush() {
	if len(s.buf) > 0 {
		s.fn(s.buf)
	}
	s.Reset()
}

// Reset drops the unfinished last line, for when bytes went missing
// between two writes.
func (s *LineSplitter) Reset() {
	s.buf = s.buf[:0]
	s.cr, s.crEmpty = false, false
}

// keep appends b to the current line without growing past max.
func (s *LineSplitter) keep(b []byte) {
	room := s.max - len(s.buf)
	if room <= 0 {
		return
	}
	if len(b) > room {
		b = b[:room]
	}
	if need := len(s.buf) + len(b); need > cap(s.buf) {
		c := max(2*cap(s.buf), need, 256)
		grown := make([]byte, len(s.buf), min(c, s.max))
		copy(grown, s.buf)
		s.buf = grown
	}
	s.buf = append(s.buf, b...)
}
