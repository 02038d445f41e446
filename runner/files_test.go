package runner

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wan22-guard/wan22-guard/strategies"
)

func TestApplyFiles_PutsTheOriginalBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wgp.json")
	orig := []byte(`{"profile": 3, "preload": 2000}`)
	if err := os.WriteFile(cfg, orig, 0o640); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, "run", originalsDirName)
	patch := []strategies.FilePatch{{Path: cfg, Merge: map[string]any{"profile": 5}}}

	t.Run("after the attempt", func(t *testing.T) {
		undo, err := applyFiles(keep, patch)
		if err != nil {
			t.Fatalf("applyFiles: %v", err)
		}
		if b, _ := os.ReadFile(cfg); slices.Equal(b, orig) {
			t.Fatalf("file not patched: %s", b)
		}
		undo()
		if b, _ := os.ReadFile(cfg); !slices.Equal(b, orig) {
			t.Errorf("after undo the file is %s, want the original", b)
		}
		if left, _ := os.ReadDir(keep); len(left) != 0 {
			t.Errorf("originals dir still holds %d files after undo", len(left))
		}
	})

	t.Run("after the guard was killed", func(t *testing.T) {
		if _, err := applyFiles(keep, patch); err != nil { // no undo: the guard died
			t.Fatalf("applyFiles: %v", err)
		}
		got, err := restoreOriginals(keep)
		if err != nil || !slices.Equal(got, []string{cfg}) {
			t.Fatalf("restoreOriginals = %v, %v; want [%s]", got, err, cfg)
		}
		b, _ := os.ReadFile(cfg)
		fi, _ := os.Stat(cfg)
		if !slices.Equal(b, orig) || fi.Mode().Perm() != 0o640 {
			t.Errorf("restored file %s mode %v, want the original with mode 0640", b, fi.Mode().Perm())
		}
		if again, _ := restoreOriginals(keep); len(again) != 0 {
			t.Errorf("a second restore put back %v, want nothing", again)
		}
	})
}
