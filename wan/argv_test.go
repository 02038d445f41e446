package wan

import (
	"slices"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		argv   string
		flag   string
		want   string
		wantOK bool
	}{
		{"space form", "python generate.py --size 832*480", "--size", "832*480", true},
		{"equals form", "python generate.py --size=832*480", "--size", "832*480", true},
		{"last wins", "python generate.py --size 832*480 --size=480*832", "--size", "480*832", true},
		{"store true", "python generate.py --t5_cpu --size 832*480", "--t5_cpu", "", true},
		{"store true before positional-looking token", "python generate.py --t5_cpu 832*480", "--t5_cpu", "", true},
		{"absent", "python generate.py --size 832*480", "--frame_num", "", false},
		{"without dashes", "python generate.py --frame_num 49", "frame_num", "49", true},
		{"negative value", "python generate.py --base_seed -1", "--base_seed", "-1", true},
		{"missing value", "python generate.py --size --t5_cpu", "--size", "", true},
		{"launcher flag is not the script's", "torchrun --nproc_per_node 8 generate.py", "--nproc_per_node", "", false},
		{"abbreviation", "python generate.py --frame 49", "--frame_num", "49", true},
		{"ambiguous abbreviation stays", "python generate.py --sample 3", "--sample_steps", "", false},
		{"after double dash", "python generate.py -- --size 832*480", "--size", "", false},
		{"other script, no abbreviations", "python wgp.py --prof 4", "--profile", "", false},
		{"other script value", "python wgp.py --quantize-transformer False", "--quantize-transformer", "False", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Get(split(tt.argv), tt.flag)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Get(%s, %s) = %q, %v; want %q, %v", tt.name, tt.flag, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		argv  string
		flag  string
		value string
		want  string
	}{
		{"replace space form", "python generate.py --size 1280*720 --prompt x", "--size", "832*480", "python generate.py --size 832*480 --prompt x"},
		{"replace equals form", "python generate.py --size=1280*720 --t5_cpu", "--size", "832*480", "python generate.py --size=832*480 --t5_cpu"},
		{"append", "python generate.py --task t2v-A14B", "--offload_model", "True", "python generate.py --task t2v-A14B --offload_model True"},
		{"duplicates collapse to the last", "python generate.py --size 1280*720 --t5_cpu --size=720*1280", "--size", "480*832", "python generate.py --t5_cpu --size=480*832"},
		{"missing value gets one", "python generate.py --size --t5_cpu", "--size", "832*480", "python generate.py --size 832*480 --t5_cpu"},
		{"before double dash", "python generate.py --task x -- pos", "--frame_num", "49", "python generate.py --task x --frame_num 49 -- pos"},
		{"dash value goes inline", "python generate.py", "--prompt", "-weird", "python generate.py --prompt=-weird"},
		{"negative value stays a token", "python generate.py", "--base_seed", "-5", "python generate.py --base_seed -5"},
		{"launcher untouched", "torchrun --nproc_per_node 8 generate.py --ulysses_size 4", "--nproc_per_node", "1", "torchrun --nproc_per_node 8 generate.py --ulysses_size 4 --nproc_per_node 1"},
		{"abbreviation replaced in place", "python generate.py --frame 81", "--frame_num", "49", "python generate.py --frame 49"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := split(tt.argv)
			orig := slices.Clone(in)
			got := strings.Join(Set(in, tt.flag, tt.value), " ")
			if got != tt.want {
				t.Errorf("Set(%s) = %q, want %q", tt.name, got, tt.want)
			}
			if !slices.Equal(in, orig) {
				t.Errorf("Set(%s) changed its input: %q", tt.name, in)
			}
		})
	}
}

