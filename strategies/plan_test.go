package strategies

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/wan"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	l := Ladder{Name: "test", Rungs: []Rung{
		{Name: "offload", Set: map[string]string{"--offload_model": "True"}, Add: []string{"--convert_model_dtype"}},
		{Name: "env", Env: map[string]string{"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}},
		{Name: "t5", Add: []string{"--t5_cpu"}, Trade: "slow T5"},
		{Name: "size", Size: Smaller},
		{Name: "frames", FrameNum: Smaller},
		{Name: "frames49", FrameNum: "49"},
		{Name: "size480", Size: "832*480"},
		{Name: "ulysses", Ulysses: World},
		{Name: "unt5", Remove: []string{"--t5_cpu"}},
		{Name: "file", File: &FilePatch{Path: "cfg.json", Merge: map[string]any{"a": 1}}},
		{Name: "swap", File: &FilePatch{Path: "cfg.yaml", Replace: "safe.yaml"}},
	}}
	tests := []struct {
		name    string
		argv    string
		env     []string
		rungs   []int
		want    string
		wantEnv []string
		changes []string
		trades  []string
	}{
		{
			"cumulative single gpu", "python generate.py --task t2v-A14B --size=1280*720 --ckpt_dir c", nil, []int{0, 2, 3, 4},
			"python generate.py --task t2v-A14B --size=832*480 --ckpt_dir c --offload_model True --convert_model_dtype --t5_cpu --frame_num 49", nil,
			[]string{"--size 1280*720 -> 832*480", "--offload_model True", "--convert_model_dtype", "--t5_cpu", "--frame_num 49"},
			[]string{"size 1280*720 -> 832*480", "frames 81 -> 49", "slow T5"},
		},
		{
			"frames step twice", "python generate.py --task t2v-A14B --frame_num 81", nil, []int{4, 4},
			"python generate.py --task t2v-A14B --frame_num 33", nil,
			[]string{"--frame_num 81 -> 33"}, []string{"frames 81 -> 33"},
		},
		{
			"explicit frames never raise", "python generate.py --task t2v-A14B --frame_num 33", nil, []int{5},
			"python generate.py --task t2v-A14B --frame_num 33", nil, nil, nil,
		},
		{
			"explicit size keeps orientation", "python generate.py --task i2v-A14B --size 720*1280", nil, []int{6},
			"python generate.py --task i2v-A14B --size 480*832", nil,
			[]string{"--size 720*1280 -> 480*832"}, []string{"size 720*1280 -> 480*832"},
		},
		{
			"ti2v has no smaller size", "python generate.py --task ti2v-5B --size 704*1280", nil, []int{3, 6},
			"python generate.py --task ti2v-5B --size 704*1280", nil, nil, nil,
		},
		{
			"allocator options merge", "python generate.py", []string{"PYTORCH_CUDA_ALLOC_CONF=max_split_size_mb:128", "HOME=/h"}, []int{1},
			"python generate.py", []string{"PYTORCH_CUDA_ALLOC_CONF=max_split_size_mb:128,expandable_segments:True", "HOME=/h"},
			[]string{"PYTORCH_CUDA_ALLOC_CONF=max_split_size_mb:128,expandable_segments:True"}, nil,
		},
		{
			"allocator option replaced", "python generate.py", []string{"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:False"}, []int{1},
			"python generate.py", []string{"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"},
			[]string{"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"}, nil,
		},
		{
			"no offload under torchrun", "torchrun --nproc_per_node=4 generate.py --task t2v-A14B", nil, []int{0, 7},
			"torchrun --nproc_per_node=4 generate.py --task t2v-A14B --convert_model_dtype --ulysses_size 4", nil,
			[]string{"--convert_model_dtype", "--ulysses_size 4"}, nil,
		},
		{
			"no dtype cast with dit_fsdp, no t5_cpu with t5_fsdp", "torchrun --nproc_per_node=8 generate.py --dit_fsdp --t5_fsdp --ulysses_size 8", nil, []int{0, 2, 7},
			"torchrun --nproc_per_node=8 generate.py --dit_fsdp --t5_fsdp --ulysses_size 8", nil, nil, nil,
		},
		{
			"ulysses to one without torchrun", "python generate.py --ulysses_size 8", nil, []int{7},
			"python generate.py --ulysses_size 1", nil, []string{"--ulysses_size 8 -> 1"}, nil,
		},
		{
			"ulysses left alone when the heads do not divide", "torchrun --nproc_per_node=3 generate.py --task t2v-A14B --ulysses_size 8", nil, []int{7},
			"torchrun --nproc_per_node=3 generate.py --task t2v-A14B --ulysses_size 8", nil, nil, nil,
		},
		{
			"remove", "python generate.py --t5_cpu --task ti2v-5B", nil, []int{8},
			"python generate.py --task ti2v-5B", nil, []string{"remove --t5_cpu"}, nil,
		},
		{
			"files", "python generate.py", nil, []int{9, 10},
			"python generate.py", nil, []string{"merge cfg.json", "replace safe.yaml cfg.yaml"}, nil,
		},
		{
			"other script: no size or frames", "python wgp.py --frame_num 81 --size 1280*720", nil, []int{3, 4},
			"python wgp.py --frame_num 81 --size 1280*720", nil, nil, nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			argv := strings.Fields(tt.argv)
			origArgv, origEnv := slices.Clone(argv), slices.Clone(tt.env)
			p, err := Plan(argv, tt.env, l, tt.rungs)
			if err != nil {
				t.Fatalf("Plan(%s): %v", tt.name, err)
			}
			if got := strings.Join(p.Argv, " "); got != tt.want {
				t.Errorf("Plan(%s) argv =\n %q\nwant\n %q", tt.name, got, tt.want)
			}
			if tt.wantEnv != nil && !slices.Equal(p.Env, tt.wantEnv) {
				t.Errorf("Plan(%s) env = %q, want %q", tt.name, p.Env, tt.wantEnv)
			}
			var changes []string
			for _, c := range p.Changes {
				changes = append(changes, c.String())
			}
			if !slices.Equal(changes, tt.changes) {
				t.Errorf("Plan(%s) changes = %q, want %q", tt.name, changes, tt.changes)
			}
			if !slices.Equal(p.Trades, tt.trades) {
				t.Errorf("Plan(%s) trades = %q, want %q", tt.name, p.Trades, tt.trades)
			}
			if !slices.Equal(argv, origArgv) || !slices.Equal(tt.env, origEnv) {
				t.Errorf("Plan(%s) modified its input", tt.name)
			}
		})
	}
}

