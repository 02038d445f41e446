package journal

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// benchRecord returns a realistic record: attempt i%4+1 of run i/4, with a
// 20-line tail.
func benchRecord(i int) Record {
	r := fullRecord(fmt.Sprintf("run-%06d", i/4), i%4+1)
	r.Tail = make([]string, 20)
	for k := range r.Tail {
		r.Tail[k] = fmt.Sprintf("[2025-07-28 10:%02d:%02d,123] INFO: denoising step %d/50, %s", k, i%60, k, strings.Repeat("#", 30))
	}
	classes := []string{"cuda_oom", "host_oom", "network", "success"}
	r.Class = classes[i%4]
	return r
}

func BenchmarkWrite(b *testing.B) {
	j, err := Open(b.TempDir(), DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	r := benchRecord(1)
	line, _ := json.Marshal(r)
	b.SetBytes(int64(len(line)))
	n := 0
	for b.Loop() {
		r.Attempt = n
		if err := j.Write(r); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkEncode compares the fields Write builds with a JSON round trip of
// the record into a map, both formatted by logrus.
func BenchmarkEncode(b *testing.B) {
	r := benchRecord(1)
	f := &logrus.JSONFormatter{}
	log := logrus.New()
	b.Run("fields", func(b *testing.B) {
		for b.Loop() {
			fs, _ := r.fields()
			if _, err := f.Format(&logrus.Entry{Logger: log, Data: fs, Time: t0, Message: msgAttempt}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json_map", func(b *testing.B) {
		for b.Loop() {
			raw, _ := json.Marshal(r)
			var fs logrus.Fields
			if err := json.Unmarshal(raw, &fs); err != nil {
				b.Fatal(err)
			}
			if _, err := f.Format(&logrus.Entry{Logger: log, Data: fs, Time: t0, Message: msgAttempt}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchJournal writes about size bytes of records through a Journal rotating
// at 10 MB, waits until lumberjack has gzipped the backups, and returns the
// number of records and their uncompressed size.
func benchJournal(b *testing.B, dir string, size int64) (records int, bytes int64) {
	b.Helper()
	opt := DefaultOptions()
	opt.MaxSizeMB = 10
	opt.MaxBackups = 0
	opt.WriteTimeout = time.Minute
	j, err := Open(dir, opt)
	if err != nil {
		b.Fatal(err)
	}
	line, _ := json.Marshal(benchRecord(0))
	for i := 0; int64(i*len(line)) < size; i++ {
		if err := j.Write(benchRecord(i)); err != nil {
			b.Fatal(err)
		}
		records++
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(5 * time.Minute); ; <-tick.C {
		plain, _ := filepath.Glob(filepath.Join(dir, "attempts-*.jsonl"))
		if len(plain) == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("backups still not compressed: %q", plain)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "attempts*"))
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				b.Fatal(err)
			}
		}
		n, err := io.Copy(io.Discard, r)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		bytes += n
	}
	return records, bytes
}

func BenchmarkReadAll(b *testing.B) {
	dir := b.TempDir()
	records, size := benchJournal(b, dir, 100<<20)
	b.SetBytes(size)
	for b.Loop() {
		n := 0
		st, err := ReadAll(dir, time.Time{}, func(Record) error { n++; return nil })
		if err != nil || n != records || st.Bad != 0 {
			b.Fatalf("ReadAll = %d records, %+v, %v; want %d", n, st, err, records)
		}
	}
	b.ReportMetric(float64(records), "records/op")
}

func BenchmarkStats(b *testing.B) {
	rs := make([]Record, 100_000)
	for i := range rs {
		rs[i] = benchRecord(i)
		rs[i].Tail = nil
	}
	n := 0
	for b.Loop() {
		if s := Compute(slices.Values(rs)); s.Attempts != len(rs) {
			b.Fatalf("Compute counted %d attempts, want %d", s.Attempts, len(rs))
		}
		n += len(rs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
