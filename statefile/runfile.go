package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SaveJSON writes v as indented JSON to path with WriteFileAtomic, mode 0600.
// The runner uses it for the guard's own run state (run.json); what goes in
// it, including its Version field, is the runner's business. path's
// directory must exist.
func SaveJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// LoadJSON reads path into v (a non-nil pointer). Outcomes:
//   - nil: v holds the file's content;
//   - ErrNoState: the file does not exist;
//   - ErrCorruptState: the file is empty, is not one JSON value, or does not
//     fit v; the error wraps a *ParseError with the offset, line and column;
//   - any other error: the file could not be read, or v is not a pointer.
//
// After an error v may be partly filled and must not be used.
func LoadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("load %s: %w", path, ErrNoState)
	}
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if len(data) == 0 {
		return corrupt("load", path, errEmpty)
	}
	err = json.Unmarshal(data, v)
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se), errors.As(err, &te):
		return corrupt("load", path, newJSONError(data, err))
	default:
		return fmt.Errorf("load %s: %w", path, err)
	}
}
