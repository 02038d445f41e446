package classify

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

const (
	// maxEvidence caps the evidence kept from one line, in bytes.
	maxEvidence = 500
	// traceWindow is how many lines after a traceback header the exception
	// line is looked for.
	traceWindow = 2000
	// rootWindow bounds the lines of one torchrun Root Cause block.
	rootWindow = 2000
)

// Scanner follows one attempt's output line by line: the phase, the step
// progress, the first line each rule matched, torchrun's Root Cause block and
// the first exception after a traceback. Its state is bounded by the number of
// rules, never by the amount of output. A Scanner is not safe for concurrent
// use; make one per attempt with NewScanner.
type Scanner struct {
	r        *Rules
	lines    int
	phase    Phase
	progress Progress

	buf     []byte     // scratch for lines with ANSI escapes
	hits    []int32    // prefilter targets of the current line
	stamp   []int      // per target: last line that reported it
	matches []evidence // per rule: the first line it matched

	sawTraceback bool
	traceLeft    int      // lines left in which to look for the exception line
	exception    evidence // first exception line after a traceback

	root rootParser
}

type evidence struct {
	line     int // 1-based; 0 when there is none
	text     string
	phase    Phase
	progress Progress
}

// NewScanner returns a Scanner for one attempt, in PhaseStart.
func NewScanner(r *Rules) *Scanner {
	n := int(r.markBase) + numMarks
	return &Scanner{
		r:       r,
		phase:   PhaseStart,
		buf:     make([]byte, 0, maxScan),
		hits:    make([]int32, 0, n),
		stamp:   make([]int, n),
		matches: make([]evidence, len(r.rules)),
	}
}

// Lines returns how many lines the scanner has seen.
func (s *Scanner) Lines() int { return s.lines }

// Phase returns the phase the child is in, as far as its output tells.
func (s *Scanner) Phase() Phase { return s.phase }

// Progress returns the last step counter seen.
func (s *Scanner) Progress() Progress { return s.progress }

// Line takes one line of output without its terminator. It does not keep
// line, and it does not allocate unless the line is evidence.
func (s *Scanner) Line(line []byte) {
	s.lines++
	text, indented := clean(s.buf, line)

	a := s.r.automaton(s.r.build)
	hits := s.hits[:0]
	st := uint32(0)
	for _, c := range text {
		v := a.trans[st+uint32(a.class[c])]
		st = v &^ outBit
		if v != st {
			node := st / a.ncol
			for _, t := range a.outs[a.outIdx[node]:a.outIdx[node+1]] {
				if s.stamp[t] != s.lines {
					s.stamp[t] = s.lines
					hits = append(hits, t)
				}
			}
		}
	}
	s.hits = hits

	rootHeader := false
	if len(hits) > 0 {
		rootHeader = s.marks(text)
		s.phases(text)
		s.rules(text)
	}
	if s.root.active && !rootHeader {
		s.root.line(text)
	}
	if s.traceLeft > 0 && s.stamp[s.r.markBase+markTraceback] != s.lines {
		s.traceLeft--
		if !indented && exceptionLine(text) {
			s.exception = s.evidence(text)
			s.traceLeft = 0
		}
	}
}

// marks handles the scanner's own markers; it reports whether the line
// opened a Root Cause block.
func (s *Scanner) marks(text []byte) (rootHeader bool) {
	base := s.r.markBase
	if s.stamp[base+markProgress] == s.lines {
		if step, total, ok := parseBar(text); ok {
			s.progress = Progress{Step: step, Total: total}
			if step < total {
				s.phase = PhaseDenoise
			} else {
				s.phase = PhaseDecode
			}
		}
	}
	if s.stamp[base+markTraceback] == s.lines {
		s.sawTraceback = true
		if s.exception.line == 0 {
			s.traceLeft = traceWindow
		}
	}
	if s.stamp[base+markRootCause] == s.lines {
		s.root.start()
		rootHeader = true
	}
	return rootHeader
}

// phases moves to the first listed phase whose pattern matches.
func (s *Scanner) phases(text []byte) {
	best := -1
	for _, t := range s.hits {
		i := int(t - s.r.phaseBase)
		if t < s.r.phaseBase || t >= s.r.markBase || (best >= 0 && i > best) {
			continue
		}
		if s.r.phases[i].re.Match(text) {
			best = i
		}
	}
	if best >= 0 {
		s.phase = s.r.phases[best].name
	}
}

// rules records the first matching line of every rule the line woke.
func (s *Scanner) rules(text []byte) {
	for _, t := range s.hits {
		if t >= s.r.phaseBase || s.matches[t].line != 0 {
			continue
		}
		r := &s.r.rules[t]
		if r.phases != nil && !phaseIn(s.phase, r.phases) {
			continue
		}
		if r.re.Match(text) {
			s.matches[t] = s.evidence(text)
		}
	}
}

func phaseIn(p Phase, set []Phase) bool {
	for _, q := range set {
		if p == q {
			return true
		}
	}
	return false
}

func (s *Scanner) evidence(text []byte) evidence {
	return evidence{line: s.lines, text: capText(text), phase: s.phase, progress: s.progress}
}

