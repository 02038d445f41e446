package strategies

import (
	"errors"
	"testing"

	"github.com/wan22-guard/wan22-guard/classify"
)

func TestClassPolicy_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cp    ClassPolicy
		field string
	}{
		{"fallback", ClassPolicy{Strategy: ActionFallback, Budget: 2, Ladder: "x", Then: ActionGuide, Workflow: "w"}, ""},
		{"backoff", ClassPolicy{Strategy: ActionBackoff, Budget: 3}, ""},
		{"unknown strategy", ClassPolicy{Strategy: "reboot"}, "strategy"},
		{"give_up is not a strategy", ClassPolicy{Strategy: ActionGiveUp}, "strategy"},
		{"negative budget", ClassPolicy{Strategy: ActionRetry, Budget: -1}, "budget"},
		{"fallback without ladder", ClassPolicy{Strategy: ActionFallback, Budget: 1}, "ladder"},
		{"ladder without fallback", ClassPolicy{Strategy: ActionRetry, Ladder: "x"}, "ladder"},
		{"bad then", ClassPolicy{Strategy: ActionRetry, Then: ActionRetry}, "then"},
		{"guide without workflow", ClassPolicy{Strategy: ActionGuide}, "workflow"},
		{"then guide without workflow", ClassPolicy{Strategy: ActionRetry, Then: ActionGuide}, "workflow"},
	}
	for _, tt := range tests {
		checkField(t, tt.name, tt.cp.Validate(), tt.field)
	}
}

func TestRung_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		r     Rung
		field string
	}{
		{"set", Rung{Name: "a", Set: map[string]string{"--offload_model": "True"}}, ""},
		{"no name", Rung{Add: []string{"--t5_cpu"}}, "name"},
		{"does nothing", Rung{Name: "a"}, "name"},
		{"task protected", Rung{Name: "a", Set: map[string]string{"--task": "ti2v-5B"}}, "set.--task"},
		{"ckpt_dir protected", Rung{Name: "a", Remove: []string{"--ckpt_dir"}}, "remove[0]"},
		{"size through its field", Rung{Name: "a", Set: map[string]string{"--size": "832*480"}}, "set.--size"},
		{"seed pinned by the runner", Rung{Name: "a", Remove: []string{"--base_seed"}}, "remove[0]"},
		{"not a flag", Rung{Name: "a", Add: []string{"t5_cpu"}}, "add[0]"},
		{"add a value flag", Rung{Name: "a", Add: []string{"--offload_model"}}, "add[0]"},
		{"set a store_true flag", Rung{Name: "a", Set: map[string]string{"--t5_cpu": "1"}}, "set.--t5_cpu"},
		{"bad env name", Rung{Name: "a", Env: map[string]string{"1X": "y"}}, "env.1X"},
		{"bad size", Rung{Name: "a", Size: "big"}, "size"},
		{"explicit size", Rung{Name: "a", Size: "832*480"}, ""},
		{"bad frames", Rung{Name: "a", FrameNum: "-4"}, "frame_num"},
		{"bad ulysses", Rung{Name: "a", Ulysses: "8"}, "ulysses"},
		{"unknown task", Rung{Name: "a", Size: Smaller, When: Cond{Tasks: []string{"t2v-A15B"}}}, "when.tasks[0]"},
		{"empty phase", Rung{Name: "a", Size: Smaller, When: Cond{Phases: []classify.Phase{""}}}, "when.phases[0]"},
		{"empty script", Rung{Name: "a", Size: Smaller, When: Cond{Scripts: []string{""}}}, "when.scripts[0]"},
		{"file without path", Rung{Name: "a", File: &FilePatch{Replace: "b"}}, "file.path"},
		{"file with both", Rung{Name: "a", File: &FilePatch{Path: "p", Replace: "b", Merge: map[string]any{"x": 1}}}, "file.merge"},
		{"file with neither", Rung{Name: "a", File: &FilePatch{Path: "p"}}, "file.merge"},
	}
	for _, tt := range tests {
		checkField(t, tt.name, tt.r.Validate(), tt.field)
	}
}

