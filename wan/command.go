package wan

import (
	"path"
	"slices"
	"strconv"
	"strings"
)

// Launcher names Command.Launcher takes besides the base name of another
// program.
const (
	LauncherPython   = "python"                // python generate.py ...
	LauncherTorchrun = "torchrun"              // torchrun --nproc_per_node=N generate.py ...
	LauncherDistRun  = "torch.distributed.run" // python -m torch.distributed.run (or .launch) ...
)

// torchrun options that take no value; every other option takes one.
var torchrunBool = []string{
	"--standalone", "--module", "-m", "--no-python", "--run-path",
	"--use-env", "--virtual-local-rank",
}

// Command is a launch line read the way its launcher and generate.py read it.
// Flags before the script belong to the launcher, flags after it to the
// script. Fields hold what the command says; the Effective methods fill in
// generate.py's defaults.
type Command struct {
	// Argv is the launch line as given (not copied).
	Argv []string
	// Launcher is LauncherPython, LauncherTorchrun, LauncherDistRun, or the
	// base name of another program ("accelerate", "generate.py").
	Launcher string
	// NProc is --nproc_per_node for distributed launchers (0 when it is not
	// a number, such as "gpu" or "auto"), else 1.
	NProc int
	// NNodes is --nnodes (0 when it is a range such as "1:2"), else 1.
	NNodes int
	// Script is the index in Argv of the script (or module) whose flags the
	// argv helpers edit; 0 when argv[0] is itself the program.
	Script int
	// ScriptName is the base name of Argv[Script] ("generate.py", "wgp.py").
	ScriptName string
	// Generate is true when the script is Wan's generate.py, so its flag
	// table, defaults and abbreviations apply.
	Generate bool

	Task     string
	Size     string
	FrameNum int // --frame_num; 0 when absent
	// InferFrames is s2v's --infer_frames; 0 when absent.
	InferFrames  int
	Seed         int64 // --base_seed; -1 when absent
	SaveFile     string
	CkptDir      string
	Ulysses      int   // --ulysses_size; 0 when absent
	OffloadModel *bool // --offload_model (str2bool); nil when absent
	T5CPU        bool
	ConvertDtype bool
	DitFSDP      bool
	T5FSDP       bool
	// MultiGPU is true when a distributed launcher runs more than one
	// process, or a number it does not state.
	MultiGPU bool
	// Invalid names the script flags whose values generate.py would reject
	// at parse time (not a number, not a str2bool value), as "--flag=value".
	Invalid []string
}

type layout struct {
	launcher string
	script   int
	generate bool
	nproc    string
	nnodes   string
}

// Parse reads a launch line. It never fails: what it cannot read stays at
// its zero value (Seed: -1) and malformed values are listed in Invalid.
func Parse(argv []string) Command {
	l := layoutOf(argv)
	c := Command{Argv: argv, Launcher: l.launcher, Script: l.script, Generate: l.generate, Seed: -1, NProc: 1, NNodes: 1}
	if len(argv) == 0 {
		return c
	}
	c.ScriptName = path.Base(argv[l.script])
	if c.distributed() {
		c.NProc = atoiOr(l.nproc, 1)
		c.NNodes = atoiOr(l.nnodes, 1)
		c.MultiGPU = c.WorldSize() != 1
	}
	args, _ := scan(argv, l)
	for _, a := range args {
		switch a.Flag {
		case "--task":
			c.Task = a.Value
		case "--size":
			c.Size = a.Value
		case "--ckpt_dir":
			c.CkptDir = a.Value
		case "--save_file":
			c.SaveFile = a.Value
		case "--frame_num":
			c.FrameNum = c.intValue(a, c.FrameNum)
		case "--infer_frames":
			c.InferFrames = c.intValue(a, c.InferFrames)
		case "--ulysses_size":
			c.Ulysses = c.intValue(a, c.Ulysses)
		case "--base_seed":
			if n, err := strconv.ParseInt(a.Value, 10, 64); err == nil {
				c.Seed = n
			} else {
				c.Invalid = append(c.Invalid, a.Flag+"="+a.Value)
			}
		case "--offload_model":
			if b, ok := ParseBool(a.Value); ok {
				c.OffloadModel = &b
			} else {
				c.Invalid = append(c.Invalid, a.Flag+"="+a.Value)
			}
		case "--t5_cpu":
			c.T5CPU = true
		case "--convert_model_dtype":
			c.ConvertDtype = true
		case "--dit_fsdp":
			c.DitFSDP = true
		case "--t5_fsdp":
			c.T5FSDP = true
		}
	}
	return c
}

func (c *Command) intValue(a Arg, old int) int {
	n, err := strconv.Atoi(a.Value)
	if err != nil {
		c.Invalid = append(c.Invalid, a.Flag+"="+a.Value)
		return old
	}
	return n
}

