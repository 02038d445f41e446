package wan

import "slices"

// Family groups tasks that share a model and so a fallback ladder.
type Family string

// Task families.
const (
	FamilyA14B    Family = "A14B"    // t2v-A14B, i2v-A14B: two 14B experts (MoE)
	FamilyTI2V5B  Family = "ti2v-5B" // ti2v-5B: one 5B DiT, Wan2.2 VAE
	FamilyS2V     Family = "s2v"     // s2v-14B
	FamilyAnimate Family = "animate" // animate-14B
	FamilyWan21   Family = "wan2.1"  // the Wan2.1 tasks
)

// Frame rules a task's frame flag follows.
const (
	FramesFourNPlusOne = "4n+1" // --frame_num: 4n+1 (help text)
	FramesMultipleOf4  = "4n"   // s2v --infer_frames: a multiple of 4
)

// Task is what Wan's configs say about one --task value.
type Task struct {
	Name    string
	Version int // 21 or 22
	Family  Family
	// Sizes are the SUPPORTED_SIZES (width*height) for the task, largest first.
	Sizes []string
	// SizeChecked is false where generate.py skips the size assertion (s2v):
	// any argparse size is accepted and read as an area.
	SizeChecked bool
	// FrameFlag is the flag that sets the clip length: --frame_num, or
	// --infer_frames for s2v.
	FrameFlag string
	// DefaultFrames is the task config's value when FrameFlag is not given.
	DefaultFrames int
	// FrameRule is FramesFourNPlusOne or FramesMultipleOf4.
	FrameRule string
	// FrameSteps are the values a fallback steps down through, largest first.
	FrameSteps []int
	// Heads is the DiT's attention head count; --ulysses_size must divide it.
	Heads int
	// VAE is the VAE checkpoint file under --ckpt_dir.
	VAE string
	// VAEStride is the VAE's spatial stride (8 for Wan2.1_VAE, 16 for Wan2.2_VAE).
	VAEStride int
	// Checkpoints are the files and directories (ending in "/") expected under
	// --ckpt_dir besides the VAE. A DiT stored at the root is not listed.
	Checkpoints []string
	// FPS is the frame rate of the saved video.
	FPS int
}

// The generate.py defaults when a flag is absent.
const (
	DefaultTask = "t2v-A14B"
	DefaultSize = "1280*720"
)

// argparseSizes are the --size choices generate.py's argparse accepts.
var argparseSizes = []string{
	"720*1280", "1280*720", "480*832", "832*480",
	"704*1280", "1280*704", "1024*704", "704*1024",
}

const (
	t5File      = "models_t5_umt5-xxl-enc-bf16.pth"
	t5Tokenizer = "google/umt5-xxl/"
	clipFile    = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
	vae21       = "Wan2.1_VAE.pth"
	vae22       = "Wan2.2_VAE.pth"
)

var (
	sizes480720 = []string{"1280*720", "720*1280", "832*480", "480*832"}
	steps81     = []int{81, 49, 33, 17}
)

