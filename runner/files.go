package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wan22-guard/wan22-guard/statefile"
	"github.com/wan22-guard/wan22-guard/strategies"
)

// originalsDirName holds, while an attempt runs with a patched config file,
// the user's original of that file, so a guard killed mid-attempt does not
// leave the user's file patched: the next guard puts it back.
const originalsDirName = "originals"

// original is the sidecar of a kept original: where it goes back to.
type original struct {
	Path string      `json:"path"`
	Mode os.FileMode `json:"mode"`
}

func originalsDir(o *Options) string {
	if o.RunFile == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(o.RunFile), originalsDirName)
}

func originalKey(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:8])
}

// applyFiles applies a rung's config file patches and returns a function
// that puts the user's originals back. With dir set, each original is
// first kept there durably, and removed once it is back in place.
func applyFiles(dir string, files []strategies.FilePatch) (func(), error) {
	var undo []func()
	restore := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	for _, f := range files {
		orig, err := os.ReadFile(f.Path)
		if err != nil {
			return restore, fmt.Errorf("read %s: %w", f.Path, err)
		}
		fi, _ := os.Stat(f.Path)
		mode := os.FileMode(0o644)
		if fi != nil {
			mode = fi.Mode().Perm()
		}
		next, err := strategies.ApplyFilePatch(f, orig, readFileFn)
		if err != nil {
			return restore, err
		}
		var kept []string
		if dir != "" {
			if kept, err = keepOriginal(dir, f.Path, mode, orig); err != nil {
				return restore, err
			}
		}
		if err := writeAtomic(f.Path, next, mode); err != nil {
			removeAll(kept)
			return restore, err
		}
		path := f.Path
		undo = append(undo, func() {
			if writeAtomic(path, orig, mode) == nil {
				removeAll(kept)
			}
		})
	}
	return restore, nil
}

// keepOriginal writes data and its sidecar under dir and returns their paths.
func keepOriginal(dir, path string, mode os.FileMode, data []byte) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keep the original of %s: %w", path, err)
	}
	base := filepath.Join(dir, originalKey(path))
	if err := statefile.WriteFileAtomic(base+".orig", data, 0o600); err != nil {
		return nil, fmt.Errorf("keep the original of %s: %w", path, err)
	}
	meta, _ := json.Marshal(original{Path: path, Mode: mode})
	if err := statefile.WriteFileAtomic(base+".json", meta, 0o600); err != nil {
		removeAll([]string{base + ".orig"})
		return nil, fmt.Errorf("keep the original of %s: %w", path, err)
	}
	return []string{base + ".json", base + ".orig"}, nil
}

// restoreOriginals puts back every original a killed guard left in dir and
// returns the paths it restored.
func restoreOriginals(dir string) ([]string, error) {
	metas, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(metas) == 0 {
		return nil, err
	}
	var done []string
	for _, m := range metas {
		b, err := os.ReadFile(m)
		var meta original
		if err != nil || json.Unmarshal(b, &meta) != nil || meta.Path == "" {
			continue
		}
		orig := strings.TrimSuffix(m, ".json") + ".orig"
		data, err := os.ReadFile(orig)
		if err != nil {
			continue
		}
		if err := writeAtomic(meta.Path, data, meta.Mode); err != nil {
			return done, fmt.Errorf("restore %s: %w", meta.Path, err)
		}
		removeAll([]string{m, orig})
		done = append(done, meta.Path)
	}
	return done, nil
}

func removeAll(paths []string) {
	for _, p := range paths {
		_ = os.Remove(p)
	}
}

func readFileFn(path string) ([]byte, error) { return os.ReadFile(path) }
