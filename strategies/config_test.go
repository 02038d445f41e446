package strategies

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/wan"
)

// decodeStrict decodes YAML with unknown keys rejected, as configs does.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// readSpec reads the classes, ladders and workflows of
// configs/default.yaml; the file's other sections belong to other packages,
// and configs' own tests decode the whole file strictly.
func readSpec() (Spec, error) {
	data, err := os.ReadFile(filepath.Join("..", "configs", "default.yaml"))
	if err != nil {
		return Spec{}, err
	}
	var s Spec
	err = yaml.NewDecoder(bytes.NewReader(data)).Decode(&s)
	return s, err
}

var loadDefaults = sync.OnceValues(func() (Policy, error) {
	spec, err := readSpec()
	if err != nil {
		return Policy{}, err
	}
	p := Policy{
		MaxAttempts: 20,
		Deadline:    24 * time.Hour,
		Backoff:     Backoff{Initial: 10 * time.Second, Max: 5 * time.Minute, Multiplier: 2},
		StableAfter: 10 * time.Minute,
	}
	p = spec.Overlay(p)
	return p, nil
})

// defaultPolicy returns a fresh copy of the policy built from configs/.
func defaultPolicy(t testing.TB) Policy {
	t.Helper()
	p, err := loadDefaults()
	if err != nil {
		t.Fatalf("load configs: %v", err)
	}
	return Spec{}.Overlay(p)
}

func defaultStrategy(t testing.TB) *Strategy {
	t.Helper()
	s, err := NewStrategy(defaultPolicy(t))
	if err != nil {
		t.Fatalf("NewStrategy(defaults): %v", err)
	}
	return s
}

func TestConfigs_load(t *testing.T) {
	t.Parallel()
	spec, err := readSpec()
	if err != nil {
		t.Fatalf("default.yaml: %v", err)
	}
	if err := spec.Validate(); err != nil {
		t.Errorf("default.yaml: Validate: %v", err)
	}
	p := defaultPolicy(t)
	if err := p.Validate(); err != nil {
		t.Fatalf("policy from configs: Validate: %v", err)
	}
	for _, c := range classify.Classes {
		_, ok := spec.Classes[c]
		if want := c != classify.ClassSuccess; ok != want {
			t.Errorf("default.yaml: class %s present = %v, want %v", c, ok, want)
		}
	}
	for _, name := range []string{"vram-detection", "quantization-timeout", "host-ram", "cuda-env", "missing-checkpoints", "flash-attn", "gpu-fault", "disk-full", "nccl"} {
		if _, ok := p.Workflows[name]; !ok {
			t.Errorf("default.yaml: no workflow %q", name)
		}
	}
	want := map[classify.Class]ClassPolicy{
		classify.ClassCUDAOOM:             {Strategy: ActionFallback, Budget: 8, Ladder: "cuda_oom", Then: ActionGuide, Workflow: "vram-detection"},
		classify.ClassHostOOM:             {Strategy: ActionFallback, Budget: 2, Ladder: "host_oom", Then: ActionGuide, Workflow: "host-ram"},
		classify.ClassNCCL:                {Strategy: ActionBackoff, Budget: 3, Then: ActionGuide, Workflow: "nccl"},
		classify.ClassGPUFault:            {Strategy: ActionRetry, Budget: 1, Then: ActionGuide, Workflow: "gpu-fault"},
		classify.ClassConfig:              {Strategy: ActionFallback, Budget: 1, Ladder: "config", Then: ActionShutdown, Workflow: "bad-config"},
		classify.ClassDiskFull:            {Strategy: ActionShutdown, Workflow: "disk-full"},
		classify.ClassNetwork:             {Strategy: ActionBackoff, Budget: 5, Then: ActionGiveUp},
		classify.ClassQuantizationTimeout: {Strategy: ActionFallback, Budget: 2, Ladder: "quantization", Then: ActionGuide, Workflow: "quantization-timeout"},
		classify.ClassStateCorrupt:        {Strategy: ActionRestore, Budget: 2, Then: ActionShutdown},
		classify.ClassSaveFailed:          {Strategy: ActionRetry, Budget: 1, Then: ActionGuide, Workflow: "save-failed"},
		classify.ClassInterrupted:         {Strategy: ActionShutdown},
		classify.ClassUnknown:             {Strategy: ActionBackoff, Budget: 2, Then: ActionGiveUp},
	}
	for c, w := range want {
		if got := p.Classes[c]; got != w {
			t.Errorf("classes.%s = %+v, want %+v", c, got, w)
		}
	}
}

