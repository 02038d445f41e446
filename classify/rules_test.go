package classify

import (
	"errors"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
)

func TestCompile_errors(t *testing.T) {
	t.Parallel()
	ok := RuleSpec{Name: "ok", Class: ClassCUDAOOM, Pattern: "CUDA out of memory"}
	with := func(f func(*RuleSpec)) []RuleSpec {
		r := ok
		f(&r)
		return []RuleSpec{ok, r}
	}
	okPhase := PhaseSpec{Name: PhaseLoad, Pattern: "^Creating Wan"}
	tests := []struct {
		name   string
		rules  []RuleSpec
		phases []PhaseSpec
		index  int
		phase  bool
		field  string
		err    error // matched with errors.Is when set
	}{
		{"bad regexp", with(func(r *RuleSpec) { r.Name, r.Pattern = "b", "CUDA (out" }), nil, 1, false, "pattern", nil},
		{"no literal", with(func(r *RuleSpec) { r.Name, r.Pattern = "b", `\d+ \w+` }), nil, 1, false, "pattern", ErrNoLiteral},
		{"short literal", with(func(r *RuleSpec) { r.Name, r.Pattern = "b", `ab|cd` }), nil, 1, false, "pattern", ErrNoLiteral},
		{"empty literal", with(func(r *RuleSpec) { r.Name, r.Literals = "b", []string{""} }), nil, 1, false, "literals", ErrEmptyLiteral},
		{"literals without pattern", with(func(r *RuleSpec) { r.Name, r.Pattern, r.ExitCodes, r.Literals = "b", "", []int{1}, []string{"x"} }), nil, 1, false, "literals", ErrNoPattern},
		{"unknown class", with(func(r *RuleSpec) { r.Name, r.Class = "b", "cuda_omm" }), nil, 1, false, "class", ErrUnknownClass},
		{"success is no failure", with(func(r *RuleSpec) { r.Name, r.Class = "b", ClassSuccess }), nil, 1, false, "class", ErrUnknownClass},
		{"duplicate name", with(func(r *RuleSpec) {}), nil, 1, false, "name", ErrDuplicateName},
		{"bad name", with(func(r *RuleSpec) { r.Name = "Bad-Name" }), nil, 1, false, "name", ErrBadName},
		{"reserved name", with(func(r *RuleSpec) { r.Name = RuleCgroupOOMKill }), nil, 1, false, "name", ErrReservedName},
		{"no condition", with(func(r *RuleSpec) { r.Name, r.Pattern = "b", "" }), nil, 1, false, "", ErrNoCondition},
		{"exit code", with(func(r *RuleSpec) { r.Name, r.ExitCodes = "b", []int{256} }), nil, 1, false, "exit_codes", ErrBadExitCode},
		{"signal", with(func(r *RuleSpec) { r.Name, r.Signals = "b", []string{"KILL"} }), nil, 1, false, "signals", ErrUnknownSignal},
		{"phase", with(func(r *RuleSpec) { r.Name, r.Phases = "b", []Phase{"extend"} }), nil, 1, false, "phases", ErrUnknownPhase},
		{"remedy", with(func(r *RuleSpec) { r.Name, r.Remedy = "b", "one\ntwo" }), nil, 1, false, "remedy", ErrMultiLine},
		{"phase pattern", nil, []PhaseSpec{okPhase, {Name: PhaseT5, Pattern: "("}}, 1, true, "pattern", nil},
		{"phase without pattern", nil, []PhaseSpec{{Name: PhaseT5}}, 0, true, "pattern", ErrNoPattern},
		{"phase name", nil, []PhaseSpec{{Name: "T5", Pattern: "loading t5"}}, 0, true, "name", ErrBadName},
		{"phase without literal", nil, []PhaseSpec{{Name: PhaseT5, Pattern: `^\S+$`}}, 0, true, "pattern", ErrNoLiteral},
	}
	for _, tt := range tests {
		_, err := Compile(tt.rules, tt.phases)
		var re *RuleError
		if !errors.As(err, &re) {
			t.Errorf("Compile(%s) error = %v, want a *RuleError", tt.name, err)
			continue
		}
		if re.Index != tt.index || re.Phase != tt.phase || re.Field != tt.field {
			t.Errorf("Compile(%s) = %+v, want index %d phase %v field %q", tt.name, re, tt.index, tt.phase, tt.field)
		}
		if tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("Compile(%s) error = %v, want %v", tt.name, err, tt.err)
		}
		if !strings.HasPrefix(err.Error(), map[bool]string{false: "rules[", true: "phases["}[tt.phase]) {
			t.Errorf("Compile(%s) error text = %q", tt.name, err)
		}
	}
}

