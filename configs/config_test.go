package configs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/configs"
	"github.com/wan22-guard/wan22-guard/strategies"
)

// tooLong bounds every load that must not hang (a symlink loop, a FIFO).
const tooLong = 10 * time.Second

// mustDefault returns a fresh copy of the embedded defaults.
func mustDefault(t testing.TB) *configs.Config {
	t.Helper()
	cfg, err := configs.Default()
	if err != nil {
		t.Fatalf("Default() error: %v", err)
	}
	return cfg
}

// writeFile writes body to name in a new temporary directory and returns its path.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadWithin runs Load(path) and fails the test if it takes longer than tooLong.
func loadWithin(t *testing.T, path string) (*configs.Config, error) {
	t.Helper()
	type result struct {
		cfg *configs.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := configs.Load(path)
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		return r.cfg, r.err
	case <-time.After(tooLong):
		t.Fatalf("Load(%s) still running after %s", path, tooLong)
		return nil, nil
	}
}

// sameContent compares everything Load decides, leaving out Compiled and Sources.
func sameContent(t *testing.T, what string, got, want *configs.Config) {
	t.Helper()
	if got.Version != want.Version {
		t.Errorf("%s: Version = %d, want %d", what, got.Version, want.Version)
	}
	if !reflect.DeepEqual(got.Runtime, want.Runtime) {
		t.Errorf("%s: Runtime = %+v, want %+v", what, got.Runtime, want.Runtime)
	}
	if !reflect.DeepEqual(got.Phases, want.Phases) {
		t.Errorf("%s: Phases differ: got %d entries, want %d", what, len(got.Phases), len(want.Phases))
	}
	if len(got.Rules) != len(want.Rules) {
		t.Errorf("%s: len(Rules) = %d, want %d", what, len(got.Rules), len(want.Rules))
	} else if !reflect.DeepEqual(got.Rules, want.Rules) {
		for i := range got.Rules {
			if !reflect.DeepEqual(got.Rules[i], want.Rules[i]) {
				t.Errorf("%s: Rules[%d] = %+v, want %+v", what, i, got.Rules[i], want.Rules[i])
				break
			}
		}
	}
	if !reflect.DeepEqual(got.Classes, want.Classes) {
		t.Errorf("%s: Classes = %+v, want %+v", what, got.Classes, want.Classes)
	}
	if !reflect.DeepEqual(got.Ladders, want.Ladders) {
		t.Errorf("%s: Ladders differ: got %d, want %d", what, len(got.Ladders), len(want.Ladders))
	}
	if !reflect.DeepEqual(got.Workflows, want.Workflows) {
		t.Errorf("%s: Workflows differ: got %d, want %d", what, len(got.Workflows), len(want.Workflows))
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	cfg := mustDefault(t)
	if cfg.Compiled == nil {
		t.Fatal("Default().Compiled = nil, want compiled rules")
	}
	if got, want := cfg.Compiled.Len(), len(cfg.Rules); got != want {
		t.Errorf("Default().Compiled.Len() = %d, want %d (one per rule)", got, want)
	}
	if got, want := cfg.Sources, []string{configs.DefaultName}; !slices.Equal(got, want) {
		t.Errorf("Default().Sources = %q, want %q", got, want)
	}
	if cfg.Version != 1 {
		t.Errorf("Default().Version = %d, want 1", cfg.Version)
	}
	for _, c := range classify.Classes {
		_, ok := cfg.Classes[c]
		if want := c != classify.ClassSuccess; ok != want {
			t.Errorf("Default().Classes[%s] present = %v, want %v", c, ok, want)
		}
	}
	for c, p := range cfg.Classes {
		if p.Ladder != "" {
			if _, ok := cfg.Ladder(p.Ladder); !ok {
				t.Errorf("class %s: Ladder(%q) not found", c, p.Ladder)
			}
		}
		if p.Workflow != "" {
			if _, ok := cfg.Workflow(p.Workflow); !ok {
				t.Errorf("class %s: Workflow(%q) not found", c, p.Workflow)
			}
		}
	}
	if _, ok := cfg.Ladder("no_such_ladder"); ok {
		t.Error(`Ladder("no_such_ladder") found, want not found`)
	}
	if _, ok := cfg.Workflow("no-such-workflow"); ok {
		t.Error(`Workflow("no-such-workflow") found, want not found`)
	}
}

func TestDefaultBytes(t *testing.T) {
	t.Parallel()
	b := configs.DefaultBytes()
	for _, key := range []string{"version:", "runtime:", "phases:", "rules:", "classes:", "ladders:", "workflows:"} {
		if !strings.Contains(string(b), "\n"+key) {
			t.Errorf("DefaultBytes() has no top-level %q", key)
		}
	}
	if !strings.HasPrefix(string(b), "# wan22-guard default configuration.") {
		t.Errorf("DefaultBytes() starts with %.40q, want default.yaml first", b)
	}
	cfg, err := configs.Overlay(mustDefault(t), "init.yaml", b)
	if err != nil {
		t.Fatalf("Overlay(defaults, DefaultBytes()) error: %v", err)
	}
	sameContent(t, "defaults laid over themselves", cfg, mustDefault(t))
}

// checkConfigErr asserts that err is one ErrInvalid line naming file, and
// line when line > 0, and holding wantMsg.
func checkConfigErr(t *testing.T, err error, file string, line int, wantMsg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want one containing %q", wantMsg)
	}
	if !errors.Is(err, configs.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false, want true", err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error %q spans several lines, want one", msg)
	}
	prefix := file + ": "
	if line > 0 {
		prefix = file + ":" + strconv.Itoa(line) + ":"
	}
	if !strings.HasPrefix(msg, prefix) {
		t.Errorf("error = %q, want prefix %q", msg, prefix)
	}
	if !strings.Contains(msg, wantMsg) {
		t.Errorf("error = %q, want it to contain %q", msg, wantMsg)
	}
}

