package strategies

import (
	"regexp"
	"strings"
	"testing"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/wan"
)

func TestWorkflow_Render(t *testing.T) {
	t.Parallel()
	w := Workflow{
		Name: "demo", Title: "OOM for {task} at {phase}", Summary: "Saw: {evidence}",
		Classes: []classify.Class{classify.ClassCUDAOOM},
		Steps: []Step{
			{Instruction: "List {ckpt_dir}", Check: &Check{Command: []string{"ls", "{ckpt_dir}"}, Expect: "VAE"}, Expected: "the VAE", Tips: []string{"tip for {task}"}},
			{Instruction: "Rerun {argv} ({unset_is_kept})"},
		},
	}
	vars := map[string]string{"task": "t2v-A14B", "phase": "decode", "evidence": "CUDA out of memory", "ckpt_dir": "./my ckpt", "argv": "python generate.py"}
	want := `OOM for t2v-A14B at decode

Saw: CUDA out of memory

1. List ./my ckpt
   check:    ls './my ckpt'
   expected: the VAE
   tip:      tip for t2v-A14B

2. Rerun python generate.py ({unset_is_kept})
`
	if got := w.Render(vars); got != want {
		t.Errorf("Render =\n%s\nwant\n%s", got, want)
	}
	if w.Steps[0].Check.Command[1] != "{ckpt_dir}" {
		t.Errorf("Render modified the workflow")
	}
	if err := w.Validate(); err == nil || !strings.Contains(err.Error(), "steps[1].instruction") {
		t.Errorf("Validate with an unknown placeholder: %v", err)
	}
}

func TestWorkflow_Validate(t *testing.T) {
	t.Parallel()
	ok := Workflow{Name: "w-1", Title: "T", Classes: []classify.Class{classify.ClassNCCL}, Steps: []Step{{Instruction: "x"}}}
	mut := func(f func(w *Workflow)) Workflow {
		w := ok
		w.Steps = append([]Step(nil), ok.Steps...)
		f(&w)
		return w
	}
	tests := []struct {
		name  string
		w     Workflow
		field string
	}{
		{"valid", ok, ""},
		{"bad name", mut(func(w *Workflow) { w.Name = "Bad Name" }), "name"},
		{"no title", mut(func(w *Workflow) { w.Title = "" }), "title"},
		{"no classes", mut(func(w *Workflow) { w.Classes = nil }), "classes"},
		{"success class", mut(func(w *Workflow) { w.Classes = []classify.Class{classify.ClassSuccess} }), "classes[0]"},
		{"bad evidence", mut(func(w *Workflow) { w.Evidence = []string{"("} }), "evidence[0]"},
		{"no steps", mut(func(w *Workflow) { w.Steps = nil }), "steps"},
		{"empty instruction", mut(func(w *Workflow) { w.Steps[0].Instruction = "" }), "steps[0].instruction"},
		{"empty check", mut(func(w *Workflow) { w.Steps[0].Check = &Check{} }), "steps[0].check.command"},
		{"bad expect", mut(func(w *Workflow) { w.Steps[0].Check = &Check{Command: []string{"df"}, Expect: "["} }), "steps[0].check.expect"},
		{"unknown placeholder in tip", mut(func(w *Workflow) { w.Steps[0].Tips = []string{"{nope}"} }), "steps[0].tips[0]"},
		{"unknown placeholder in summary", mut(func(w *Workflow) { w.Summary = "{gpu}" }), "summary"},
	}
	for _, tt := range tests {
		checkField(t, tt.name, tt.w.Validate(), tt.field)
	}
}

func TestVars(t *testing.T) {
	t.Parallel()
	cmd := wan.Parse(strings.Fields(readmeT2V))
	v := Vars(cmd, classify.Result{Class: classify.ClassCUDAOOM, Phase: classify.PhaseDecode, Evidence: "OOM"})
	want := map[string]string{
		"task": "t2v-A14B", "size": "1280*720", "frames": "81", "world_size": "1", "ckpt_dir": "./Wan2.2-T2V-A14B",
		"phase": "decode", "class": "cuda_oom", "evidence": "OOM",
		"argv":        "python generate.py --task t2v-A14B --size '1280*720' --ckpt_dir ./Wan2.2-T2V-A14B --offload_model True --convert_model_dtype --prompt Two_cats",
		"checkpoints": "Wan2.1_VAE.pth, low_noise_model/, high_noise_model/, models_t5_umt5-xxl-enc-bf16.pth, google/umt5-xxl/",
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("Vars[%s] = %q, want %q", k, v[k], w)
		}
	}
	if _, ok := v["save_file"]; ok {
		t.Errorf("Vars has save_file for a command without one")
	}
}

// Every built-in workflow renders without placeholders left when all values are known.
func TestConfigs_workflowsRender(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	vars := Vars(wan.Parse(strings.Fields(readmeT2V+" --save_file out.mp4")), classify.Result{Class: classify.ClassCUDAOOM, Phase: classify.PhaseDecode, Evidence: "torch.OutOfMemoryError"})
	left := regexp.MustCompile(`\{[a-z_]+\}`)
	for name, w := range p.Workflows {
		out := w.Render(vars)
		if m := left.FindString(out); m != "" {
			t.Errorf("workflow %s: %s left after Render", name, m)
		}
		if !strings.HasPrefix(out, w.Expand(vars).Title) || !strings.Contains(out, "\n1. ") {
			t.Errorf("workflow %s renders oddly:\n%s", name, out)
		}
	}
	out := p.Workflows["vram-detection"].Render(vars)
	for _, s := range []string{"nvidia-smi --query-gpu=memory.total,memory.used --format=csv", "t2v-A14B at 1280*720, 81 frames"} {
		if !strings.Contains(out, s) {
			t.Errorf("vram-detection lacks %q:\n%s", s, out)
		}
	}
}

func TestShellJoin(t *testing.T) {
	t.Parallel()
	got := ShellJoin([]string{"python", "-c", "import x; print(1)", "", "it's", "--size=1280*720"})
	want := `python -c 'import x; print(1)' '' 'it'\''s' '--size=1280*720'`
	if got != want {
		t.Errorf("ShellJoin = %s, want %s", got, want)
	}
}
