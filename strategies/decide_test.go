package strategies

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/wan"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// pinned returns a fresh state with a seed and save file.
func pinned(seed int64, saveFile string) RunState {
	st := NewRunState()
	st.Seed, st.SaveFile = seed, saveFile
	return st
}

// failed returns a state in which class has already failed n times, the
// streak is n, and n attempts have run.
func failed(class classify.Class, n int) RunState {
	st := pinned(42, "out.mp4")
	st.Attempts, st.Failures = n, n
	st.Classes = map[classify.Class]int{class: n}
	return st
}

func TestStrategy_Decide(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t) // max 20 attempts, 24h deadline, backoff 10s..5m ×2, stable after 10m
	t2v := wan.Parse(strings.Fields(readmeT2V))
	res := func(c classify.Class) classify.Result { return classify.Result{Class: c, Phase: classify.PhaseDenoise} }

	tests := []struct {
		name     string
		in       Input
		action   Action
		reason   Reason
		delay    time.Duration
		rung     string
		workflow string
		failures int // Decision.State.Failures; -1 = not checked
	}{
		{"success", Input{Result: res(classify.ClassSuccess), State: failed(classify.ClassNCCL, 2)}, ActionNone, ReasonSucceeded, 0, "", "", 0},
		{"interrupted class", Input{Result: res(classify.ClassInterrupted)}, ActionShutdown, ReasonInterrupted, 0, "", "", 0},
		{"interrupted outcome wins over class", Input{Result: res(classify.ClassCUDAOOM), Outcome: classify.Outcome{Interrupted: true}}, ActionShutdown, ReasonInterrupted, 0, "", "", 0},

		{"cuda_oom first rung", Input{Result: res(classify.ClassCUDAOOM)}, ActionFallback, ReasonNextRung, 0, "expandable_segments", "vram-detection", 1},
		{"cuda_oom last budget", Input{Result: res(classify.ClassCUDAOOM), State: failed(classify.ClassCUDAOOM, 7)}, ActionFallback, ReasonNextRung, 0, "expandable_segments", "vram-detection", 8},
		{"cuda_oom budget spent", Input{Result: res(classify.ClassCUDAOOM), State: failed(classify.ClassCUDAOOM, 8)}, ActionGuide, ReasonClassBudgetExhausted, 0, "", "vram-detection", 9},

		{"host_oom budget spent", Input{Result: res(classify.ClassHostOOM), State: failed(classify.ClassHostOOM, 2)}, ActionGuide, ReasonClassBudgetExhausted, 0, "", "host-ram", 3},
		{"host_oom no rung fits", Input{Result: res(classify.ClassHostOOM)}, ActionGuide, ReasonLadderExhausted, 0, "", "host-ram", 1},

		{"nccl first", Input{Result: res(classify.ClassNCCL), Jitter: 0.5}, ActionBackoff, ReasonWithinBudget, 5 * time.Second, "", "nccl", 1},
		{"nccl third", Input{Result: res(classify.ClassNCCL), State: failed(classify.ClassNCCL, 2), Jitter: 0.999}, ActionBackoff, ReasonWithinBudget, 39960 * time.Millisecond, "", "nccl", 3},
		{"nccl budget spent", Input{Result: res(classify.ClassNCCL), State: failed(classify.ClassNCCL, 3)}, ActionGuide, ReasonClassBudgetExhausted, 0, "", "nccl", 4},
		{"nccl after a stable run", Input{Result: res(classify.ClassNCCL), State: failed(classify.ClassNCCL, 2), Uptime: 11 * time.Minute}, ActionBackoff, ReasonStableRunReset, 10 * time.Second, "", "nccl", 1},
		{"uptime from outcome", Input{Result: res(classify.ClassNCCL), State: failed(classify.ClassNCCL, 2), Outcome: classify.Outcome{Uptime: time.Hour}}, ActionBackoff, ReasonStableRunReset, 10 * time.Second, "", "nccl", 1},
		{"exactly stable_after is not stable", Input{Result: res(classify.ClassNCCL), State: failed(classify.ClassNCCL, 1), Uptime: 10 * time.Minute}, ActionBackoff, ReasonWithinBudget, 20 * time.Second, "", "nccl", 2},

		{"gpu_fault retry", Input{Result: res(classify.ClassGPUFault)}, ActionRetry, ReasonWithinBudget, 0, "", "gpu-fault", 1},
		{"gpu_fault budget spent", Input{Result: res(classify.ClassGPUFault), State: failed(classify.ClassGPUFault, 1)}, ActionGuide, ReasonClassBudgetExhausted, 0, "", "gpu-fault", 2},

		{"cuda_env", Input{Result: res(classify.ClassCUDAEnv)}, ActionGuide, ReasonNeedsUser, 0, "", "cuda-env", 1},
		{"missing_dep", Input{Result: res(classify.ClassMissingDep)}, ActionGuide, ReasonNeedsUser, 0, "", "python-deps", 1},

		{"config nothing to fix", Input{Result: res(classify.ClassConfig)}, ActionShutdown, ReasonLadderExhausted, 0, "", "bad-config", 1},
		{"config budget spent", Input{Result: res(classify.ClassConfig), State: failed(classify.ClassConfig, 1)}, ActionShutdown, ReasonClassBudgetExhausted, 0, "", "bad-config", 2},

		{"disk_full", Input{Result: res(classify.ClassDiskFull)}, ActionShutdown, ReasonPolicyShutdown, 0, "", "disk-full", 1},

		{"network fifth", Input{Result: res(classify.ClassNetwork), State: failed(classify.ClassNetwork, 4)}, ActionBackoff, ReasonWithinBudget, 160 * time.Second, "", "", 5},
		{"network budget spent", Input{Result: res(classify.ClassNetwork), State: failed(classify.ClassNetwork, 5)}, ActionGiveUp, ReasonClassBudgetExhausted, 0, "", "", 6},

		{"quantization_timeout generate.py", Input{Result: res(classify.ClassQuantizationTimeout)}, ActionGuide, ReasonLadderExhausted, 0, "", "quantization-timeout", 1},
		{"quantization_error budget spent", Input{Result: res(classify.ClassQuantizationError), State: failed(classify.ClassQuantizationError, 2)}, ActionGuide, ReasonClassBudgetExhausted, 0, "", "quantization-timeout", 3},

		{"stall retry", Input{Result: res(classify.ClassStall)}, ActionRetry, ReasonWithinBudget, 0, "", "stall", 1},
		{"stall budget spent", Input{Result: res(classify.ClassStall), State: failed(classify.ClassStall, 1)}, ActionGuide, ReasonClassBudgetExhausted, 0, "", "stall", 2},

		{"state_corrupt restore", Input{Result: res(classify.ClassStateCorrupt)}, ActionRestore, ReasonWithinBudget, 0, "", "", 1},
		{"state_corrupt second restore", Input{Result: res(classify.ClassStateCorrupt), State: failed(classify.ClassStateCorrupt, 1)}, ActionRestore, ReasonWithinBudget, 0, "", "", 2},
		{"state_corrupt budget spent", Input{Result: res(classify.ClassStateCorrupt), State: failed(classify.ClassStateCorrupt, 2)}, ActionShutdown, ReasonClassBudgetExhausted, 0, "", "", 3},

		{"save_failed retry", Input{Result: res(classify.ClassSaveFailed)}, ActionRetry, ReasonWithinBudget, 0, "", "save-failed", 1},
		{"save_failed budget spent", Input{Result: res(classify.ClassSaveFailed), State: failed(classify.ClassSaveFailed, 1)}, ActionGuide, ReasonClassBudgetExhausted, 0, "", "save-failed", 2},

		{"unknown", Input{Result: res(classify.ClassUnknown)}, ActionBackoff, ReasonWithinBudget, 10 * time.Second, "", "", 1},
		{"unknown budget spent", Input{Result: res(classify.ClassUnknown), State: failed(classify.ClassUnknown, 2)}, ActionGiveUp, ReasonClassBudgetExhausted, 0, "", "", 3},
		{"empty class is unknown", Input{}, ActionBackoff, ReasonWithinBudget, 10 * time.Second, "", "", 1},
		{"bogus class is unknown", Input{Result: classify.Result{Class: "bogus"}}, ActionBackoff, ReasonWithinBudget, 10 * time.Second, "", "", 1},

		{"max attempts reached", Input{Result: res(classify.ClassNCCL), Attempt: 20}, ActionGiveUp, ReasonBudgetExhausted, 0, "", "nccl", 1},
		{"one attempt left", Input{Result: res(classify.ClassNCCL), Attempt: 19}, ActionBackoff, ReasonWithinBudget, 10 * time.Second, "", "nccl", 1},
		{"deadline passed", Input{Result: res(classify.ClassNCCL), Now: t0.Add(24 * time.Hour)}, ActionGiveUp, ReasonDeadlinePassed, 0, "", "nccl", 1},
		{"delay would pass the deadline", Input{Result: res(classify.ClassNCCL), Now: t0.Add(24*time.Hour - 5*time.Second)}, ActionGiveUp, ReasonDeadlinePassed, 0, "", "nccl", 1},
		{"delay ends at the deadline", Input{Result: res(classify.ClassNCCL), Now: t0.Add(24*time.Hour - 10*time.Second)}, ActionBackoff, ReasonWithinBudget, 10 * time.Second, "", "nccl", 1},
		{"guide past the deadline", Input{Result: res(classify.ClassCUDAEnv), Now: t0.Add(48 * time.Hour), Attempt: 99}, ActionGuide, ReasonNeedsUser, 0, "", "cuda-env", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := tt.in
			if in.Attempt == 0 {
				in.Attempt = in.State.Attempts + 1
			}
			if in.Started.IsZero() {
				in.Started = t0
			}
			if in.Now.IsZero() {
				in.Now = t0.Add(time.Hour)
			}
			if in.Cmd.Argv == nil {
				in.Cmd = t2v
			}
			before := in.State.Clone()
			d := s.Decide(in)
			if d.Action != tt.action || d.Reason != tt.reason || d.Delay != tt.delay {
				t.Errorf("Decide(%s) = %s %s %s, want %s %s %s (%s)", tt.name, d.Action, d.Reason, d.Delay, tt.action, tt.reason, tt.delay, d.Message)
			}
			if d.RungName != tt.rung || (tt.rung == "") != (d.Rung == -1) {
				t.Errorf("Decide(%s) rung = %d %q, want %q", tt.name, d.Rung, d.RungName, tt.rung)
			}
			if d.Workflow != tt.workflow {
				t.Errorf("Decide(%s) workflow = %q, want %q", tt.name, d.Workflow, tt.workflow)
			}
			if tt.failures >= 0 && d.State.Failures != tt.failures {
				t.Errorf("Decide(%s) State.Failures = %d, want %d", tt.name, d.State.Failures, tt.failures)
			}
			if d.Message == "" {
				t.Errorf("Decide(%s) has no message", tt.name)
			}
			if d.State.Attempts != in.Attempt {
				t.Errorf("Decide(%s) State.Attempts = %d, want %d", tt.name, d.State.Attempts, in.Attempt)
			}
			if !reflect.DeepEqual(in.State, before) {
				t.Errorf("Decide(%s) modified its input state", tt.name)
			}
		})
	}
}

