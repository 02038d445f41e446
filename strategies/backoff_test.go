package strategies

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestBackoff_Delay(t *testing.T) {
	t.Parallel()
	b := Backoff{Initial: time.Second, Max: 30 * time.Second, Multiplier: 2}
	tests := []struct {
		name   string
		b      Backoff
		n      int
		jitter float64
		want   time.Duration
	}{
		{"first, no jitter", b, 1, 0, time.Second},
		{"first, half", b, 1, 0.5, 500 * time.Millisecond},
		{"first, almost full", b, 1, 0.999, 999 * time.Millisecond},
		{"third grows", b, 3, 0, 4 * time.Second},
		{"third, half", b, 3, 0.5, 2 * time.Second},
		{"third, almost full", b, 3, 0.999, 3996 * time.Millisecond},
		{"caps at max", b, 6, 0, 30 * time.Second},
		{"capped, half", b, 10, 0.5, 15 * time.Second},
		{"capped, almost full", b, 10, 0.999, 29970 * time.Millisecond},
		{"zero attempt counts as first", b, 0, 0, time.Second},
		{"negative attempt counts as first", b, -3, 0.5, 500 * time.Millisecond},
		{"jitter of one means none", b, 2, 1, 2 * time.Second},
		{"negative jitter means none", b, 2, -0.5, 2 * time.Second},
		{"NaN jitter means none", b, 2, math.NaN(), 2 * time.Second},
		{"huge exponent stays capped", b, 10000, 0.5, 15 * time.Second},
		{"uncapped does not overflow", Backoff{Initial: time.Second, Multiplier: 10}, 100, 0, time.Duration(maxDelay)},
		{"multiplier one is constant", Backoff{Initial: 3 * time.Second, Max: time.Minute, Multiplier: 1}, 7, 0.5, 1500 * time.Millisecond},
		{"fractional multiplier", Backoff{Initial: 2 * time.Second, Max: time.Minute, Multiplier: 1.5}, 3, 0, 4500 * time.Millisecond},
		{"zero initial stays zero", Backoff{Multiplier: 2}, 2000, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.b.Delay(tt.n, tt.jitter); got != tt.want {
				t.Errorf("Delay(%d, %v) = %s, want %s", tt.n, tt.jitter, got, tt.want)
			}
		})
	}
}

func TestBackoff_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		b     Backoff
		field string
	}{
		{"valid", Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}, ""},
		{"zero initial", Backoff{Max: time.Minute, Multiplier: 2}, "initial"},
		{"max below initial", Backoff{Initial: time.Minute, Max: time.Second, Multiplier: 2}, "max"},
		{"multiplier below one", Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 0.5}, "multiplier"},
		{"NaN multiplier", Backoff{Initial: time.Second, Max: time.Minute, Multiplier: math.NaN()}, "multiplier"},
	}
	for _, tt := range tests {
		err := tt.b.Validate()
		checkField(t, tt.name, err, tt.field)
	}
}

// checkField asserts err is nil when field is "", else a FieldError naming
// field that wraps a sentinel.
func checkField(t *testing.T, name string, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Errorf("%s: error %v, want none", name, err)
		}
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("%s: error %v, want a FieldError for %s", name, err, field)
		return
	}
	if fe.Field != field {
		t.Errorf("%s: error names field %q, want %q (%v)", name, fe.Field, field, err)
	}
	sentinels := []error{ErrInvalid, ErrUnknownAction, ErrUnknownClass, ErrUnknownLadder, ErrUnknownWorkflow, ErrUnknownTask, ErrProtectedFlag, ErrDuplicate, ErrMissing}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Errorf("%s: error %v wraps no sentinel", name, err)
}

func ExampleBackoff_Delay() {
	b := Backoff{Initial: 10 * time.Second, Max: 5 * time.Minute, Multiplier: 2}
	for n := 1; n <= 7; n++ {
		fmt.Println(n, b.Delay(n, 0), b.Delay(n, 0.5))
	}
	// Output:
	// 1 10s 5s
	// 2 20s 10s
	// 3 40s 20s
	// 4 1m20s 40s
	// 5 2m40s 1m20s
	// 6 5m0s 2m30s
	// 7 5m0s 2m30s
}
