package statefile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// errEmpty is why an empty file is never a valid state.
var errEmpty = errors.New("empty file")

// CommandTimeout bounds one run of a CommandValidator's command.
const CommandTimeout = 30 * time.Second

// maxCommandOutput is how much of a rejecting command's output goes into the
// error: enough for its message, not a whole traceback.
const maxCommandOutput = 512

// ParseError is a JSON or YAML file that does not parse. For JSON, Offset is
// how many bytes the parser had read when it failed (as encoding/json counts
// them), and Line and Column locate the last of those bytes, which is the
// offending one. For YAML, whose message names the line itself, Offset is -1
// and Line and Column are 0.
type ParseError struct {
	Format string // "json" or "yaml"
	Offset int64  // bytes read before the error, or -1
	Line   int    // 1-based line of the byte at Offset-1
	Column int    // 1-based column, in bytes, of the byte at Offset-1
	Err    error  // the parser's error
}

// Error returns "json: line L, column C (offset N): MESSAGE", or the parser's
// own message when there is no position.
func (e *ParseError) Error() string {
	if e.Offset < 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s: line %d, column %d (offset %d): %v", e.Format, e.Line, e.Column, e.Offset, e.Err)
}

// Unwrap returns the parser's error.
func (e *ParseError) Unwrap() error { return e.Err }

// newJSONError locates a json.SyntaxError or json.UnmarshalTypeError in data.
// Other errors get no position.
func newJSONError(data []byte, err error) *ParseError {
	off := int64(-1)
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	pe := &ParseError{Format: "json", Offset: off, Err: err}
	if off >= 0 {
		last := max(min(off, int64(len(data)))-1, 0)
		before := data[:last]
		pe.Line = bytes.Count(before, []byte{'\n'}) + 1
		pe.Column = len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	}
	return pe
}

// DefaultValidate is the validator a Store uses when Options.Validate is nil.
// By path's extension (case-insensitive): .json must be exactly one JSON
// value, .yaml and .yml must hold at least one YAML document and parse to the
// end, anything else must be non-empty. An empty file is always invalid.
// Syntax errors are *ParseError. It never panics, whatever data holds.
func DefaultValidate(path string, data []byte) error {
	if len(data) == 0 {
		return errEmpty
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return validateJSON(data)
	case ".yaml", ".yml":
		return validateYAML(data)
	}
	return nil
}

func validateJSON(data []byte) error {
	if jsonValid(data) {
		return nil
	}
	// encoding/json has the last word, and it says where the error is.
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return newJSONError(data, err)
	}
	return nil
}

func validateYAML(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	docs := 0
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &ParseError{Format: "yaml", Offset: -1, Err: err}
		}
		docs++
	}
	if docs == 0 {
		return &ParseError{Format: "yaml", Offset: -1, Err: errors.New("yaml: no document")}
	}
	return nil
}

// CommandValidator returns a validator that asks a command whether a state
// file is valid: run is called with argv and the file's bytes on stdin, under
// a CommandTimeout deadline, and exit code 0 means valid. The caller's run
// owns process execution (statefile starts no processes); it returns the exit
// code, the command's combined output and an error only when the command
// could not be run at all.
//
// The returned validator rejects, without running anything: empty data, an
// empty argv and a nil run. A non-zero exit is reported with the code and the
// end of the output; an error from run is wrapped.
func CommandValidator(run func(ctx context.Context, argv []string, stdin []byte) (exitCode int, out []byte, err error), argv []string) func(path string, data []byte) error {
	argv = append([]string(nil), argv...)
	return func(path string, data []byte) error {
		if len(data) == 0 {
			return errEmpty
		}
		if run == nil || len(argv) == 0 {
			return errors.New("validate command: no command given")
		}
		ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
		defer cancel()
		code, out, err := run(ctx, append([]string(nil), argv...), data)
		if err != nil {
			return fmt.Errorf("validate command %s: %w", argv[0], err)
		}
		if code != 0 {
			return fmt.Errorf("validate command %s: exit code %d: %q", argv[0], code, tail(out, maxCommandOutput))
		}
		return nil
	}
}

// tail returns about the last n bytes of out, trimmed.
func tail(out []byte, n int) string {
	out = bytes.TrimSpace(out)
	if len(out) > n {
		out = append([]byte("..."), out[len(out)-n:]...)
	}
	if len(out) == 0 {
		return "no output"
	}
	return string(out)
}