func TestConfigs_unknownKeyRejected(t *testing.T) {
	t.Parallel()
	var s Spec
	err := decodeStrict([]byte("ladders:\n  - name: x\n    rungz: []\n"), &s)
	if err == nil || !strings.Contains(err.Error(), "rungz") {
		t.Errorf("decode with unknown key: error %v, want one naming rungz", err)
	}
}

// README launch lines (WAN22.md 1.3).
const (
	readmeT2V      = `python generate.py --task t2v-A14B --size 1280*720 --ckpt_dir ./Wan2.2-T2V-A14B --offload_model True --convert_model_dtype --prompt Two_cats`
	readmeT2VPort  = `python generate.py --task t2v-A14B --size 720*1280 --ckpt_dir ./Wan2.2-T2V-A14B --offload_model True --convert_model_dtype --prompt x`
	readmeI2V      = `python generate.py --task i2v-A14B --size 1280*720 --ckpt_dir ./Wan2.2-I2V-A14B --offload_model True --convert_model_dtype --image examples/i2v_input.JPG --prompt x`
	readmeTI2V     = `python generate.py --task ti2v-5B --size 1280*704 --ckpt_dir ./Wan2.2-TI2V-5B --offload_model True --convert_model_dtype --t5_cpu --prompt x`
	readmeS2V      = `python generate.py --task s2v-14B --size 1024*704 --ckpt_dir ./Wan2.2-S2V-14B --offload_model True --convert_model_dtype --prompt x --image examples/i2v_input.JPG --audio examples/talk.wav`
	readmeAnimate  = `python generate.py --task animate-14B --ckpt_dir ./Wan2.2-Animate-14B --src_root_path ./examples/animate/process_results --refert_num 1`
	readmeMultiT2V = `torchrun --nproc_per_node=8 generate.py --task t2v-A14B --size 1280*720 --ckpt_dir ./Wan2.2-T2V-A14B --dit_fsdp --t5_fsdp --ulysses_size 8 --prompt x`
	readmeMultiI2V = `torchrun --nproc_per_node=8 generate.py --task i2v-A14B --size 1280*720 --ckpt_dir ./Wan2.2-I2V-A14B --image a.jpg --dit_fsdp --t5_fsdp --ulysses_size 8 --prompt x`
	readmeMultiTI2 = `torchrun --nproc_per_node=8 generate.py --task ti2v-5B --size 1280*704 --ckpt_dir ./Wan2.2-TI2V-5B --dit_fsdp --t5_fsdp --ulysses_size 8 --prompt x`
	readmeMultiS2V = `torchrun --nproc_per_node=8 generate.py --task s2v-14B --size 1024*704 --ckpt_dir ./Wan2.2-S2V-14B --dit_fsdp --t5_fsdp --ulysses_size 8 --prompt x --image a.jpg --audio b.wav`
	readmeMultiAni = `python -m torch.distributed.run --nnodes 1 --nproc_per_node 8 generate.py --task animate-14B --ckpt_dir ./Wan2.2-Animate-14B --src_root_path ./p --refert_num 1 --replace_flag --use_relighting_lora --dit_fsdp --t5_fsdp --ulysses_size 8`
	multiFour      = `torchrun --nproc_per_node=4 generate.py --task i2v-A14B --size 1280*720 --ckpt_dir ./Wan2.2-I2V-A14B --image a.jpg --prompt x`
	plainT2V       = `python generate.py --task t2v-A14B --size 1280*720 --ckpt_dir ./Wan2.2-T2V-A14B --prompt x`
	wan2gp         = `python wgp.py --t2v-14B --profile 3 --quantize-transformer True`
)

