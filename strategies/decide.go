package strategies

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/wan"
)

// Strategy decides what follows an attempt, from a validated Policy.
// It holds no mutable state; Decide may be called from several goroutines.
type Strategy struct {
	policy   Policy
	evidence []workflowMatch
}

type workflowMatch struct {
	name    string
	classes []classify.Class
	res     []*regexp.Regexp
}

// NewStrategy validates p and compiles its workflows' evidence patterns.
// The Strategy keeps its own copy of p's top-level maps.
func NewStrategy(p Policy) (*Strategy, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("new strategy: %w", err)
	}
	return newStrategy(p), nil
}

// newStrategy builds a Strategy without validating p; evidence patterns
// that do not compile are left out.
func newStrategy(p Policy) *Strategy {
	p = Spec{}.Overlay(p)
	s := &Strategy{policy: p}
	for _, name := range sortedKeys(p.Workflows) {
		w := p.Workflows[name]
		m := workflowMatch{name: name, classes: w.Classes}
		for _, e := range w.Evidence {
			if re, err := regexp.Compile(e); err == nil {
				m.res = append(m.res, re)
			}
		}
		if len(m.res) > 0 {
			s.evidence = append(s.evidence, m)
		}
	}
	return s
}

// Decide is Strategy.Decide for in.Policy, which the caller has validated
// (configs does, at load). With no policy it gives up (ReasonNoPolicy).
// A caller deciding many times should build a Strategy once instead.
func Decide(in Input) Decision {
	if in.Policy == nil {
		st := in.State.Clone()
		st.Attempts = max(st.Attempts, in.Attempt)
		return Decision{Action: ActionGiveUp, Class: in.Result.Class, Rung: -1, Reason: ReasonNoPolicy, Message: "no policy to decide by", State: st}
	}
	return newStrategy(*in.Policy).Decide(in)
}

// PolicyFrom builds a Policy's classes, ladders and workflows from their
// file form; the numbers (attempts, deadline, backoff, stable_after) are
// left for the caller to set.
func PolicyFrom(classes map[classify.Class]ClassPolicy, ladders []Ladder, workflows ...Workflow) Policy {
	return Spec{Classes: classes, Ladders: ladders, Workflows: workflows}.Overlay(Policy{})
}

// Policy returns the policy the Strategy decides by.
func (s *Strategy) Policy() *Policy { return &s.policy }

// Input is what Decide knows about the attempt that just ended.
type Input struct {
	Result  classify.Result
	Outcome classify.Outcome
	// Attempt is the number of the attempt that ended, from 1.
	Attempt int
	// Started is when the run began; Now is the time of the decision.
	Started, Now time.Time
	// Uptime is how long the attempt ran; 0 means Outcome.Uptime.
	Uptime time.Duration
	// State is the run state before this attempt's decision.
	State RunState
	// Cmd is the original command, before any rung.
	Cmd wan.Command
	// Env is the original environment; it lets Decide skip rungs whose
	// variables are already set. May be nil.
	Env []string
	// Jitter is drawn from [0,1) by the caller; see Backoff.Delay.
	Jitter float64
	// Policy is what the package-level Decide decides by; Strategy.Decide
	// uses its own and ignores this.
	Policy *Policy
}

// Decision is what to do next, after how long, and why.
type Decision struct {
	Action Action         `json:"action"`
	Delay  time.Duration  `json:"delay"`
	Class  classify.Class `json:"class"`
	// Ladder, Rung and RungName name the rung a fallback takes; Rung is -1
	// otherwise.
	Ladder   string `json:"ladder,omitempty"`
	Rung     int    `json:"rung"`
	RungName string `json:"rung_name,omitempty"`
	// Changes are what the rung changes on top of the previous attempt's
	// command; Trades what it costs.
	Changes []Change `json:"changes,omitempty"`
	Trades  []string `json:"trades,omitempty"`
	Reason  Reason   `json:"reason"`
	// Message says the same for a person.
	Message string `json:"message"`
	// Workflow names the workflow to print when the run stops for the user.
	Workflow string `json:"workflow,omitempty"`
	// State is the run state to save before acting.
	State RunState `json:"state"`
}

