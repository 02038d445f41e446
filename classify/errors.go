package classify

import (
	"errors"
	"fmt"
)

// Errors Compile wraps in a RuleError. Match them with errors.Is.
var (
	ErrBadName       = errors.New("name must be lowercase letters, digits and '_', starting with a letter")
	ErrDuplicateName = errors.New("name is used twice")
	ErrReservedName  = errors.New("name is reserved for a built-in rule")
	ErrUnknownClass  = errors.New("unknown class")
	ErrUnknownSignal = errors.New("unknown signal name")
	ErrUnknownPhase  = errors.New("unknown phase")
	ErrBadExitCode   = errors.New("exit code outside 0-255")
	ErrNoCondition   = errors.New("rule needs a pattern, exit codes or signals")
	ErrNoPattern     = errors.New("pattern is required")
	ErrNoLiteral     = errors.New("no literal of at least 3 bytes can be derived from the pattern; give literals")
	ErrEmptyLiteral  = errors.New("literal is empty")
	ErrMultiLine     = errors.New("remedy must be one line")
	ErrTooLarge      = errors.New("literals too large for the prefilter")
)

// RuleError says which rule or phase of the input failed to compile, and which
// field of it, so that a config loader can point at the YAML line.
type RuleError struct {
	Index int    // position in the rules (or phases) slice given to Compile
	Phase bool   // true when Index is into the phases slice
	Field string // YAML key of the offending field ("pattern", "class", ...), or "" for the entry as a whole
	Err   error
}

func (e *RuleError) Error() string {
	list := "rules"
	if e.Phase {
		list = "phases"
	}
	if e.Field == "" {
		return fmt.Sprintf("%s[%d]: %v", list, e.Index, e.Err)
	}
	return fmt.Sprintf("%s[%d].%s: %v", list, e.Index, e.Field, e.Err)
}

// Unwrap returns the underlying error.
func (e *RuleError) Unwrap() error { return e.Err }

// One sentinel per failure class, so callers can write
// errors.Is(err, classify.ErrCUDAOOM). Class.Err returns them.
var (
	ErrCUDAOOM             = errors.New("cuda out of memory")
	ErrHostOOM             = errors.New("host out of memory")
	ErrNCCL                = errors.New("distributed communication failure")
	ErrGPUFault            = errors.New("gpu fault")
	ErrCUDAEnv             = errors.New("cuda environment problem")
	ErrMissingDep          = errors.New("missing dependency or file")
	ErrConfig              = errors.New("invalid configuration")
	ErrDiskFull            = errors.New("disk full")
	ErrNetwork             = errors.New("network failure")
	ErrQuantizationTimeout = errors.New("quantization timed out")
	ErrQuantizationError   = errors.New("quantization failed")
	ErrStall               = errors.New("child stalled")
	ErrStateCorrupt        = errors.New("state file corrupt")
	ErrSaveFailed          = errors.New("output not saved")
	ErrInterrupted         = errors.New("interrupted")
	ErrUnknown             = errors.New("unknown failure")
	classErrors            = map[Class]error{
		ClassCUDAOOM:             ErrCUDAOOM,
		ClassHostOOM:             ErrHostOOM,
		ClassNCCL:                ErrNCCL,
		ClassGPUFault:            ErrGPUFault,
		ClassCUDAEnv:             ErrCUDAEnv,
		ClassMissingDep:          ErrMissingDep,
		ClassConfig:              ErrConfig,
		ClassDiskFull:            ErrDiskFull,
		ClassNetwork:             ErrNetwork,
		ClassQuantizationTimeout: ErrQuantizationTimeout,
		ClassQuantizationError:   ErrQuantizationError,
		ClassStall:               ErrStall,
		ClassStateCorrupt:        ErrStateCorrupt,
		ClassSaveFailed:          ErrSaveFailed,
		ClassInterrupted:         ErrInterrupted,
		ClassUnknown:             ErrUnknown,
	}
)

// Err returns the sentinel error of the class: nil for ClassSuccess, ErrUnknown
// for a class that is not Valid.
func (c Class) Err() error {
	if c == ClassSuccess {
		return nil
	}
	if err, ok := classErrors[c]; ok {
		return err
	}
	return ErrUnknown
}