func TestPlan_errors(t *testing.T) {
	t.Parallel()
	l := Ladder{Name: "x", Rungs: []Rung{{Name: "a", Add: []string{"--t5_cpu"}}}}
	if _, err := Plan(nil, nil, l, nil); !errors.Is(err, ErrNoCommand) {
		t.Errorf("Plan(empty) error = %v, want ErrNoCommand", err)
	}
	for _, i := range []int{-1, 1} {
		if _, err := Plan([]string{"python", "generate.py"}, nil, l, []int{i}); !errors.Is(err, ErrRungRange) {
			t.Errorf("Plan(rung %d) error = %v, want ErrRungRange", i, err)
		}
	}
	p := defaultPolicy(t)
	argv := []string{"python", "generate.py"}
	for _, tt := range []struct {
		name  string
		steps []AppliedRung
		rungs map[string]int
		want  error
	}{
		{"unknown ladder in steps", []AppliedRung{{Ladder: "gone", Rung: 0}}, nil, ErrUnknownLadder},
		{"rung past the end in steps", []AppliedRung{{Ladder: "config", Rung: 5}}, nil, ErrRungRange},
		{"unknown entered ladder", nil, map[string]int{"gone": 0}, ErrUnknownLadder},
		{"entered past the end", nil, map[string]int{"config": 3}, ErrRungRange},
	} {
		bad := NewRunState()
		bad.Steps, bad.Rungs = tt.steps, tt.rungs
		if _, err := PlanState(argv, nil, wan.Parse(argv), &p, bad); !errors.Is(err, tt.want) {
			t.Errorf("PlanState(%s) error = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := PlanState(nil, nil, wan.Parse(nil), &p, NewRunState()); !errors.Is(err, ErrNoCommand) {
		t.Errorf("PlanState(empty) error = %v", err)
	}
	if _, err := p.PlanLadder("bogus", []string{"python"}, nil, ""); !errors.Is(err, ErrUnknownClass) {
		t.Errorf("PlanLadder(bogus) error = %v", err)
	}
	if steps, err := p.PlanLadder(classify.ClassNCCL, []string{"python", "generate.py"}, nil, ""); err != nil || steps != nil {
		t.Errorf("PlanLadder(nccl) = %v, %v; want no rungs", steps, err)
	}
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, argv string
		seed       int64
		save, want string
	}{
		{"pins both", "python generate.py --task t2v-A14B", 1234, "out.mp4", "python generate.py --task t2v-A14B --base_seed 1234 --save_file out.mp4"},
		{"replaces a random seed", "python generate.py --base_seed -1", 5, "", "python generate.py --base_seed 5"},
		{"keeps the user's save file", "python generate.py --save_file=mine.mp4", 5, "out.mp4", "python generate.py --save_file=mine.mp4 --base_seed 5"},
		{"no seed yet", "python generate.py", -1, "out.mp4", "python generate.py --save_file out.mp4"},
		{"torchrun", "torchrun --nproc_per_node=8 generate.py --ulysses_size 8", 9, "o.mp4", "torchrun --nproc_per_node=8 generate.py --ulysses_size 8 --base_seed 9 --save_file o.mp4"},
		{"other scripts untouched", "python wgp.py --profile 4", 9, "o.mp4", "python wgp.py --profile 4"},
	}
	for _, tt := range tests {
		argv := strings.Fields(tt.argv)
		orig := slices.Clone(argv)
		if got := strings.Join(Prepare(argv, tt.seed, tt.save), " "); got != tt.want {
			t.Errorf("Prepare(%s) = %q, want %q", tt.name, got, tt.want)
		}
		if !slices.Equal(argv, orig) {
			t.Errorf("Prepare(%s) modified its input", tt.name)
		}
	}
}

func TestPolicy_PlanLadder(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	steps, err := p.PlanLadder(classify.ClassCUDAOOM, strings.Fields(readmeT2V), nil, classify.PhaseDecode)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Name+" "+strconv.FormatFloat(s.PeakGiB, 'f', 1, 64))
	}
	want := []string{"expandable_segments 59.8", "size_smaller 41.3", "frames_smaller 35.9", "frames_smaller_2 33.2", "frames_smaller_3 30.5"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PlanLadder = %q, want %q", got, want)
	}
	if c := steps[2].Changes; len(c) != 1 || c[0].String() != "--frame_num 49" {
		t.Errorf("frames rung changes = %v, want only --frame_num 49", c)
	}
	if tr := steps[4].Trades; !slices.Equal(tr, []string{"size 1280*720 -> 832*480", "frames 81 -> 17", "lower resolution", "shorter clip"}) {
		t.Errorf("net trades = %q", tr)
	}
}