func TestSpec_Validate(t *testing.T) {
	t.Parallel()
	rung := Rung{Name: "r", Size: Smaller}
	wf := Workflow{Name: "w", Title: "T", Classes: []classify.Class{classify.ClassCUDAOOM}, Steps: []Step{{Instruction: "do"}}}
	tests := []struct {
		name  string
		s     Spec
		field string
	}{
		{"valid", Spec{
			Classes:   map[classify.Class]ClassPolicy{classify.ClassCUDAOOM: {Strategy: ActionFallback, Budget: 1, Ladder: "l", Workflow: "w"}},
			Ladders:   []Ladder{{Name: "l", Rungs: []Rung{rung}}},
			Workflows: []Workflow{wf},
		}, ""},
		{"success has no policy", Spec{Classes: map[classify.Class]ClassPolicy{classify.ClassSuccess: {Strategy: ActionRetry}}}, "classes.success"},
		{"unknown class", Spec{Classes: map[classify.Class]ClassPolicy{"oom": {Strategy: ActionRetry}}}, "classes.oom"},
		{"bad class policy", Spec{Classes: map[classify.Class]ClassPolicy{classify.ClassStall: {Strategy: ActionRetry, Budget: -2}}}, "classes.stall.budget"},
		{"unknown ladder", Spec{
			Classes: map[classify.Class]ClassPolicy{classify.ClassCUDAOOM: {Strategy: ActionFallback, Budget: 1, Ladder: "nope"}},
			Ladders: []Ladder{{Name: "l", Rungs: []Rung{rung}}},
		}, "classes.cuda_oom.ladder"},
		{"unknown workflow", Spec{
			Classes:   map[classify.Class]ClassPolicy{classify.ClassCUDAEnv: {Strategy: ActionGuide, Workflow: "nope"}},
			Workflows: []Workflow{wf},
		}, "classes.cuda_env.workflow"},
		{"references unchecked without definitions", Spec{
			Classes: map[classify.Class]ClassPolicy{classify.ClassCUDAOOM: {Strategy: ActionFallback, Budget: 1, Ladder: "elsewhere"}},
		}, ""},
		{"duplicate ladder", Spec{Ladders: []Ladder{{Name: "l", Rungs: []Rung{rung}}, {Name: "l", Rungs: []Rung{rung}}}}, "ladders[1].name"},
		{"duplicate rung", Spec{Ladders: []Ladder{{Name: "l", Rungs: []Rung{rung, rung}}}}, "ladders[0].rungs[1].name"},
		{"empty ladder", Spec{Ladders: []Ladder{{Name: "l"}}}, "ladders[0].rungs"},
		{"bad rung", Spec{Ladders: []Ladder{{Name: "l", Rungs: []Rung{{Name: "r", FrameNum: "x"}}}}}, "ladders[0].rungs[0].frame_num"},
		{"duplicate workflow", Spec{Workflows: []Workflow{wf, wf}}, "workflows[1].name"},
	}
	for _, tt := range tests {
		checkField(t, tt.name, tt.s.Validate(), tt.field)
	}
}

func TestPolicy_Validate(t *testing.T) {
	t.Parallel()
	mutate := func(f func(p *Policy)) Policy {
		p := defaultPolicy(t)
		f(&p)
		return p
	}
	tests := []struct {
		name  string
		p     Policy
		field string
	}{
		{"defaults", defaultPolicy(t), ""},
		{"negative attempts", mutate(func(p *Policy) { p.MaxAttempts = -1 }), "max_attempts"},
		{"negative deadline", mutate(func(p *Policy) { p.Deadline = -1 }), "deadline"},
		{"negative stable_after", mutate(func(p *Policy) { p.StableAfter = -1 }), "stable_after"},
		{"bad backoff", mutate(func(p *Policy) { p.Backoff.Multiplier = 0 }), "backoff.multiplier"},
		{"missing class", mutate(func(p *Policy) { delete(p.Classes, classify.ClassStall) }), "classes.stall"},
		{"ladder under another name", mutate(func(p *Policy) { p.Ladders["other"] = p.Ladders["config"] }), "ladders.other.name"},
		{"missing ladder", mutate(func(p *Policy) { delete(p.Ladders, "config") }), "classes.config.ladder"},
		{"missing workflow", mutate(func(p *Policy) { delete(p.Workflows, "nccl") }), "classes.nccl.workflow"},
		{"bad workflow", mutate(func(p *Policy) { w := p.Workflows["nccl"]; w.Title = ""; p.Workflows["nccl"] = w }), "workflows.nccl.title"},
	}
	for _, tt := range tests {
		checkField(t, tt.name, tt.p.Validate(), tt.field)
	}
	if _, err := NewStrategy(mutate(func(p *Policy) { p.MaxAttempts = -1 })); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewStrategy(bad policy) error = %v, want ErrInvalid", err)
	}
}

func TestSpec_Overlay(t *testing.T) {
	t.Parallel()
	base := defaultPolicy(t)
	user := Spec{
		Classes: map[classify.Class]ClassPolicy{classify.ClassNetwork: {Strategy: ActionBackoff, Budget: 10}},
		Ladders: []Ladder{{Name: "config", Rungs: []Rung{{Name: "only", Ulysses: World}}}},
	}
	got := user.Overlay(base)
	if got.Classes[classify.ClassNetwork].Budget != 10 || got.Ladders["config"].Rungs[0].Name != "only" {
		t.Errorf("Overlay did not replace entries: %+v", got.Classes[classify.ClassNetwork])
	}
	if base.Classes[classify.ClassNetwork].Budget != 5 || base.Ladders["config"].Rungs[0].Name != "ulysses_world" {
		t.Errorf("Overlay modified its input policy")
	}
	if err := got.Validate(); err != nil {
		t.Errorf("overlaid policy: %v", err)
	}
}

func TestAction(t *testing.T) {
	t.Parallel()
	for _, a := range []Action{ActionRetry, ActionBackoff, ActionFallback, ActionRestore, ActionGuide, ActionShutdown} {
		if !a.Strategy() {
			t.Errorf("%s.Strategy() = false", a)
		}
	}
	for _, a := range []Action{ActionNone, ActionGiveUp, "", "x"} {
		if a.Strategy() {
			t.Errorf("%q.Strategy() = true", a)
		}
	}
	for a, want := range map[Action]bool{ActionNone: true, ActionGuide: true, ActionShutdown: true, ActionGiveUp: true, ActionRetry: false, ActionBackoff: false, ActionFallback: false, ActionRestore: false} {
		if a.Final() != want {
			t.Errorf("%s.Final() = %v, want %v", a, a.Final(), want)
		}
	}
}