func TestStrategy_Decide_countsAndState(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	cmd := wan.Parse(strings.Fields(readmeT2V))
	st := pinned(7, "out.mp4")
	d := s.Decide(Input{Result: classify.Result{Class: classify.ClassCUDAOOM, Phase: classify.PhaseDecode}, Attempt: 1, Cmd: cmd, State: st, Started: t0, Now: t0})
	if d.State.Classes[classify.ClassCUDAOOM] != 1 || d.State.Rung("cuda_oom") != d.Rung || d.State.LastClass != classify.ClassCUDAOOM {
		t.Errorf("state after fallback = %+v", d.State)
	}
	if d.State.Seed != 7 || d.State.SaveFile != "out.mp4" || d.State.Version != StateVersion {
		t.Errorf("state lost seed, save file or version: %+v", d.State)
	}
	if len(d.Changes) != 2 || d.Changes[0].Kind != ChangeEnv {
		t.Errorf("changes = %+v, want the two allocator variables", d.Changes)
	}
	data, err := json.Marshal(d.State)
	if err != nil {
		t.Fatal(err)
	}
	var back RunState
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, d.State) {
		t.Errorf("RunState JSON round trip: %v\n%s\n%+v", err, data, back)
	}
	d2 := s.Decide(Input{Result: classify.Result{Class: classify.ClassSuccess}, Attempt: 2, Cmd: cmd, State: d.State, Started: t0, Now: t0})
	if d2.State.Failures != 0 || d2.State.Rung("cuda_oom") != d.Rung {
		t.Errorf("success: state = %+v, want streak 0 and the rung kept", d2.State)
	}
}

