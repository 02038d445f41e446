package wan

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestSmallerSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		task, size, want string
		ok               bool
	}{
		{"t2v-A14B", "1280*720", "832*480", true},
		{"t2v-A14B", "720*1280", "480*832", true},
		{"i2v-A14B", "832*480", "", false},
		{"s2v-14B", "1280*720", "1024*704", true},
		{"s2v-14B", "1024*704", "832*480", true},
		{"s2v-14B", "704*1024", "480*832", true},
		{"ti2v-5B", "1280*704", "", false},
		{"ti2v-5B", "704*1280", "", false},
		{"animate-14B", "1280*720", "", false},
		{"t2i-14B", "1024*1024", "", false},
		{"nope", "1280*720", "", false},
		{"t2v-A14B", "garbage", "", false},
	}
	for _, tt := range tests {
		got, ok := SmallerSize(tt.task, tt.size)
		if got != tt.want || ok != tt.ok {
			t.Errorf("SmallerSize(%s, %s) = %q, %v; want %q, %v", tt.task, tt.size, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOrientLike(t *testing.T) {
	t.Parallel()
	tests := []struct{ size, like, want string }{
		{"832*480", "720*1280", "480*832"},
		{"832*480", "1280*720", "832*480"},
		{"480*832", "1280*720", "832*480"},
		{"832*480", "1024*1024", "832*480"},
		{"x", "1280*720", "x"},
	}
	for _, tt := range tests {
		if got := OrientLike(tt.size, tt.like); got != tt.want {
			t.Errorf("OrientLike(%s, %s) = %q, want %q", tt.size, tt.like, got, tt.want)
		}
	}
}

func TestSmallerFrames(t *testing.T) {
	t.Parallel()
	walk := func(task string, n int) string {
		var out []string
		for {
			next, ok := SmallerFrames(task, n)
			if !ok {
				return strings.Join(out, " ")
			}
			out = append(out, strconv.Itoa(next))
			n = next
		}
	}
	tests := []struct {
		task  string
		start int
		want  string
	}{
		{"t2v-A14B", 81, "49 33 17"},
		{"ti2v-5B", 121, "81 49 33"},
		{"s2v-14B", 80, "48"},
		{"animate-14B", 77, "49 33"},
		{"t2v-A14B", 60, "49 33 17"},
		{"t2v-A14B", 200, "81 49 33 17"},
		{"t2v-A14B", 17, ""},
		{"nope", 81, ""},
	}
	for _, tt := range tests {
		if got := walk(tt.task, tt.start); got != tt.want {
			t.Errorf("SmallerFrames walk(%s, %d) = %q, want %q", tt.task, tt.start, got, tt.want)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		task, size string
		frames     int
		want       int
		ok         bool
	}{
		{"t2v-A14B", "1280*720", 81, 75600, true},
		{"t2v-A14B", "832*480", 81, 32760, true},
		{"t2v-A14B", "1280*720", 49, 46800, true},
		{"ti2v-5B", "1280*704", 121, 27280, true},
		{"ti2v-5B", "704*1280", 121, 27280, true},
		{"t2v-A14B", "1280*720", 0, 0, false},
		{"t2v-A14B", "big", 81, 0, false},
		{"nope", "1280*720", 81, 0, false},
	}
	for _, tt := range tests {
		got, ok := Tokens(tt.task, tt.size, tt.frames)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Tokens(%s, %s, %d) = %d, %v; want %d, %v", tt.task, tt.size, tt.frames, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEstimatePeakGiB(t *testing.T) {
	t.Parallel()
	const single = "python generate.py --ckpt_dir c --offload_model True --convert_model_dtype "
	const multi8 = "torchrun --nproc_per_node=8 generate.py --dit_fsdp --t5_fsdp --ulysses_size 8 "
	const multi4 = "torchrun --nproc_per_node=4 generate.py --dit_fsdp --t5_fsdp --ulysses_size 4 "
	tests := []struct {
		name  string
		argv  string
		want  float64
		ok    bool
		basis string
	}{
		{"a14b 720p", single + "--task t2v-A14B --size 1280*720", 59.8, true, "estimate"},
		{"a14b 480p", single + "--task i2v-A14B --size 480*832", 41.3, true, "linear in tokens"},
		{"a14b default offload", "python generate.py --task t2v-A14B --convert_model_dtype", 59.8, true, "estimate"},
		{"a14b 720p 49 frames", single + "--task t2v-A14B --size 1280*720 --frame_num 49", 41.3 + 18.5*(46800-32760)/42840.0, true, "46800 tokens"},
		{"a14b 8 gpus 720p", multi8 + "--task t2v-A14B --size 1280*720", 37.0, true, "8 GPU"},
		{"a14b 8 gpus 480p", multi8 + "--task t2v-A14B --size 832*480", 26.2, true, "8 GPU"},
		{"a14b 4 gpus 720p", multi4 + "--task t2v-A14B", 51.7, true, "4 GPU"},
		{"a14b 4 gpus 480p", multi4 + "--task t2v-A14B --size 832*480", 40.9, true, "4 GPU"},
		{"a14b 2 gpus uses 1-gpu row", "torchrun --nproc_per_node=2 generate.py --dit_fsdp --t5_fsdp --ulysses_size 2", 59.8, true, "1 GPU"},
		{"a14b without convert", "python generate.py --task t2v-A14B", 0, false, "--convert_model_dtype"},
		{"a14b offload off", single + "--offload_model False", 0, false, "measured with"},
		{"a14b torchrun without fsdp", "torchrun --nproc_per_node=8 generate.py --ulysses_size 8", 0, false, "--dit_fsdp"},
		{"ti2v readme", "python generate.py --task ti2v-5B --size 1280*704 --offload_model True --convert_model_dtype --t5_cpu", 22.9, true, "1280*704"},
		{"ti2v 81 frames", "python generate.py --task ti2v-5B --size 1280*704 --offload_model True --convert_model_dtype --frame_num 81", ti2vFixed + (22.9-ti2vFixed)*18480/27280, true, "18480 tokens"},
		{"ti2v 8 gpus", "torchrun --nproc_per_node=8 generate.py --task ti2v-5B --size 704*1280 --offload_model True --convert_model_dtype --t5_cpu --ulysses_size 8", 22.6, true, "22.6"},
		{"ti2v unsupported size", "python generate.py --task ti2v-5B --size 1280*720 --offload_model True --convert_model_dtype", 0, false, "not supported"},
		{"s2v has no figure", single + "--task s2v-14B --size 1024*704", 0, false, "no published peak"},
		{"unknown world", "torchrun --nproc_per_node=auto generate.py --dit_fsdp --t5_fsdp", 0, false, "world size"},
		{"not generate.py", "python wgp.py", 0, false, "no published peak"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, basis, ok := EstimatePeakGiB(Parse(split(tt.argv)))
			if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("EstimatePeakGiB(%s) = %.3f, %v; want %.3f, %v (basis %q)", tt.name, got, ok, tt.want, tt.ok, basis)
			}
			if !strings.Contains(basis, tt.basis) {
				t.Errorf("EstimatePeakGiB(%s) basis = %q, want it to contain %q", tt.name, basis, tt.basis)
			}
		})
	}
}
