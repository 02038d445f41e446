package statefile

import "errors"

// Sentinel errors. Callers match them with errors.Is; the returned errors wrap
// them with the path or snapshot name and, where there is one, the cause.
var (
	// ErrNoState means the state file (or run file) does not exist.
	ErrNoState = errors.New("no state file")
	// ErrCorruptState means the file exists but failed validation: empty,
	// truncated, not parseable, or rejected by the configured validator.
	ErrCorruptState = errors.New("corrupt state file")
	// ErrNoSnapshot means there is no snapshot by that name, or no snapshot
	// whose checksum still verifies.
	ErrNoSnapshot = errors.New("no snapshot")
	// ErrChecksum means a snapshot's bytes on disk no longer match the size
	// and sha256 recorded when it was taken.
	ErrChecksum = errors.New("snapshot checksum mismatch")
)
