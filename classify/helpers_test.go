package classify

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ruleFile is the part of configs/default.yaml the classifier reads.
type ruleFile struct {
	Phases []PhaseSpec `yaml:"phases"`
	Rules  []RuleSpec  `yaml:"rules"`
}

const rulesPath = "../configs/default.yaml"

var defaultFile = sync.OnceValues(func() (ruleFile, error) {
	var f ruleFile
	data, err := os.ReadFile(rulesPath)
	if err != nil {
		return f, err
	}
	// The other sections belong to other packages; configs' own tests
	// decode the whole file strictly.
	err = yaml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	return f, err
})

var defaultCompiled = sync.OnceValues(func() (*Rules, error) {
	f, err := defaultFile()
	if err != nil {
		return nil, err
	}
	return Compile(f.Rules, f.Phases)
})

// loadRuleFile returns the decoded default rules file.
func loadRuleFile(tb testing.TB) ruleFile {
	tb.Helper()
	f, err := defaultFile()
	if err != nil {
		tb.Fatalf("load %s: %v", rulesPath, err)
	}
	return f
}

// defaultRules returns the compiled default rules.
func defaultRules(tb testing.TB) *Rules {
	tb.Helper()
	r, err := defaultCompiled()
	if err != nil {
		tb.Fatalf("compile %s: %v", rulesPath, err)
	}
	return r
}

// feed gives every line of text to a new scanner.
func feed(r *Rules, text string) *Scanner {
	s := NewScanner(r)
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		s.Line([]byte(l))
	}
	return s
}

// wanHead is the start of a Wan2.2 t2v-A14B run up to the step loop.
const wanHead = `[2025-07-29 10:01:02,123] INFO: offload_model is not specified, set to True.
[2025-07-29 10:01:02,124] INFO: Generation job args: Namespace(task='t2v-A14B', size='1280*720', frame_num=81, ckpt_dir='./Wan2.2-T2V-A14B', offload_model=True, ulysses_size=1, t5_fsdp=False, t5_cpu=False, dit_fsdp=False, save_file=None, prompt='Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a spotlighted stage.', base_seed=4242, sample_solver='unipc', sample_steps=40)
[2025-07-29 10:01:02,125] INFO: Generation model config: {'__name__': 'Config: Wan T2V A14B', 't5_model': 'umt5_xxl', 't5_dtype': torch.bfloat16, 'text_len': 512, 'param_dtype': torch.bfloat16, 'num_train_timesteps': 1000}
[2025-07-29 10:01:02,126] INFO: Input prompt: Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a spotlighted stage.
[2025-07-29 10:01:02,127] INFO: Creating WanT2V pipeline.
[2025-07-29 10:02:10,001] INFO: loading ./Wan2.2-T2V-A14B/models_t5_umt5-xxl-enc-bf16.pth
[2025-07-29 10:02:40,001] INFO: loading ./Wan2.2-T2V-A14B/Wan2.1_VAE.pth
[2025-07-29 10:02:41,001] INFO: Creating WanModel from ./Wan2.2-T2V-A14B
[2025-07-29 10:05:00,000] INFO: Generating video ...
`

// wanTail is the end of a successful run, after the last step.
const wanTail = `[2025-07-29 10:23:00,000] INFO: Saving generated video to out.mp4
[2025-07-29 10:23:05,000] INFO: Finished.
`

// bars returns tqdm lines for steps from..to of total, as the runner splits them.
func bars(from, to, total int) string {
	var b strings.Builder
	for k := from; k <= to; k++ {
		n := k * 10 / total
		b.WriteString(fmt.Sprintf("%3d%%|%s%s| %d/%d [%02d:%02d<17:01, 26.04s/it]\n",
			k*100/total, strings.Repeat("█", n), strings.Repeat(" ", 10-n), k, total, k/2, k%60))
	}
	return b.String()
}