func TestLoad_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		line int // 0: the message names the file only
		want string
	}{
		{"unknown top-level key", "version: 1\nnosuch: 1\n", 2, `unknown key "nosuch"`},
		{"unknown runtime key", "runtime:\n  grace: 5s\n  no_such: 3\n", 3, `unknown key "no_such"`},
		{"unknown backoff key", "runtime:\n  backoff:\n    factor: 2\n", 3, `unknown key "factor"`},
		{"unknown rule field", "rules:\n  - name: my_rule\n    class: nccl\n    pattern: 'foo bar'\n    colour: red\n", 5, `unknown key "colour"`},
		{"unknown class policy field", "classes:\n  nccl:\n    retries: 3\n", 3, `unknown key "retries"`},
		{"bad duration", "runtime:\n  grace: 10 parsecs\n", 2, `bad duration "10 parsecs"`},
		{"negative duration", "runtime:\n  deadline: -5s\n", 2, `bad duration "-5s"`},
		{"duration as a list", "runtime:\n  grace: [1]\n", 2, "duration must be a string"},
		{"negative max_attempts", "runtime:\n  max_attempts: -1\n", 2, "max_attempts must be at least 1, got -1"},
		{"zero max_attempts", "# comment\nruntime:\n  max_attempts: 0\n", 3, "max_attempts must be at least 1, got 0"},
		{"backoff multiplier below 1", "runtime:\n  backoff:\n    multiplier: 0.5\n", 3, "backoff multiplier must be at least 1, got 0.5"},
		{"backoff multiplier NaN", "runtime:\n  backoff:\n    multiplier: .nan\n", 3, "backoff multiplier must be at least 1, got NaN"},
		{"backoff multiplier infinite", "runtime:\n  backoff:\n    multiplier: .inf\n", 3, "backoff multiplier must be at least 1"},
		{"backoff max below initial", "runtime:\n  backoff:\n    initial: 5m\n    max: 1m\n", 4, "backoff max 1m0s is below initial 5m0s"},
		{"backoff max below default initial", "runtime:\n  backoff:\n    max: 1s\n", 3, "backoff max 1s is below initial 10s"},
		{"tail_lines zero", "runtime:\n  tail_lines: 0\n", 2, "tail_lines must be 1..100000, got 0"},
		{"max_line too small", "runtime:\n  max_line: 10\n", 2, "max_line must be 256..1048576, got 10"},
		{"bad regexp in second rule", "rules:\n  - name: ok_rule\n    class: nccl\n    pattern: 'hello world'\n  - name: bad_rule\n    class: nccl\n    pattern: 'abc(def'\n", 5, `rule "bad_rule": error parsing regexp: missing closing )`},
		{"regexp error quoting a line break", "rules:\n  - name: bad_rule\n    class: nccl\n    pattern: \"abc(\\ndef\"\n", 2, "`abc(\\ndef`"},
		{"rule with unknown class", "rules:\n  - name: my_rule\n    class: nosuch\n    pattern: 'foo bar'\n", 2, `rule "my_rule": unknown class`},
		{"rule with class success", "rules:\n  - name: my_rule\n    class: success\n    pattern: 'foo bar'\n", 2, `rule "my_rule": unknown class`},
		{"rule with reserved name", "rules:\n  - name: watchdog_stall\n    class: stall\n    pattern: 'foo bar'\n", 2, "reserved"},
		{"rule defined twice", "rules:\n  - name: a_rule\n    class: nccl\n    pattern: 'foo bar'\n  - name: a_rule\n    class: nccl\n    pattern: 'foo baz'\n", 5, `rule "a_rule" is defined twice`},
		{"unknown strategy", "classes:\n  nccl:\n    strategy: pray\n", 3, `class nccl: strategy: unknown action "pray"`},
		{"negative budget", "classes:\n  nccl:\n    budget: -1\n", 3, "class nccl: budget"},
		{"undefined ladder", "classes:\n  nccl:\n    strategy: fallback\n    ladder: nosuch\n", 4, `class nccl names ladder "nosuch", which is not defined`},
		{"undefined workflow", "classes:\n  nccl:\n    workflow: nosuch\n", 3, `class nccl names workflow "nosuch", which is not defined`},
		{"unknown class key", "classes:\n  nccl:\n    budget: 1\n  nosuch:\n    strategy: retry\n", 4, `unknown class "nosuch"`},
		{"classes as a list", "classes: [nccl]\n", 1, "cannot unmarshal"},
		{"ladder without rungs", "ladders:\n  - name: cuda_oom\n    rungs: []\n", 2, `ladder "cuda_oom": rungs`},
		{"ladder defined twice", "ladders:\n  - name: mine\n    rungs:\n      - name: a\n        add: [\"--t5_cpu\"]\n  - name: mine\n    rungs:\n      - name: b\n        add: [\"--t5_cpu\"]\n", 6, `ladder "mine" is defined twice`},
		{"workflow without title", "workflows:\n  - name: mine\n", 2, `workflow "mine": title`},
		{"unknown phase in phase_timeouts", "runtime:\n  phase_timeouts:\n    quantize: 1h\n    warp: 5m\n", 4, `unknown phase "warp" in phase_timeouts`},
		{"bad phase name", "phases:\n  - name: Bad\n    pattern: 'abc def'\n", 2, "name must be lowercase"},
		{"tab indentation", "runtime:\n\tgrace: 5s\n", 2, "found character that cannot start any token"},
		{"unclosed quote", "runtime:\n  grace: \"5s\n", 2, "unexpected end of stream"},
		{"duplicate key", "version: 1\nversion: 1\n", 2, `mapping key "version" already defined at line 1`},
		{"top-level list", "- a\n- b\n", 1, "the file must be a mapping"},
		{"top-level scalar", "hello\n", 1, "the file must be a mapping"},
		{"version 2", "version: 2\n", 1, "unsupported version 2"},
		{"version 2 after runtime", "runtime:\n  grace: 5s\nversion: 2\n", 3, "unsupported version 2"},
		{"second document", "version: 1\n---\nnosuch: 1\n", 2, "one YAML document"},
		{"broken second document", "version: 1\n---\n\tbad\n", 3, "found character that cannot start any token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "user.yaml", tt.body)
			cfg, err := configs.Load(path)
			if cfg != nil {
				t.Errorf("Load(%s) returned a config with error %v, want nil", tt.name, err)
			}
			checkConfigErr(t, err, path, tt.line, tt.want)
		})
	}
}

