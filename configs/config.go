package configs

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/strategies"
)

// defaultFS holds default.yaml: classes, rules, phases, strategies,
// budgets, ladders and workflows.
//
//go:embed default.yaml
var defaultFS embed.FS

// DefaultName is how the embedded defaults are named in error messages.
const DefaultName = "default.yaml"

// MaxFileSize caps a config file; larger files are refused before parsing.
const MaxFileSize = 4 << 20

// Duration is a time.Duration written as a Go duration string in YAML.
type Duration time.Duration

// UnmarshalYAML parses "90s", "20m", "2h" or a bare 0.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &PosError{Line: n.Line, Col: n.Column, Msg: "duration must be a string such as \"90s\""}
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return &PosError{Line: n.Line, Col: n.Column, Msg: fmt.Sprintf("bad duration %q (want e.g. \"90s\", \"20m\")", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Backoff is the relaunch delay policy.
type Backoff struct {
	Initial    Duration `yaml:"initial"`
	Max        Duration `yaml:"max"`
	Multiplier float64  `yaml:"multiplier"`
}

// Runtime holds the numbers the attempt loop runs by.
type Runtime struct {
	MaxAttempts       int                 `yaml:"max_attempts"`
	Deadline          Duration            `yaml:"deadline"`
	Backoff           Backoff             `yaml:"backoff"`
	StableAfter       Duration            `yaml:"stable_after"`
	Grace             Duration            `yaml:"grace"`
	NoOutputTimeout   Duration            `yaml:"no_output_timeout"`
	TailLines         int                 `yaml:"tail_lines"`
	MaxLine           int                 `yaml:"max_line"`
	GPUReleaseTimeout Duration            `yaml:"gpu_release_timeout"`
	SampleInterval    Duration            `yaml:"sample_interval"`
	PhaseTimeouts     map[string]Duration `yaml:"phase_timeouts"`
}

// Config is the whole configuration in effect.
type Config struct {
	Version   int                                       `yaml:"version"`
	Runtime   Runtime                                   `yaml:"runtime"`
	Phases    []classify.PhaseSpec                      `yaml:"phases"`
	Rules     []classify.RuleSpec                       `yaml:"rules"`
	Classes   map[classify.Class]strategies.ClassPolicy `yaml:"classes"`
	Ladders   []strategies.Ladder                       `yaml:"ladders"`
	Workflows []strategies.Workflow                     `yaml:"workflows"`

	// Compiled is Rules and Phases compiled; set by Load.
	Compiled *classify.Rules `yaml:"-"`
	// Sources names the files this config came from, defaults first.
	Sources []string `yaml:"-"`
}

// PosError is a problem at a place in a YAML file.
type PosError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *PosError) Error() string {
	f := e.File
	if f == "" {
		f = "config"
	}
	msg := oneLine.Replace(e.Msg)
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", f, msg)
	}
	col := e.Col
	if col == 0 {
		col = 1
	}
	return fmt.Sprintf("%s:%d:%d: %s", f, e.Line, col, msg)
}

// oneLine escapes line breaks that user text (a pattern quoted in a regexp
// error, say) carries into a message, so every error stays on one line.
var oneLine = strings.NewReplacer("\r", `\r`, "\n", `\n`)

// ErrInvalid marks every config error; errors.Is(err, ErrInvalid) holds for
// all errors Load returns about the content of a file.
var ErrInvalid = errors.New("invalid config")

// Is lets errors.Is(err, ErrInvalid) match a PosError.
func (e *PosError) Is(target error) bool { return target == ErrInvalid }

// Default returns the embedded defaults, validated and compiled.
func Default() (*Config, error) {
	return Load("")
}

// DefaultBytes returns the embedded default file as written.
func DefaultBytes() []byte {
	b, err := defaultFS.ReadFile("default.yaml")
	if err != nil {
		panic("configs: embedded default.yaml missing: " + err.Error())
	}
	return b
}

