package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type runState struct {
	Version int    `json:"version"`
	Attempt int    `json:"attempt"`
	Rung    string `json:"rung"`
}

func TestSaveJSON_LoadJSON(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "run.json")
	want := runState{Version: 1, Attempt: 3, Rung: "offload"}
	if err := SaveJSON(p, want); err != nil {
		t.Fatalf("SaveJSON: %v", err)
	}
	var got runState
	if err := LoadJSON(p, &got); err != nil || got != want {
		t.Fatalf("LoadJSON = %+v, %v; want %+v", got, err, want)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("run file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestLoadJSON_Errors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		mustWrite(t, p, s)
		return p
	}
	tests := []struct {
		name    string
		path    string
		into    any
		want    error
		offset  int64 // of the *ParseError; -1 = none expected
		message string
	}{
		{"missing", filepath.Join(dir, "none.json"), new(runState), ErrNoState, -1, "load "},
		{"empty", write("empty.json", ""), new(runState), ErrCorruptState, -1, "empty file"},
		{"truncated", write("torn.json", `{"version": 1, "att`), new(runState), ErrCorruptState, 19, "(offset 19)"},
		{"wrong type", write("type.json", `{"attempt": "three"}`), new(runState), ErrCorruptState, 19, "(offset 19)"},
		{"two values", write("two.json", `{} {}`), new(runState), ErrCorruptState, 4, "(offset 4)"},
	}
	for _, tt := range tests {
		err := LoadJSON(tt.path, tt.into)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.message) {
			t.Errorf("LoadJSON(%s) = %v, want %v naming %s and %q", tt.name, err, tt.want, tt.path, tt.message)
		}
		var pe *ParseError
		if tt.offset >= 0 && (!errors.As(err, &pe) || pe.Offset != tt.offset) {
			t.Errorf("LoadJSON(%s): ParseError %+v, want offset %d", tt.name, pe, tt.offset)
		}
	}

	p := write("ok.json", `{"version": 1}`)
	if err := LoadJSON(p, runState{}); err == nil || errors.Is(err, ErrCorruptState) {
		t.Errorf("LoadJSON into a non-pointer = %v, want an error that is not ErrCorruptState", err)
	}
}

func TestSaveJSON_Errors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := SaveJSON(filepath.Join(dir, "x.json"), make(chan int)); err == nil {
		t.Error("SaveJSON(chan) = nil, want an error")
	}
	p := filepath.Join(dir, "missing", "run.json")
	if err := SaveJSON(p, runState{}); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("SaveJSON into a missing dir = %v, want an error naming %s", err, p)
	}
	wantOnly(t, dir)
}