func TestLoad_FileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"10 MB file", func(t *testing.T) string {
			// A tab at the start would be a parse error at line 1: the size
			// message shows the file was refused before parsing.
			return writeFile(t, "big.yaml", "\t"+strings.Repeat("# padding\n", 1<<20))
		}, "file is larger than 4 MiB"},
		{"directory", func(t *testing.T) string {
			return t.TempDir()
		}, "not a regular file"},
		{"symlink loop", func(t *testing.T) string {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
			if err := os.Symlink(b, a); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(a, b); err != nil {
				t.Fatal(err)
			}
			return a
		}, "symbolic links"},
		{"named pipe", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "fifo.yaml")
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return path
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.setup(t)
			_, err := loadWithin(t, path)
			checkConfigErr(t, err, path, 0, tt.want)
		})
	}
}

func TestLoad_MaxFileSize(t *testing.T) {
	t.Parallel()
	body := "runtime:\n  grace: 7s\n"
	body += strings.Repeat("#", configs.MaxFileSize-len(body)-1) + "\n"
	if len(body) != configs.MaxFileSize {
		t.Fatalf("test body is %d bytes, want %d", len(body), configs.MaxFileSize)
	}
	path := writeFile(t, "exact.yaml", body)
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatalf("Load(file of exactly MaxFileSize bytes) error: %v", err)
	}
	if got, want := cfg.Runtime.Grace.D(), 7*time.Second; got != want {
		t.Errorf("Grace = %s, want %s", got, want)
	}
	path = writeFile(t, "over.yaml", body+"\n")
	_, err = configs.Load(path)
	checkConfigErr(t, err, path, 0, "larger than")
}

