package strategies

// Action is what the runner does next. The config names of the six
// strategies are retry, backoff, fallback, restore, guide and shutdown; none
// and give_up are outcomes of Decide only.
type Action string

// Actions.
const (
	// ActionNone: the attempt succeeded; stop with success.
	ActionNone Action = "none"
	// ActionRetry: relaunch at once, unchanged.
	ActionRetry Action = "retry"
	// ActionBackoff: relaunch unchanged after Decision.Delay.
	ActionBackoff Action = "backoff"
	// ActionFallback: relaunch with the next rung of a ladder applied.
	ActionFallback Action = "fallback"
	// ActionRestore: restore the last good snapshot of the state file, then relaunch.
	ActionRestore Action = "restore"
	// ActionGuide: stop and print the class's workflow; the user must act.
	ActionGuide Action = "guide"
	// ActionShutdown: stop now, keeping state and logs.
	ActionShutdown Action = "shutdown"
	// ActionGiveUp: stop because a budget or the deadline is spent.
	ActionGiveUp Action = "give_up"
)

// Strategy reports whether a is one a ClassPolicy may name as its strategy.
func (a Action) Strategy() bool {
	switch a {
	case ActionRetry, ActionBackoff, ActionFallback, ActionRestore, ActionGuide, ActionShutdown:
		return true
	}
	return false
}

// Final reports whether a ends the run (no relaunch follows).
func (a Action) Final() bool {
	switch a {
	case ActionNone, ActionGuide, ActionShutdown, ActionGiveUp:
		return true
	}
	return false
}

// validThen reports whether a may follow a spent budget or ladder.
func (a Action) validThen() bool {
	return a == "" || a == ActionGuide || a == ActionShutdown || a == ActionGiveUp
}

// Reason says why Decide chose its Action. Logs group by it and tests
// assert on it.
type Reason string

// Reasons.
const (
	ReasonSucceeded            Reason = "succeeded"              // the attempt succeeded
	ReasonInterrupted          Reason = "interrupted"            // the guard was asked to stop
	ReasonWithinBudget         Reason = "within_budget"          // retry/backoff/restore, budgets left
	ReasonStableRunReset       Reason = "stable_run_reset"       // as within_budget, after a stable run reset the backoff
	ReasonNextRung             Reason = "next_rung"              // fallback to the next applicable rung
	ReasonLadderExhausted      Reason = "ladder_exhausted"       // no applicable rung left
	ReasonBudgetExhausted      Reason = "budget_exhausted"       // Policy.MaxAttempts reached
	ReasonClassBudgetExhausted Reason = "class_budget_exhausted" // the class's Budget is spent
	ReasonDeadlinePassed       Reason = "deadline_passed"        // Policy.Deadline passed, or would during the delay
	ReasonNeedsUser            Reason = "needs_user"             // the class's strategy is guide
	ReasonPolicyShutdown       Reason = "policy_shutdown"        // the class's strategy is shutdown
	ReasonNoPolicy             Reason = "no_policy"              // no ClassPolicy for the class
)