var readmeLines = []string{readmeT2V, readmeT2VPort, readmeI2V, readmeTI2V, readmeS2V, readmeAnimate,
	readmeMultiT2V, readmeMultiI2V, readmeMultiTI2, readmeMultiS2V, readmeMultiAni, multiFour, plainT2V, wan2gp}

// walk decides failures of one class until the run stops and returns every
// decision. argv is split on spaces.
func walk(t *testing.T, s *Strategy, argv string, class classify.Class, phase classify.Phase) []Decision {
	t.Helper()
	cmd := wan.Parse(strings.Fields(argv))
	st := NewRunState()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []Decision
	for attempt := 1; attempt <= 30; attempt++ {
		d := s.Decide(Input{
			Result: classify.Result{Class: class, Phase: phase}, Attempt: attempt,
			Started: t0, Now: t0.Add(time.Duration(attempt) * time.Minute), Uptime: time.Minute,
			State: st, Cmd: cmd,
		})
		out = append(out, d)
		if d.Action.Final() {
			return out
		}
		st = d.State
	}
	t.Fatalf("walk %s %s: no final decision after 30 attempts", class, argv)
	return nil
}

func rungNames(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Action == ActionFallback {
			out = append(out, d.RungName)
		}
	}
	return out
}

func TestScenario_t2vDecodeOOM(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	ds := walk(t, s, readmeT2V, classify.ClassCUDAOOM, classify.PhaseDecode)
	wantRungs := []string{"expandable_segments", "size_smaller", "frames_smaller", "frames_smaller_2", "frames_smaller_3"}
	if got := rungNames(ds); !slices.Equal(got, wantRungs) {
		t.Fatalf("rungs = %q, want %q", got, wantRungs)
	}
	wantSizes := []string{"1280*720", "832*480", "832*480", "832*480", "832*480"}
	wantFrames := []string{"", "", "49", "33", "17"}
	argv := strings.Fields(readmeT2V)
	for i, d := range ds[:len(ds)-1] {
		patch, err := PlanState(argv, nil, wan.Parse(argv), s.Policy(), d.State)
		if err != nil {
			t.Fatalf("PlanState after %s: %v", d.RungName, err)
		}
		size, _ := wan.Get(patch.Argv, "--size")
		frames, _ := wan.Get(patch.Argv, "--frame_num")
		if size != wantSizes[i] || frames != wantFrames[i] {
			t.Errorf("after %s: size %s frames %q, want %s %q", d.RungName, size, frames, wantSizes[i], wantFrames[i])
		}
		if wan.Has(patch.Argv, "--t5_cpu") {
			t.Errorf("after %s: --t5_cpu added for a decode OOM", d.RungName)
		}
		if task, _ := wan.Get(patch.Argv, "--task"); task != "t2v-A14B" {
			t.Errorf("after %s: --task %s", d.RungName, task)
		}
		if !slices.Contains(patch.Env, "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True") ||
			!slices.Contains(patch.Env, "PYTORCH_ALLOC_CONF=expandable_segments:True") {
			t.Errorf("after %s: env %q lacks both allocator settings", d.RungName, patch.Env)
		}
	}
	if d := ds[1]; !slices.Contains(d.Trades, "size 1280*720 -> 832*480") || !strings.Contains(d.Message, "--size 1280*720 -> 832*480") {
		t.Errorf("size rung: trades %q, message %q", d.Trades, d.Message)
	}
	last := ds[len(ds)-1]
	if last.Action != ActionGuide || last.Reason != ReasonLadderExhausted || last.Workflow != "vram-detection" {
		t.Errorf("last decision = %s %s %q, want guide ladder_exhausted vram-detection", last.Action, last.Reason, last.Workflow)
	}
	if !strings.Contains(last.Message, "not feasible with the official CLI on this GPU") {
		t.Errorf("last message = %q", last.Message)
	}
}