// Load reads the defaults and, when path is not empty, lays the user's file
// over them, then validates and compiles the result. Errors name the file,
// line and column.
func Load(path string) (*Config, error) {
	// The defaults are checked strictly by the tests; here one plain decode
	// is enough, and it is the larger half of the guard's start-up.
	cfg := &Config{}
	err := yaml.Unmarshal(DefaultBytes(), cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	cfg.Sources = []string{DefaultName}
	if err := validate(cfg, DefaultName, nil); err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	if path == "" {
		return cfg, nil
	}
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return Overlay(cfg, path, data)
}

// Overlay lays the user file data (named name in errors) over base and
// returns a new validated config; base is not modified.
func Overlay(base *Config, name string, data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, &PosError{File: name, Msg: fmt.Sprintf("file is larger than %d MiB", MaxFileSize>>20)}
	}
	user, root, err := decodeFile(name, data)
	if err != nil {
		return nil, err
	}
	for _, d := range []struct{ list, kind, name string }{
		{"rules", "rule", dupName(user.Rules, func(r classify.RuleSpec) string { return r.Name })},
		{"ladders", "ladder", dupName(user.Ladders, func(l strategies.Ladder) string { return l.Name })},
		{"workflows", "workflow", dupName(user.Workflows, func(w strategies.Workflow) string { return w.Name })},
	} {
		if d.name != "" {
			return nil, posOf(name, root, []string{d.list, "name=" + d.name}, fmt.Sprintf("%s %q is defined twice", d.kind, d.name))
		}
	}
	out := clone(base)
	if err := mergeRuntime(&out.Runtime, name, root); err != nil {
		return nil, err
	}
	if user.Version != 0 && user.Version != 1 {
		return nil, posOf(name, root, []string{"version"}, fmt.Sprintf("unsupported version %d (this guard reads version 1)", user.Version))
	}
	// A phase is named by several markers (the defaults have five for
	// "load"), so a user's phase entries add markers rather than replace
	// one of them.
	for _, p := range user.Phases {
		if !slices.ContainsFunc(out.Phases, func(q classify.PhaseSpec) bool {
			return q.Name == p.Name && q.Pattern == p.Pattern
		}) {
			out.Phases = append(out.Phases, p)
		}
	}
	out.Rules = mergeByName(out.Rules, user.Rules, func(r classify.RuleSpec) string { return r.Name })
	out.Ladders = mergeByName(out.Ladders, user.Ladders, func(l strategies.Ladder) string { return l.Name })
	out.Workflows = mergeByName(out.Workflows, user.Workflows, func(w strategies.Workflow) string { return w.Name })
	if err := mergeClasses(out, name, root); err != nil {
		return nil, err
	}
	out.Sources = append(append([]string(nil), base.Sources...), name)
	if err := validate(out, name, root); err != nil {
		return nil, err
	}
	return out, nil
}

func readLimited(path string) ([]byte, error) {
	// Stat before Open: opening a FIFO would block until a writer came.
	st, err := os.Stat(path)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &PosError{File: path, Msg: "too many levels of symbolic links (a symlink loop?)"}
	}
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, &PosError{File: path, Msg: "not a regular file"}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, &PosError{File: path, Msg: fmt.Sprintf("file is larger than %d MiB", MaxFileSize>>20)}
	}
	return data, nil
}

// decodeFile parses data strictly (unknown keys are errors) and returns the
// typed value and the document's root mapping node.
func decodeFile(name string, data []byte) (*Config, *yaml.Node, error) {
	docs := yaml.NewDecoder(bytes.NewReader(data))
	var doc, extra yaml.Node
	if err := docs.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, yamlErr(name, err)
	}
	switch err := docs.Decode(&extra); {
	case err == nil:
		return nil, nil, &PosError{File: name, Line: extra.Line, Col: extra.Column, Msg: "a config file holds one YAML document; remove the second \"---\""}
	case !errors.Is(err, io.EOF):
		return nil, nil, yamlErr(name, err)
	}
	cfg := &Config{}
	if len(doc.Content) == 0 {
		return cfg, &yaml.Node{Kind: yaml.MappingNode}, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, &PosError{File: name, Line: root.Line, Col: root.Column, Msg: "the file must be a mapping (key: value) at the top"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, yamlErr(name, err)
	}
	return cfg, root, nil
}

var lineRE = regexp.MustCompile(`line (\d+)(?:, column (\d+))?: (.*)`)

// yamlErr turns yaml.v3's error into one FILE:LINE:COL line.
func yamlErr(name string, err error) error {
	var pe *PosError
	if errors.As(err, &pe) {
		pe.File = name
		return pe
	}
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = strings.TrimSpace(msg)
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		text := m[3]
		if f := fieldNotFound.FindStringSubmatch(text); f != nil {
			text = fmt.Sprintf("unknown key %q", f[1])
		}
		return &PosError{File: name, Line: line, Col: col, Msg: text}
	}
	return &PosError{File: name, Msg: strings.ReplaceAll(msg, "\n", "; ")}
}