func TestLoad_MissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := configs.Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) error = %v, want fs.ErrNotExist", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
		t.Errorf("Load(missing) error = %q, want one line naming %s", msg, path)
	}
}

func TestLoad_Valid(t *testing.T) {
	t.Parallel()
	def := mustDefault(t)
	tests := []struct {
		name string
		body string
	}{
		{"empty file", ""},
		{"only comments", "# nothing to change\n"},
		{"explicit document start", "---\nversion: 1\n"},
		{"document end marker", "version: 1\n...\n"},
		{"null classes entry", "classes:\n  nccl:\n"},
		{"empty runtime", "runtime:\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "user.yaml", tt.body)
			cfg, err := configs.Load(path)
			if err != nil {
				t.Fatalf("Load(%s) error: %v", tt.name, err)
			}
			sameContent(t, tt.name, cfg, def)
			if got, want := cfg.Sources, []string{configs.DefaultName, path}; !slices.Equal(got, want) {
				t.Errorf("Sources = %q, want %q", got, want)
			}
			if cfg.Compiled == nil {
				t.Error("Compiled = nil, want compiled rules")
			}
		})
	}
}

func TestOverlay_Runtime(t *testing.T) {
	t.Parallel()
	def := mustDefault(t)
	tests := []struct {
		name string
		body string
		want func(rt *configs.Runtime)
	}{
		{"one key", "runtime:\n  grace: 5s\n", func(rt *configs.Runtime) {
			rt.Grace = configs.Duration(5 * time.Second)
		}},
		{"bare zero", "runtime:\n  deadline: 0\n  no_output_timeout: 0\n", func(rt *configs.Runtime) {}},
		{"several keys", "runtime:\n  max_attempts: 3\n  deadline: 2h\n", func(rt *configs.Runtime) {
			rt.MaxAttempts = 3
			rt.Deadline = configs.Duration(2 * time.Hour)
		}},
		{"one backoff key", "runtime:\n  backoff:\n    max: 20m\n", func(rt *configs.Runtime) {
			rt.Backoff.Max = configs.Duration(20 * time.Minute)
		}},
		{"new phase timeout", "runtime:\n  phase_timeouts:\n    decode: 5m\n", func(rt *configs.Runtime) {
			rt.PhaseTimeouts["decode"] = configs.Duration(5 * time.Minute)
		}},
		{"replaced phase timeout", "runtime:\n  phase_timeouts:\n    quantize: 1h\n", func(rt *configs.Runtime) {
			rt.PhaseTimeouts["quantize"] = configs.Duration(time.Hour)
		}},
		{"phase timeout for a user phase", "phases:\n  - name: upscale\n    pattern: '^Upscaling video'\nruntime:\n  phase_timeouts:\n    upscale: 10m\n", func(rt *configs.Runtime) {
			rt.PhaseTimeouts["upscale"] = configs.Duration(10 * time.Minute)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := configs.Overlay(def, "user.yaml", []byte(tt.body))
			if err != nil {
				t.Fatalf("Overlay error: %v", err)
			}
			want := mustDefault(t).Runtime
			tt.want(&want)
			if !reflect.DeepEqual(got.Runtime, want) {
				t.Errorf("Runtime = %+v, want %+v", got.Runtime, want)
			}
		})
	}
}