// FuzzPlan feeds arbitrary launch lines and rung choices through Plan with
// the default cuda_oom and config ladders.
func FuzzPlan(f *testing.F) {
	p, err := loadDefaults()
	if err != nil {
		f.Fatal(err)
	}
	ladders := []Ladder{p.Ladders["cuda_oom"], p.Ladders["config"], p.Ladders["host_oom"], p.Ladders["quantization"]}
	for _, line := range readmeLines {
		f.Add(strings.ReplaceAll(line, " ", "\x00"), []byte{0, 3, 4, 6, 7, 8, 9, 10})
	}
	f.Add("python\x00generate.py\x00--task\x00--size\x00--ckpt_dir=--size=1\x00--ta\x00x", []byte{6, 8, 2})
	f.Add("torchrun\x00--nproc_per_node\x00generate.py\x00--size=720*1280\x00--frame_num=-3", []byte{2, 6, 8})
	f.Add("generate.py\x00--\x00--task\x00t2v-A14B", []byte{0, 6})
	f.Fuzz(func(t *testing.T, line string, picks []byte) {
		argv := strings.Split(line, "\x00")
		if len(argv) > 64 || len(picks) > 32 {
			return
		}
		orig := slices.Clone(argv)
		task, hasTask := wan.Get(argv, "--task")
		ckpt, hasCkpt := wan.Get(argv, "--ckpt_dir")
		cmd := wan.Parse(argv)
		for li, l := range ladders {
			var rungs []int
			for _, b := range picks {
				rungs = append(rungs, int(b)%len(l.Rungs))
			}
			patch, err := Plan(argv, nil, l, rungs)
			if err != nil {
				t.Fatalf("Plan(%q, ladder %d): %v", argv, li, err)
			}
			if !slices.Equal(argv, orig) {
				t.Fatalf("Plan modified its input: %q", argv)
			}
			if got, ok := wan.Get(patch.Argv, "--task"); got != task || ok != hasTask {
				t.Fatalf("--task %q (%v) became %q (%v): %q", task, hasTask, got, ok, patch.Argv)
			}
			if got, ok := wan.Get(patch.Argv, "--ckpt_dir"); got != ckpt || ok != hasCkpt {
				t.Fatalf("--ckpt_dir %q (%v) became %q (%v): %q", ckpt, hasCkpt, got, ok, patch.Argv)
			}
			if cmd.Script < len(argv) && !slices.Equal(patch.Argv[:cmd.Script+1], argv[:cmd.Script+1]) {
				t.Fatalf("launcher part changed: %q -> %q", argv, patch.Argv)
			}
			if cmd.Distributed() {
				if v, ok := wan.Get(patch.Argv, "--offload_model"); ok {
					if on, _ := wan.ParseBool(v); on && !strings.Contains(line, "--offload") {
						t.Fatalf("--offload_model %s added under %s: %q", v, cmd.Launcher, patch.Argv)
					}
				}
			}
			for _, c := range patch.Changes {
				switch c.What {
				case "--size":
					if wan.OrientationOf(c.From) != 0 && wan.OrientationOf(c.From) != wan.OrientationOf(c.To) {
						t.Fatalf("size orientation changed %s -> %s", c.From, c.To)
					}
				case "--frame_num":
					if n, err := strconv.Atoi(c.To); err != nil || n%4 != 1 {
						t.Fatalf("--frame_num became %q, not 4n+1", c.To)
					}
				}
			}
		}
	})
}