func TestScenario_t2vDenoiseOOMFromBareCommand(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	ds := walk(t, s, plainT2V, classify.ClassCUDAOOM, classify.PhaseDenoise)
	want := []string{"offload_convert", "expandable_segments", "t5_cpu", "size_smaller", "frames_smaller", "frames_smaller_2", "frames_smaller_3"}
	if got := rungNames(ds); !slices.Equal(got, want) {
		t.Fatalf("rungs = %q, want %q", got, want)
	}
	if last := ds[len(ds)-1]; last.Action != ActionGuide || last.Reason != ReasonLadderExhausted {
		t.Errorf("last = %s %s, want guide ladder_exhausted (within budget 8)", last.Action, last.Reason)
	}
}

func TestScenario_portraitStaysPortrait(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	steps, err := p.PlanLadder(classify.ClassCUDAOOM, strings.Fields(readmeT2VPort), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		if size, _ := wan.Get(st.Argv, "--size"); size != "720*1280" && size != "480*832" {
			t.Errorf("rung %s: size %s, want portrait", st.Name, size)
		}
	}
}

func TestScenario_ti2vNeverChangesSize(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	for _, line := range []string{readmeTI2V, readmeMultiTI2, "python generate.py --task ti2v-5B --size 704*1280 --ckpt_dir ./c --offload_model False"} {
		for _, phase := range []classify.Phase{"", classify.PhaseLoad, classify.PhaseDenoise, classify.PhaseDecode} {
			argv := strings.Fields(line)
			want, _ := wan.Get(argv, "--size")
			steps, err := p.PlanLadder(classify.ClassCUDAOOM, argv, nil, phase)
			if err != nil {
				t.Fatal(err)
			}
			var frames []string
			for _, st := range steps {
				if got, _ := wan.Get(st.Argv, "--size"); got != want {
					t.Errorf("%s at %q: rung %s changed --size to %s", line, phase, st.Name, got)
				}
				if f, ok := wan.Get(st.Argv, "--frame_num"); ok && !slices.Contains(frames, f) {
					frames = append(frames, f)
				}
			}
			if want := []string{"81", "49", "33"}; !slices.Equal(frames, want) {
				t.Errorf("%s at %q: frames %q, want %q", line, phase, frames, want)
			}
		}
	}
}

func TestScenario_distributedNeverOffloads(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	for _, line := range readmeLines {
		argv := strings.Fields(line)
		cmd := wan.Parse(argv)
		if !cmd.Distributed() {
			continue
		}
		for _, class := range classify.Classes[1:] {
			for _, phase := range []classify.Phase{"", classify.PhaseT5, classify.PhaseDenoise, classify.PhaseDecode} {
				steps, err := p.PlanLadder(class, argv, nil, phase)
				if err != nil {
					t.Fatalf("PlanLadder(%s): %v", class, err)
				}
				for _, st := range steps {
					if v, ok := wan.Get(st.Argv, "--offload_model"); ok {
						if on, _ := wan.ParseBool(v); on {
							t.Errorf("%s, %s: rung %s sets --offload_model %s under %s", line, class, st.Name, v, cmd.Launcher)
						}
					}
					if wan.Has(st.Argv, "--t5_cpu") && wan.Has(st.Argv, "--t5_fsdp") {
						t.Errorf("%s, %s: rung %s mixes --t5_cpu and --t5_fsdp", line, class, st.Name)
					}
				}
			}
		}
	}
}

func TestScenario_multiGPUAddsFSDP(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	steps, err := p.PlanLadder(classify.ClassCUDAOOM, strings.Fields(multiFour), nil, classify.PhaseDenoise)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 || steps[0].Name != "fsdp_ulysses" {
		t.Fatalf("first rung = %v, want fsdp_ulysses", steps)
	}
	a := steps[0].Argv
	if u, _ := wan.Get(a, "--ulysses_size"); u != "4" || !wan.Has(a, "--dit_fsdp") || !wan.Has(a, "--t5_fsdp") {
		t.Errorf("fsdp_ulysses argv = %q", a)
	}
	if got := strings.Join(a[:2], " "); got != "torchrun --nproc_per_node=4" {
		t.Errorf("launcher args changed: %q", got)
	}
	if !steps[0].Estimated || steps[0].PeakGiB != 51.7 {
		t.Errorf("estimate at fsdp_ulysses = %v %.1f (%s), want 51.7", steps[0].Estimated, steps[0].PeakGiB, steps[0].Basis)
	}
}

