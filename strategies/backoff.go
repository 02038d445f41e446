package strategies

import (
	"fmt"
	"math"
	"time"
)

// maxDelay keeps the float-to-Duration conversion in range (about 285 years).
const maxDelay = 9e18

// Backoff is exponential backoff with a cap and full jitter.
type Backoff struct {
	Initial    time.Duration `yaml:"initial" json:"initial"`
	Max        time.Duration `yaml:"max" json:"max"`
	Multiplier float64       `yaml:"multiplier" json:"multiplier"`
}

// Delay returns the wait before relaunch after the n-th consecutive failure
// (from 1; smaller n count as 1): jitter × min(Max, Initial × Multiplier^(n-1)),
// rounded to the nanosecond.
//
// jitter is a number the caller drew from [0,1). A jitter of exactly 0, or
// one outside (0,1) or NaN, means "no randomness": the full capped delay.
// So a zero Input (tests, explain, dry runs) shows the longest wait rather
// than none, and a caller that wants no jitter passes 0.
func (b Backoff) Delay(n int, jitter float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if b.Initial <= 0 {
		// Multiplier^(n-1) overflows to +Inf after about a thousand
		// failures, and 0 × Inf is NaN, which would become maxDelay.
		return 0
	}
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(n-1))
	if b.Max > 0 && d > float64(b.Max) {
		d = float64(b.Max)
	}
	if d > maxDelay || math.IsNaN(d) {
		d = maxDelay
	}
	if jitter > 0 && jitter < 1 {
		d *= jitter
	}
	return time.Duration(math.Round(d))
}

// Validate checks that Initial is positive, Max is at least Initial and
// Multiplier is at least 1.
func (b Backoff) Validate() error {
	switch {
	case b.Initial <= 0:
		return &FieldError{Field: "initial", Err: fmt.Errorf("%w: must be positive, got %s", ErrInvalid, b.Initial)}
	case b.Max < b.Initial:
		return &FieldError{Field: "max", Err: fmt.Errorf("%w: %s is below initial %s", ErrInvalid, b.Max, b.Initial)}
	case !(b.Multiplier >= 1) || math.IsInf(b.Multiplier, 0):
		return &FieldError{Field: "multiplier", Err: fmt.Errorf("%w: must be at least 1, got %v", ErrInvalid, b.Multiplier)}
	}
	return nil
}
