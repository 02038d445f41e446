package strategies

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/wan"
)

// Placeholders workflow texts may use; Vars fills them from the command and
// the attempt's Result.
var placeholders = []string{
	"evidence", "phase", "argv", "ckpt_dir", "task", "size", "frames",
	"world_size", "class", "save_file", "checkpoints",
}

var placeholderRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// Workflow is a guided fix for a class the guard cannot fix by relaunching:
// numbered steps, each with an optional check command.
type Workflow struct {
	Name  string `yaml:"name" json:"name"`
	Title string `yaml:"title" json:"title"`
	// Summary is printed under the title.
	Summary string `yaml:"summary,omitempty" json:"summary,omitempty"`
	// Classes are the classes the workflow is for.
	Classes []classify.Class `yaml:"classes" json:"classes"`
	// Evidence are regular expressions over the Result's evidence line. When
	// one matches, this workflow is chosen over the class policy's own;
	// workflows are tried in name order.
	Evidence []string `yaml:"evidence,omitempty" json:"evidence,omitempty"`
	Steps    []Step   `yaml:"steps" json:"steps"`
}

// Step is one numbered step of a workflow.
type Step struct {
	Instruction string `yaml:"instruction" json:"instruction"`
	Check       *Check `yaml:"check,omitempty" json:"check,omitempty"`
	// Expected says what the user should see when the step is done.
	Expected string   `yaml:"expected,omitempty" json:"expected,omitempty"`
	Tips     []string `yaml:"tips,omitempty" json:"tips,omitempty"`
}

// Check is a command that shows whether a step is done.
type Check struct {
	// Command is the argv to run (no shell).
	Command []string `yaml:"command" json:"command"`
	// Expect is a regular expression the command's output must match.
	Expect string `yaml:"expect,omitempty" json:"expect,omitempty"`
}

// Validate checks names, classes, regular expressions, steps and that texts
// use only known placeholders.
func (w Workflow) Validate() error {
	if !validName(w.Name) {
		return &FieldError{Field: "name", Err: fmt.Errorf("%w: %q (want lowercase words joined by '-')", ErrInvalid, w.Name)}
	}
	if w.Title == "" {
		return &FieldError{Field: "title", Err: fmt.Errorf("%w: title", ErrMissing)}
	}
	if len(w.Classes) == 0 {
		return &FieldError{Field: "classes", Err: fmt.Errorf("%w: at least one class", ErrMissing)}
	}
	for i, c := range w.Classes {
		if !c.Valid() || c == classify.ClassSuccess {
			return &FieldError{Field: "classes[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%w %q", ErrUnknownClass, c)}
		}
	}
	for i, e := range w.Evidence {
		if _, err := regexp.Compile(e); err != nil {
			return &FieldError{Field: "evidence[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
		}
	}
	if err := checkPlaceholders("title", w.Title); err != nil {
		return err
	}
	if err := checkPlaceholders("summary", w.Summary); err != nil {
		return err
	}
	if len(w.Steps) == 0 {
		return &FieldError{Field: "steps", Err: fmt.Errorf("%w: at least one step", ErrMissing)}
	}
	for i, s := range w.Steps {
		if err := s.validate(); err != nil {
			return within("steps["+strconv.Itoa(i)+"]", err)
		}
	}
	return nil
}

