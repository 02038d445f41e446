package configs_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wan22-guard/wan22-guard/configs"
)

// fuzzTooLong bounds one Overlay of a fuzz input; a valid user file takes
// milliseconds, so only runaway work (alias expansion, say) comes near it.
const fuzzTooLong = 10 * time.Second

// laughs is a billion-laughs document: levels anchors, each a list of nine
// aliases of the one before, all under a key that takes any value (a rung's
// JSON merge patch), so that a decoder which expanded them would build
// 9^levels strings.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("ladders:\n  - name: bomb\n    rungs:\n      - name: r\n        file:\n          path: x.json\n          merge:\n")
	b.WriteString("            a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "            a%d: &a%d [", i, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// fuzzSeeds are the inputs every run of FuzzLoad starts from, besides
// testdata/fuzz/FuzzLoad.
var fuzzSeeds = []string{
	"",
	"version: 1\n",
	"runtime:\n  max_attempts: 3\n  grace: 5s\n  backoff: {initial: 1s, max: 1m, multiplier: 1.5}\n  phase_timeouts: {quantize: 1h, decode: 5m}\n",
	"rules:\n  - name: my_rule\n    class: nccl\n    pattern: 'my (special|odd) failure'\n    literals: [special, odd]\n    exit_codes: [1, 137]\n    signals: [SIGKILL]\n    phases: [denoise]\n    priority: 99\n    fatal: true\n    remedy: do this\n",
	"phases:\n  - name: upscale\n    pattern: '^Upscaling video'\nruntime:\n  phase_timeouts: {upscale: 10m}\n",
	"classes: {nccl: {budget: 5}, unknown: {strategy: fallback, ladder: config}}\n",
	"ladders:\n  - name: mine\n    exhausted: nothing left\n    rungs:\n      - name: t5_cpu\n        when: {tasks: [t2v-A14B], multi_gpu: false, phases: [t5]}\n        add: [\"--t5_cpu\"]\n        env: {PYTORCH_CUDA_ALLOC_CONF: expandable_segments:True}\n      - name: smaller\n        size: smaller\n        frame_num: smaller\n      - name: patch\n        file: {path: cfg.json, merge: {a: 1, b: null}}\nclasses:\n  cuda_oom: {ladder: mine}\n",
	"workflows:\n  - name: my-flow\n    title: Fix {task}\n    classes: [unknown]\n    evidence: ['(?i)boom']\n    steps:\n      - instruction: Run it.\n        check: {command: [nvidia-smi], expect: 'GPU'}\n        tips: [one]\n",
	"runtime:\n  grace: 10 parsecs\n",
	"runtime:\n\tgrace: 5s\n",
	"runtime:\n  grace: \"5s\n",
	"- a\n- b\n",
	"version: 2\n",
	"version: 1\n---\nnosuch: 1\n",
	"a: &a [*a]\n",
	"runtime: &r {grace: 5s}\nclasses: *r\n",
	"classes:\n  nccl: &p {budget: 1}\n  unknown: *p\n",
	"rules:\n  - name: bad_rule\n    class: nccl\n    pattern: \"abc(\\ndef\"\n",
	laughs(9),
}

func FuzzLoad(f *testing.F) {
	base := mustDefault(f)
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		cfg, err := configs.Overlay(base, "fuzz.yaml", data)
		if d := time.Since(start); d > fuzzTooLong {
			t.Errorf("Overlay took %s, want under %s", d, fuzzTooLong)
		}
		if err != nil {
			if cfg != nil {
				t.Errorf("Overlay returned a config and error %v", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "fuzz.yaml") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error %q: want one line starting with fuzz.yaml", msg)
			}
			if !errors.Is(err, configs.ErrInvalid) {
				t.Fatalf("error %q: errors.Is(err, ErrInvalid) = false", msg)
			}
			return
		}
		if cfg.Compiled == nil {
			t.Fatal("Overlay returned a config with Compiled nil")
		}
		out, err := cfg.Marshal()
		if err != nil {
			t.Fatalf("Marshal error: %v", err)
		}
		back, err := configs.Overlay(base, "fuzz.yaml", out)
		if err != nil {
			t.Fatalf("Overlay(Marshal output) error: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back.Runtime, cfg.Runtime) {
			t.Errorf("printed Runtime = %+v, want %+v", back.Runtime, cfg.Runtime)
		}
		if len(back.Rules) != len(cfg.Rules) {
			t.Errorf("printed len(Rules) = %d, want %d", len(back.Rules), len(cfg.Rules))
		}
		if !reflect.DeepEqual(back.Classes, cfg.Classes) {
			t.Errorf("printed Classes = %+v, want %+v", back.Classes, cfg.Classes)
		}
	})
}

func TestOverlay_AliasBomb(t *testing.T) {
	t.Parallel()
	base := mustDefault(t)
	tests := []struct {
		name string
		body string
	}{
		{"4 levels", laughs(4)},
		{"9 levels", laughs(9)},
		{"30 levels", laughs(30)},
		{"self reference", "a: &a [*a]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := configs.Overlay(base, "bomb.yaml", []byte(tt.body))
			if d := time.Since(start); d > fuzzTooLong {
				t.Errorf("Overlay(%s) took %s, want under %s", tt.name, d, fuzzTooLong)
			}
			if err == nil {
				t.Fatalf("Overlay(%s) error = nil, want one", tt.name)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "bomb.yaml") || strings.Contains(msg, "\n") || !errors.Is(err, configs.ErrInvalid) {
				t.Errorf("Overlay(%s) error = %q, want one ErrInvalid line naming bomb.yaml", tt.name, msg)
			}
		})
	}
}