func TestPlanState_enteredLadder(t *testing.T) {
	t.Parallel()
	s := defaultStrategy(t)
	argv := strings.Fields(readmeT2V)
	cmd := wan.Parse(argv)
	l := s.Policy().Ladders["cuda_oom"]
	size := slices.IndexFunc(l.Rungs, func(r Rung) bool { return r.Name == "size_smaller" })
	st := NewRunState()
	st.Rungs["cuda_oom"] = size // as a pre-flight that only sets the index
	patch, err := PlanState(argv, nil, cmd, s.Policy(), st)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := wan.Get(patch.Argv, "--size"); got != "832*480" || !wan.Has(patch.Argv, "--t5_cpu") {
		t.Errorf("entered at size_smaller: argv %q, want 832*480 and the fitting rungs before it", patch.Argv)
	}
	d := s.Decide(Input{Result: classify.Result{Class: classify.ClassCUDAOOM, Phase: classify.PhaseDenoise}, Attempt: 1, Cmd: cmd, State: st, Started: t0, Now: t0})
	if d.RungName != "frames_smaller" {
		t.Fatalf("after entering at size_smaller, next rung = %q", d.RungName)
	}
	patch, err = PlanState(argv, nil, cmd, s.Policy(), d.State)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := wan.Get(patch.Argv, "--size"); got != "832*480" || !wan.Has(patch.Argv, "--t5_cpu") {
		t.Errorf("after the next rung the entered rungs are lost: %q", patch.Argv)
	}
	if f, _ := wan.Get(patch.Argv, "--frame_num"); f != "49" {
		t.Errorf("--frame_num = %q, want 49", f)
	}
}
