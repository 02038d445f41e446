package wan

import (
	"slices"
	"strings"
	"testing"
)

func split(s string) []string { return strings.Fields(s) }

func TestParse(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name string
		argv string
		want Command
	}{
		{
			"readme single gpu t2v",
			"python generate.py --task t2v-A14B --size 1280*720 --ckpt_dir ./Wan2.2-T2V-A14B --offload_model True --convert_model_dtype --prompt x",
			Command{Launcher: LauncherPython, NProc: 1, NNodes: 1, Script: 1, ScriptName: "generate.py", Generate: true,
				Task: "t2v-A14B", Size: "1280*720", CkptDir: "./Wan2.2-T2V-A14B", Seed: -1, OffloadModel: &yes, ConvertDtype: true},
		},
		{
			"readme ti2v",
			"python3 -u generate.py --task ti2v-5B --size 1280*704 --ckpt_dir ./Wan2.2-TI2V-5B --offload_model True --convert_model_dtype --t5_cpu --prompt x",
			Command{Launcher: LauncherPython, NProc: 1, NNodes: 1, Script: 2, ScriptName: "generate.py", Generate: true,
				Task: "ti2v-5B", Size: "1280*704", CkptDir: "./Wan2.2-TI2V-5B", Seed: -1, OffloadModel: &yes, ConvertDtype: true, T5CPU: true},
		},
		{
			"torchrun equals form",
			"torchrun --nproc_per_node=8 generate.py --task i2v-A14B --size 1280*720 --ckpt_dir ./ck --dit_fsdp --t5_fsdp --ulysses_size 8 --image a.jpg",
			Command{Launcher: LauncherTorchrun, NProc: 8, NNodes: 1, Script: 2, ScriptName: "generate.py", Generate: true,
				Task: "i2v-A14B", Size: "1280*720", CkptDir: "./ck", Seed: -1, Ulysses: 8, DitFSDP: true, T5FSDP: true, MultiGPU: true},
		},
		{
			"torch.distributed.run animate",
			"python -m torch.distributed.run --nnodes 1 --nproc_per_node 8 generate.py --task animate-14B --ckpt_dir ./A --src_root_path ./p --refert_num 1 --dit_fsdp --t5_fsdp --ulysses_size 8",
			Command{Launcher: LauncherDistRun, NProc: 8, NNodes: 1, Script: 7, ScriptName: "generate.py", Generate: true,
				Task: "animate-14B", CkptDir: "./A", Seed: -1, Ulysses: 8, DitFSDP: true, T5FSDP: true, MultiGPU: true},
		},
		{
			"torchrun one process",
			"/usr/bin/torchrun --standalone --nproc-per-node 1 generate.py --task t2v-A14B --base_seed 42 --frame_num=49 --offload_model=no",
			Command{Launcher: LauncherTorchrun, NProc: 1, NNodes: 1, Script: 4, ScriptName: "generate.py", Generate: true,
				Task: "t2v-A14B", Seed: 42, FrameNum: 49, OffloadModel: &no},
		},
		{
			"torchrun auto procs",
			"torchrun --nproc_per_node gpu generate.py --task t2v-A14B",
			Command{Launcher: LauncherTorchrun, NProc: 0, NNodes: 1, Script: 3, ScriptName: "generate.py", Generate: true,
				Task: "t2v-A14B", Seed: -1, MultiGPU: true},
		},
		{
			"abbreviated flags",
			"python generate.py --ta s2v-14B --infer 48 --save out.mp4 --base_seed -1",
			Command{Launcher: LauncherPython, NProc: 1, NNodes: 1, Script: 1, ScriptName: "generate.py", Generate: true,
				Task: "s2v-14B", InferFrames: 48, SaveFile: "out.mp4", Seed: -1},
		},
		{
			"bad values",
			"python generate.py --frame_num abc --offload_model maybe",
			Command{Launcher: LauncherPython, NProc: 1, NNodes: 1, Script: 1, ScriptName: "generate.py", Generate: true,
				Seed: -1, Invalid: []string{"--frame_num=abc", "--offload_model=maybe"}},
		},
		{
			"wan2gp",
			"python wgp.py --profile 4 --quantize-transformer True",
			Command{Launcher: LauncherPython, NProc: 1, NNodes: 1, Script: 1, ScriptName: "wgp.py", Seed: -1},
		},
		{
			"other launcher",
			"accelerate launch --num_processes 2 train.py --task t2v-A14B",
			Command{Launcher: "accelerate", NProc: 1, NNodes: 1, Script: 4, ScriptName: "train.py", Task: "t2v-A14B", Seed: -1},
		},
		{
			"script as program",
			"./generate.py --task ti2v-5B",
			Command{Launcher: "generate.py", NProc: 1, NNodes: 1, Script: 0, ScriptName: "generate.py", Generate: true, Task: "ti2v-5B", Seed: -1},
		},
		{"empty", "", Command{Seed: -1, NProc: 1, NNodes: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			argv := split(tt.argv)
			got := Parse(argv)
			got.Argv = nil
			if !equalCommand(got, tt.want) {
				t.Errorf("Parse(%s) =\n %+v\nwant\n %+v", tt.name, got, tt.want)
			}
		})
	}
}

