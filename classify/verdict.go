package classify

import (
	"fmt"
	"math"
	"slices"
)

// Verdict classifies the attempt from what the scanner saw and how it ended.
// It never fails. The first of these that applies decides:
//
//  1. o.Interrupted: ClassInterrupted (RuleInterrupted).
//     For an attempt that did not exit cleanly, GPU evidence from outside the
//     output comes next: o.GPUNotReleased (RuleGPUNotReleased), then o.Xid
//     (RuleXid), both ClassGPUFault: the node needs attention whatever the
//     child printed.
//  2. A watchdog ended the attempt: the best Fatal rule that matched, since
//     an error printed before a hang explains it; otherwise
//     ClassQuantizationTimeout in the quantize phase (RuleWatchdogQuantize),
//     else ClassStall (RuleWatchdogStall).
//  3. o.StateInvalid: ClassStateCorrupt (RuleStateInvalid), unless the best
//     rule is a state_corrupt rule or ranks above it (a full disk).
//  4. o.OOMKills > 0 and SIGKILL: ClassHostOOM (RuleCgroupOOMKill).
//  5. The best matching rule: highest Priority, then earliest evidence, then
//     first listed. After a clean exit 0 only Fatal rules count.
//  6. o.OOMKills > 0 and the attempt failed: ClassHostOOM (RuleCgroupOOMKill).
//  7. A clean exit 0: ClassSaveFailed when o.OutputMissing
//     (RuleOutputMissing), else ClassSuccess.
//  8. SIGKILL and no traceback seen: ClassHostOOM (RuleSIGKILLNoTraceback).
//  9. ClassUnknown, with the first exception line after a traceback as
//     evidence when there is one.
//
// Result.Phase and Result.Progress are those at the evidence line, or at the
// end of the attempt when the evidence is the Outcome itself.
func (s *Scanner) Verdict(o Outcome) Result {
	end := s.phase
	if o.Phase != "" {
		end = o.Phase
	}
	base := Result{Phase: end, Progress: s.progress, RootCause: s.root.result()}
	builtin := func(name, evidence string) Result {
		r := base
		r.Rule = name
		r.Evidence = evidence
		for _, b := range builtinRules {
			if b.Name == name {
				r.Class = b.Class
			}
		}
		return r
	}
	if o.Interrupted {
		return builtin(RuleInterrupted, "the guard was asked to stop")
	}

	cleanExit := o.ExitCode == 0 && o.Signal == "" && o.StartErr == "" && o.Watchdog == WatchdogNone
	if !cleanExit && o.GPUNotReleased != "" {
		return builtin(RuleGPUNotReleased, o.GPUNotReleased)
	}
	if !cleanExit && o.Xid != "" {
		return builtin(RuleXid, "the driver reported "+o.Xid)
	}
	best := s.best(o, end, cleanExit)
	if o.Watchdog != WatchdogNone {
		if best >= 0 && s.r.rules[best].spec.Fatal {
			return s.ruleResult(best, o, base)
		}
		text := fmt.Sprintf("%s watchdog fired in phase %s", o.Watchdog, end)
		if end == PhaseQuantize {
			return builtin(RuleWatchdogQuantize, text)
		}
		return builtin(RuleWatchdogStall, text)
	}
	if o.StateInvalid {
		if best >= 0 && (s.r.rules[best].spec.Class == ClassStateCorrupt || s.r.rules[best].spec.Priority > statePriority) {
			return s.ruleResult(best, o, base)
		}
		return builtin(RuleStateInvalid, "the state file failed validation after the attempt")
	}
	oomKill := func() Result {
		return builtin(RuleCgroupOOMKill, fmt.Sprintf("cgroup oom_kill count rose by %d; %s", o.OOMKills, outcomeText(o)))
	}
	if o.OOMKills > 0 && o.Signal == "SIGKILL" {
		return oomKill()
	}
	if best >= 0 {
		return s.ruleResult(best, o, base)
	}
	if o.OOMKills > 0 && !cleanExit {
		return oomKill()
	}
	if cleanExit {
		if o.OutputMissing {
			return builtin(RuleOutputMissing, "exit code 0 but the output file is missing or empty")
		}
		base.Class = ClassSuccess
		return base
	}
	if o.Signal == "SIGKILL" && !s.sawTraceback {
		return builtin(RuleSIGKILLNoTraceback, "killed by SIGKILL with no traceback")
	}
	base.Class = ClassUnknown
	if e := s.exception; e.line > 0 {
		base.Evidence, base.Line, base.Phase, base.Progress = e.text, e.line, e.phase, e.progress
	} else {
		base.Evidence = outcomeText(o)
	}
	return base
}

// best returns the index of the best rule whose conditions hold, or -1.
func (s *Scanner) best(o Outcome, end Phase, fatalOnly bool) int {
	best := -1
	for i := range s.r.rules {
		r := &s.r.rules[i]
		switch {
		case fatalOnly && !r.spec.Fatal,
			r.re != nil && s.matches[i].line == 0,
			len(r.spec.ExitCodes) > 0 && !slices.Contains(r.spec.ExitCodes, o.ExitCode),
			len(r.spec.Signals) > 0 && !slices.Contains(r.spec.Signals, o.Signal),
			r.re == nil && r.phases != nil && !phaseIn(end, r.phases):
			continue
		}
		if best < 0 || s.beats(i, best) {
			best = i
		}
	}
	return best
}

// beats reports whether rule i ranks above rule j (listed before i).
func (s *Scanner) beats(i, j int) bool {
	pi, pj := s.r.rules[i].spec.Priority, s.r.rules[j].spec.Priority
	if pi != pj {
		return pi > pj
	}
	return s.evidenceLine(i) < s.evidenceLine(j)
}

func (s *Scanner) evidenceLine(i int) int {
	if l := s.matches[i].line; l > 0 {
		return l
	}
	return math.MaxInt
}

func (s *Scanner) ruleResult(i int, o Outcome, base Result) Result {
	r := &s.r.rules[i]
	res := base
	res.Class, res.Rule = r.spec.Class, r.spec.Name
	if m := s.matches[i]; m.line > 0 {
		res.Evidence, res.Line, res.Phase, res.Progress = m.text, m.line, m.phase, m.progress
	} else {
		res.Evidence = outcomeText(o)
	}
	return res
}

// outcomeText describes how the attempt ended, for verdicts without a line.
func outcomeText(o Outcome) string {
	switch {
	case o.StartErr != "":
		return capText([]byte(fmt.Sprintf("start error (exit code %d): %s", o.ExitCode, o.StartErr)))
	case o.Signal != "":
		return fmt.Sprintf("killed by %s (exit code %d)", o.Signal, o.ExitCode)
	default:
		return fmt.Sprintf("exit code %d", o.ExitCode)
	}
}