func TestOverlay_Rules(t *testing.T) {
	t.Parallel()
	def := mustDefault(t)
	first := def.Rules[0]

	added, err := configs.Overlay(def, "user.yaml", []byte("rules:\n  - name: my_rule\n    class: nccl\n    pattern: 'my special failure'\n    priority: 99\n"))
	if err != nil {
		t.Fatalf("Overlay(new rule) error: %v", err)
	}
	if got, want := len(added.Rules), len(def.Rules)+1; got != want {
		t.Fatalf("len(Rules) after a new rule = %d, want %d", got, want)
	}
	if got := added.Rules[len(added.Rules)-1]; got.Name != "my_rule" || got.Class != classify.ClassNCCL {
		t.Errorf("last rule = %s/%s, want my_rule/nccl", got.Name, got.Class)
	}
	if got, ok := added.Compiled.Rule("my_rule"); !ok || got.Priority != 99 {
		t.Errorf("Compiled.Rule(my_rule) = %+v, %v; want priority 99, true", got, ok)
	}

	body := "rules:\n  - name: " + first.Name + "\n    class: unknown\n    pattern: 'replaced pattern'\n"
	replaced, err := configs.Overlay(def, "user.yaml", []byte(body))
	if err != nil {
		t.Fatalf("Overlay(replacing rule) error: %v", err)
	}
	if got, want := len(replaced.Rules), len(def.Rules); got != want {
		t.Fatalf("len(Rules) after replacing a rule = %d, want %d", got, want)
	}
	want := classify.RuleSpec{Name: first.Name, Class: classify.ClassUnknown, Pattern: "replaced pattern"}
	if got := replaced.Rules[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("Rules[0] = %+v, want %+v (replaced in place, fields not written are zero)", got, want)
	}
	if got, _ := replaced.Compiled.Rule(first.Name); got.Class != classify.ClassUnknown {
		t.Errorf("Compiled.Rule(%s).Class = %s, want unknown", first.Name, got.Class)
	}
}

