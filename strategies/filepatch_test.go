package strategies

import (
	"errors"
	"reflect"
	"testing"
)

func TestApplyFilePatch(t *testing.T) {
	t.Parallel()
	files := map[string]string{"safe.yaml": "a: 1\n"}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("not found")
	}
	tests := []struct {
		name    string
		f       FilePatch
		orig    string
		want    string
		wantErr bool
	}{
		{"json merge", FilePatch{Path: "c.json", Merge: map[string]any{"vae": map[string]any{"tiled": true}, "drop": nil}},
			`{"drop": 1, "keep": "x", "vae": {"tile": 256}}`,
			"{\n  \"keep\": \"x\",\n  \"vae\": {\n    \"tile\": 256,\n    \"tiled\": true\n  }\n}\n", false},
		{"yaml merge", FilePatch{Path: "c.yaml", Merge: map[string]any{"profile": 4, "list": []any{"a"}}},
			"profile: 3\nlist: [x, y]\nname: wan\n", "list:\n    - a\nname: wan\nprofile: 4\n", false},
		{"sniffed json", FilePatch{Path: "settings", Merge: map[string]any{"a": 2}}, `{"a": 1}`, "{\n  \"a\": 2\n}\n", false},
		{"empty file", FilePatch{Path: "new.json", Merge: map[string]any{"a": 1}}, "", "{\n  \"a\": 1\n}\n", false},
		{"replace", FilePatch{Path: "c.yaml", Replace: "safe.yaml"}, "anything", "a: 1\n", false},
		{"replace missing", FilePatch{Path: "c.yaml", Replace: "gone.yaml"}, "", "", true},
		{"bad json", FilePatch{Path: "c.json", Merge: map[string]any{"a": 1}}, "{", "", true},
		{"invalid patch", FilePatch{Path: "c.json"}, "{}", "", true},
	}
	for _, tt := range tests {
		got, err := ApplyFilePatch(tt.f, []byte(tt.orig), read)
		if (err != nil) != tt.wantErr {
			t.Errorf("ApplyFilePatch(%s) error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("ApplyFilePatch(%s) =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

func TestMergePatch(t *testing.T) {
	t.Parallel()
	// Cases from RFC 7396, appendix A.
	tests := []struct {
		name                 string
		target, patch, wants any
	}{
		{"replace value", map[string]any{"a": "b"}, map[string]any{"a": "c"}, map[string]any{"a": "c"}},
		{"add key", map[string]any{"a": "b"}, map[string]any{"b": "c"}, map[string]any{"a": "b", "b": "c"}},
		{"delete key", map[string]any{"a": "b"}, map[string]any{"a": nil}, map[string]any{}},
		{"nested delete", map[string]any{"a": map[string]any{"b": "c"}}, map[string]any{"a": map[string]any{"b": "d", "c": nil}}, map[string]any{"a": map[string]any{"b": "d"}}},
		{"array replaces", map[string]any{"a": []any{"b"}}, map[string]any{"a": "c"}, map[string]any{"a": "c"}},
		{"object over scalar", "x", map[string]any{"a": "b"}, map[string]any{"a": "b"}},
		{"scalar patch", map[string]any{"a": "b"}, "c", "c"},
		{"null inside new object", map[string]any{}, map[string]any{"a": map[string]any{"bb": map[string]any{"ccc": nil}}}, map[string]any{"a": map[string]any{"bb": map[string]any{}}}},
	}
	for _, tt := range tests {
		if got := MergePatch(tt.target, tt.patch); !reflect.DeepEqual(got, tt.wants) {
			t.Errorf("MergePatch(%s) = %v, want %v", tt.name, got, tt.wants)
		}
	}
}
