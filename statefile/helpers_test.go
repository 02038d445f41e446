package statefile

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// tooLong bounds every wait in these tests.
const tooLong = 10 * time.Second

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 29, 9, 45, 12, 123456789, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// stateJSON returns a valid JSON state for step n.
func stateJSON(n int) []byte {
	return fmt.Appendf(nil, "{\n  \"version\": 1,\n  \"step\": %d,\n  \"latents\": \"%s\"\n}\n", n, strings.Repeat("ab", 64))
}

// sameSnapshot reports whether two descriptions are of the same snapshot.
func sameSnapshot(a, b Snapshot) bool {
	return a.Name == b.Name && a.Seq == b.Seq && a.Time.Equal(b.Time) && a.Size == b.Size &&
		a.SHA256 == b.SHA256 && a.Reason == b.Reason && a.Source == b.Source
}

func names(snaps []Snapshot) []string {
	out := make([]string, len(snaps))
	for i, s := range snaps {
		out[i] = s.Name
	}
	return out
}
