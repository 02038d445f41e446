package strategies

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/wan"
)

// Special values of Rung.Size, Rung.FrameNum and Rung.Ulysses.
const (
	// Smaller steps --size to the next smaller size of the same orientation
	// the task allows, or the frame flag to the task's next frame step.
	Smaller = "smaller"
	// World sets --ulysses_size to the launcher's world size.
	World = "world"
)

// Flags no ladder may change: the job's identity. --size, the frame flags
// and --ulysses_size are changed only through Rung.Size, Rung.FrameNum and
// Rung.Ulysses, which keep their rules.
var (
	protectedFlags = []string{"--task", "--ckpt_dir"}
	dedicatedFlags = []string{"--size", "--frame_num", "--infer_frames", "--ulysses_size", "--base_seed", "--save_file"}
)

// ClassPolicy says what to do about one failure class.
type ClassPolicy struct {
	// Strategy is retry, backoff, fallback, restore, guide or shutdown.
	Strategy Action `yaml:"strategy" json:"strategy"`
	// Budget is how many failures of this class may be followed by a
	// relaunch; the next one gets Then.
	Budget int `yaml:"budget" json:"budget"`
	// Ladder names the ladder a fallback walks.
	Ladder string `yaml:"ladder,omitempty" json:"ladder,omitempty"`
	// Workflow names the workflow printed when the class stops the run.
	Workflow string `yaml:"workflow,omitempty" json:"workflow,omitempty"`
	// Then is what happens when the budget or the ladder runs out: guide,
	// shutdown or give_up. Empty means guide when Workflow is set, else give_up.
	Then Action `yaml:"then,omitempty" json:"then,omitempty"`
}

// Validate checks the policy on its own; references to ladders and
// workflows are checked by Policy.Validate.
func (c ClassPolicy) Validate() error {
	if !c.Strategy.Strategy() {
		return &FieldError{Field: "strategy", Err: fmt.Errorf("%w %q (want retry, backoff, fallback, restore, guide or shutdown)", ErrUnknownAction, c.Strategy)}
	}
	if c.Budget < 0 {
		return &FieldError{Field: "budget", Err: fmt.Errorf("%w: %d is negative", ErrInvalid, c.Budget)}
	}
	if c.Strategy == ActionFallback && c.Ladder == "" {
		return &FieldError{Field: "ladder", Err: fmt.Errorf("%w: fallback needs a ladder", ErrMissing)}
	}
	if c.Strategy != ActionFallback && c.Ladder != "" {
		return &FieldError{Field: "ladder", Err: fmt.Errorf("%w: only fallback walks a ladder", ErrInvalid)}
	}
	if !c.Then.validThen() {
		return &FieldError{Field: "then", Err: fmt.Errorf("%w %q (want guide, shutdown or give_up)", ErrUnknownAction, c.Then)}
	}
	if (c.Strategy == ActionGuide || c.Then == ActionGuide) && c.Workflow == "" {
		return &FieldError{Field: "workflow", Err: fmt.Errorf("%w: guide needs a workflow", ErrMissing)}
	}
	return nil
}

// then is the action taken when the budget or ladder runs out.
func (c ClassPolicy) then() Action {
	switch {
	case c.Then != "":
		return c.Then
	case c.Workflow != "":
		return ActionGuide
	}
	return ActionGiveUp
}

// Cond says which commands and failures a rung applies to. Empty fields
// match everything.
type Cond struct {
	// Tasks are --task values (generate.py's default task when absent).
	Tasks []string `yaml:"tasks,omitempty" json:"tasks,omitempty"`
	// MultiGPU, when set, must equal the command's MultiGPU.
	MultiGPU *bool `yaml:"multi_gpu,omitempty" json:"multi_gpu,omitempty"`
	// Phases are the phases of the failure the rung helps with. A failure
	// in another phase skips the rung for good; one with no phase does not.
	Phases []classify.Phase `yaml:"phases,omitempty" json:"phases,omitempty"`
	// Launchers are Command.Launcher values ("python", "torchrun").
	Launchers []string `yaml:"launchers,omitempty" json:"launchers,omitempty"`
	// Scripts are base names of the script ("generate.py", "wgp.py").
	Scripts []string `yaml:"scripts,omitempty" json:"scripts,omitempty"`
}

