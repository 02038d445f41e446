package wan

import "fmt"

// peakPoint is one world size's row of the README efficiency table for the
// A14B tasks: peak GPU memory at 720P and 480P, 81 frames.
type peakPoint struct {
	gpus       int
	p720, p480 float64
}

// A14B peaks from the Wan2.2 README table (assets/comp_effic.png). Single GPU
// runs used --offload_model True --convert_model_dtype; multi-GPU runs used
// --dit_fsdp --t5_fsdp --ulysses_size N.
var a14bPeaks = []peakPoint{
	{gpus: 1, p720: 59.8, p480: 41.3},
	{gpus: 4, p720: 51.7, p480: 40.9},
	{gpus: 8, p720: 37.0, p480: 26.2},
}

const (
	// Tokens of the two measured A14B points (81 frames).
	tokens720 = 75600 // 1280*720
	tokens480 = 32760 // 832*480
	// ti2v-5B: 22.9 GB at 1280*704×121 on one 4090 (--offload_model True
	// --convert_model_dtype --t5_cpu); 22.6 GB on 4 and 8 GPUs with
	// --ulysses_size N and the same flags.
	ti2vPeak1     = 22.9
	ti2vPeakMulti = 22.6
	ti2vTokens    = 27280
	// ti2vFixed is the part of the ti2v-5B peak taken not to scale with
	// tokens: 5e9 bf16 parameters (9.3 GiB).
	ti2vFixed = 5e9 * 2 / (1 << 30)
)

// EstimatePeakGiB estimates the peak GPU memory per GPU of a generate.py
// command from the figures Wan2.2 publishes, which are read as GiB (the
// larger reading, so the estimate errs high). It is an estimate: the
// published peaks are for 81 frames (121 for ti2v-5B) at two sizes, and
// other sizes and frame counts are placed by the token count (Tokens):
//
//   - t2v-A14B, i2v-A14B: linear in tokens through the 720P and 480P peaks
//     of the nearest measured world size at or below the command's (1, 4 or
//     8 GPUs; 2-3 use the 1-GPU row, 5-7 the 4-GPU row). Only for the
//     measured flags: one GPU with --offload_model True (default) and
//     --convert_model_dtype, or several with --dit_fsdp --t5_fsdp and
//     --ulysses_size equal to the world size.
//   - ti2v-5B: the 22.9 GiB (22.6 on several GPUs) peak, its part above the
//     bf16 DiT weights scaled by the token ratio. Only with --offload_model
//     True and --convert_model_dtype, and without --dit_fsdp.
//
// basis says which figure and how it was scaled. ok is false for tasks with
// no published peak (s2v, animate, Wan2.1), unknown world sizes, unsupported
// sizes, and flag combinations no figure was measured with.
func EstimatePeakGiB(cmd Command) (gib float64, basis string, ok bool) {
	task := cmd.EffectiveTask()
	t, known := lookup(task)
	if !known {
		return 0, fmt.Sprintf("no published peak for task %q", task), false
	}
	size, frames := cmd.EffectiveSize(), cmd.EffectiveFrames()
	if !t.AllowsSize(size) {
		return 0, fmt.Sprintf("size %s is not supported by %s", size, task), false
	}
	tokens, _ := Tokens(task, size, frames)
	world := cmd.WorldSize()
	if world < 1 {
		return 0, "world size not stated by the launcher", false
	}
	switch t.Family {
	case FamilyA14B:
		return estimateA14B(cmd, tokens, world, size, frames)
	case FamilyTI2V5B:
		return estimateTI2V(cmd, tokens, world, size, frames)
	}
	return 0, fmt.Sprintf("no published peak for %s", task), false
}

func estimateA14B(cmd Command, tokens, world int, size string, frames int) (float64, string, bool) {
	if world == 1 {
		if !cmd.Offload() || !cmd.ConvertDtype {
			return 0, "single-GPU peaks were measured with --offload_model True --convert_model_dtype", false
		}
	} else if !cmd.DitFSDP || !cmd.T5FSDP || cmd.EffectiveUlysses() != world {
		return 0, "multi-GPU peaks were measured with --dit_fsdp --t5_fsdp --ulysses_size <world size>", false
	}
	p := a14bPeaks[0]
	for _, q := range a14bPeaks {
		if q.gpus <= world {
			p = q
		}
	}
	slope := (p.p720 - p.p480) / float64(tokens720-tokens480)
	gib := p.p480 + slope*float64(tokens-tokens480)
	basis := fmt.Sprintf("estimate: %.1f GiB (720P) / %.1f GiB (480P) measured on %d GPU(s) at 81 frames, linear in tokens; %s×%d is %d tokens",
		p.p720, p.p480, p.gpus, size, frames, tokens)
	return gib, basis, true
}

func estimateTI2V(cmd Command, tokens, world int, size string, frames int) (float64, string, bool) {
	if !cmd.Offload() || !cmd.ConvertDtype || cmd.DitFSDP {
		return 0, "ti2v-5B peaks were measured with --offload_model True --convert_model_dtype --t5_cpu, without FSDP", false
	}
	if world > 1 && cmd.EffectiveUlysses() != world {
		return 0, "multi-GPU ti2v-5B peaks were measured with --ulysses_size <world size>", false
	}
	peak := ti2vPeak1
	if world > 1 {
		peak = ti2vPeakMulti
	}
	ratio := float64(tokens) / ti2vTokens
	gib := ti2vFixed + (peak-ti2vFixed)*ratio
	basis := fmt.Sprintf("estimate: %.1f GiB measured at 1280*704×121 (%d tokens), the part above %.1f GiB of weights scaled by tokens; %s×%d is %d tokens",
		peak, ti2vTokens, ti2vFixed, size, frames, tokens)
	return gib, basis, true
}