func TestStrategy_Decide_envAlreadySet(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	env := []string{"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True", "PYTORCH_ALLOC_CONF=expandable_segments:True"}
	d := s.Decide(Input{Result: classify.Result{Class: classify.ClassCUDAOOM, Phase: classify.PhaseDecode}, Attempt: 1,
		Cmd: wan.Parse(strings.Fields(readmeT2V)), Env: env, Started: t0, Now: t0})
	if d.RungName != "size_smaller" {
		t.Errorf("with the allocator already set, first rung = %q, want size_smaller", d.RungName)
	}
}

func TestStrategy_Decide_noPolicy(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	delete(p.Classes, classify.ClassNetwork)
	if _, err := NewStrategy(p); err == nil {
		t.Fatalf("NewStrategy accepted a policy without network")
	}
	s := &Strategy{policy: p}
	d := s.Decide(Input{Result: classify.Result{Class: classify.ClassNetwork}, Attempt: 1, Started: t0, Now: t0})
	if d.Action != ActionGiveUp || d.Reason != ReasonNoPolicy {
		t.Errorf("Decide without a policy = %s %s, want give_up no_policy", d.Action, d.Reason)
	}
}

func TestStrategy_Decide_phaseSkipsForGood(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	cmd := wan.Parse(strings.Fields(readmeT2V))
	st := NewRunState()
	var names []string
	for i, phase := range []classify.Phase{classify.PhaseDecode, classify.PhaseDecode, classify.PhaseT5, classify.PhaseT5} {
		d := s.Decide(Input{Result: classify.Result{Class: classify.ClassCUDAOOM, Phase: phase}, Attempt: i + 1, Cmd: cmd, State: st, Started: t0, Now: t0})
		names = append(names, d.RungName)
		st = d.State
	}
	want := []string{"expandable_segments", "size_smaller", "frames_smaller", "frames_smaller_2"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("rungs = %q, want %q (t5_cpu passed at decode stays passed)", names, want)
	}
}