// tasks is read-only; Lookup and Tasks hand out copies.
var tasks = []Task{
	{
		Name: "t2v-A14B", Version: 22, Family: FamilyA14B,
		Sizes: sizes480720, SizeChecked: true,
		FrameFlag: "--frame_num", DefaultFrames: 81, FrameRule: FramesFourNPlusOne, FrameSteps: steps81,
		Heads: 40, VAE: vae21, VAEStride: 8, FPS: 16,
		Checkpoints: []string{"low_noise_model/", "high_noise_model/", t5File, t5Tokenizer},
	},
	{
		Name: "i2v-A14B", Version: 22, Family: FamilyA14B,
		Sizes: sizes480720, SizeChecked: true,
		FrameFlag: "--frame_num", DefaultFrames: 81, FrameRule: FramesFourNPlusOne, FrameSteps: steps81,
		Heads: 40, VAE: vae21, VAEStride: 8, FPS: 16,
		Checkpoints: []string{"low_noise_model/", "high_noise_model/", t5File, t5Tokenizer},
	},
	{
		Name: "ti2v-5B", Version: 22, Family: FamilyTI2V5B,
		Sizes: []string{"1280*704", "704*1280"}, SizeChecked: true,
		FrameFlag: "--frame_num", DefaultFrames: 121, FrameRule: FramesFourNPlusOne, FrameSteps: []int{121, 81, 49, 33},
		Heads: 24, VAE: vae22, VAEStride: 16, FPS: 24,
		Checkpoints: []string{t5File, t5Tokenizer},
	},
	{
		Name: "s2v-14B", Version: 22, Family: FamilyS2V,
		Sizes:     []string{"1280*720", "720*1280", "1280*704", "704*1280", "1024*704", "704*1024", "832*480", "480*832"},
		FrameFlag: "--infer_frames", DefaultFrames: 80, FrameRule: FramesMultipleOf4, FrameSteps: []int{80, 48},
		Heads: 40, VAE: vae21, VAEStride: 8, FPS: 16,
		Checkpoints: []string{"wav2vec2-large-xlsr-53-english/", t5File, t5Tokenizer},
	},
	{
		Name: "animate-14B", Version: 22, Family: FamilyAnimate,
		Sizes: []string{"1280*720", "720*1280"}, SizeChecked: true,
		FrameFlag: "--frame_num", DefaultFrames: 77, FrameRule: FramesFourNPlusOne, FrameSteps: []int{77, 49, 33},
		Heads: 40, VAE: vae21, VAEStride: 8, FPS: 30,
		Checkpoints: []string{clipFile, "xlm-roberta-large/", "relighting_lora.ckpt", "process_checkpoint/", t5File, t5Tokenizer},
	},
	wan21("t2v-14B", sizes480720, 40),
	wan21("t2v-1.3B", []string{"832*480", "480*832"}, 12),
	wan21("i2v-14B", sizes480720, 40, clipFile, "xlm-roberta-large/"),
	wan21("flf2v-14B", sizes480720, 40, clipFile, "xlm-roberta-large/"),
	wan21("vace-1.3B", []string{"832*480", "480*832"}, 12),
	wan21("vace-14B", sizes480720, 40),
	{
		Name: "t2i-14B", Version: 21, Family: FamilyWan21,
		Sizes: []string{"1280*720", "720*1280", "1024*1024", "832*480", "480*832"}, SizeChecked: true,
		FrameFlag: "--frame_num", DefaultFrames: 1, FrameRule: FramesFourNPlusOne, FrameSteps: []int{1},
		Heads: 40, VAE: vae21, VAEStride: 8, FPS: 16,
		Checkpoints: []string{t5File, t5Tokenizer},
	},
}

func wan21(name string, sizes []string, heads int, extra ...string) Task {
	return Task{
		Name: name, Version: 21, Family: FamilyWan21,
		Sizes: sizes, SizeChecked: true,
		FrameFlag: "--frame_num", DefaultFrames: 81, FrameRule: FramesFourNPlusOne, FrameSteps: steps81,
		Heads: heads, VAE: vae21, VAEStride: 8, FPS: 16,
		Checkpoints: append([]string{t5File, t5Tokenizer}, extra...),
	}
}

// lookup returns the shared table entry; callers must not modify its slices.
func lookup(name string) (*Task, bool) {
	for i := range tasks {
		if tasks[i].Name == name {
			return &tasks[i], true
		}
	}
	return nil, false
}

// Lookup returns the task named name (exact --task spelling).
func Lookup(name string) (Task, bool) {
	t, ok := lookup(name)
	if !ok {
		return Task{}, false
	}
	return t.clone(), true
}

// Tasks returns every known task, Wan2.2 first.
func Tasks() []Task {
	out := make([]Task, len(tasks))
	for i := range tasks {
		out[i] = tasks[i].clone()
	}
	return out
}

func (t *Task) clone() Task {
	c := *t
	c.Sizes = slices.Clone(t.Sizes)
	c.FrameSteps = slices.Clone(t.FrameSteps)
	c.Checkpoints = slices.Clone(t.Checkpoints)
	return c
}

// AllowsSize reports whether generate.py accepts size for the task: one of
// its SUPPORTED_SIZES, or any argparse choice where the check is skipped (s2v).
func (t Task) AllowsSize(size string) bool {
	if slices.Contains(t.Sizes, size) {
		return true
	}
	return !t.SizeChecked && slices.Contains(argparseSizes, size)
}

// ValidFrames reports whether n follows the task's frame rule.
func (t Task) ValidFrames(n int) bool {
	if n < 1 {
		return false
	}
	if t.FrameRule == FramesMultipleOf4 {
		return n%4 == 0
	}
	return n%4 == 1
}

// ValidUlysses reports whether --ulysses_size n divides the head count.
func (t Task) ValidUlysses(n int) bool {
	return n >= 1 && t.Heads%n == 0
}
