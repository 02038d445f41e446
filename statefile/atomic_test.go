package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")

	if err := WriteFileAtomic(p, []byte("one"), 0o640); err != nil {
		t.Fatalf("WriteFileAtomic new: %v", err)
	}
	if err := WriteFileAtomic(p, []byte("two"), 0o600); err != nil {
		t.Fatalf("WriteFileAtomic replace: %v", err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "two" {
		t.Fatalf("content = %q, %v; want \"two\"", got, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	wantOnly(t, dir, "state.json")
}

func TestWriteFileAtomic_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the target
		want  error
	}{
		{"directory missing", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "gone", "state.json")
		}, fs.ErrNotExist},
		{"parent is a file", func(t *testing.T, dir string) string {
			mustWrite(t, filepath.Join(dir, "file"), "x")
			return filepath.Join(dir, "file", "state.json")
		}, syscall.ENOTDIR},
		{"target is a directory", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "state.json")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(p, "keep"), "x") // a non-empty dir cannot be replaced
			return p
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := tt.setup(t, dir)
			before := listDir(t, dir)
			err := WriteFileAtomic(p, []byte("data"), 0o600)
			if err == nil || !strings.HasPrefix(err.Error(), "write "+p+": ") {
				t.Fatalf("WriteFileAtomic(%s) = %v, want an error starting \"write %s: \"", tt.name, err, p)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("WriteFileAtomic(%s) = %v, want %v", tt.name, err, tt.want)
			}
			if after := listDir(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("temp file left behind: %v, before %v", after, before)
			}
		})
	}
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func wantOnly(t *testing.T, dir string, want ...string) {
	t.Helper()
	if got := listDir(t, dir); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}