var fieldNotFound = regexp.MustCompile(`field (\S+) not found in type`)

// mergeRuntime decodes the user's runtime mapping over ours, so keys the user
// did not write keep their default values.
func mergeRuntime(rt *Runtime, name string, root *yaml.Node) error {
	n := lookup(root, "runtime")
	if n == nil {
		return nil
	}
	timeouts := rt.PhaseTimeouts
	rt.PhaseTimeouts = nil
	if err := n.Decode(rt); err != nil {
		return yamlErr(name, err)
	}
	merged := map[string]Duration{}
	for k, v := range timeouts {
		merged[k] = v
	}
	for k, v := range rt.PhaseTimeouts {
		merged[k] = v
	}
	rt.PhaseTimeouts = merged
	return nil
}

// mergeClasses overrides each named class's policy field by field.
func mergeClasses(out *Config, name string, root *yaml.Node) error {
	n := lookup(root, "classes")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &PosError{File: name, Line: n.Line, Col: n.Column, Msg: "classes must be a mapping of class name to policy"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		c := classify.Class(k.Value)
		if !c.Valid() {
			return &PosError{File: name, Line: k.Line, Col: k.Column, Msg: fmt.Sprintf("unknown class %q (known: %s)", k.Value, classNames())}
		}
		p := out.Classes[c]
		if err := v.Decode(&p); err != nil {
			return yamlErr(name, err)
		}
		out.Classes[c] = p
	}
	return nil
}