// capText copies text with invalid UTF-8 replaced, cut on a rune boundary to
// at most maxEvidence bytes.
func capText(text []byte) string {
	if len(text) <= maxEvidence && utf8.Valid(text) {
		return string(text)
	}
	var b strings.Builder
	b.Grow(maxEvidence)
	for len(text) > 0 {
		r, n := utf8.DecodeRune(text)
		size := n
		if r == utf8.RuneError && n <= 1 {
			size = len(string(utf8.RuneError))
		}
		if b.Len()+size > maxEvidence {
			break
		}
		if r == utf8.RuneError && n <= 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.Write(text[:n])
		}
		text = text[n:]
	}
	return b.String()
}

// parseBar reads a tqdm bar such as "45%|████▌     | 18/40 [07:49<09:34, 26.1s/it]".
// A bar with a description counts only when the description names sampling
// steps; "Loading checkpoint shards: 100%|...| 3/3" does not.
func parseBar(text []byte) (step, total int, ok bool) {
	i := bytes.Index(text, []byte("%|"))
	if i < 0 {
		return 0, 0, false
	}
	j := i
	for j > 0 && (isDigit(text[j-1]) || text[j-1] == '.') {
		j--
	}
	if j == i || !stepDesc(text[:j]) {
		return 0, 0, false
	}
	rest := text[i+2:]
	k := bytes.IndexByte(rest, '|')
	if k < 0 {
		return 0, 0, false
	}
	rest = trimLeft(rest[k+1:])
	step, rest, ok = atoi(rest)
	if !ok || len(rest) == 0 || rest[0] != '/' {
		return 0, 0, false
	}
	total, rest, ok = atoi(rest[1:])
	if !ok || total <= 0 || step > total || (len(rest) > 0 && rest[0] != ' ' && rest[0] != '[') {
		return 0, 0, false
	}
	return step, total, true
}

var stepWords = []string{"sampl", "denois", "step", "generat", "infer", "diffus"}

func stepDesc(desc []byte) bool {
	desc = trimRight(desc)
	desc = bytes.TrimSuffix(desc, []byte(":"))
	if len(desc) == 0 {
		return true
	}
	var low [64]byte
	n := copy(low[:], desc)
	for i := range n {
		if c := low[i]; c >= 'A' && c <= 'Z' {
			low[i] = c + 'a' - 'A'
		}
	}
	for _, w := range stepWords {
		if bytes.Contains(low[:n], []byte(w)) {
			return true
		}
	}
	return false
}

// atoi reads up to 9 leading digits.
func atoi(b []byte) (int, []byte, bool) {
	n, i := 0, 0
	for i < len(b) && i < 9 && isDigit(b[i]) {
		n = n*10 + int(b[i]-'0')
		i++
	}
	if i == 0 || (i < len(b) && isDigit(b[i])) {
		return 0, b, false
	}
	return n, b[i:], true
}

var exceptionSuffixes = []string{"Error", "Exception", "Interrupt", "Exit", "Failure"}

// exceptionLine reports whether text looks like the exception line that ends
// a Python traceback: "torch.OutOfMemoryError: CUDA out of memory. ...".
func exceptionLine(text []byte) bool {
	if len(text) == 0 || (!isLetter(text[0]) && text[0] != '_') {
		return false
	}
	i := 0
	for i < len(text) && (isLetter(text[i]) || isDigit(text[i]) || text[i] == '_' || text[i] == '.') {
		i++
	}
	if i < len(text) && text[i] != ':' {
		return false
	}
	name := text[:i]
	for _, suf := range exceptionSuffixes {
		if bytes.HasSuffix(name, []byte(suf)) {
			return true
		}
	}
	return false
}

// rootParser reads torchrun's "Root Cause (first observed failure)" block:
//
//	[0]:
//	  time      : 2025-07-29_10:01:02
//	  rank      : 3 (local_rank: 3)
//	  exitcode  : -9 (pid: 1234)
//	  error_file: <N/A>
//	  traceback : Signal 9 (SIGKILL) received by PID 1234
//	====================================
type rootParser struct {
	active bool
	seen   bool
	left   int
	body   bool // the traceback field opened a Python traceback; its last line is the error
	rc     RootCause
	last   [maxEvidence]byte
	lastN  int
}

func (p *rootParser) start() {
	p.active, p.seen, p.body, p.lastN = true, true, false, 0
	p.left = rootWindow
	p.rc = RootCause{}
}

func (p *rootParser) line(text []byte) {
	p.left--
	if bytes.HasPrefix(text, []byte("===")) || p.left <= 0 {
		if p.body && p.lastN > 0 {
			p.rc.Error = capText(p.last[:p.lastN])
		}
		p.active = false
		return
	}
	if p.body {
		if len(text) > 0 {
			p.lastN = copy(p.last[:], text)
		}
		return
	}
	colon := bytes.IndexByte(text, ':')
	if colon < 0 {
		return
	}
	val := trimLeft(text[colon+1:])
	switch string(trimRight(text[:colon])) {
	case "rank":
		if n, ok := signedInt(val); ok {
			p.rc.Rank = n
		}
	case "exitcode":
		if n, ok := signedInt(val); ok {
			p.rc.ExitCode = n
		}
	case "traceback":
		if bytes.HasPrefix(val, []byte("Traceback (most recent call last)")) {
			p.body = true
			return
		}
		p.rc.Error = capText(val)
	}
}

func signedInt(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	n, _, ok := atoi(b)
	if neg {
		n = -n
	}
	return n, ok
}

func (p *rootParser) result() *RootCause {
	if !p.seen {
		return nil
	}
	rc := p.rc
	if p.active && p.body && p.lastN > 0 {
		rc.Error = capText(p.last[:p.lastN])
	}
	return &rc
}
