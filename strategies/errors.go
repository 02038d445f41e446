package strategies

import (
	"errors"
	"strings"
)

// Sentinel errors. Validation errors wrap one of them inside a FieldError.
var (
	ErrInvalid         = errors.New("invalid value")
	ErrUnknownAction   = errors.New("unknown action")
	ErrUnknownClass    = errors.New("unknown class")
	ErrUnknownLadder   = errors.New("unknown ladder")
	ErrUnknownWorkflow = errors.New("unknown workflow")
	ErrUnknownTask     = errors.New("unknown task")
	ErrProtectedFlag   = errors.New("flag may not be changed by a ladder")
	ErrDuplicate       = errors.New("duplicate name")
	ErrMissing         = errors.New("missing")
	ErrRungRange       = errors.New("rung index out of range")
	ErrNoCommand       = errors.New("empty command")
)

// FieldError names the field of a spec that failed validation, as a path
// such as "ladders[2].rungs[1].size" or "classes.cuda_oom.ladder".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause, usually one of the sentinel errors.
func (e *FieldError) Unwrap() error { return e.Err }

// within prefixes the field path of err with field.
func within(field string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		sep := "."
		if strings.HasPrefix(fe.Field, "[") {
			sep = ""
		}
		return &FieldError{Field: field + sep + fe.Field, Err: fe.Err}
	}
	return &FieldError{Field: field, Err: err}
}
