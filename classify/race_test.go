//go:build race

package classify

// raceEnabled is true under -race, where sync.Pool (used by regexp) drops
// items at random and allocation counts mean nothing.
const raceEnabled = true
