package classify

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
)

// RuleSpec is one rule as written in YAML. A rule matches an attempt when all
// of its given conditions hold: a line matched Pattern (in one of Phases, if
// given), the exit code is in ExitCodes, the signal is in Signals.
type RuleSpec struct {
	// Name identifies the rule in results and logs: lowercase, digits and '_'.
	Name string `yaml:"name"`
	// Class is the failure class the rule reports; any valid class but success.
	Class Class `yaml:"class"`
	// Pattern is an RE2 regexp matched against each cleaned line: ANSI escapes,
	// torchrun rank prefixes, timestamps and log levels removed, blanks trimmed.
	Pattern string `yaml:"pattern,omitempty"`
	// Literals wake the rule: a line is tried against Pattern only when it
	// contains one of them (ASCII case ignored). Every line Pattern matches must
	// contain one. When empty they are derived from Pattern; a pattern with no
	// derivable literal of at least 3 bytes and none given fails to compile.
	Literals []string `yaml:"literals,omitempty"`
	// ExitCodes, when given, must contain the exit code (128+N for signal N).
	ExitCodes []int `yaml:"exit_codes,omitempty"`
	// Signals, when given, must contain the name of the signal that killed the child ("SIGKILL").
	Signals []string `yaml:"signals,omitempty"`
	// Phases, when given, limits Pattern to lines seen in these phases; for a
	// rule without Pattern, the phase at the end of the attempt must be one.
	Phases []Phase `yaml:"phases,omitempty"`
	// Priority is the rule's specificity: when several rules match, the highest
	// wins, then the one whose evidence came first.
	Priority int `yaml:"priority,omitempty"`
	// Fatal makes a match a failure even when the child exits 0.
	Fatal bool `yaml:"fatal,omitempty"`
	// Remedy is one line for a person: what to do about it.
	Remedy string `yaml:"remedy,omitempty"`
}

// PhaseSpec moves the scanner into phase Name when a cleaned line matches
// Pattern. When several phase patterns match one line, the first listed wins.
type PhaseSpec struct {
	Name     Phase    `yaml:"name"`
	Pattern  string   `yaml:"pattern"`
	Literals []string `yaml:"literals,omitempty"` // as in RuleSpec
}

// Names of the built-in rules. Verdict reports them in Result.Rule for
// verdicts that come from the Outcome rather than from a rule; Rules.Rule
// describes them too. Configs may not reuse these names.
const (
	RuleInterrupted        = "guard_interrupted"
	RuleWatchdogQuantize   = "watchdog_quantize"
	RuleWatchdogStall      = "watchdog_stall"
	RuleStateInvalid       = "state_invalid"
	RuleCgroupOOMKill      = "cgroup_oom_kill"
	RuleSIGKILLNoTraceback = "sigkill_no_traceback"
	RuleOutputMissing      = "output_missing"
	RuleXid                = "gpu_xid"
	RuleGPUNotReleased     = "gpu_memory_not_released"
)

// statePriority is the priority of RuleStateInvalid: rules above it explain a
// broken state file better than the file itself (a full disk, a dead GPU).
const statePriority = 85

var builtinRules = []RuleSpec{
	{Name: RuleInterrupted, Class: ClassInterrupted,
		Remedy: "the guard was asked to stop; nothing to fix"},
	{Name: RuleWatchdogQuantize, Class: ClassQuantizationTimeout,
		Remedy: "quantizing while loading took too long: use a pre-quantized checkpoint, or turn on-the-fly quantization off and offload instead"},
	{Name: RuleWatchdogStall, Class: ClassStall,
		Remedy: "the child printed nothing and made no progress for too long: check GPU utilisation and swap, or raise the timeout for this phase"},
	{Name: RuleStateInvalid, Class: ClassStateCorrupt, Priority: statePriority,
		Remedy: "the state file failed validation: restore the last good snapshot"},
	{Name: RuleCgroupOOMKill, Class: ClassHostOOM,
		Remedy: "the kernel OOM killer ended the child: lower host RAM use (fewer processes, no --t5_cpu) or raise the memory limit"},
	{Name: RuleSIGKILLNoTraceback, Class: ClassHostOOM,
		Remedy: "killed by SIGKILL without a traceback, most likely out of host RAM: check dmesg, lower host RAM use or add swap"},
	{Name: RuleOutputMissing, Class: ClassSaveFailed,
		Remedy: "exited 0 but the output file is missing or empty: check the output directory, disk space and ffmpeg"},
	{Name: RuleXid, Class: ClassGPUFault,
		Remedy: "the driver reported an Xid error during the attempt: check dmesg and nvidia-smi -q; the node may need a GPU reset or to be drained"},
	{Name: RuleGPUNotReleased, Class: ClassGPUFault,
		Remedy: "the last attempt's GPU memory did not come back: find the holder with nvidia-smi, kill it, or reset the GPU"},
}

var builtinPhases = []Phase{PhaseStart, PhaseLoad, PhaseQuantize, PhaseT5, PhaseDenoise, PhaseDecode, PhaseSave, PhaseDone}