// Fits reports whether the command matches Tasks, MultiGPU, Launchers and
// Scripts.
func (c Cond) Fits(cmd wan.Command) bool {
	if len(c.Tasks) > 0 && !slices.Contains(c.Tasks, cmd.EffectiveTask()) {
		return false
	}
	if c.MultiGPU != nil && *c.MultiGPU != cmd.MultiGPU {
		return false
	}
	if len(c.Launchers) > 0 && !slices.Contains(c.Launchers, cmd.Launcher) {
		return false
	}
	return len(c.Scripts) == 0 || slices.Contains(c.Scripts, cmd.ScriptName)
}

// InPhase reports whether a failure in phase may take the rung. An empty
// phase (not known) matches.
func (c Cond) InPhase(phase classify.Phase) bool {
	return phase == "" || len(c.Phases) == 0 || slices.Contains(c.Phases, phase)
}

// Validate checks that tasks are known and no list item is empty.
func (c Cond) Validate() error {
	for i, t := range c.Tasks {
		if _, ok := wan.Lookup(t); !ok {
			return &FieldError{Field: "tasks[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%w %q", ErrUnknownTask, t)}
		}
	}
	for i, p := range c.Phases {
		if p == "" {
			return &FieldError{Field: "phases[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%w: empty phase", ErrInvalid)}
		}
	}
	if i := slices.Index(c.Launchers, ""); i >= 0 {
		return &FieldError{Field: "launchers[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%w: empty name", ErrInvalid)}
	}
	if i := slices.Index(c.Scripts, ""); i >= 0 {
		return &FieldError{Field: "scripts[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%w: empty name", ErrInvalid)}
	}
	return nil
}

// FilePatch changes a config file for the attempt; the runner applies it
// and restores the file afterwards. Exactly one of Merge and Replace is set.
type FilePatch struct {
	// Path is the file to change.
	Path string `yaml:"path" json:"path"`
	// Merge is a JSON merge patch (RFC 7396), applied to a JSON or YAML file:
	// objects merge key by key, null deletes a key, anything else replaces.
	Merge map[string]any `yaml:"merge,omitempty" json:"merge,omitempty"`
	// Replace is the path of a file swapped in whole.
	Replace string `yaml:"replace,omitempty" json:"replace,omitempty"`
}

// Validate checks Path and that exactly one of Merge and Replace is set.
func (f FilePatch) Validate() error {
	if f.Path == "" {
		return &FieldError{Field: "path", Err: fmt.Errorf("%w: file path", ErrMissing)}
	}
	if (len(f.Merge) > 0) == (f.Replace != "") {
		return &FieldError{Field: "merge", Err: fmt.Errorf("%w: set exactly one of merge and replace", ErrInvalid)}
	}
	return nil
}

// Rung is one step of a ladder: changes to argv, environment and files,
// applied on top of the rungs before it.
type Rung struct {
	Name string `yaml:"name" json:"name"`
	When Cond   `yaml:"when,omitempty" json:"when,omitempty"`
	// Set gives script flags a value (flag -> value).
	Set map[string]string `yaml:"set,omitempty" json:"set,omitempty"`
	// Add adds store_true flags.
	Add []string `yaml:"add,omitempty" json:"add,omitempty"`
	// Remove removes flags and their values.
	Remove []string `yaml:"remove,omitempty" json:"remove,omitempty"`
	// Env sets environment variables. For the PyTorch allocator variables
	// the options are merged into what the user set.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Size is "smaller" or an explicit size, turned to the command's
	// orientation and used only when the task allows it and it is smaller.
	Size string `yaml:"size,omitempty" json:"size,omitempty"`
	// FrameNum is "smaller" or a number for the task's frame flag
	// (--frame_num, or --infer_frames for s2v); only ever lowered.
	FrameNum string `yaml:"frame_num,omitempty" json:"frame_num,omitempty"`
	// Ulysses "world" sets --ulysses_size to the world size when that
	// divides the task's head count.
	Ulysses string     `yaml:"ulysses,omitempty" json:"ulysses,omitempty"`
	File    *FilePatch `yaml:"file,omitempty" json:"file,omitempty"`
	// Trade says in plain words what the rung costs ("T5 runs on the CPU").
	Trade string `yaml:"trade,omitempty" json:"trade,omitempty"`
}