func equalCommand(a, b Command) bool {
	if (a.OffloadModel == nil) != (b.OffloadModel == nil) {
		return false
	}
	if a.OffloadModel != nil && *a.OffloadModel != *b.OffloadModel {
		return false
	}
	if !slices.Equal(a.Invalid, b.Invalid) {
		return false
	}
	a.OffloadModel, b.OffloadModel = nil, nil
	a.Invalid, b.Invalid = nil, nil
	a.Argv, b.Argv = nil, nil
	return a.Launcher == b.Launcher && a.NProc == b.NProc && a.NNodes == b.NNodes &&
		a.Script == b.Script && a.ScriptName == b.ScriptName && a.Generate == b.Generate &&
		a.Task == b.Task && a.Size == b.Size && a.FrameNum == b.FrameNum &&
		a.InferFrames == b.InferFrames && a.Seed == b.Seed && a.SaveFile == b.SaveFile &&
		a.CkptDir == b.CkptDir && a.Ulysses == b.Ulysses && a.T5CPU == b.T5CPU &&
		a.ConvertDtype == b.ConvertDtype && a.DitFSDP == b.DitFSDP && a.T5FSDP == b.T5FSDP &&
		a.MultiGPU == b.MultiGPU
}

func TestCommand_Effective(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		argv          string
		task, size    string
		frames, world int
		offload       bool
	}{
		{"defaults", "python generate.py", "t2v-A14B", "1280*720", 81, 1, true},
		{"ti2v frames", "python generate.py --task ti2v-5B --size 704*1280", "ti2v-5B", "704*1280", 121, 1, true},
		{"s2v infer frames", "python generate.py --task s2v-14B --frame_num 33", "s2v-14B", "1280*720", 80, 1, true},
		{"multi node", "torchrun --nnodes=2 --nproc_per_node=4 generate.py --frame_num 49", "t2v-A14B", "1280*720", 49, 8, false},
		{"explicit offload under torchrun", "torchrun --nproc_per_node=2 generate.py --offload_model y", "t2v-A14B", "1280*720", 81, 2, true},
		{"not generate.py", "python wgp.py", "", "", 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Parse(split(tt.argv))
			if got := c.EffectiveTask(); got != tt.task {
				t.Errorf("EffectiveTask(%s) = %q, want %q", tt.name, got, tt.task)
			}
			if got := c.EffectiveSize(); got != tt.size {
				t.Errorf("EffectiveSize(%s) = %q, want %q", tt.name, got, tt.size)
			}
			if got := c.EffectiveFrames(); got != tt.frames {
				t.Errorf("EffectiveFrames(%s) = %d, want %d", tt.name, got, tt.frames)
			}
			if got := c.WorldSize(); got != tt.world {
				t.Errorf("WorldSize(%s) = %d, want %d", tt.name, got, tt.world)
			}
			if got := c.Offload(); got != tt.offload {
				t.Errorf("Offload(%s) = %v, want %v", tt.name, got, tt.offload)
			}
		})
	}
}

func TestCommand_Problems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv string
		want []string // substrings, in order
	}{
		{"readme line is fine", "python generate.py --task t2v-A14B --size 1280*720 --offload_model True --convert_model_dtype", nil},
		{"ti2v 720p is 704", "python generate.py --task ti2v-5B --size 1280*720", []string{"size 1280*720 is not supported by ti2v-5B"}},
		{"s2v takes any size", "python generate.py --task s2v-14B --size 1280*704", nil},
		{"ulysses vs world", "torchrun --nproc_per_node=2 generate.py --dit_fsdp --t5_fsdp --ulysses_size 8", []string{"must equal the world size 2"}},
		{"fsdp single process", "python generate.py --dit_fsdp --ulysses_size 2", []string{"need a distributed launch", "needs a distributed launch"}},
		{"heads", "torchrun --nproc_per_node=3 generate.py --ulysses_size 3", []string{"does not divide the 40"}},
		{"ti2v heads ok with 3", "torchrun --nproc_per_node=3 generate.py --task ti2v-5B --size 1280*704 --ulysses_size 3", nil},
		{"frames rule", "python generate.py --frame_num 50", []string{"does not follow the 4n+1 rule"}},
		{"unknown task", "python generate.py --task foo", []string{`unknown task "foo"`}},
		{"not generate.py", "python wgp.py --task foo", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Parse(split(tt.argv)).Problems()
			if len(got) != len(tt.want) {
				t.Fatalf("Problems(%s) = %q, want %d matching %q", tt.name, got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("Problems(%s)[%d] = %q, want it to contain %q", tt.name, i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"t2v-A14B", "i2v-A14B", "ti2v-5B", "animate-14B", "s2v-14B", "t2v-1.3B"} {
		task, ok := Lookup(name)
		if !ok || task.Name != name {
			t.Fatalf("Lookup(%q) = %v, %v", name, task.Name, ok)
		}
		if !task.ValidFrames(task.DefaultFrames) {
			t.Errorf("Lookup(%q): default frames %d break the %s rule", name, task.DefaultFrames, task.FrameRule)
		}
		for _, n := range task.FrameSteps {
			if !task.ValidFrames(n) {
				t.Errorf("Lookup(%q): frame step %d breaks the %s rule", name, n, task.FrameRule)
			}
		}
		task.Sizes[0] = "changed"
		if again, _ := Lookup(name); again.Sizes[0] == "changed" {
			t.Errorf("Lookup(%q) shares its slices with the table", name)
		}
	}
	if _, ok := Lookup("t2v-A14"); ok {
		t.Errorf("Lookup(t2v-A14) found a task; want exact names only")
	}
	if got := len(Tasks()); got < 5 {
		t.Errorf("len(Tasks()) = %d, want at least 5", got)
	}
	heads := map[string]int{"t2v-A14B": 40, "ti2v-5B": 24, "s2v-14B": 40, "animate-14B": 40}
	for name, want := range heads {
		if task, _ := Lookup(name); task.Heads != want {
			t.Errorf("Lookup(%q).Heads = %d, want %d", name, task.Heads, want)
		}
	}
}
