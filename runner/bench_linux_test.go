package runner

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"
)

// countSink counts lines.
type countSink struct{ n int }

func (c *countSink) Line(Stream, []byte) { c.n++ }

// BenchmarkPassThrough measures the pumps alone: bytes from a pipe through
// to io.Discard, with the scanner and a sink behind them.
func BenchmarkPassThrough(b *testing.B) {
	outR, outW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	errW.Close()
	chunk := bytes.Repeat([]byte("denoising step 17/40 | loss 0.1234 | it/s 1.23 | mem 71.2 GiB free\n"), 1000)
	o := newOutput(time.Now(), 0)
	o.start(outR, errR, io.Discard, io.Discard, &countSink{}, 0)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := outW.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	outW.Close()
	<-o.done
	b.ReportMetric(float64(o.dropped.Load()), "dropped")
}

// BenchmarkSplitter measures line splitting on mixed \n and \r output.
func BenchmarkSplitter(b *testing.B) {
	var buf bytes.Buffer
	for i := 0; buf.Len() < 1<<20; i++ {
		if i%4 == 0 {
			buf.WriteString("\r 45%|####      | 18/40 [01:12<01:28,  4.01s/it]")
		} else {
			buf.WriteString("[2025-07-28 12:00:00] INFO: denoising step 17/40, sampling shift 5.0\n")
		}
	}
	data := buf.Bytes()
	lines := 0
	s := NewLineSplitter(0, func([]byte) { lines++ })
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_, _ = s.Write(data)
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}