var signalNames = []string{
	"SIGABRT", "SIGALRM", "SIGBUS", "SIGCHLD", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL",
	"SIGINT", "SIGIO", "SIGKILL", "SIGPIPE", "SIGPROF", "SIGPWR", "SIGQUIT", "SIGSEGV",
	"SIGSTKFLT", "SIGSTOP", "SIGSYS", "SIGTERM", "SIGTRAP", "SIGTSTP", "SIGTTIN", "SIGTTOU",
	"SIGURG", "SIGUSR1", "SIGUSR2", "SIGVTALRM", "SIGWINCH", "SIGXCPU", "SIGXFSZ",
}

// Rules is a compiled, immutable rule set, safe for concurrent use. Scanners
// made from it share it.
type Rules struct {
	rules  []rule
	phases []phaseRule
	byName map[string]int
	// ac is the prefilter, built once (in the background after Compile)
	// through acOnce; use automaton() to read it.
	ac     *automaton
	acOnce sync.Once
	build  func() (*automaton, error)
	// Target ids reported by the prefilter: rules first, then phases, then
	// the scanner's own markers.
	phaseBase, markBase int32
}

type rule struct {
	spec   RuleSpec
	re     *lazyRE // nil without Pattern
	phases []Phase // nil means any
}

type phaseRule struct {
	name Phase
	re   *lazyRE
}

// lazyRE is a pattern checked at Compile and turned into a matcher the first
// time the prefilter lets a line through to it. Most rules never see a
// candidate line in a healthy run, and compiling every regexp up front was
// most of the guard's start-up time.
type lazyRE struct {
	pattern string
	once    sync.Once
	re      *regexp.Regexp
}

// Match reports whether b matches. A pattern that parsed at Compile always
// compiles; if it ever did not, it matches nothing.
func (l *lazyRE) Match(b []byte) bool {
	l.once.Do(func() { l.re, _ = regexp.Compile(l.pattern) })
	return l.re != nil && l.re.Match(b)
}

// Markers the scanner itself looks for, found by the same prefilter pass.
const (
	markProgress  = iota // tqdm "NN%|"
	markTraceback        // "Traceback (most recent call last)"
	markRootCause        // torchrun "Root Cause (first observed failure)"
	numMarks
)

var markLiterals = [numMarks]string{
	markProgress:  "%|",
	markTraceback: "traceback (most recent call last)",
	markRootCause: "root cause (first observed failure)",
}

// Compile checks and compiles rules and phases. Every problem is reported as a
// *RuleError naming the entry and field; the first one found is returned.
func Compile(rules []RuleSpec, phases []PhaseSpec) (*Rules, error) {
	r := &Rules{byName: make(map[string]int, len(rules))}
	known := slices.Clone(builtinPhases)
	lits := map[string][]int32{}
	addLits := func(ls []string, target int32) {
		for _, l := range ls {
			l = lowerASCII(l)
			lits[l] = append(lits[l], target)
		}
	}

	type pending struct {
		lits   []string
		target int32
	}
	var phaseLits []pending
	for i, ps := range phases {
		fail := func(field string, err error) error {
			return &RuleError{Index: i, Phase: true, Field: field, Err: err}
		}
		if !validName(string(ps.Name)) {
			return nil, fail("name", ErrBadName)
		}
		if ps.Pattern == "" {
			return nil, fail("pattern", ErrNoPattern)
		}
		re, ls, field, err := compilePattern(ps.Pattern, ps.Literals)
		if err != nil {
			return nil, fail(field, err)
		}
		r.phases = append(r.phases, phaseRule{name: ps.Name, re: re})
		phaseLits = append(phaseLits, pending{ls, int32(i)})
		if !slices.Contains(known, ps.Name) {
			known = append(known, ps.Name)
		}
	}

	r.phaseBase = int32(len(rules))
	r.markBase = r.phaseBase + int32(len(phases))
	for i, rs := range rules {
		fail := func(field string, err error) error {
			return &RuleError{Index: i, Field: field, Err: err}
		}
		switch {
		case !validName(rs.Name):
			return nil, fail("name", ErrBadName)
		case isBuiltin(rs.Name):
			return nil, fail("name", ErrReservedName)
		}
		if _, dup := r.byName[rs.Name]; dup {
			return nil, fail("name", ErrDuplicateName)
		}
		if !rs.Class.Valid() || rs.Class == ClassSuccess {
			return nil, fail("class", ErrUnknownClass)
		}
		if rs.Pattern == "" && len(rs.ExitCodes) == 0 && len(rs.Signals) == 0 {
			return nil, fail("", ErrNoCondition)
		}
		for _, c := range rs.ExitCodes {
			if c < 0 || c > 255 {
				return nil, fail("exit_codes", ErrBadExitCode)
			}
		}
		for _, s := range rs.Signals {
			if !slices.Contains(signalNames, s) {
				return nil, fail("signals", ErrUnknownSignal)
			}
		}
		for _, p := range rs.Phases {
			if !slices.Contains(known, p) {
				return nil, fail("phases", ErrUnknownPhase)
			}
		}
		if strings.ContainsAny(rs.Remedy, "\r\n") {
			return nil, fail("remedy", ErrMultiLine)
		}
		c := rule{spec: cloneSpec(rs), phases: phaseSet(rs.Phases)}
		if rs.Pattern != "" {
			re, ls, field, err := compilePattern(rs.Pattern, rs.Literals)
			if err != nil {
				return nil, fail(field, err)
			}
			c.re = re
			addLits(ls, int32(i))
		} else if len(rs.Literals) > 0 {
			return nil, fail("literals", ErrNoPattern)
		}
		r.byName[rs.Name] = i
		r.rules = append(r.rules, c)
	}
	for _, p := range phaseLits {
		addLits(p.lits, r.phaseBase+p.target)
	}
	for m, l := range markLiterals {
		addLits([]string{l}, r.markBase+int32(m))
	}

	keys := make([]string, 0, len(lits))
	for l := range lits {
		keys = append(keys, l)
	}
	slices.Sort(keys)
	targets := make([][]int32, len(keys))
	for i, k := range keys {
		targets[i] = lits[k]
	}
	build := func() (*automaton, error) {
		ac, bad, err := buildAutomaton(keys, targets)
		if err == nil {
			return ac, nil
		}
		t := targets[bad][0]
		if t >= r.markBase {
			t = max(r.phaseBase-1, 0)
		}
		if t >= r.phaseBase {
			return nil, &RuleError{Index: int(t - r.phaseBase), Phase: true, Field: "literals", Err: err}
		}
		return nil, &RuleError{Index: int(t), Field: "literals", Err: err}
	}
	if automatonBound(keys) > maxTransitions {
		// It may not fit: build it now so the error comes from Compile.
		ac, err := build()
		if err != nil {
			return nil, err
		}
		r.acOnce.Do(func() { r.ac = ac })
		return r, nil
	}
	// It fits whatever the literals share, so it cannot fail: build it in
	// the background. The child is launched meanwhile; the first line
	// scanned waits for it.
	go r.automaton(build)
	r.build = build
	return r, nil
}