func TestCompile_valid(t *testing.T) {
	t.Parallel()
	r, err := Compile([]RuleSpec{
		{Name: "given_literals", Class: ClassNetwork, Pattern: `\d+ retries`, Literals: []string{"RETRIES"}},
		{Name: "exit_only", Class: ClassConfig, ExitCodes: []int{2}},
		{Name: "custom_phase", Class: ClassNetwork, Pattern: "timed out", Phases: []Phase{"extend"}},
	}, []PhaseSpec{{Name: "extend", Pattern: "^Extending prompt"}})
	if err != nil {
		t.Fatal(err)
	}
	s := feed(r, "3 retries\nExtending prompt ...\ntimed out\n")
	if got := s.Verdict(Outcome{ExitCode: 1}); got.Rule != "given_literals" || got.Line != 1 {
		t.Errorf("Verdict = %+v, want given_literals at line 1", got)
	}
	if s.matches[2].line != 3 || s.matches[2].phase != "extend" {
		t.Errorf("custom phase rule = %+v", s.matches[2])
	}
	if got := feed(r, "").Verdict(Outcome{ExitCode: 2}); got.Rule != "exit_only" || got.Evidence != "exit code 2" {
		t.Errorf("Verdict(exit 2) = %+v", got)
	}
	empty, err := Compile(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := feed(empty, "anything\n").Verdict(Outcome{}); got.Class != ClassSuccess {
		t.Errorf("Verdict with no rules = %+v", got)
	}
}

func TestVerdict_priority(t *testing.T) {
	t.Parallel()
	r, err := Compile([]RuleSpec{
		{Name: "low", Class: ClassNCCL, Pattern: "NCCL error", Priority: 10},
		{Name: "high", Class: ClassCUDAOOM, Pattern: "out of memory", Priority: 90},
		{Name: "tie_a", Class: ClassNetwork, Pattern: "reset by peer", Priority: 50},
		{Name: "tie_b", Class: ClassConfig, Pattern: "bad value", Priority: 50},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text, want string
	}{
		{"higher priority wins over earlier line", "NCCL error\nout of memory\n", "high"},
		{"tie goes to the earlier line", "bad value\nreset by peer\n", "tie_b"},
		{"tie goes to the earlier line, other order", "reset by peer\nbad value\n", "tie_a"},
	}
	for _, tt := range tests {
		if got := feed(r, tt.text).Verdict(Outcome{ExitCode: 1}); got.Rule != tt.want {
			t.Errorf("Verdict(%s) = %q, want %q", tt.name, got.Rule, tt.want)
		}
	}
}

func TestDeriveLiterals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		want    []string // nil: none derivable
	}{
		{`CUDA out of memory`, []string{"cuda out of memory"}},
		{`^Killed$`, []string{"killed"}},
		{`NCCL error|DistBackendError`, []string{"distbackenderror", "nccl error"}},
		{`\[Errno 28\]`, []string{"[errno 28]"}},
		{`load_in_[48]bit`, []string{"load_in_4bit", "load_in_8bit"}},
		{`colou?r`, []string{"color", "colour"}},
		{`\d+ Killed\s`, []string{" killed\t", " killed\n", " killed\f", " killed\r", " killed "}},
		{`(?i)kill`, []string{"kill", "\u212aill"}},
		{`(?:abc)+def`, []string{"abc"}},
		{`(?:abc)*xy`, nil},
		{`.*`, nil},
		{`\w+: error`, []string{": error"}},
		{`a.b`, nil},
		{`[a-z]{3}`, nil},
		{`x\x{FFFD}yz`, nil},
	}
	for _, tt := range tests {
		re, err := syntax.Parse(tt.pattern, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		got := deriveLiterals(re)
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("deriveLiterals(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

func TestClass_Err(t *testing.T) {
	t.Parallel()
	for _, c := range Classes {
		err := c.Err()
		if (c == ClassSuccess) != (err == nil) {
			t.Errorf("%s.Err() = %v", c, err)
		}
	}
	if !errors.Is(ClassCUDAOOM.Err(), ErrCUDAOOM) || Class("nope").Err() != ErrUnknown {
		t.Error("Class.Err returns the wrong sentinel")
	}
}
