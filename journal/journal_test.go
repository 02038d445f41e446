package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tooLong bounds every wait in these tests.
const tooLong = 30 * time.Second

var t0 = time.Date(2025, 7, 28, 10, 0, 0, 123456789, time.UTC)

// fullRecord returns a record with every field set.
func fullRecord(run string, attempt int) Record {
	start := t0.Add(time.Duration(attempt) * time.Minute)
	return Record{
		RunID:         run,
		Attempt:       attempt,
		Argv:          []string{"python", "generate.py", "--task", "t2v-A14B", "--size", "1280*720", "--offload_model", "True"},
		EnvChanges:    map[string]string{"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
		Start:         start,
		End:           start.Add(42 * time.Second),
		DurationMS:    42000,
		ExitCode:      137,
		Signal:        "SIGKILL",
		StartError:    "exec: not found",
		Watchdog:      "no_output",
		Class:         "cuda_oom",
		Rule:          "torch_oom",
		Evidence:      "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
		Line:          1234,
		Phase:         "decode",
		Progress:      Progress{Step: 40, Total: 50},
		RootCause:     &RootCause{Rank: 3, ExitCode: 1, Error: "torch.OutOfMemoryError"},
		Action:        "fallback",
		DelayMS:       1500,
		Reason:        "next_rung",
		Message:       "falling back to offload",
		Ladder:        "vram",
		Rung:          2,
		RungName:      "offload",
		Changes:       []Change{{Kind: "argv", What: "--offload_model", From: "False", To: "True"}},
		Trades:        []string{"slower"},
		Task:          "t2v-A14B",
		Size:          "1280*720",
		FrameNum:      81,
		SaveFile:      "out.mp4",
		OutputBytes:   123456,
		SeedSeen:      42,
		Tail:          []string{"line one", "line two"},
		DroppedChunks: 2,
		Host:          json.RawMessage(`{"mem_total_mib":128000}`),
		GPUs:          json.RawMessage(`[{"index":0,"name":"NVIDIA H100"}]`),
		PeakRSSBytes:  1 << 34,
		PeakVRAMBytes: 1 << 35,
		OOMKills:      1,
		Xid:           "GPU 0: Xid 79",
		GPUModel:      "NVIDIA H100 80GB HBM3",
	}
}

func openT(t *testing.T, dir string, opt Options) *Journal {
	t.Helper()
	j, err := Open(dir, opt)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func readAllT(t *testing.T, dir string, since time.Time) ([]Record, ReadStats) {
	t.Helper()
	var got []Record
	st, err := ReadAll(dir, since, func(r Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadAll(%s) = %v", dir, err)
	}
	return got, st
}

func equalRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			g, _ := json.Marshal(got[i])
			w, _ := json.Marshal(want[i])
			t.Errorf("record %d:\n got %s\nwant %s", i, g, w)
		}
	}
}

func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return slices.Sorted(maps.Keys(m))
}