func classNames() string {
	var s []string
	for _, c := range classify.Classes {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

func mergeByName[T any](base, user []T, key func(T) string) []T {
	out := append([]T(nil), base...)
	idx := map[string]int{}
	for i, v := range out {
		idx[key(v)] = i
	}
	for _, v := range user {
		if i, ok := idx[key(v)]; ok && key(v) != "" {
			out[i] = v
			continue
		}
		idx[key(v)] = len(out)
		out = append(out, v)
	}
	return out
}

// dupName returns the first name that list holds twice, or "".
func dupName[T any](list []T, key func(T) string) string {
	seen := map[string]bool{}
	for _, v := range list {
		k := key(v)
		if seen[k] {
			return k
		}
		seen[k] = true
	}
	return ""
}

func clone(c *Config) *Config {
	out := *c
	out.Phases = append([]classify.PhaseSpec(nil), c.Phases...)
	out.Rules = append([]classify.RuleSpec(nil), c.Rules...)
	out.Ladders = append([]strategies.Ladder(nil), c.Ladders...)
	out.Workflows = append([]strategies.Workflow(nil), c.Workflows...)
	out.Classes = make(map[classify.Class]strategies.ClassPolicy, len(c.Classes))
	for k, v := range c.Classes {
		out.Classes[k] = v
	}
	out.Runtime.PhaseTimeouts = make(map[string]Duration, len(c.Runtime.PhaseTimeouts))
	for k, v := range c.Runtime.PhaseTimeouts {
		out.Runtime.PhaseTimeouts[k] = v
	}
	out.Compiled = nil
	return &out
}

// lookup returns the value node of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// posOf finds the node at path (keys, or "#N" for sequence items, or
// "name=X" for the item whose name is X) in root and makes a PosError there;
// when the path is not in this file it points at the file without a line.
func posOf(file string, root *yaml.Node, path []string, msg string) error {
	n := root
	for _, p := range path {
		if n == nil {
			break
		}
		var next *yaml.Node
		switch {
		case strings.HasPrefix(p, "name=") && n.Kind == yaml.SequenceNode:
			want := strings.TrimPrefix(p, "name=")
			for _, it := range n.Content {
				if nm := lookup(it, "name"); nm != nil && nm.Value == want {
					next = it
				}
			}
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	if n == nil || n == root {
		if root != nil && len(path) > 0 {
			return &PosError{File: file, Msg: strings.Join(path, ".") + ": " + msg}
		}
		return &PosError{File: file, Msg: msg}
	}
	return &PosError{File: file, Line: n.Line, Col: n.Column, Msg: msg}
}

// validate checks everything before anything is used and compiles the rules.
// file and root locate errors in the user's file; nil root means defaults.
func validate(c *Config, file string, root *yaml.Node) error {
	at := func(path []string, format string, a ...any) error {
		return posOf(file, root, path, fmt.Sprintf(format, a...))
	}
	rt := c.Runtime
	if rt.MaxAttempts < 1 {
		return at([]string{"runtime", "max_attempts"}, "max_attempts must be at least 1, got %d", rt.MaxAttempts)
	}
	if !(rt.Backoff.Multiplier >= 1) || math.IsInf(rt.Backoff.Multiplier, 0) {
		return at([]string{"runtime", "backoff", "multiplier"}, "backoff multiplier must be at least 1, got %g", rt.Backoff.Multiplier)
	}
	if rt.Backoff.Max < rt.Backoff.Initial {
		return at([]string{"runtime", "backoff", "max"}, "backoff max %s is below initial %s", rt.Backoff.Max.D(), rt.Backoff.Initial.D())
	}
	if rt.TailLines < 1 || rt.TailLines > 100000 {
		return at([]string{"runtime", "tail_lines"}, "tail_lines must be 1..100000, got %d", rt.TailLines)
	}
	if rt.MaxLine < 256 || rt.MaxLine > 1<<20 {
		return at([]string{"runtime", "max_line"}, "max_line must be 256..1048576, got %d", rt.MaxLine)
	}
	seenPhase := map[classify.Phase]bool{}
	for _, p := range c.Phases {
		seenPhase[p.Name] = true
	}
	for _, b := range []classify.Phase{classify.PhaseStart, classify.PhaseDecode, classify.PhaseDone, classify.PhaseDenoise} {
		seenPhase[b] = true
	}
	for name := range rt.PhaseTimeouts {
		if !seenPhase[classify.Phase(name)] {
			return at([]string{"runtime", "phase_timeouts", name}, "unknown phase %q in phase_timeouts", name)
		}
	}
	compiled, err := classify.Compile(c.Rules, c.Phases)
	if err != nil {
		var re *classify.RuleError
		if errors.As(err, &re) {
			if re.Phase && re.Index >= 0 && re.Index < len(c.Phases) {
				return at([]string{"phases", "name=" + string(c.Phases[re.Index].Name)}, "%v", re.Err)
			}
			if !re.Phase && re.Index >= 0 && re.Index < len(c.Rules) {
				return at([]string{"rules", "name=" + c.Rules[re.Index].Name}, "rule %q: %v", c.Rules[re.Index].Name, re.Err)
			}
		}
		return at(nil, "%v", err)
	}
	c.Compiled = compiled
	ladders := map[string]bool{}
	for _, l := range c.Ladders {
		if err := l.Validate(); err != nil {
			return at([]string{"ladders", "name=" + l.Name}, "ladder %q: %v", l.Name, err)
		}
		ladders[l.Name] = true
	}
	workflows := map[string]bool{}
	for _, w := range c.Workflows {
		if err := w.Validate(); err != nil {
			return at([]string{"workflows", "name=" + w.Name}, "workflow %q: %v", w.Name, err)
		}
		workflows[w.Name] = true
	}
	var classes []string
	for cl := range c.Classes {
		classes = append(classes, string(cl))
	}
	sort.Strings(classes)
	for _, name := range classes {
		cl := classify.Class(name)
		p := c.Classes[cl]
		if !cl.Valid() {
			return at([]string{"classes", name}, "unknown class %q", name)
		}
		if err := p.Validate(); err != nil {
			return at([]string{"classes", name}, "class %s: %v", name, err)
		}
		if p.Ladder != "" && !ladders[p.Ladder] {
			return at([]string{"classes", name, "ladder"}, "class %s names ladder %q, which is not defined", name, p.Ladder)
		}
		if p.Workflow != "" && !workflows[p.Workflow] {
			return at([]string{"classes", name, "workflow"}, "class %s names workflow %q, which is not defined", name, p.Workflow)
		}
	}
	for _, cl := range classify.Classes {
		if cl == classify.ClassSuccess {
			continue
		}
		if _, ok := c.Classes[cl]; !ok {
			return at([]string{"classes"}, "class %s has no policy", cl)
		}
	}
	return nil
}

// Marshal writes the config as YAML (for `config print`).
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// Ladder returns the ladder named name.
func (c *Config) Ladder(name string) (strategies.Ladder, bool) {
	for _, l := range c.Ladders {
		if l.Name == name {
			return l, true
		}
	}
	return strategies.Ladder{}, false
}

// Workflow returns the workflow named name.
func (c *Config) Workflow(name string) (strategies.Workflow, bool) {
	for _, w := range c.Workflows {
		if w.Name == name {
			return w, true
		}
	}
	return strategies.Workflow{}, false
}