func checkFlag(field, flag string) error {
	if len(flag) < 2 || flag[0] != '-' {
		return &FieldError{Field: field, Err: fmt.Errorf("%w: %q is not a flag", ErrInvalid, flag)}
	}
	if slices.Contains(protectedFlags, flag) {
		return &FieldError{Field: field, Err: fmt.Errorf("%w: %s", ErrProtectedFlag, flag)}
	}
	if slices.Contains(dedicatedFlags, flag) {
		return &FieldError{Field: field, Err: fmt.Errorf("%w: %s is changed through size, frame_num or ulysses, or pinned by the runner", ErrProtectedFlag, flag)}
	}
	return nil
}

// Validate checks the rung on its own.
func (r Rung) Validate() error {
	if r.Name == "" {
		return &FieldError{Field: "name", Err: fmt.Errorf("%w: rung name", ErrMissing)}
	}
	if err := r.When.Validate(); err != nil {
		return within("when", err)
	}
	for _, flag := range slices.Sorted(maps.Keys(r.Set)) {
		if err := checkFlag("set."+flag, flag); err != nil {
			return err
		}
		if known, takes := wan.KnownFlag(flag); known && !takes {
			return &FieldError{Field: "set." + flag, Err: fmt.Errorf("%w: %s takes no value; use add", ErrInvalid, flag)}
		}
	}
	for i, flag := range r.Add {
		field := "add[" + strconv.Itoa(i) + "]"
		if err := checkFlag(field, flag); err != nil {
			return err
		}
		if known, takes := wan.KnownFlag(flag); known && takes {
			return &FieldError{Field: field, Err: fmt.Errorf("%w: %s takes a value; use set", ErrInvalid, flag)}
		}
	}
	for i, flag := range r.Remove {
		if err := checkFlag("remove["+strconv.Itoa(i)+"]", flag); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		if !validEnvName(k) {
			return &FieldError{Field: "env." + k, Err: fmt.Errorf("%w: %q is not an environment variable name", ErrInvalid, k)}
		}
	}
	if r.Size != "" && r.Size != Smaller {
		if _, _, ok := wan.ParseSize(r.Size); !ok {
			return &FieldError{Field: "size", Err: fmt.Errorf("%w: %q (want %q or width*height)", ErrInvalid, r.Size, Smaller)}
		}
	}
	if r.FrameNum != "" && r.FrameNum != Smaller {
		if n, err := strconv.Atoi(r.FrameNum); err != nil || n < 1 {
			return &FieldError{Field: "frame_num", Err: fmt.Errorf("%w: %q (want %q or a positive number)", ErrInvalid, r.FrameNum, Smaller)}
		}
	}
	if r.Ulysses != "" && r.Ulysses != World {
		return &FieldError{Field: "ulysses", Err: fmt.Errorf("%w: %q (want %q)", ErrInvalid, r.Ulysses, World)}
	}
	if r.File != nil {
		if err := r.File.Validate(); err != nil {
			return within("file", err)
		}
	}
	if len(r.Set)+len(r.Add)+len(r.Remove)+len(r.Env) == 0 && r.Size == "" && r.FrameNum == "" && r.Ulysses == "" && r.File == nil {
		return &FieldError{Field: "name", Err: fmt.Errorf("%w: rung %q changes nothing", ErrInvalid, r.Name)}
	}
	return nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Ladder is an ordered list of rungs a fallback walks, each applied on top
// of the ones before it. Rungs whose When does not fit the command are
// never taken, and rungs that would change nothing are skipped.
type Ladder struct {
	Name string `yaml:"name" json:"name"`
	// Exhausted is the verdict printed when no rung is left ("not feasible
	// with the official CLI on this GPU").
	Exhausted string `yaml:"exhausted,omitempty" json:"exhausted,omitempty"`
	Rungs     []Rung `yaml:"rungs" json:"rungs"`
}

// Validate checks the name, that rung names are unique, and every rung.
func (l Ladder) Validate() error {
	if l.Name == "" {
		return &FieldError{Field: "name", Err: fmt.Errorf("%w: ladder name", ErrMissing)}
	}
	if len(l.Rungs) == 0 {
		return &FieldError{Field: "rungs", Err: fmt.Errorf("%w: a ladder needs rungs", ErrMissing)}
	}
	seen := map[string]bool{}
	for i, r := range l.Rungs {
		if err := r.Validate(); err != nil {
			return within("rungs["+strconv.Itoa(i)+"]", err)
		}
		if seen[r.Name] {
			return &FieldError{Field: "rungs[" + strconv.Itoa(i) + "].name", Err: fmt.Errorf("%w %q", ErrDuplicate, r.Name)}
		}
		seen[r.Name] = true
	}
	return nil
}

// Policy is everything Decide needs besides the attempt's facts.
type Policy struct {
	// MaxAttempts caps the attempts of the run, the first included; 0 = no cap.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// Deadline caps the run's wall-clock time from its start; 0 = none.
	Deadline time.Duration `yaml:"deadline" json:"deadline"`
	// Backoff times the backoff strategy.
	Backoff Backoff `yaml:"backoff" json:"backoff"`
	// StableAfter: an attempt that ran longer resets the backoff exponent;
	// 0 = never.
	StableAfter time.Duration `yaml:"stable_after" json:"stable_after"`
	// Classes maps every class but success to its policy.
	Classes map[classify.Class]ClassPolicy `yaml:"classes" json:"classes"`
	// Ladders and Workflows by name; see Spec for their file form.
	Ladders   map[string]Ladder   `yaml:"-" json:"ladders"`
	Workflows map[string]Workflow `yaml:"-" json:"workflows"`
}

// Validate checks the numbers, that every class but success has a policy,
// and that every ladder and workflow a policy names exists.
func (p *Policy) Validate() error {
	switch {
	case p.MaxAttempts < 0:
		return &FieldError{Field: "max_attempts", Err: fmt.Errorf("%w: %d is negative", ErrInvalid, p.MaxAttempts)}
	case p.Deadline < 0:
		return &FieldError{Field: "deadline", Err: fmt.Errorf("%w: %s is negative", ErrInvalid, p.Deadline)}
	case p.StableAfter < 0:
		return &FieldError{Field: "stable_after", Err: fmt.Errorf("%w: %s is negative", ErrInvalid, p.StableAfter)}
	}
	if err := p.Backoff.Validate(); err != nil {
		return within("backoff", err)
	}
	for _, c := range classify.Classes {
		if _, ok := p.Classes[c]; !ok && c != classify.ClassSuccess {
			return &FieldError{Field: "classes." + string(c), Err: fmt.Errorf("%w: no policy for class %s", ErrMissing, c)}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Ladders)) {
		l := p.Ladders[name]
		if l.Name != name {
			return &FieldError{Field: "ladders." + name + ".name", Err: fmt.Errorf("%w: %q under key %q", ErrInvalid, l.Name, name)}
		}
		if err := l.Validate(); err != nil {
			return within("ladders."+name, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Workflows)) {
		w := p.Workflows[name]
		if w.Name != name {
			return &FieldError{Field: "workflows." + name + ".name", Err: fmt.Errorf("%w: %q under key %q", ErrInvalid, w.Name, name)}
		}
		if err := w.Validate(); err != nil {
			return within("workflows."+name, err)
		}
	}
	return validateClasses(p.Classes, p.Ladders, p.Workflows)
}

func validateClasses(classes map[classify.Class]ClassPolicy, ladders map[string]Ladder, workflows map[string]Workflow) error {
	for _, c := range slices.Sorted(maps.Keys(classes)) {
		cp := classes[c]
		field := "classes." + string(c)
		if !c.Valid() || c == classify.ClassSuccess {
			return &FieldError{Field: field, Err: fmt.Errorf("%w %q", ErrUnknownClass, c)}
		}
		if err := cp.Validate(); err != nil {
			return within(field, err)
		}
		if ladders != nil && cp.Ladder != "" {
			if _, ok := ladders[cp.Ladder]; !ok {
				return &FieldError{Field: field + ".ladder", Err: fmt.Errorf("%w %q", ErrUnknownLadder, cp.Ladder)}
			}
		}
		if workflows != nil && cp.Workflow != "" {
			if _, ok := workflows[cp.Workflow]; !ok {
				return &FieldError{Field: field + ".workflow", Err: fmt.Errorf("%w %q", ErrUnknownWorkflow, cp.Workflow)}
			}
		}
	}
	return nil
}

// Spec is the file form of class policies, ladders and workflows, as in
// configs/default.yaml. A user's file has the same shape.
type Spec struct {
	Classes   map[classify.Class]ClassPolicy `yaml:"classes,omitempty" json:"classes,omitempty"`
	Ladders   []Ladder                       `yaml:"ladders,omitempty" json:"ladders,omitempty"`
	Workflows []Workflow                     `yaml:"workflows,omitempty" json:"workflows,omitempty"`
}

// Validate checks every entry and that names are unique. References from
// classes to ladders and workflows are checked only against the ones this
// Spec defines, and only when it defines some of that kind; Policy.Validate
// checks them after Overlay.
func (s Spec) Validate() error {
	ladders := map[string]Ladder{}
	for i, l := range s.Ladders {
		field := "ladders[" + strconv.Itoa(i) + "]"
		if err := l.Validate(); err != nil {
			return within(field, err)
		}
		if _, dup := ladders[l.Name]; dup {
			return &FieldError{Field: field + ".name", Err: fmt.Errorf("%w %q", ErrDuplicate, l.Name)}
		}
		ladders[l.Name] = l
	}
	workflows := map[string]Workflow{}
	for i, w := range s.Workflows {
		field := "workflows[" + strconv.Itoa(i) + "]"
		if err := w.Validate(); err != nil {
			return within(field, err)
		}
		if _, dup := workflows[w.Name]; dup {
			return &FieldError{Field: field + ".name", Err: fmt.Errorf("%w %q", ErrDuplicate, w.Name)}
		}
		workflows[w.Name] = w
	}
	if len(ladders) == 0 {
		ladders = nil
	}
	if len(workflows) == 0 {
		workflows = nil
	}
	return validateClasses(s.Classes, ladders, workflows)
}

// Overlay returns a copy of p with the spec's classes, ladders and
// workflows added, replacing those of the same name. It does not validate;
// call Policy.Validate on the result.
func (s Spec) Overlay(p Policy) Policy {
	p.Classes = maps.Clone(p.Classes)
	if p.Classes == nil {
		p.Classes = map[classify.Class]ClassPolicy{}
	}
	maps.Copy(p.Classes, s.Classes)
	p.Ladders = maps.Clone(p.Ladders)
	if p.Ladders == nil {
		p.Ladders = map[string]Ladder{}
	}
	for _, l := range s.Ladders {
		p.Ladders[l.Name] = l
	}
	p.Workflows = maps.Clone(p.Workflows)
	if p.Workflows == nil {
		p.Workflows = map[string]Workflow{}
	}
	for _, w := range s.Workflows {
		p.Workflows[w.Name] = w
	}
	return p
}
