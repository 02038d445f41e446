package journal

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// line returns r as a journal line.
func line(t *testing.T, r Record) string {
	t.Helper()
	b, err := json.Marshal(struct {
		recordLine
		Level string `json:"level"`
	}{recordLine{r, msgAttempt}, "info"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func writeFile(t *testing.T, path string, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeGzip(t *testing.T, path string, content string) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b.String())
}

// rec returns a small record of run "r" that ended at t0 plus end minutes.
func rec(attempt int, end int) Record {
	return Record{RunID: "r", Attempt: attempt, Class: "cuda_oom", Start: t0, End: t0.Add(time.Duration(end) * time.Minute)}
}

func attempts(rs []Record) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.Attempt)
	}
	return out
}

func TestReadAll_malformedLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	content := line(t, rec(1, 1)) +
		"not json\n" +
		`{"run_id":"r","attempt":2,"msg":"attempt"` + "\n" + // cut short
		`{"level":"info","msg":"child exited"}` + "\n" + // another log line
		`["an","array"]` + "\n" +
		`{"run_id":"r","attempt":"two","msg":"attempt"}` + "\n" + // wrong type
		"\n   \n" +
		line(t, rec(3, 3)) +
		strings.TrimSuffix(line(t, rec(4, 4)), "\n") // no final newline
	writeFile(t, filepath.Join(dir, FileName), content)
	got, st := readAllT(t, dir, time.Time{})
	if want := []int{1, 3, 4}; !reflect.DeepEqual(attempts(got), want) {
		t.Errorf("attempts = %v, want %v", attempts(got), want)
	}
	if want := (ReadStats{Files: 1, Lines: 8, Bad: 5, Records: 3}); st != want {
		t.Errorf("ReadStats = %+v, want %+v", st, want)
	}
}

func TestReadAll_longLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := rec(2, 2)
	big.Tail = []string{strings.Repeat("y", 3*readBuffer)}
	writeFile(t, filepath.Join(dir, FileName), line(t, rec(1, 1))+line(t, big)+line(t, rec(3, 3)))
	got, st := readAllT(t, dir, time.Time{})
	if want := []int{1, 2, 3}; !reflect.DeepEqual(attempts(got), want) {
		t.Errorf("attempts = %v, want %v", attempts(got), want)
	}
	if len(got) == 3 && !reflect.DeepEqual(got[1], big) {
		t.Errorf("a line longer than the read buffer came back changed")
	}
	if st.Bad != 0 || st.Lines != 3 {
		t.Errorf("ReadStats = %+v, want 3 lines and nothing bad", st)
	}
}

func TestLineReader_next(t *testing.T) {
	t.Parallel()
	in := "short\n" + strings.Repeat("a", 100) + "\n" + strings.Repeat("b", 101) + "\n" + strings.Repeat("c", 300) + "\nend"
	lr := lineReader{br: bufio.NewReaderSize(strings.NewReader(in), 16), max: 101}
	type result struct {
		line    string
		tooLong bool
		err     error
	}
	want := []result{
		{"short\n", false, nil},
		{strings.Repeat("a", 100) + "\n", false, nil},
		{"", true, nil},
		{"", true, nil},
		{"end", false, io.EOF},
	}
	for i, w := range want {
		l, tooLong, err := lr.next()
		if got := (result{string(l), tooLong, err}); got != w {
			t.Errorf("next() #%d = %q, %v, %v; want %q, %v, %v", i, got.line, got.tooLong, got.err, w.line, w.tooLong, w.err)
		}
	}
}

