package statefile

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// bigState returns a JSON state of about 1 MiB whose content depends on step
// (the step field has a fixed width, so every version has the same size).
func bigState(step int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"version\": 1,\n  \"step\": %9d,\n  \"latents\": [", step)
	for i := 0; b.Len() < 1<<20-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%.6f", float64(i%9973)/9973)
	}
	b.WriteString("]\n}\n")
	return b.Bytes()
}

// BenchmarkSnapshotRestore measures one Snapshot of a new 1 MiB JSON version
// of the state file followed by one Restore of the latest snapshot: read,
// validate, checksum, two atomic writes with fsyncs, then verify and one
// atomic write over the state file. Writing the new version and pruning are
// not timed.
func BenchmarkSnapshotRestore(b *testing.B) {
	s, err := NewStore(b.TempDir()+"/state.json", b.TempDir(), Options{Keep: 4})
	if err != nil {
		b.Fatal(err)
	}
	versions := [][]byte{bigState(1), bigState(2)}
	b.SetBytes(int64(len(versions[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.WriteFile(s.StateFile(), versions[i%2], 0o600); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Prune(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Snapshot("bench"); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Restore(""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDefaultValidate measures validating a 1 MiB JSON state.
func BenchmarkDefaultValidate(b *testing.B) {
	data := bigState(1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := DefaultValidate("state.json", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDefaultValidate_Strings measures validating a 1 MiB JSON state
// made mostly of one long string (an encoded blob).
func BenchmarkDefaultValidate_Strings(b *testing.B) {
	data := []byte(`{"version": 1, "blob": "` + strings.Repeat("QUJDRA==", 1<<17) + `"}`)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := DefaultValidate("state.json", data); err != nil {
			b.Fatal(err)
		}
	}
}