func TestRecord_fieldsMatchJSONTags(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]Record{"full": fullRecord("r", 1), "zero": {}} {
		f, err := r.fields()
		if err != nil {
			t.Fatalf("fields(%s) = %v", name, err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(maps.Keys(f))
		if want := jsonKeys(t, b); !slices.Equal(got, want) {
			t.Errorf("fields(%s) keys = %v, want the JSON keys %v", name, got, want)
		}
	}
	// The full record sets every field, so the comparison above covers them all.
	n := reflect.TypeFor[Record]().NumField()
	full := fullRecord("r", 1)
	if f, _ := full.fields(); len(f) != n {
		t.Errorf("full record writes %d fields, want all %d", len(f), n)
	}
}

func TestJournal_WriteReadBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openT(t, dir, DefaultOptions())
	want := []Record{fullRecord("run-a", 1), {RunID: "run-a", Attempt: 2, Class: "success", Start: t0, End: t0.Add(time.Second)}, fullRecord("run-b", 1)}
	for _, r := range want {
		if err := j.Write(r); err != nil {
			t.Fatalf("Write(%s/%d) = %v", r.RunID, r.Attempt, err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	got, st := readAllT(t, dir, time.Time{})
	equalRecords(t, got, want)
	if wantSt := (ReadStats{Files: 1, Lines: 3, Records: 3}); st != wantSt {
		t.Errorf("ReadStats = %+v, want %+v", st, wantSt)
	}

	// Each line is a logrus JSON object: the record's keys plus level, msg, time.
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	var line map[string]any
	if err := json.Unmarshal(lines[1], &line); err != nil {
		t.Fatal(err)
	}
	if line["level"] != "info" || line["msg"] != "attempt" || line["time"] == nil {
		t.Errorf("line has level=%v msg=%v time=%v, want info, attempt and a time", line["level"], line["msg"], line["time"])
	}
	if line["start"] != "2025-07-28T10:00:00.123456789Z" {
		t.Errorf("start = %v, want RFC 3339 with nanoseconds", line["start"])
	}
	for _, k := range []string{"argv", "signal", "tail", "host", "rung"} {
		if _, ok := line[k]; ok {
			t.Errorf("minimal record line has %q, want it omitted", k)
		}
	}
}

func TestJournal_childCannotForgeRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openT(t, dir, DefaultOptions())
	forged := `{"attempt":99,"class":"success","level":"info","msg":"attempt","run_id":"evil","time":"2025-01-01T00:00:00Z"}`
	r := fullRecord("run", 1)
	r.Tail = []string{
		forged,
		"[wan22-guard] attempt 1/5 succeeded after 1s",
		"end\n" + forged + "\n",
		`", "class": "success", "x": "`,
		"\r\x00\x1b[2K\u2028<script>",
	}
	r.Evidence = "\n" + forged
	if err := j.Write(r); err != nil {
		t.Fatalf("Write = %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n != 1 {
		t.Errorf("file has %d lines, want 1:\n%s", n, b)
	}
	got, st := readAllT(t, dir, time.Time{})
	if st.Records != 1 || st.Bad != 0 {
		t.Fatalf("ReadStats = %+v, want one record and nothing bad", st)
	}
	if got[0].RunID != "run" || got[0].Class != "cuda_oom" || got[0].Attempt != 1 {
		t.Errorf("record = %s/%d %s, want run/1 cuda_oom", got[0].RunID, got[0].Attempt, got[0].Class)
	}
	if !reflect.DeepEqual(got[0].Tail, r.Tail) || got[0].Evidence != r.Evidence {
		t.Errorf("tail = %q evidence %q, want them unchanged: %q %q", got[0].Tail, got[0].Evidence, r.Tail, r.Evidence)
	}
}

func TestJournal_redactsSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openT(t, dir, DefaultOptions())
	const secret = "s3cr3t-Value"
	r := fullRecord("run", 1)
	r.Argv = []string{"python", "generate.py", "--hf-token", secret, "--api_key=" + secret, "HF_TOKEN=" + secret}
	r.EnvChanges = map[string]string{"HF_TOKEN": secret}
	r.Tail = []string{"export HF_TOKEN=" + secret}
	r.Evidence = "password=" + secret
	r.Message = "--api-key " + secret
	r.StartError = "SECRET=" + secret
	r.RootCause = &RootCause{Error: "token=" + secret}
	r.Changes = []Change{{Kind: "env", What: "HF_TOKEN", To: secret}}
	argv := slices.Clone(r.Argv)
	if err := j.Write(r); err != nil {
		t.Fatalf("Write = %v", err)
	}
	if !slices.Equal(r.Argv, argv) || r.EnvChanges["HF_TOKEN"] != secret {
		t.Errorf("Write modified the caller's record: %q %v", r.Argv, r.EnvChanges)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(secret)) {
		t.Errorf("journal line holds the secret:\n%s", b)
	}
	if n := bytes.Count(b, []byte(Redacted)); n != 10 {
		t.Errorf("journal line has %d %s, want 10:\n%s", n, Redacted, b)
	}
}

func TestJournal_invalidFacts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openT(t, dir, DefaultOptions())
	r := fullRecord("run", 1)
	r.Host = json.RawMessage(`{"mem":`)
	err := j.Write(r)
	if !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Write with broken host facts = %v, want ErrInvalidRecord", err)
	}
	if j.Failures() != 0 {
		t.Errorf("Failures = %d, want 0: the record was written", j.Failures())
	}
	got, _ := readAllT(t, dir, time.Time{})
	want := fullRecord("run", 1)
	want.Host = nil
	equalRecords(t, got, []Record{want})
}

func TestJournal_permissions(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", ".wan22-guard")
	j := openT(t, dir, DefaultOptions())
	assertMode(t, dir, fs.ModeDir|0o700)
	assertMode(t, filepath.Join(dir, FileName), 0o600)
	if err := j.Write(fullRecord("run", 1)); err != nil {
		t.Fatalf("Write = %v", err)
	}
	assertMode(t, filepath.Join(dir, FileName), 0o600)
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}

func TestOpen_errors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		opt  Options
		want error
	}{
		{"parent is a file", filepath.Join(file, "run"), DefaultOptions(), syscall.ENOTDIR},
		{"dir is a file", file, DefaultOptions(), syscall.ENOTDIR},
		{"negative size", t.TempDir(), Options{MaxSizeMB: -1}, nil},
	}
	for _, tt := range tests {
		j, err := Open(tt.dir, tt.opt)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("Open(%s) = %v, %v; want an error matching %v", tt.name, j, err, tt.want)
		}
	}
}