// Decide chooses what follows an attempt. In order:
//
//   - success: ActionNone (ReasonSucceeded); the failure streak resets;
//   - interrupted (class or Outcome): ActionShutdown (ReasonInterrupted);
//   - a class whose strategy is guide or shutdown: that action
//     (ReasonNeedsUser, ReasonPolicyShutdown), whatever the budgets;
//   - the deadline has passed, or MaxAttempts attempts have run: ActionGiveUp
//     (ReasonDeadlinePassed, ReasonBudgetExhausted);
//   - the class's Budget is spent: its Then (ReasonClassBudgetExhausted);
//   - fallback: the next rung that fits the command and the failure's phase
//     and changes the command (ReasonNextRung), or Then when none is left
//     (ReasonLadderExhausted);
//   - retry, restore: at once; backoff: after Backoff.Delay of the failure
//     streak (ReasonWithinBudget, or ReasonStableRunReset when the attempt
//     ran past StableAfter and so reset the streak first);
//   - a delay that would end past the deadline: ActionGiveUp
//     (ReasonDeadlinePassed).
//
// An unknown or empty class is decided as unknown. Decide never modifies
// in.State; the new state is in Decision.State.
func (s *Strategy) Decide(in Input) Decision {
	p := &s.policy
	st, _ := p.normalize(in.State.Clone(), in.Cmd, false)
	if st.Version == 0 {
		st.Version = StateVersion
	}
	st.Attempts = max(st.Attempts, in.Attempt)
	class := in.Result.Class
	if class == "" || !class.Valid() {
		class = classify.ClassUnknown
	}
	if in.Outcome.Interrupted {
		class = classify.ClassInterrupted
	}
	st.LastClass = class
	d := Decision{Class: class, Rung: -1}

	switch class {
	case classify.ClassSuccess:
		st.Failures = 0
		return d.with(st, ActionNone, ReasonSucceeded, fmt.Sprintf("attempt %d succeeded", in.Attempt))
	case classify.ClassInterrupted:
		return d.with(st, ActionShutdown, ReasonInterrupted, "interrupted: stopping, state and logs kept")
	}

	uptime := in.Uptime
	if uptime == 0 {
		uptime = in.Outcome.Uptime
	}
	stable := p.StableAfter > 0 && uptime > p.StableAfter
	if stable {
		st.Failures = 0
	}
	st.Failures++
	if st.Classes == nil {
		st.Classes = map[classify.Class]int{}
	}
	st.Classes[class]++
	n := st.Classes[class]
	what := describe(class, in.Result.Phase)

	cp, ok := p.Classes[class]
	if !ok {
		return d.with(st, ActionGiveUp, ReasonNoPolicy, what+": no policy for this class")
	}
	d.Workflow = s.workflowFor(cp, class, in.Result.Evidence)
	switch cp.Strategy {
	case ActionGuide:
		return d.with(st, ActionGuide, ReasonNeedsUser, what+": needs you"+workflowHint(d.Workflow))
	case ActionShutdown:
		return d.with(st, ActionShutdown, ReasonPolicyShutdown, what+": stopping, nothing relaunched"+workflowHint(d.Workflow))
	}
	var deadline time.Time
	if p.Deadline > 0 {
		deadline = in.Started.Add(p.Deadline)
		if !in.Now.Before(deadline) {
			return d.with(st, ActionGiveUp, ReasonDeadlinePassed, fmt.Sprintf("%s: the run's deadline of %s has passed", what, p.Deadline))
		}
	}
	if p.MaxAttempts > 0 && in.Attempt >= p.MaxAttempts {
		return d.with(st, ActionGiveUp, ReasonBudgetExhausted, fmt.Sprintf("%s: %d of %d attempts used", what, in.Attempt, p.MaxAttempts))
	}
	budget := fmt.Sprintf("%d of %d for %s", n, cp.Budget, class)
	if n > cp.Budget {
		return d.with(st, cp.then(), ReasonClassBudgetExhausted, fmt.Sprintf("%s: budget spent (%d failures, %d relaunches allowed)%s", what, n, cp.Budget, workflowHint(d.Workflow)))
	}

	reason := ReasonWithinBudget
	if stable {
		reason = ReasonStableRunReset
	}
	switch cp.Strategy {
	case ActionRetry:
		d = d.with(st, ActionRetry, reason, fmt.Sprintf("%s (%s): retrying now", what, budget))
	case ActionRestore:
		d = d.with(st, ActionRestore, reason, fmt.Sprintf("%s (%s): restoring the last good state file snapshot, then relaunching", what, budget))
	case ActionBackoff:
		d = d.with(st, ActionBackoff, reason, "")
		d.Delay = p.Backoff.Delay(st.Failures, in.Jitter)
		d.Message = fmt.Sprintf("%s (%s): relaunching in %s", what, budget, d.Delay)
		if stable {
			d.Message += " (the attempt ran past stable_after, backoff reset)"
		}
	case ActionFallback:
		d = s.fallback(d, st, cp, in, what, budget)
	}
	if !deadline.IsZero() && !d.Action.Final() && in.Now.Add(d.Delay).After(deadline) {
		d.Action, d.Reason, d.Delay = ActionGiveUp, ReasonDeadlinePassed, 0
		d.Message = fmt.Sprintf("%s: waiting would pass the run's deadline of %s", what, p.Deadline)
		d.Ladder, d.Rung, d.RungName, d.Changes, d.Trades = "", -1, "", nil, nil
		d.State = st
	}
	return d
}

