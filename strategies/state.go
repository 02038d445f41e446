package strategies

import (
	"maps"
	"slices"

	"github.com/wan22-guard/wan22-guard/classify"
)

// StateVersion is the RunState layout written by this package.
const StateVersion = 1

// RunState is the run's memory between attempts: plain data that the
// runner saves (run.json) after every Decision and loads to resume.
type RunState struct {
	Version int `json:"version"`
	// Attempts is the number of attempts that have ended.
	Attempts int `json:"attempts"`
	// Failures counts consecutive failures since the last success or stable
	// run; it is the backoff exponent.
	Failures int `json:"consecutive_failures"`
	// Classes counts failures per class.
	Classes map[classify.Class]int `json:"classes,omitempty"`
	// Rungs is each ladder's current rung index; a ladder not listed is at -1.
	// A ladder with a rung here but no Steps was entered there before the
	// first attempt: its rungs up to that index that fit the command count
	// as taken.
	Rungs map[string]int `json:"rungs,omitempty"`
	// Steps are the rungs applied so far, across ladders, in order. The next
	// attempt's command is the original with these applied (Policy.PlanState).
	Steps []AppliedRung `json:"steps,omitempty"`
	// Seed is the --base_seed pinned for every attempt; -1 = not yet known.
	Seed int64 `json:"seed"`
	// SaveFile is the --save_file every attempt writes.
	SaveFile string `json:"save_file,omitempty"`
	// LastClass is the class of the last attempt.
	LastClass classify.Class `json:"last_class,omitempty"`
}

// AppliedRung is one rung taken.
type AppliedRung struct {
	Ladder string `json:"ladder"`
	Rung   int    `json:"rung"`
	Name   string `json:"name,omitempty"`
}

// NewRunState returns the state of a run that has not started: no seed
// yet (-1), no save file, empty counts and rungs.
func NewRunState() RunState {
	return RunState{Version: StateVersion, Seed: -1, Classes: map[classify.Class]int{}, Rungs: map[string]int{}}
}

// Rung returns the ladder's current rung index, -1 when none was taken.
func (s RunState) Rung(ladder string) int {
	if i, ok := s.Rungs[ladder]; ok {
		return i
	}
	return -1
}

// Applied returns the rung indexes taken on the ladder, in order.
func (s RunState) Applied(ladder string) []int {
	var out []int
	for _, st := range s.Steps {
		if st.Ladder == ladder {
			out = append(out, st.Rung)
		}
	}
	return out
}

// Clone returns a deep copy.
func (s RunState) Clone() RunState {
	s.Classes = maps.Clone(s.Classes)
	s.Rungs = maps.Clone(s.Rungs)
	s.Steps = slices.Clone(s.Steps)
	return s
}

// WithRungs returns a copy of s with the ladder's rungs taken in order, as
// the pre-flight does when it starts further down a ladder (Start.Rungs).
// Indexes outside the ladder are ignored.
func (s RunState) WithRungs(l Ladder, rungs []int) RunState {
	s = s.Clone()
	for _, i := range rungs {
		if i >= 0 && i < len(l.Rungs) {
			s.take(l.Name, i, l.Rungs[i].Name)
		}
	}
	return s
}

// take records a rung; s must already be a copy the caller owns.
func (s *RunState) take(ladder string, rung int, name string) {
	if s.Rungs == nil {
		s.Rungs = map[string]int{}
	}
	s.Rungs[ladder] = rung
	s.Steps = append(s.Steps, AppliedRung{Ladder: ladder, Rung: rung, Name: name})
}
