package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wan22-guard/wan22-guard/configs"
	"github.com/wan22-guard/wan22-guard/gpu"
	"github.com/wan22-guard/wan22-guard/gpu/host"
	"github.com/wan22-guard/wan22-guard/gpu/nvml"
	"github.com/wan22-guard/wan22-guard/runner"
	"github.com/wan22-guard/wan22-guard/wan"
)

// Finding levels.
const (
	levelOK   = "OK"
	levelWarn = "WARN"
	levelFail = "FAIL"
)

// finding is one line of `doctor`.
type finding struct {
	Check  string `json:"check"`
	Level  string `json:"level"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctorReport is what `doctor --json` prints.
type doctorReport struct {
	Findings []finding      `json:"findings"`
	GPU      gpu.Facts      `json:"gpu"`
	Host     gpu.HostFacts  `json:"host"`
	Command  []string       `json:"command,omitempty"`
	Estimate map[string]any `json:"estimate,omitempty"`
	OK       bool           `json:"ok"`
}

func doctorCommand(ios *ioSet) *cli.Command {
	return &cli.Command{
		Name:      "doctor",
		Usage:     "check the GPU, host, config and (given a command) the Wan2.2 setup; exit 1 when anything fails",
		UsageText: "wan22-guard doctor [--json] [-- COMMAND ...]",
		Flags: []cli.Flag{
			configFlag, runDirFlag,
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.StringFlag{Name: "python", Value: "python3", Usage: "the python to check torch and flash_attn with", EnvVars: envs("PYTHON")},
		},
		Action: func(c *cli.Context) error {
			rep := doctor(c)
			if c.Bool("json") {
				b, _ := json.MarshalIndent(rep, "", "  ")
				fmt.Fprintln(ios.out, string(b))
			} else {
				for _, f := range rep.Findings {
					fmt.Fprintf(ios.out, "%-4s  %-14s %s\n", f.Level, f.Check, f.Detail)
					if f.Fix != "" && f.Level != levelOK {
						fmt.Fprintf(ios.out, "      %-14s fix: %s\n", "", f.Fix)
					}
				}
			}
			if !rep.OK {
				return &exitError{code: 1}
			}
			return nil
		},
	}
}

func doctor(c *cli.Context) doctorReport {
	var rep doctorReport
	add := func(check, level, detail, fix string) {
		rep.Findings = append(rep.Findings, finding{Check: check, Level: level, Detail: detail, Fix: fix})
	}
	ctx, cancel := context.WithTimeout(c.Context, 20*time.Second)
	defer cancel()

	p := nvml.New()
	defer p.Close()
	facts, err := p.Probe(ctx)
	rep.GPU = facts
	visible := os.Getenv("CUDA_VISIBLE_DEVICES")
	switch {
	case err != nil || !facts.Available:
		reason := facts.Reason
		if reason == "" && err != nil {
			reason = err.Error()
		}
		add("gpu", levelWarn, "no GPU facts: "+reason, "on a GPU machine, install the NVIDIA driver (libnvidia-ml.so.1) and pass the GPUs to the container (--gpus all)")
	default:
		add("gpu", levelOK, gpu.Summary(facts), "")
		devs := facts.Visible(visible)
		if len(devs) == 0 {
			add("visible", levelFail, fmt.Sprintf("CUDA_VISIBLE_DEVICES=%q leaves no device visible", visible), "unset CUDA_VISIBLE_DEVICES or name existing devices")
		} else {
			add("visible", levelOK, fmt.Sprintf("%d device(s) visible (CUDA_VISIBLE_DEVICES=%q)", len(devs), visible), "")
		}
	}

	cwd, _ := os.Getwd()
	runDir := c.String("run-dir")
	paths := []string{cwd}
	if abs, err := filepath.Abs(runDir); err == nil {
		paths = append(paths, nearestExisting(abs))
	}
	argv := c.Args().Slice()
	cmd := wan.Parse(argv)
	if cmd.CkptDir != "" {
		paths = append(paths, nearestExisting(cmd.CkptDir))
	}
	hf, herr := host.Read(ctx, paths...)
	rep.Host = hf
	if herr != nil && hf.MemTotal == 0 {
		add("host", levelWarn, "host facts unavailable: "+herr.Error(), "")
	} else {
		detail := fmt.Sprintf("%d CPUs, %.1f/%.1f GiB RAM available, swap %.1f GiB", hf.CPUs, gib(hf.MemAvailable), gib(hf.MemTotal), gib(hf.SwapTotal))
		if hf.CgroupMemLimit > 0 {
			detail += fmt.Sprintf(", cgroup limit %.1f GiB", gib(hf.CgroupMemLimit))
		}
		add("host", levelOK, detail, "")
		limit := hf.MemTotal
		if hf.CgroupMemLimit > 0 && hf.CgroupMemLimit < limit {
			limit = hf.CgroupMemLimit
		}
		if cmd.IsWan() && strings.Contains(cmd.EffectiveTask(), "A14B") && !cmd.MultiGPU && limit > 0 && gib(limit) < 64 {
			add("host-ram", levelWarn, fmt.Sprintf("%.0f GiB of RAM for %s on one GPU: both 14B experts are held in host RAM", gib(limit), cmd.EffectiveTask()),
				"give the machine or container more RAM (64 GiB or more), or add swap")
		}
	}
	for _, path := range paths {
		free, ok := hf.DiskFree[path]
		if !ok {
			continue
		}
		level, fix := levelOK, ""
		if free < 2<<30 {
			level, fix = levelFail, "free disk space: a 720P video and the attempt log need a few GiB"
		} else if free < 20<<30 {
			level, fix = levelWarn, "checkpoints and outputs are large; keep 20 GiB or more free"
		}
		add("disk", level, fmt.Sprintf("%.1f GiB free at %s", gib(free), path), fix)
	}

	if _, err := configs.Load(c.String("config")); err != nil {
		add("config", levelFail, err.Error(), "fix the config file at the line named, or run `wan22-guard config validate`")
	} else {
		name := c.String("config")
		if name == "" {
			name = "built-in defaults"
		}
		add("config", levelOK, name+" valid", "")
	}

	if len(argv) > 0 {
		rep.Command = argv
		doctorCommandChecks(c, ctx, cmd, facts, visible, add, &rep)
	}
	rep.OK = true
	for _, f := range rep.Findings {
		if f.Level == levelFail {
			rep.OK = false
		}
	}
	return rep
}

func doctorCommandChecks(c *cli.Context, ctx context.Context, cmd wan.Command, facts gpu.Facts, visible string, add func(check, level, detail, fix string), rep *doctorReport) {
	if !cmd.IsWan() {
		add("command", levelWarn, "not a Wan2.2 generate.py command; only generic checks apply", "")
		return
	}
	for _, p := range cmd.Problems() {
		add("arguments", levelFail, p, "fix the flag; generate.py would refuse it before loading any model")
	}
	task, ok := wan.Lookup(cmd.EffectiveTask())
	if ok {
		if cmd.CkptDir == "" {
			add("checkpoints", levelFail, "--ckpt_dir is not set", "pass --ckpt_dir pointing at the downloaded "+task.Name+" checkpoint")
		} else {
			var missing []string
			for _, f := range append([]string{task.VAE}, task.Checkpoints...) {
				if _, err := os.Stat(filepath.Join(cmd.CkptDir, strings.TrimSuffix(f, "/"))); err != nil {
					missing = append(missing, f)
				}
			}
			if len(missing) > 0 {
				add("checkpoints", levelFail, fmt.Sprintf("%s is missing %s", cmd.CkptDir, strings.Join(missing, ", ")),
					"download the whole "+task.Name+" checkpoint into --ckpt_dir (huggingface-cli download Wan-AI/Wan2.2-... --local-dir DIR); a -Diffusers repo does not work with generate.py")
			} else {
				add("checkpoints", levelOK, fmt.Sprintf("%s has the %d files %s needs", cmd.CkptDir, 1+len(task.Checkpoints), task.Name), "")
			}
		}
		if task.AllowsSize(cmd.EffectiveSize()) || !task.SizeChecked {
			add("size", levelOK, fmt.Sprintf("%s allowed for %s", cmd.EffectiveSize(), task.Name), "")
		}
		if cmd.Distributed() {
			if cmd.EffectiveUlysses() != cmd.WorldSize() && cmd.EffectiveUlysses() > 1 {
				add("ulysses", levelFail, fmt.Sprintf("--ulysses_size %d but %d processes", cmd.EffectiveUlysses(), cmd.WorldSize()), fmt.Sprintf("set --ulysses_size %d", cmd.WorldSize()))
			} else {
				add("ulysses", levelOK, fmt.Sprintf("--ulysses_size %d with %d processes", cmd.EffectiveUlysses(), cmd.WorldSize()), "")
			}
		}
	}
	py := c.String("python")
	for _, mod := range []struct{ name, fix string }{
		{"torch", "pip install torch (a CUDA build matching the driver)"},
		{"flash_attn", "pip install flash-attn --no-build-isolation, built against the installed torch; Wan2.2's DiT needs it"},
	} {
		ictx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, errOut, ex := runner.Run(ictx, []string{py, "-c", "import " + mod.name}, nil)
		cancel()
		switch {
		case ex.StartErr != nil:
			add("python", levelFail, fmt.Sprintf("%s: %v", py, ex.StartErr), "install python3 or pass --python")
			return
		case ex.Code != 0:
			last := lastLine(string(errOut))
			add(mod.name, levelFail, "import "+mod.name+" failed: "+last, mod.fix)
		default:
			add(mod.name, levelOK, "import "+mod.name+" works", "")
		}
	}
	if gibNeed, basis, ok := wan.EstimatePeakGiB(cmd); ok {
		rep.Estimate = map[string]any{"peak_gib": gibNeed, "basis": basis}
		if facts.Available {
			devs := facts.Visible(visible)
			minFree := -1.0
			for _, d := range devs {
				if f := gib(d.MemFree); minFree < 0 || f < minFree {
					minFree = f
				}
			}
			switch {
			case minFree < 0:
			case gibNeed <= minFree:
				add("fits", levelOK, fmt.Sprintf("needs about %.0f GiB per GPU (%s); %.0f GiB free", gibNeed, basis, minFree), "")
			default:
				add("fits", levelWarn, fmt.Sprintf("needs about %.0f GiB per GPU (%s); only %.0f GiB free", gibNeed, basis, minFree),
					"the guard will start at a lower rung (see wan22-guard --dry-run -- COMMAND); or use more GPUs")
			}
		} else {
			add("fits", levelWarn, fmt.Sprintf("needs about %.0f GiB per GPU (%s); no GPU facts to compare", gibNeed, basis), "")
		}
	}
}

func gib(b uint64) float64 { return float64(b) / float64(gpu.GiB) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 0 {
		return ""
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// nearestExisting returns path or its nearest existing parent, for disk space.
func nearestExisting(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if p == filepath.Dir(p) {
			return p
		}
	}
}
