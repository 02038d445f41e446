package classify_test

import (
	"fmt"

	"github.com/wan22-guard/wan22-guard/classify"
)

func ExampleScanner_Verdict() {
	rules, err := classify.Compile([]classify.RuleSpec{
		{Name: "cuda_oom", Class: classify.ClassCUDAOOM, Pattern: `CUDA out of memory`, Priority: 90,
			Remedy: "lower VRAM use: --offload_model True, --t5_cpu, a smaller --size"},
		{Name: "nccl_error", Class: classify.ClassNCCL, Pattern: `\bNCCL error\b`, Priority: 45, Fatal: true},
	}, []classify.PhaseSpec{
		{Name: classify.PhaseLoad, Pattern: `^Creating Wan\w* pipeline`},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	s := classify.NewScanner(rules) // one per attempt
	for _, line := range []string{
		"[2025-07-29 10:01:02,127] INFO: Creating WanT2V pipeline.",
		" 30%|███       | 12/40 [05:12<12:08, 26.04s/it]",
		"[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.60 GiB",
		"[rank1]: torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970",
	} {
		s.Line([]byte(line))
	}

	res := s.Verdict(classify.Outcome{ExitCode: 1})
	rule, _ := rules.Rule(res.Rule)
	fmt.Println(res.Class, res.Rule, res.Phase, res.Progress.Step, res.Line)
	fmt.Println(res.Evidence)
	fmt.Println(rule.Remedy)
	// Output:
	// cuda_oom cuda_oom denoise 12 3
	// torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.60 GiB
	// lower VRAM use: --offload_model True, --t5_cpu, a smaller --size
}