func TestJournal_unwritableDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	j := openT(t, dir, DefaultOptions())
	if err := j.Write(fullRecord("run", 1)); err != nil {
		t.Fatalf("Write 1 = %v", err)
	}
	// A regular file where the directory was: mkdir fails, even for root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := j.Write(fullRecord("run", 2))
	if !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Write 2 = %v, want an ENOTDIR error", err)
	}
	for n := 3; n <= 4; n++ {
		if err := j.Write(fullRecord("run", n)); err != nil {
			t.Errorf("Write %d = %v, want nil: the failure was reported already", n, err)
		}
	}
	if got := j.Failures(); got != 3 {
		t.Errorf("Failures = %d, want 3", got)
	}

	// The directory comes back.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(fullRecord("run", 5)); err != nil {
		t.Fatalf("Write 5 = %v, want the directory recreated", err)
	}
	assertMode(t, dir, fs.ModeDir|0o700)
	assertMode(t, filepath.Join(dir, FileName), 0o600)
	got, _ := readAllT(t, dir, time.Time{})
	equalRecords(t, got, []Record{fullRecord("run", 5)})

	// A new failure after a success is reported again.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(fullRecord("run", 6)); err == nil {
		t.Errorf("Write 6 = nil, want the new failure reported")
	}
	if got := j.Failures(); got != 4 {
		t.Errorf("Failures = %d, want 4", got)
	}
}

func TestJournal_directoryDeleted(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	j := openT(t, dir, DefaultOptions())
	if err := j.Write(fullRecord("run", 1)); err != nil {
		t.Fatalf("Write 1 = %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(fullRecord("run", 2)); err != nil {
		t.Fatalf("Write 2 after the directory was deleted = %v, want it recreated", err)
	}
	if err := j.Write(fullRecord("run", 3)); err != nil {
		t.Fatalf("Write 3 = %v", err)
	}
	assertMode(t, dir, fs.ModeDir|0o700)
	got, _ := readAllT(t, dir, time.Time{})
	equalRecords(t, got, []Record{fullRecord("run", 2), fullRecord("run", 3)})
	if j.Failures() != 0 {
		t.Errorf("Failures = %d, want 0", j.Failures())
	}
}

func TestJournal_fileReplaced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openT(t, dir, DefaultOptions())
	if err := j.Write(fullRecord("run", 1)); err != nil {
		t.Fatalf("Write 1 = %v", err)
	}
	path := filepath.Join(dir, FileName)
	if err := os.Rename(path, filepath.Join(dir, "moved.jsonl")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(fullRecord("run", 2)); err != nil {
		t.Fatalf("Write 2 = %v", err)
	}
	got, _ := readAllT(t, dir, time.Time{})
	equalRecords(t, got, []Record{fullRecord("run", 2)})
}

func TestJournal_diskFull(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	dir := t.TempDir()
	j := openT(t, dir, DefaultOptions())
	if err := j.Write(fullRecord("run", 1)); err != nil {
		t.Fatalf("Write 1 = %v", err)
	}
	path := filepath.Join(dir, FileName)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(fullRecord("run", 2)); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Write 2 on a full disk = %v, want ENOSPC", err)
	}
	if err := j.Write(fullRecord("run", 3)); err != nil {
		t.Errorf("Write 3 = %v, want nil: the failure was reported already", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(fullRecord("run", 4)); err != nil {
		t.Fatalf("Write 4 after space came back = %v", err)
	}
	got, st := readAllT(t, dir, time.Time{})
	equalRecords(t, got, []Record{fullRecord("run", 4)})
	if st.Bad != 0 || j.Failures() != 2 {
		t.Errorf("Bad = %d, Failures = %d; want 0 and 2", st.Bad, j.Failures())
	}
}

func TestJournal_partialLineAfterFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openT(t, dir, DefaultOptions())
	real := j.sink.w
	half := &halfWriter{w: real}
	j.sink.w = half
	if err := j.Write(fullRecord("run", 1)); err == nil {
		t.Fatal("Write through a failing writer = nil, want an error")
	}
	j.sink.w = real
	if err := j.Write(fullRecord("run", 2)); err != nil {
		t.Fatalf("Write 2 = %v", err)
	}
	got, st := readAllT(t, dir, time.Time{})
	equalRecords(t, got, []Record{fullRecord("run", 2)})
	if st.Bad != 1 {
		t.Errorf("Bad = %d, want 1 (the half line)", st.Bad)
	}
}

// halfWriter writes half of what it is given, then fails.
type halfWriter struct{ w io.WriteCloser }

func (h *halfWriter) Write(p []byte) (int, error) {
	n, _ := h.w.Write(p[:len(p)/2])
	return n, syscall.ENOSPC
}

func (h *halfWriter) Close() error { return h.w.Close() }

// stuckWriter blocks every Write until release is closed.
type stuckWriter struct {
	release chan struct{}
	mu      sync.Mutex
	got     [][]byte
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, bytes.Clone(p))
	return len(p), nil
}