func TestOverlay_Classes(t *testing.T) {
	t.Parallel()
	def := mustDefault(t)
	tests := []struct {
		name  string
		body  string
		class classify.Class
		want  func(p *strategies.ClassPolicy)
	}{
		{"budget only", "classes: {nccl: {budget: 5}}\n", classify.ClassNCCL, func(p *strategies.ClassPolicy) {
			p.Budget = 5
		}},
		{"then only", "classes:\n  network:\n    then: shutdown\n", classify.ClassNetwork, func(p *strategies.ClassPolicy) {
			p.Then = strategies.ActionShutdown
		}},
		{"strategy and ladder", "classes:\n  unknown:\n    strategy: fallback\n    ladder: config\n", classify.ClassUnknown, func(p *strategies.ClassPolicy) {
			p.Strategy = strategies.ActionFallback
			p.Ladder = "config"
		}},
		{"user ladder", "ladders:\n  - name: mine\n    rungs:\n      - name: t5_cpu\n        add: [\"--t5_cpu\"]\nclasses:\n  cuda_oom:\n    ladder: mine\n", classify.ClassCUDAOOM, func(p *strategies.ClassPolicy) {
			p.Ladder = "mine"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := configs.Overlay(def, "user.yaml", []byte(tt.body))
			if err != nil {
				t.Fatalf("Overlay error: %v", err)
			}
			want := def.Classes[tt.class]
			tt.want(&want)
			if got := cfg.Classes[tt.class]; got != want {
				t.Errorf("Classes[%s] = %+v, want %+v", tt.class, got, want)
			}
			for c, p := range def.Classes {
				if c != tt.class && cfg.Classes[c] != p {
					t.Errorf("Classes[%s] = %+v, want unchanged %+v", c, cfg.Classes[c], p)
				}
			}
		})
	}
}

func TestOverlay_LaddersAndWorkflows(t *testing.T) {
	t.Parallel()
	def := mustDefault(t)
	body := `ladders:
  - name: config
    rungs:
      - name: t5_cpu
        add: ["--t5_cpu"]
  - name: extra
    rungs:
      - name: convert
        add: ["--convert_model_dtype"]
workflows:
  - name: nccl
    title: Check the interconnect
    classes: [nccl]
    steps:
      - instruction: Run nvidia-smi topo -m.
  - name: my-flow
    title: Mine
    classes: [unknown]
    steps:
      - instruction: Read the log.
`
	cfg, err := configs.Overlay(def, "user.yaml", []byte(body))
	if err != nil {
		t.Fatalf("Overlay error: %v", err)
	}
	if got, want := len(cfg.Ladders), len(def.Ladders)+1; got != want {
		t.Errorf("len(Ladders) = %d, want %d", got, want)
	}
	if got, want := len(cfg.Workflows), len(def.Workflows)+1; got != want {
		t.Errorf("len(Workflows) = %d, want %d", got, want)
	}
	l, ok := cfg.Ladder("config")
	if !ok || len(l.Rungs) != 1 || l.Rungs[0].Name != "t5_cpu" || l.Exhausted != "" {
		t.Errorf("Ladder(config) = %+v, %v; want the user's one rung t5_cpu and no exhausted text", l, ok)
	}
	if _, ok := cfg.Ladder("extra"); !ok {
		t.Error("Ladder(extra) not found, want the user's new ladder")
	}
	w, ok := cfg.Workflow("nccl")
	if !ok || w.Title != "Check the interconnect" || len(w.Steps) != 1 {
		t.Errorf("Workflow(nccl) = %q with %d steps, %v; want the user's title and 1 step", w.Title, len(w.Steps), ok)
	}
	if _, ok := cfg.Workflow("my-flow"); !ok {
		t.Error("Workflow(my-flow) not found, want the user's new workflow")
	}
	for i, dl := range def.Ladders {
		if dl.Name != "config" && !reflect.DeepEqual(cfg.Ladders[i], dl) {
			t.Errorf("Ladders[%d] = %s, want unchanged %s", i, cfg.Ladders[i].Name, dl.Name)
		}
	}
}

