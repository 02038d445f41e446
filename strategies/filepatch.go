package strategies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ApplyFilePatch returns the new content of the file f patches, given its
// current content. A Replace patch returns the content of the replacement
// file, read through read (the caller owns file access). A Merge patch is
// applied as a JSON merge patch (RFC 7396) to the document: JSON when the
// path ends in .json or the content is JSON, YAML otherwise; the result is
// written in the same format (JSON indented by two spaces; YAML comments
// and key order are not kept). Errors name the file.
func ApplyFilePatch(f FilePatch, orig []byte, read func(path string) ([]byte, error)) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("patch %s: %w", f.Path, err)
	}
	if f.Replace != "" {
		data, err := read(f.Replace)
		if err != nil {
			return nil, fmt.Errorf("patch %s: read %s: %w", f.Path, f.Replace, err)
		}
		return data, nil
	}
	ext := strings.ToLower(path.Ext(f.Path))
	isJSON := ext == ".json" || (ext != ".yaml" && ext != ".yml" && json.Valid(orig))
	var doc any
	if len(bytes.TrimSpace(orig)) > 0 {
		var err error
		if isJSON {
			err = json.Unmarshal(orig, &doc)
		} else {
			err = yaml.Unmarshal(orig, &doc)
		}
		if err != nil {
			return nil, fmt.Errorf("patch %s: parse: %w", f.Path, err)
		}
	}
	doc = MergePatch(doc, normalizeYAML(f.Merge))
	if isJSON {
		out, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("patch %s: encode: %w", f.Path, err)
		}
		return append(out, '\n'), nil
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("patch %s: encode: %w", f.Path, err)
	}
	return out, nil
}

// MergePatch applies patch to target as RFC 7396 says: when patch is an
// object, its keys merge into target (an object, or a new one), null
// deletes a key, and other values replace; any other patch replaces target.
// target is not modified.
func MergePatch(target, patch any) any {
	p, ok := asObject(patch)
	if !ok {
		return patch
	}
	t, ok := asObject(target)
	out := map[string]any{}
	if ok {
		for k, v := range t {
			out[k] = v
		}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}

func asObject(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[fmt.Sprint(k)] = val
		}
		return out, true
	}
	return nil, false
}

// normalizeYAML turns the map[any]any that YAML may produce into
// map[string]any, so the merged document encodes as JSON.
func normalizeYAML(v any) any {
	switch m := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[k] = normalizeYAML(val)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[fmt.Sprint(k)] = normalizeYAML(val)
		}
		return out
	case []any:
		out := make([]any, len(m))
		for i, val := range m {
			out[i] = normalizeYAML(val)
		}
		return out
	}
	return v
}
