package classify

import (
	"strings"
	"testing"
)

// benchLines is a realistic mix: Wan2.2 log lines, tqdm bars (one line per
// \r update) and a traceback every few thousand lines.
func benchLines() [][]byte {
	var b strings.Builder
	for range 4 {
		b.WriteString(wanHead)
		for range 60 {
			b.WriteString(bars(0, 40, 40))
		}
		b.WriteString("[2025-07-29 10:20:00,000] WARNING: a warning with no meaning for the rules\n")
		b.WriteString(oomTrace("  File \"/root/Wan2.2/wan/modules/vae2_1.py\", line 660, in decode\n    x = self.decoder(z)\n"))
		b.WriteString(wanTail)
	}
	var lines [][]byte
	for _, l := range strings.Split(b.String(), "\n") {
		lines = append(lines, []byte(l))
	}
	return lines
}

func BenchmarkScanner_Line(b *testing.B) {
	r := defaultRules(b)
	lines := benchLines()
	var bytes int
	for _, l := range lines {
		bytes += len(l)
	}
	s := NewScanner(r)
	b.SetBytes(int64(bytes / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(lines) {
			i, s = 0, NewScanner(r)
		}
		s.Line(lines[i])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkScanner_Verdict(b *testing.B) {
	r := defaultRules(b)
	s := NewScanner(r)
	for _, l := range benchLines() {
		s.Line(l)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := s.Verdict(Outcome{ExitCode: 1}); res.Class != ClassCUDAOOM {
			b.Fatalf("Verdict = %s", res.Class)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	f := loadRuleFile(b)
	for b.Loop() {
		if _, err := Compile(f.Rules, f.Phases); err != nil {
			b.Fatal(err)
		}
	}
}