func (s Step) validate() error {
	if s.Instruction == "" {
		return &FieldError{Field: "instruction", Err: fmt.Errorf("%w: instruction", ErrMissing)}
	}
	texts := []struct{ field, text string }{{"instruction", s.Instruction}, {"expected", s.Expected}}
	for i, t := range s.Tips {
		texts = append(texts, struct{ field, text string }{"tips[" + strconv.Itoa(i) + "]", t})
	}
	if s.Check != nil {
		if len(s.Check.Command) == 0 || s.Check.Command[0] == "" {
			return &FieldError{Field: "check.command", Err: fmt.Errorf("%w: command", ErrMissing)}
		}
		if _, err := regexp.Compile(s.Check.Expect); err != nil {
			return &FieldError{Field: "check.expect", Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
		}
		for i, a := range s.Check.Command {
			texts = append(texts, struct{ field, text string }{"check.command[" + strconv.Itoa(i) + "]", a})
		}
	}
	for _, t := range texts {
		if err := checkPlaceholders(t.field, t.text); err != nil {
			return err
		}
	}
	return nil
}

func checkPlaceholders(field, text string) error {
	for _, m := range placeholderRE.FindAllStringSubmatch(text, -1) {
		if !knownPlaceholder(m[1]) {
			return &FieldError{Field: field, Err: fmt.Errorf("%w: unknown placeholder {%s} (known: %s)", ErrInvalid, m[1], strings.Join(placeholders, ", "))}
		}
	}
	return nil
}

func knownPlaceholder(name string) bool {
	return slices.Contains(placeholders, name)
}

func validName(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Vars returns the placeholder values for a command and an attempt's
// Result. Values that are not known are left out, so their placeholders
// stay visible in the text.
func Vars(cmd wan.Command, res classify.Result) map[string]string {
	v := map[string]string{}
	put := func(k, val string) {
		if val != "" {
			v[k] = val
		}
	}
	put("evidence", res.Evidence)
	put("phase", string(res.Phase))
	put("class", string(res.Class))
	put("argv", ShellJoin(cmd.Argv))
	put("ckpt_dir", cmd.CkptDir)
	put("task", cmd.EffectiveTask())
	put("size", cmd.EffectiveSize())
	if n := cmd.EffectiveFrames(); n > 0 {
		put("frames", strconv.Itoa(n))
	}
	if n := cmd.WorldSize(); n > 0 {
		put("world_size", strconv.Itoa(n))
	}
	put("save_file", cmd.SaveFile)
	if t, ok := wan.Lookup(cmd.EffectiveTask()); ok {
		put("checkpoints", strings.Join(append([]string{t.VAE}, t.Checkpoints...), ", "))
	}
	return v
}

// unknownVars stand in for what a command does not say (a front-end
// without --task, say), so a printed workflow reads as prose.
var unknownVars = map[string]string{
	"evidence": "no error line", "phase": "an unknown phase", "class": "this failure",
	"argv": "your command", "ckpt_dir": "your --ckpt_dir", "task": "your task",
	"size": "your size", "frames": "the default", "world_size": "the number of processes",
	"save_file": "the output file", "checkpoints": "the checkpoint files of your task",
}

// VarsForPrint is Vars with every placeholder filled: what the command does
// not say is named in words. Use it for text a person reads.
func VarsForPrint(cmd wan.Command, res classify.Result) map[string]string {
	v := Vars(cmd, res)
	for k, d := range unknownVars {
		if _, ok := v[k]; !ok {
			v[k] = d
		}
	}
	return v
}

func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "{") {
		return s
	}
	return placeholderRE.ReplaceAllStringFunc(s, func(m string) string {
		if val, ok := vars[m[1:len(m)-1]]; ok {
			return val
		}
		return m
	})
}

// Expand returns a copy of w with placeholders filled from vars; a
// placeholder without a value is left as written.
func (w Workflow) Expand(vars map[string]string) Workflow {
	out := w
	out.Title = expand(w.Title, vars)
	out.Summary = expand(w.Summary, vars)
	out.Steps = make([]Step, len(w.Steps))
	for i, s := range w.Steps {
		e := Step{Instruction: expand(s.Instruction, vars), Expected: expand(s.Expected, vars)}
		for _, t := range s.Tips {
			e.Tips = append(e.Tips, expand(t, vars))
		}
		if s.Check != nil {
			c := &Check{Expect: s.Check.Expect}
			for _, a := range s.Check.Command {
				c.Command = append(c.Command, expand(a, vars))
			}
			e.Check = c
		}
		out.Steps[i] = e
	}
	return out
}

// Render returns the workflow as text for a terminal: the title, the
// summary, then numbered steps with their check command, expected outcome
// and tips.
func (w Workflow) Render(vars map[string]string) string {
	x := w.Expand(vars)
	var b strings.Builder
	b.WriteString(x.Title)
	b.WriteString("\n")
	if x.Summary != "" {
		b.WriteString("\n")
		b.WriteString(strings.TrimSpace(x.Summary))
		b.WriteString("\n")
	}
	for i, s := range x.Steps {
		fmt.Fprintf(&b, "\n%d. %s\n", i+1, strings.TrimSpace(s.Instruction))
		if s.Check != nil {
			fmt.Fprintf(&b, "   check:    %s\n", ShellJoin(s.Check.Command))
		}
		if s.Expected != "" {
			fmt.Fprintf(&b, "   expected: %s\n", strings.TrimSpace(s.Expected))
		}
		for _, t := range s.Tips {
			fmt.Fprintf(&b, "   tip:      %s\n", strings.TrimSpace(t))
		}
	}
	return b.String()
}

// ShellJoin quotes argv for a POSIX shell, for display.
func ShellJoin(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = shellQuote(a)
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=:,+@%^", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