// automatonBound is the most transitions the prefilter of keys can need:
// one state per literal byte plus the root, times the byte classes.
func automatonBound(keys []string) uint64 {
	states, seen := uint64(1), [256]bool{}
	cols := uint64(1)
	for _, k := range keys {
		states += uint64(len(k))
		for i := 0; i < len(k); i++ {
			c := k[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if !seen[c] {
				seen[c] = true
				cols++
			}
		}
	}
	return states * cols
}

// automaton returns the prefilter, building it on first use.
func (r *Rules) automaton(build func() (*automaton, error)) *automaton {
	r.acOnce.Do(func() {
		ac, err := build()
		if err != nil {
			// automatonBound said it fits, so this does not happen; an
			// empty automaton would let no line through, so fail loudly.
			panic("classify: prefilter build failed within its bound: " + err.Error())
		}
		r.ac = ac
	})
	return r.ac
}

// compilePattern compiles pattern and returns the literals that wake it:
// given ones, or ones derived from the pattern.
func compilePattern(pattern string, given []string) (*lazyRE, []string, string, error) {
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, nil, "pattern", err
	}
	re := &lazyRE{pattern: pattern}
	if len(given) > 0 {
		for _, l := range given {
			if l == "" {
				return nil, nil, "literals", ErrEmptyLiteral
			}
		}
		return re, given, "", nil
	}
	lits := deriveLiterals(tree)
	if lits == nil {
		return nil, nil, "pattern", ErrNoLiteral
	}
	return re, lits, "", nil
}

func validName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z') && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

func isBuiltin(name string) bool {
	for _, b := range builtinRules {
		if b.Name == name {
			return true
		}
	}
	return false
}

func cloneSpec(s RuleSpec) RuleSpec {
	s.Literals = slices.Clone(s.Literals)
	s.ExitCodes = slices.Clone(s.ExitCodes)
	s.Signals = slices.Clone(s.Signals)
	s.Phases = slices.Clone(s.Phases)
	return s
}

// phaseSet returns nil for an empty list, so that "no phases" means any phase.
func phaseSet(ps []Phase) []Phase {
	if len(ps) == 0 {
		return nil
	}
	return slices.Clone(ps)
}

// Rule returns the rule called name as it was given to Compile, or the
// description of a built-in rule (RuleCgroupOOMKill and the others).
func (r *Rules) Rule(name string) (RuleSpec, bool) {
	if i, ok := r.byName[name]; ok {
		return cloneSpec(r.rules[i].spec), true
	}
	for _, b := range builtinRules {
		if b.Name == name {
			return b, true
		}
	}
	return RuleSpec{}, false
}

// Len returns the number of rules, not counting the built-in ones.
func (r *Rules) Len() int { return len(r.rules) }