func atoiOr(s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func (c Command) distributed() bool {
	return c.Launcher == LauncherTorchrun || c.Launcher == LauncherDistRun
}

// IsWan reports whether the script is Wan's generate.py (Generate).
func (c Command) IsWan() bool { return c.Generate }

// Distributed reports whether a torch distributed launcher starts the script.
func (c Command) Distributed() bool { return c.distributed() }

// WorldSize is NProc × NNodes under a distributed launcher, 1 otherwise, and
// 0 when the launcher does not state a number.
func (c Command) WorldSize() int {
	if !c.distributed() {
		return 1
	}
	return c.NProc * c.NNodes
}

// EffectiveTask is --task, or generate.py's default for generate.py, or "".
func (c Command) EffectiveTask() string {
	if c.Task != "" || !c.Generate {
		return c.Task
	}
	return DefaultTask
}

// EffectiveSize is --size, or generate.py's default for generate.py, or "".
func (c Command) EffectiveSize() string {
	if c.Size != "" || !c.Generate {
		return c.Size
	}
	return DefaultSize
}

// EffectiveFrames is the task's frame flag (--frame_num, --infer_frames for
// s2v) or the task's default; 0 for an unknown task.
func (c Command) EffectiveFrames() int {
	t, ok := lookup(c.EffectiveTask())
	if !ok {
		return c.FrameNum
	}
	n := c.FrameNum
	if t.FrameFlag == "--infer_frames" {
		n = c.InferFrames
	}
	if n > 0 {
		return n
	}
	return t.DefaultFrames
}

// EffectiveUlysses is --ulysses_size, default 1.
func (c Command) EffectiveUlysses() int {
	if c.Ulysses > 0 {
		return c.Ulysses
	}
	return 1
}

// Offload is the --offload_model generate.py will use: the flag, else True
// for a world size of 1 and False otherwise.
func (c Command) Offload() bool {
	if c.OffloadModel != nil {
		return *c.OffloadModel
	}
	return c.WorldSize() == 1
}

// Problems lists what generate.py would reject in this command before
// loading any model: invalid values, an unknown task, an unsupported size,
// a ulysses size that is not the world size or does not divide the heads,
// FSDP or sequence parallelism without a distributed launcher. Only
// generate.py commands are checked.
func (c Command) Problems() []string {
	if !c.Generate {
		return nil
	}
	var out []string
	for _, v := range c.Invalid {
		out = append(out, "invalid value "+v)
	}
	task := c.EffectiveTask()
	t, ok := lookup(task)
	if !ok {
		return append(out, "unknown task "+strconv.Quote(task))
	}
	if size := c.EffectiveSize(); !t.AllowsSize(size) {
		out = append(out, "size "+size+" is not supported by "+task+" (supported: "+strings.Join(t.Sizes, ", ")+")")
	}
	u := c.EffectiveUlysses()
	if !c.distributed() || c.WorldSize() == 1 {
		if c.DitFSDP || c.T5FSDP {
			out = append(out, "--dit_fsdp/--t5_fsdp need a distributed launch")
		}
		if u > 1 {
			out = append(out, "--ulysses_size "+strconv.Itoa(u)+" needs a distributed launch")
		}
	} else if w := c.WorldSize(); w > 0 && u != w {
		out = append(out, "--ulysses_size "+strconv.Itoa(u)+" must equal the world size "+strconv.Itoa(w))
	}
	if !t.ValidUlysses(u) {
		out = append(out, "--ulysses_size "+strconv.Itoa(u)+" does not divide the "+strconv.Itoa(t.Heads)+" attention heads of "+task)
	}
	if n := c.EffectiveFrames(); !t.ValidFrames(n) {
		out = append(out, t.FrameFlag+" "+strconv.Itoa(n)+" does not follow the "+t.FrameRule+" rule")
	}
	return out
}

func layoutOf(argv []string) layout {
	if len(argv) == 0 {
		return layout{}
	}
	base := path.Base(argv[0])
	var l layout
	switch {
	case isPython(base):
		l = pythonLayout(argv)
	case base == "torchrun":
		l = torchrunLayout(argv, 1)
		l.launcher = LauncherTorchrun
	default:
		l = layout{launcher: base}
		if !strings.HasSuffix(base, ".py") {
			for i := 1; i < len(argv); i++ {
				if strings.HasSuffix(argv[i], ".py") {
					l.script = i
					break
				}
			}
		}
	}
	if l.script >= len(argv) {
		l.script = len(argv) - 1
	}
	l.generate = path.Base(argv[l.script]) == "generate.py"
	return l
}

func isPython(base string) bool {
	rest, ok := strings.CutPrefix(base, "python")
	if !ok {
		return false
	}
	rest = strings.TrimSuffix(rest, ".exe")
	return strings.Trim(rest, "0123456789.") == ""
}

func pythonLayout(argv []string) layout {
	l := layout{launcher: LauncherPython}
	for i := 1; i < len(argv); i++ {
		t := argv[i]
		switch {
		case t == "-m" && i+1 < len(argv):
			mod := argv[i+1]
			if mod == "torch.distributed.run" || mod == "torch.distributed.launch" {
				d := torchrunLayout(argv, i+2)
				d.launcher = LauncherDistRun
				return d
			}
			l.script = i + 1
			return l
		case t == "-c" || t == "-W" || t == "-X" || t == "--check-hash-based-pycs":
			if t == "-c" {
				l.script = i
				return l
			}
			i++
		case strings.HasPrefix(t, "-") && t != "-":
		default:
			l.script = i
			return l
		}
	}
	return l
}

// torchrunLayout reads torchrun options from argv[from:] up to the script.
func torchrunLayout(argv []string, from int) layout {
	l := layout{script: len(argv) - 1}
	for i := from; i < len(argv); i++ {
		t := argv[i]
		if !strings.HasPrefix(t, "-") {
			l.script = i
			return l
		}
		name, val, inline := strings.Cut(t, "=")
		if strings.HasPrefix(name, "--") {
			name = "--" + strings.ReplaceAll(name[2:], "_", "-")
		}
		if !inline && !slices.Contains(torchrunBool, name) && i+1 < len(argv) {
			i++
			val = argv[i]
		}
		switch name {
		case "--nproc-per-node":
			l.nproc = val
		case "--nnodes":
			l.nnodes = val
		}
	}
	return l
}