func BenchmarkDecide(b *testing.B) {
	s := defaultStrategy(b)
	cmd := wan.Parse(strings.Fields(readmeT2V))
	env := []string{"PATH=/usr/bin", "HOME=/root", "CUDA_VISIBLE_DEVICES=0"}
	mid := pinned(1, "out.mp4")
	l := s.Policy().Ladders["cuda_oom"]
	mid = mid.WithRungs(l, []int{3, 6, 8})
	mid.Classes = map[classify.Class]int{classify.ClassCUDAOOM: 3}
	cases := []struct {
		name string
		in   Input
	}{
		{"fallback", Input{Result: classify.Result{Class: classify.ClassCUDAOOM, Phase: classify.PhaseDecode}, Attempt: 4, Cmd: cmd, Env: env, State: mid, Started: t0, Now: t0}},
		{"backoff", Input{Result: classify.Result{Class: classify.ClassNCCL}, Attempt: 2, Cmd: cmd, Env: env, State: mid, Started: t0, Now: t0, Jitter: 0.3}},
		{"guide", Input{Result: classify.Result{Class: classify.ClassMissingDep, Evidence: "ModuleNotFoundError: No module named 'x'"}, Attempt: 1, Cmd: cmd, Started: t0, Now: t0}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Decide(c.in)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	in := Input{Result: classify.Result{Class: classify.ClassMissingDep, Evidence: "assert FLASH_ATTN_2_AVAILABLE"}, Attempt: 1, Started: t0, Now: t0, Policy: &p}
	if d := Decide(in); d.Action != ActionGuide || d.Workflow != "flash-attn" {
		t.Errorf("Decide = %s %q, want guide flash-attn", d.Action, d.Workflow)
	}
	in.Policy = nil
	if d := Decide(in); d.Action != ActionGiveUp || d.Reason != ReasonNoPolicy {
		t.Errorf("Decide without policy = %s %s", d.Action, d.Reason)
	}
	spec, _ := readSpec()
	q := PolicyFrom(spec.Classes, spec.Ladders, spec.Workflows...)
	q.MaxAttempts, q.Backoff = 5, Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}
	if err := q.Validate(); err != nil {
		t.Errorf("PolicyFrom: %v", err)
	}
}