func TestAddFlag(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, argv, flag, want string }{
		{"append", "python generate.py --task t2v-A14B", "--t5_cpu", "python generate.py --task t2v-A14B --t5_cpu"},
		{"present", "python generate.py --t5_cpu --task t2v-A14B", "--t5_cpu", "python generate.py --t5_cpu --task t2v-A14B"},
		{"launcher has one of the same name", "python -X dev generate.py", "-X", "python -X dev generate.py -X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := split(tt.argv)
			orig := slices.Clone(in)
			if got := strings.Join(AddFlag(in, tt.flag), " "); got != tt.want {
				t.Errorf("AddFlag(%s) = %q, want %q", tt.name, got, tt.want)
			}
			if !slices.Equal(in, orig) {
				t.Errorf("AddFlag(%s) changed its input", tt.name)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, argv, flag, want string }{
		{"with value", "python generate.py --offload_model True --t5_cpu", "--offload_model", "python generate.py --t5_cpu"},
		{"equals form and duplicates", "python generate.py --size=1 --t5_cpu --size 2", "--size", "python generate.py --t5_cpu"},
		{"store true", "python generate.py --t5_cpu --size 832*480", "--t5_cpu", "python generate.py --size 832*480"},
		{"absent", "python generate.py --size 832*480", "--t5_cpu", "python generate.py --size 832*480"},
		{"launcher untouched", "torchrun --standalone --nproc_per_node=2 generate.py --standalone", "--standalone", "torchrun --standalone --nproc_per_node=2 generate.py"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := split(tt.argv)
			orig := slices.Clone(in)
			if got := strings.Join(Remove(in, tt.flag), " "); got != tt.want {
				t.Errorf("Remove(%s) = %q, want %q", tt.name, got, tt.want)
			}
			if !slices.Equal(in, orig) {
				t.Errorf("Remove(%s) changed its input", tt.name)
			}
		})
	}
}

func TestEdits_emptyArgv(t *testing.T) {
	t.Parallel()
	if got := Set(nil, "--size", "1"); got != nil {
		t.Errorf("Set(nil) = %q, want nil", got)
	}
	if got := AddFlag(nil, "--t5_cpu"); got != nil {
		t.Errorf("AddFlag(nil) = %q, want nil", got)
	}
	if got := Remove(nil, "--t5_cpu"); got != nil {
		t.Errorf("Remove(nil) = %q, want nil", got)
	}
	if _, ok := Get(nil, "--size"); ok {
		t.Errorf("Get(nil) found a flag")
	}
}

func TestParseBool(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"yes", "True", "t", "Y", "1"} {
		if v, ok := ParseBool(s); !v || !ok {
			t.Errorf("ParseBool(%q) = %v, %v; want true, true", s, v, ok)
		}
	}
	for _, s := range []string{"no", "FALSE", "f", "n", "0"} {
		if v, ok := ParseBool(s); v || !ok {
			t.Errorf("ParseBool(%q) = %v, %v; want false, true", s, v, ok)
		}
	}
	for _, s := range []string{"", "on", "2", "nope"} {
		if _, ok := ParseBool(s); ok {
			t.Errorf("ParseBool(%q) ok; want not ok", s)
		}
	}
}

func TestIsNegativeNumber(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"-1": true, "-0.5": true, "-.5": true, "-": false, "-x": false, "--1": false, "-1.": false, "1": false} {
		if got := isNegativeNumber(s); got != want {
			t.Errorf("isNegativeNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestArgs(t *testing.T) {
	t.Parallel()
	argv := split("torchrun --nproc_per_node=2 generate.py --size=832*480 --t5_cpu --frame 49 pos --base_seed -1")
	got := Args(argv)
	want := []Arg{
		{Flag: "--size", Value: "832*480", HasValue: true, Inline: true, Index: 3, End: 4},
		{Flag: "--t5_cpu", Index: 4, End: 5},
		{Flag: "--frame_num", Value: "49", HasValue: true, Index: 5, End: 7},
		{Flag: "--base_seed", Value: "-1", HasValue: true, Index: 8, End: 10},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Args =\n %+v\nwant\n %+v", got, want)
	}
}

func TestKnownFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flag         string
		known, value bool
	}{
		{"--size", true, true},
		{"offload_model", true, true},
		{"--t5_cpu", true, false},
		{"--profile", false, false},
	}
	for _, tt := range tests {
		if k, v := KnownFlag(tt.flag); k != tt.known || v != tt.value {
			t.Errorf("KnownFlag(%s) = %v, %v; want %v, %v", tt.flag, k, v, tt.known, tt.value)
		}
	}
}