func TestOverlay_KeepsBase(t *testing.T) {
	t.Parallel()
	base := mustDefault(t)
	body := `runtime:
  max_attempts: 2
  backoff: {initial: 1s, max: 2s}
  phase_timeouts: {quantize: 1h, decode: 5m}
rules:
  - name: my_rule
    class: nccl
    pattern: 'my special failure'
  - name: ` + base.Rules[0].Name + `
    class: unknown
    pattern: 'replaced pattern'
classes:
  nccl: {budget: 9}
ladders:
  - name: config
    rungs:
      - name: t5_cpu
        add: ["--t5_cpu"]
`
	cfg, err := configs.Overlay(base, "user.yaml", []byte(body))
	if err != nil {
		t.Fatalf("Overlay error: %v", err)
	}
	if cfg == base || cfg.Compiled == base.Compiled {
		t.Fatal("Overlay returned its base, want a new config")
	}
	sameContent(t, "base after Overlay", base, mustDefault(t))
	if got, want := base.Sources, []string{configs.DefaultName}; !slices.Equal(got, want) {
		t.Errorf("base.Sources = %q, want %q", got, want)
	}
	if got, want := cfg.Sources, []string{configs.DefaultName, "user.yaml"}; !slices.Equal(got, want) {
		t.Errorf("Sources = %q, want %q", got, want)
	}
	if _, ok := base.Compiled.Rule("my_rule"); ok {
		t.Error("base.Compiled has my_rule, want the base's rules untouched")
	}

	again, err := configs.Overlay(cfg, "second.yaml", []byte("runtime:\n  grace: 1s\n"))
	if err != nil {
		t.Fatalf("second Overlay error: %v", err)
	}
	if got, want := again.Sources, []string{configs.DefaultName, "user.yaml", "second.yaml"}; !slices.Equal(got, want) {
		t.Errorf("Sources after two overlays = %q, want %q", got, want)
	}
	if got := again.Runtime.MaxAttempts; got != 2 {
		t.Errorf("MaxAttempts after two overlays = %d, want 2 (from the first)", got)
	}

	_, err = configs.Overlay(base, "bad.yaml", []byte("runtime:\n  max_attempts: 0\n  grace: 1s\n"))
	if err == nil {
		t.Fatal("Overlay(bad) error = nil, want one")
	}
	sameContent(t, "base after a failed Overlay", base, mustDefault(t))
}

func TestConfig_MarshalRoundTrip(t *testing.T) {
	t.Parallel()
	def := mustDefault(t)
	user, err := configs.Overlay(def, "user.yaml", []byte("runtime:\n  max_attempts: 3\n  phase_timeouts: {decode: 5m}\nclasses: {nccl: {budget: 5}}\nrules:\n  - name: my_rule\n    class: nccl\n    exit_codes: [7]\n    signals: [SIGBUS]\n"))
	if err != nil {
		t.Fatalf("Overlay error: %v", err)
	}
	for _, tt := range []struct {
		name string
		cfg  *configs.Config
	}{
		{"defaults", def},
		{"with a user file", user},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.cfg.Marshal()
			if err != nil {
				t.Fatalf("Marshal error: %v", err)
			}
			back, err := configs.Overlay(mustDefault(t), "printed.yaml", out)
			if err != nil {
				t.Fatalf("Overlay(Marshal output) error: %v", err)
			}
			sameContent(t, "printed and loaded back", back, tt.cfg)
		})
	}
}

func BenchmarkLoadDefault(b *testing.B) {
	for b.Loop() {
		if _, err := configs.Load(""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOverlay(b *testing.B) {
	base := mustDefault(b)
	data := []byte("runtime:\n  grace: 5s\nclasses: {nccl: {budget: 5}}\nrules:\n  - name: my_rule\n    class: nccl\n    pattern: 'my special failure'\n")
	for b.Loop() {
		if _, err := configs.Overlay(base, "user.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOverlay_phaseMarkersAreAdded(t *testing.T) {
	t.Parallel()
	def, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	user, err := configs.Overlay(def, "user.yaml", []byte("phases:\n  - name: load\n    pattern: 'Warming up the model'\n"))
	if err != nil {
		t.Fatalf("Overlay: %v", err)
	}
	if got, want := len(user.Phases), len(def.Phases)+1; got != want {
		t.Errorf("phases = %d, want %d: a user phase adds a marker and keeps every default one", got, want)
	}
}
