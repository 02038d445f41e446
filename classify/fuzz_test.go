package classify

import (
	"bytes"
	"testing"
)

// checkLine checks the scanner's state after it took line: bounded, and no
// rule whose pattern matches the cleaned line was missed by the prefilter.
func checkLine(t *testing.T, r *Rules, s *Scanner, line []byte) {
	t.Helper()
	text, _ := clean(make([]byte, 0, maxScan), line)
	for i := range r.rules {
		rl := &r.rules[i]
		if rl.re == nil || (rl.phases != nil && !phaseIn(s.phase, rl.phases)) {
			continue
		}
		if s.matches[i].line == 0 && rl.re.Match(text) {
			t.Fatalf("rule %s matches %q but the prefilter did not wake it", rl.spec.Name, text)
		}
	}
	if cap(s.buf) != maxScan || cap(s.hits) != int(r.markBase)+numMarks || len(s.matches) != len(r.rules) {
		t.Fatalf("scanner state grew: buf %d hits %d matches %d", cap(s.buf), cap(s.hits), len(s.matches))
	}
	for _, m := range s.matches {
		if len(m.text) > maxEvidence {
			t.Fatalf("evidence of %d bytes", len(m.text))
		}
	}
}

func FuzzScanner_Line(f *testing.F) {
	r := defaultRules(f)
	f.Add([]byte(wanHead + bars(0, 3, 40)))
	f.Add([]byte(torchrunOOM))
	f.Add([]byte(torchrunKill))
	f.Fuzz(func(t *testing.T, data []byte) {
		// checkLine tries every rule on every line; past a few KiB an input
		// only slows the fuzzer down without reaching new code.
		if len(data) > 8<<10 {
			data = data[:8<<10]
		}
		s := NewScanner(r)
		for _, line := range bytes.FieldsFunc(data, func(c rune) bool { return c == '\n' || c == '\r' }) {
			s.Line(line)
			checkLine(t, r, s, line)
		}
		for _, o := range []Outcome{{}, {ExitCode: 1}, {ExitCode: 137, Signal: "SIGKILL"}, {Watchdog: WatchdogNoOutput, ExitCode: 143}} {
			res := s.Verdict(o)
			if !res.Class.Valid() || len(res.Evidence) > maxEvidence {
				t.Fatalf("Verdict(%+v) = %+v", o, res)
			}
			if res.RootCause != nil && len(res.RootCause.Error) > maxEvidence {
				t.Fatalf("root cause error of %d bytes", len(res.RootCause.Error))
			}
		}
	})
}

func FuzzCompile(f *testing.F) {
	f.Add(`CUDA out of memory`, "torch.OutOfMemoryError: CUDA out of memory.")
	f.Add(`(?i)\bquantiz(?:ing|ed)\b`, "Quantizing transformer")
	f.Add(`^exitcode\s*:\s*-9\b|failed \(exitcode: -9\)`, "  exitcode  : -9 (pid: 1)")
	f.Add(`(?i)kelvin`, "\u212aELVIN")
	f.Add(`[^a]`, "b")
	f.Add(`a{2,}bcd`, "aabcd")
	f.Fuzz(func(t *testing.T, pattern, line string) {
		r, err := Compile([]RuleSpec{{Name: "r", Class: ClassUnknown, Pattern: pattern}}, nil)
		if err != nil {
			return
		}
		s := NewScanner(r)
		s.Line([]byte(line))
		checkLine(t, r, s, []byte(line))
	})
}

// TestScanner_prefilterSound runs the fuzz checks over every corpus excerpt
// and every Verdict case: no rule may match a line its literals did not wake.
func TestScanner_prefilterSound(t *testing.T) {
	t.Parallel()
	r := defaultRules(t)
	var texts [][][]byte
	for i, c := range loadCorpus(t) {
		// Under -race, where regexps run several times slower, a sample will do.
		if !raceEnabled || i%8 == 0 {
			texts = append(texts, c.lines)
		}
	}
	for _, tt := range verdictCases() {
		texts = append(texts, bytes.Split([]byte(tt.text), []byte("\n")))
	}
	for _, lines := range texts {
		s := NewScanner(r)
		for _, l := range lines {
			s.Line(l)
			checkLine(t, r, s, l)
		}
	}
}