// backups writes a journal directory by hand: three rotated backups (gzipped,
// plain, and one caught mid-compression with both) and the current file.
func backups(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeGzip(t, filepath.Join(dir, "attempts-2025-07-28T10-05-00.000.jsonl.gz"), line(t, rec(1, 1))+line(t, rec(2, 2)))
	writeFile(t, filepath.Join(dir, "attempts-2025-07-28T10-10-00.000.jsonl"), line(t, rec(3, 6)))
	writeFile(t, filepath.Join(dir, "attempts-2025-07-28T10-20-00.000.jsonl"), line(t, rec(4, 12)))
	writeGzip(t, filepath.Join(dir, "attempts-2025-07-28T10-20-00.000.jsonl.gz"), line(t, rec(4, 12))[:20])
	writeFile(t, filepath.Join(dir, FileName), line(t, rec(5, 25)))
	// Not part of the journal.
	writeFile(t, filepath.Join(dir, "attempts-latest.jsonl"), line(t, rec(99, 1)))
	writeFile(t, filepath.Join(dir, "run.json"), "{}")
	if err := os.Mkdir(filepath.Join(dir, "attempts-2025-07-28T10-30-00.000.jsonl"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadAll_order(t *testing.T) {
	t.Parallel()
	dir := backups(t)
	got, st := readAllT(t, dir, time.Time{})
	if want := []int{1, 2, 3, 4, 5}; !reflect.DeepEqual(attempts(got), want) {
		t.Errorf("attempts = %v, want %v (oldest first, each once)", attempts(got), want)
	}
	if want := (ReadStats{Files: 4, Lines: 5, Records: 5}); st != want {
		t.Errorf("ReadStats = %+v, want %+v", st, want)
	}
}

func TestReadAll_since(t *testing.T) {
	t.Parallel()
	dir := backups(t)
	tests := []struct {
		name      string
		since     time.Time
		want      []int
		wantFiles int
	}{
		{"zero reads all", time.Time{}, []int{1, 2, 3, 4, 5}, 4},
		{"skips records", t0.Add(2 * time.Minute), []int{2, 3, 4, 5}, 4},
		{"skips rotated files", t0.Add(7 * time.Minute), []int{4, 5}, 3},
		{"current file only", t0.Add(20 * time.Minute), []int{5}, 1},
		{"after everything", t0.Add(time.Hour), nil, 1},
	}
	for _, tt := range tests {
		got, st := readAllT(t, dir, tt.since)
		if !reflect.DeepEqual(attempts(got), tt.want) || st.Files != tt.wantFiles {
			t.Errorf("ReadAll(%s) = %v from %d files, want %v from %d", tt.name, attempts(got), st.Files, tt.want, tt.wantFiles)
		}
	}
}

func TestReadAll_damagedGzip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(line(t, rec(1, 1)) + line(t, rec(2, 2))))
	zw.Close()
	writeFile(t, filepath.Join(dir, "attempts-2025-07-28T10-05-00.000.jsonl.gz"), b.String()[:b.Len()-12])
	writeFile(t, filepath.Join(dir, "attempts-2025-07-28T10-06-00.000.jsonl.gz"), "not gzip at all")
	writeFile(t, filepath.Join(dir, FileName), line(t, rec(3, 3)))
	got, st := readAllT(t, dir, time.Time{})
	if want := []int{1, 2, 3}; !reflect.DeepEqual(attempts(got), want) {
		t.Errorf("attempts = %v, want %v", attempts(got), want)
	}
	if st.Bad != 2 {
		t.Errorf("Bad = %d, want 2 (a cut gzip and a non-gzip)", st.Bad)
	}
}

func TestReadAll_stopsOnCallbackError(t *testing.T) {
	t.Parallel()
	dir := backups(t)
	stop := errors.New("enough")
	n := 0
	_, err := ReadAll(dir, time.Time{}, func(Record) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("ReadAll = %v after %d records, want the callback's error as is after 2", err, n)
	}
}

func TestReadAll_missingDirectory(t *testing.T) {
	t.Parallel()
	_, err := ReadAll(filepath.Join(t.TempDir(), "none"), time.Time{}, func(Record) error { return nil })
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadAll(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestReadAll_emptyDirectory(t *testing.T) {
	t.Parallel()
	got, st := readAllT(t, t.TempDir(), time.Time{})
	if len(got) != 0 || st != (ReadStats{}) {
		t.Errorf("ReadAll(empty) = %d records, %+v; want nothing", len(got), st)
	}
}

func TestLast(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	mk := func(name string, files map[string]string) string {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for n, c := range files {
			if strings.HasSuffix(n, ".gz") {
				writeGzip(t, filepath.Join(dir, n), c)
			} else {
				writeFile(t, filepath.Join(dir, n), c)
			}
		}
		return dir
	}
	var many strings.Builder
	for n := 1; n <= 2000; n++ {
		many.WriteString(line(t, rec(n, n)))
	}
	manyLines := many.String()
	longTail := rec(7, 7)
	longTail.Tail = []string{strings.Repeat("t", 200<<10)}
	tests := []struct {
		name   string
		dir    string
		want   int
		wantOK bool
	}{
		{"missing directory", filepath.Join(base, "none"), 0, false},
		{"empty directory", mk("empty", nil), 0, false},
		{"empty file", mk("emptyfile", map[string]string{FileName: ""}), 0, false},
		{"one record", mk("one", map[string]string{FileName: line(t, rec(1, 1))}), 1, true},
		{"many chunks", mk("many", map[string]string{FileName: manyLines}), 2000, true},
		{"trailing garbage", mk("garbage", map[string]string{FileName: line(t, rec(1, 1)) + line(t, rec(2, 2)) + "{\"run_id\":\"r\",\n\n"}), 2, true},
		{"no final newline", mk("nonl", map[string]string{FileName: line(t, rec(1, 1)) + strings.TrimSpace(line(t, rec(2, 2)))}), 2, true},
		{"line longer than a chunk", mk("long", map[string]string{FileName: line(t, rec(6, 6)) + line(t, longTail)}), 7, true},
		{"only bad lines", mk("bad", map[string]string{FileName: "x\ny\n"}), 0, false},
		{"just rotated", mk("rotated", map[string]string{
			FileName: "",
			"attempts-2025-07-28T10-05-00.000.jsonl.gz": line(t, rec(1, 1)),
			"attempts-2025-07-28T10-06-00.000.jsonl.gz": line(t, rec(2, 2)) + line(t, rec(3, 3)),
		}), 3, true},
		{"newest backup plain", mk("plain", map[string]string{
			"attempts-2025-07-28T10-05-00.000.jsonl.gz": line(t, rec(1, 1)),
			"attempts-2025-07-28T10-06-00.000.jsonl":    line(t, rec(4, 4)),
		}), 4, true},
	}
	for _, tt := range tests {
		got, ok, err := Last(tt.dir)
		if err != nil || ok != tt.wantOK || got.Attempt != tt.want {
			t.Errorf("Last(%s) = attempt %d, %v, %v; want %d, %v, nil", tt.name, got.Attempt, ok, err, tt.want, tt.wantOK)
		}
	}
}