func TestScenario_s2vAndAnimate(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	tests := []struct {
		name, line string
		want       []string // "rung flag=value"
	}{
		{"s2v", readmeS2V, []string{"expandable_segments", "t5_cpu --t5_cpu=on", "size_smaller --size=832*480", "frames_smaller --infer_frames=48"}},
		{"animate", readmeAnimate, []string{"offload_convert --offload_model=True", "expandable_segments", "t5_cpu --t5_cpu=on", "frames_smaller --frame_num=49", "frames_smaller_2 --frame_num=33"}},
	}
	for _, tt := range tests {
		steps, err := p.PlanLadder(classify.ClassCUDAOOM, strings.Fields(tt.line), nil, classify.PhaseDenoise)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, st := range steps {
			s := st.Name
			for _, c := range st.Changes {
				if c.Kind == ChangeArgv && c.What != "--convert_model_dtype" {
					s += " " + c.What + "=" + c.To
				}
			}
			got = append(got, s)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s rungs =\n %q\nwant\n %q", tt.name, got, tt.want)
		}
	}
}

func TestScenario_configUlysses(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	line := `torchrun --nproc_per_node=2 generate.py --task t2v-A14B --ckpt_dir ./c --dit_fsdp --t5_fsdp --ulysses_size 8`
	ds := walk(t, s, line, classify.ClassConfig, classify.PhaseStart)
	if len(ds) != 2 || ds[0].RungName != "ulysses_world" || ds[1].Action != ActionShutdown || ds[1].Reason != ReasonClassBudgetExhausted {
		t.Fatalf("decisions = %+v", ds)
	}
	patch, _ := PlanState(strings.Fields(line), nil, wan.Parse(strings.Fields(line)), s.Policy(), ds[0].State)
	if u, _ := wan.Get(patch.Argv, "--ulysses_size"); u != "2" {
		t.Errorf("--ulysses_size = %s, want 2", u)
	}
	ds = walk(t, s, readmeMultiT2V, classify.ClassConfig, classify.PhaseStart)
	if len(ds) != 1 || ds[0].Action != ActionShutdown || ds[0].Reason != ReasonLadderExhausted || ds[0].Workflow != "bad-config" {
		t.Errorf("correct ulysses: decisions = %+v, want one shutdown ladder_exhausted", ds)
	}
}

func TestScenario_quantization(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	ds := walk(t, s, wan2gp, classify.ClassQuantizationTimeout, classify.PhaseQuantize)
	if got, want := rungNames(ds), []string{"wan2gp_no_quantize", "wan2gp_fail_safe"}; !slices.Equal(got, want) {
		t.Fatalf("rungs = %q, want %q", got, want)
	}
	patch, _ := PlanState(strings.Fields(wan2gp), nil, wan.Parse(strings.Fields(wan2gp)), s.Policy(), ds[1].State)
	want := "python wgp.py --t2v-14B --profile 5 --quantize-transformer False --preload 0"
	if got := strings.Join(patch.Argv, " "); got != want {
		t.Errorf("argv = %q, want %q", got, want)
	}
	if last := ds[len(ds)-1]; last.Action != ActionGuide || last.Workflow != "quantization-timeout" {
		t.Errorf("last = %s %q", last.Action, last.Workflow)
	}
	ds = walk(t, s, readmeT2V, classify.ClassQuantizationError, classify.PhaseLoad)
	if len(ds) != 1 || ds[0].Action != ActionGuide || ds[0].Reason != ReasonLadderExhausted {
		t.Errorf("generate.py quantization error: %+v, want guide at once", ds)
	}
}

func TestScenario_hostOOM(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	ds := walk(t, s, readmeT2V, classify.ClassHostOOM, classify.PhaseLoad)
	if len(ds) != 1 || ds[0].Action != ActionGuide || ds[0].Workflow != "host-ram" {
		t.Errorf("README line: %+v, want guide host-ram at once", ds)
	}
	ds = walk(t, s, plainT2V, classify.ClassHostOOM, classify.PhaseLoad)
	if got := rungNames(ds); !slices.Equal(got, []string{"convert_dtype"}) {
		t.Errorf("bare line rungs = %q", got)
	}
	for _, d := range ds {
		for _, c := range d.Changes {
			if c.What == "--t5_cpu" {
				t.Errorf("host_oom rung %s touches --t5_cpu", d.RungName)
			}
		}
	}
}