func (s *stuckWriter) Close() error { return nil }

func TestJournal_stuckDiskDoesNotBlock(t *testing.T) {
	t.Parallel()
	opt := DefaultOptions()
	opt.WriteTimeout = 50 * time.Millisecond
	j := openT(t, t.TempDir(), opt)
	stuck := &stuckWriter{release: make(chan struct{})}
	j.sink.w = stuck

	start := time.Now()
	if err := j.Write(fullRecord("run", 1)); !errors.Is(err, ErrTimeout) {
		t.Errorf("Write 1 on a stuck disk = %v, want ErrTimeout", err)
	}
	if err := j.Write(fullRecord("run", 2)); err != nil {
		t.Errorf("Write 2 while write 1 is stuck = %v, want nil: reported already", err)
	}
	if d := time.Since(start); d > tooLong {
		t.Errorf("two Writes took %v", d)
	}
	if got := j.Failures(); got != 2 {
		t.Errorf("Failures = %d, want 2", got)
	}
	close(stuck.release)
	if err := j.Close(); err != nil {
		t.Fatalf("Close after the disk came back = %v", err)
	}
	if len(stuck.got) != 1 || !bytes.Contains(stuck.got[0], []byte(`"attempt":1,`)) {
		t.Errorf("stuck writer got %q, want record 1 only", stuck.got)
	}
	if err := j.Write(fullRecord("run", 3)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestJournal_closeWhileStuck(t *testing.T) {
	t.Parallel()
	opt := DefaultOptions()
	opt.WriteTimeout = 20 * time.Millisecond
	j := openT(t, t.TempDir(), opt)
	stuck := &stuckWriter{release: make(chan struct{})}
	j.sink.w = stuck
	defer close(stuck.release)
	if err := j.Write(fullRecord("run", 1)); !errors.Is(err, ErrTimeout) {
		t.Errorf("Write = %v, want ErrTimeout", err)
	}
	if err := j.Close(); !errors.Is(err, ErrTimeout) {
		t.Errorf("Close while a write is stuck = %v, want ErrTimeout", err)
	}
}

func TestJournal_closed(t *testing.T) {
	t.Parallel()
	j, err := Open(t.TempDir(), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := j.Write(fullRecord("run", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	var none *Journal
	if err := none.Write(Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("nil Journal Write = %v, want ErrClosed", err)
	}
}

func TestJournal_concurrentWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := DefaultOptions()
	opt.WriteTimeout = tooLong
	j := openT(t, dir, opt)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for n := 1; n <= 25; n++ {
				if err := j.Write(fullRecord(fmt.Sprintf("run-%d", w), n)); err != nil {
					t.Errorf("Write(run-%d/%d) = %v", w, n, err)
				}
			}
		})
	}
	wg.Wait()
	got, st := readAllT(t, dir, time.Time{})
	if st.Bad != 0 || len(got) != 100 || j.Failures() != 0 {
		t.Errorf("read %d records, %d bad, %d failures; want 100, none bad, no failures", len(got), st.Bad, j.Failures())
	}
}

func TestJournal_rotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := DefaultOptions()
	opt.MaxSizeMB = 1
	j := openT(t, dir, opt)
	var want []Record
	written := 0
	for n := 1; written < 2<<20+1<<19; n++ {
		r := fullRecord("run", n)
		r.Tail = []string{strings.Repeat("x", 2000)}
		if err := j.Write(r); err != nil {
			t.Fatalf("Write %d = %v", n, err)
		}
		want = append(want, r)
		written += 2400
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// lumberjack compresses in its own goroutine: wait for the gzipped
	// backups to replace the plain ones.
	var gz []string
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(tooLong); ; <-tick.C {
		plain, _ := filepath.Glob(filepath.Join(dir, "attempts-*.jsonl"))
		gz, _ = filepath.Glob(filepath.Join(dir, "attempts-*.jsonl.gz"))
		if len(plain) == 0 && len(gz) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: plain backups %q, gzipped %q; want 2 or more gzipped only", tooLong, plain, gz)
		}
	}
	for _, p := range gz {
		assertMode(t, p, 0o600)
	}
	got, st := readAllT(t, dir, time.Time{})
	equalRecords(t, got, want)
	if st.Files != len(gz)+1 || st.Bad != 0 {
		t.Errorf("ReadStats = %+v, want %d files and nothing bad", st, len(gz)+1)
	}
	last, ok, err := Last(dir)
	if err != nil || !ok || !reflect.DeepEqual(last, want[len(want)-1]) {
		t.Errorf("Last = %d, %v, %v; want attempt %d", last.Attempt, ok, err, len(want))
	}
}