func (s *Strategy) fallback(d Decision, st RunState, cp ClassPolicy, in Input, what, budget string) Decision {
	l := s.policy.Ladders[cp.Ladder]
	base := newPlanner(in.Cmd, in.Env)
	for _, step := range st.Steps {
		// A step the policy no longer knows is left out here; PlanState
		// reports it when the runner builds the command.
		if sl, ok := s.policy.Ladders[step.Ladder]; ok && step.Rung >= 0 && step.Rung < len(sl.Rungs) {
			base.apply(&sl.Rungs[step.Rung])
		}
	}
	w := walker{cmd: in.Cmd, ladder: &l}
	i, next, ok := w.next(base, st.Rung(l.Name), in.Result.Phase)
	if !ok {
		verdict := l.Exhausted
		if verdict == "" {
			verdict = "no rung of ladder " + l.Name + " is left to try"
		}
		return d.with(st, cp.then(), ReasonLadderExhausted, what+": "+verdict+workflowHint(d.Workflow))
	}
	r := &l.Rungs[i]
	st = st.Clone()
	st.take(l.Name, i, r.Name)
	d = d.with(st, ActionFallback, ReasonNextRung, "")
	d.Ladder, d.Rung, d.RungName = l.Name, i, r.Name
	d.Changes = append(diffArgv(base.argv, next.argv), diffEnv(base.env, next.env)...)
	for _, f := range next.files[len(base.files):] {
		d.Changes = append(d.Changes, Change{Kind: ChangeFile, What: f.Path, To: fileVerb(f)})
	}
	d.Trades = newTrades(base.netTrades(), next.netTrades())
	parts := make([]string, len(d.Changes))
	for k, c := range d.Changes {
		parts[k] = c.String()
	}
	d.Message = fmt.Sprintf("%s (%s): rung %d %q of ladder %s: %s", what, budget, i, r.Name, l.Name, strings.Join(parts, ", "))
	if len(d.Trades) > 0 {
		d.Message += "; costs: " + strings.Join(d.Trades, "; ")
	}
	return d
}

func fileVerb(f FilePatch) string {
	if f.Replace != "" {
		return "replace " + f.Replace
	}
	return "merge"
}

// newTrades returns the trades in after that are not in before.
func newTrades(before, after []string) []string {
	var out []string
	for _, t := range after {
		if !slices.Contains(before, t) {
			out = append(out, t)
		}
	}
	return out
}

// workflowFor prefers a workflow for the class whose evidence pattern
// matches the evidence line, then the class policy's own.
func (s *Strategy) workflowFor(cp ClassPolicy, class classify.Class, evidence string) string {
	if evidence != "" {
		for _, m := range s.evidence {
			if !slices.Contains(m.classes, class) {
				continue
			}
			for _, re := range m.res {
				if re.MatchString(evidence) {
					return m.name
				}
			}
		}
	}
	return cp.Workflow
}

func describe(class classify.Class, phase classify.Phase) string {
	if phase == "" {
		return string(class)
	}
	return string(class) + " at " + string(phase)
}

func workflowHint(name string) string {
	if name == "" {
		return ""
	}
	return " (see workflow " + name + ")"
}

// with returns d with the action, reason, message and state filled in.
func (d Decision) with(st RunState, a Action, r Reason, msg string) Decision {
	d.Action, d.Reason, d.Message, d.State = a, r, msg, st
	return d
}