func TestScenario_missingDepWorkflow(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	tests := []struct{ evidence, want string }{
		{"ImportError: /x/flash_attn_2_cuda.cpython-310.so: undefined symbol: _ZN3c10", "flash-attn"},
		{"AssertionError: assert FLASH_ATTN_2_AVAILABLE", "flash-attn"},
		{"FileNotFoundError: [Errno 2] No such file or directory: './Wan2.2-T2V-A14B/models_t5_umt5-xxl-enc-bf16.pth'", "missing-checkpoints"},
		{"ModuleNotFoundError: No module named 'easydict'", "python-deps"},
		{"", "python-deps"},
	}
	for _, tt := range tests {
		d := s.Decide(Input{Result: classify.Result{Class: classify.ClassMissingDep, Evidence: tt.evidence}, Attempt: 1, Cmd: wan.Parse(strings.Fields(readmeT2V))})
		if d.Action != ActionGuide || d.Workflow != tt.want {
			t.Errorf("missing_dep %q: %s %q, want guide %q", tt.evidence, d.Action, d.Workflow, tt.want)
		}
	}
}

func TestScenario_startRung(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	l := p.Ladders["cuda_oom"]
	tests := []struct {
		name   string
		line   string
		free   float64
		rung   string // "" = start unchanged; "none" = nothing fits
		size   string
		frames string
	}{
		{"80 GB fits 720p", readmeT2V, 79, "", "1280*720", ""},
		{"48 GB goes to 480p", readmeT2V, 47, "size_smaller", "832*480", ""},
		{"32 GB needs frames", readmeT2V, 32, "frames_smaller_3", "832*480", "17"},
		{"24 GB does not fit A14B", readmeT2V, 23, "none", "832*480", "17"},
		{"ti2v on 24 GB", readmeTI2V, 23.5, "", "1280*704", ""},
		{"ti2v on 20 GB", readmeTI2V, 20, "frames_smaller", "1280*704", "81"},
		{"no estimate leaves it alone", plainT2V, 10, "", "1280*720", ""},
		{"8 GPUs of 40 GB", readmeMultiT2V, 39, "", "1280*720", ""},
		{"8 GPUs of 32 GB", readmeMultiT2V, 31, "size_smaller", "832*480", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			argv := strings.Fields(tt.line)
			st := StartRung(wan.Parse(argv), nil, l, tt.free)
			switch {
			case tt.rung == "" && st.Rung != -1,
				tt.rung == "none" && st.Rung != len(l.Rungs),
				tt.rung != "" && tt.rung != "none" && (st.Rung < 0 || st.Rung >= len(l.Rungs) || l.Rungs[st.Rung].Name != tt.rung):
				t.Fatalf("StartRung = %+v, want %s", st, tt.rung)
			}
			patch, err := Plan(argv, nil, l, st.Rungs)
			if err != nil {
				t.Fatal(err)
			}
			size, _ := wan.Get(patch.Argv, "--size")
			frames, _ := wan.Get(patch.Argv, "--frame_num")
			if size != tt.size || frames != tt.frames {
				t.Errorf("start command: size %s frames %q, want %s %q (%s)", size, frames, tt.size, tt.frames, st.Reason)
			}
			if wan.Has(patch.Argv, "--t5_cpu") != strings.Contains(tt.line, "--t5_cpu") {
				t.Errorf("start command %q: --t5_cpu taken although it lowers no estimate", patch.Argv)
			}
			if st.Reason == "" {
				t.Errorf("StartRung gave no reason")
			}
			state := NewRunState().WithRungs(l, st.Rungs)
			if len(st.Rungs) > 0 && state.Rung(l.Name) != st.Rungs[len(st.Rungs)-1] {
				t.Errorf("WithRungs: rung %d, want %d", state.Rung(l.Name), st.Rungs[len(st.Rungs)-1])
			}
		})
	}
}
