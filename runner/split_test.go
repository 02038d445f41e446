package runner

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// splitAll feeds in to a splitter cut at the given offsets and returns the
// lines after Flush.
func splitAll(max int, in string, cuts ...int) []string {
	var got []string
	s := NewLineSplitter(max, func(line []byte) { got = append(got, string(line)) })
	prev := 0
	for _, c := range append(cuts, len(in)) {
		_, _ = s.Write([]byte(in[prev:c]))
		prev = c
	}
	s.Flush()
	return got
}

func TestLineSplitter_Split(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"newlines", "a\nb\n", []string{"a", "b"}},
		{"partial last line flushed", "a\nb", []string{"a", "b"}},
		{"crlf is one terminator", "a\r\nb\r\n", []string{"a", "b"}},
		{"progress bar redraws", "\r 10%\r 20%\r100%\n", []string{" 10%", " 20%", "100%"}},
		{"error glued after cr", "step 3/40\rRuntimeError: CUDA error: out of memory\n", []string{"step 3/40", "RuntimeError: CUDA error: out of memory"}},
		{"empty lines between cr skipped", "a\r\r\rb\r", []string{"a", "b"}},
		{"empty newline lines kept", "a\n\nb\n", []string{"a", "", "b"}},
		{"cr then newline then newline", "a\r\n\nb", []string{"a", "", "b"}},
		{"nothing", "", nil},
		{"only terminators", "\r\n\r\n", []string{"", ""}},
	}
	for _, tt := range tests {
		if got := splitAll(0, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
		// The same lines whatever the chunking.
		for i := 0; i <= len(tt.in); i++ {
			for j := i; j <= len(tt.in); j++ {
				if got := splitAll(0, tt.in, i, j); !slices.Equal(got, tt.want) {
					t.Fatalf("%s cut at %d and %d: got %q, want %q", tt.name, i, j, got, tt.want)
				}
			}
		}
	}
}

func TestLineSplitter_CapsLine(t *testing.T) {
	long := strings.Repeat("x", 100)
	in := long + "\nshort\n" + long
	want := []string{long[:10], "short", long[:10]}
	for i := 0; i <= len(in); i++ {
		if got := splitAll(10, in, i); !slices.Equal(got, want) {
			t.Fatalf("cut at %d: got %q, want %q", i, got, want)
		}
	}
}

func TestLineSplitter_MemoryStaysAtCap(t *testing.T) {
	var lines [][]byte
	s := NewLineSplitter(1000, func(line []byte) { lines = append(lines, bytes.Clone(line)) })
	chunk := bytes.Repeat([]byte("y"), 4096)
	for range 4096 { // 16 MiB without a newline
		_, _ = s.Write(chunk)
	}
	if c := cap(s.buf); c > 1000 {
		t.Errorf("splitter holds %d bytes, want at most 1000", c)
	}
	_, _ = s.Write([]byte("\nz\n"))
	if len(lines) != 2 || len(lines[0]) != 1000 || string(lines[1]) != "z" {
		t.Errorf("got %d lines (first %d bytes), want a 1000-byte line and \"z\"", len(lines), len(lines[0]))
	}
}

func TestLineSplitter_Reset(t *testing.T) {
	var got []string
	s := NewLineSplitter(0, func(line []byte) { got = append(got, string(line)) })
	_, _ = s.Write([]byte("lost part"))
	s.Reset()
	_, _ = s.Write([]byte("kept\n"))
	if want := []string{"kept"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTail_KeepsLastLines(t *testing.T) {
	tl := tail{lines: make([][]byte, 3)}
	if got := tl.get(); len(got) != 0 {
		t.Errorf("empty tail = %q", got)
	}
	for _, l := range []string{"a", "b", "c", "d", "e"} {
		tl.add([]byte(l))
	}
	if got, want := tl.get(), []string{"c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("tail = %q, want %q", got, want)
	}
}
