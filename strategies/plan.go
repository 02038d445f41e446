package strategies

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/wan22-guard/wan22-guard/classify"
	"github.com/wan22-guard/wan22-guard/wan"
)

// ChangeKind says what a Change touched.
type ChangeKind string

// Change kinds.
const (
	ChangeArgv ChangeKind = "argv"
	ChangeEnv  ChangeKind = "env"
	ChangeFile ChangeKind = "file"
)

// Change is one difference between the original command and a patched one.
// For argv, What is the flag and From/To its values: "" when absent, "on"
// for a store_true flag that is present. For env, What is the variable. For
// a file, What is the path, From is "" and To is "merge" or "replace <path>".
type Change struct {
	Kind ChangeKind `json:"kind"`
	What string     `json:"what"`
	From string     `json:"from"`
	To   string     `json:"to"`
}

func (c Change) String() string {
	switch c.Kind {
	case ChangeEnv:
		if c.To == "" {
			return "unset " + c.What
		}
		return c.What + "=" + c.To
	case ChangeFile:
		return c.To + " " + c.What
	}
	switch {
	case c.To == "":
		return "remove " + c.What
	case c.To == "on":
		return c.What
	case c.From == "" || c.From == "on":
		return c.What + " " + c.To
	}
	return c.What + " " + c.From + " -> " + c.To
}

// Patch is the command for an attempt: the original with rungs applied.
type Patch struct {
	Argv    []string    `json:"argv"`
	Env     []string    `json:"env,omitempty"`
	Changes []Change    `json:"changes,omitempty"`
	Files   []FilePatch `json:"files,omitempty"`
	// Trades name what the patch costs in output or speed, such as
	// "size 1280*720 -> 832*480".
	Trades []string `json:"trades,omitempty"`
}

// planner applies rungs one after another to a command.
type planner struct {
	cmd    wan.Command
	task   wan.Task
	known  bool
	argv   []string
	env    []string
	files  []FilePatch
	trades []string
}

func newPlanner(cmd wan.Command, env []string) *planner {
	t, ok := wan.Lookup(cmd.EffectiveTask())
	return &planner{cmd: cmd, task: t, known: ok && cmd.Generate, argv: slices.Clone(cmd.Argv), env: slices.Clone(env)}
}

func (p *planner) clone() *planner {
	c := *p
	c.argv = slices.Clone(p.argv)
	c.env = slices.Clone(p.env)
	c.files = slices.Clone(p.files)
	c.trades = slices.Clone(p.trades)
	return &c
}

// same reports whether q would launch the same command as p.
func (p *planner) same(q *planner) bool {
	return slices.Equal(p.argv, q.argv) && slices.Equal(p.env, q.env) && len(p.files) == len(q.files)
}

// allowed is the last word on argv edits, whatever a ladder says: never the
// job's identity, never CPU offload or dtype casts on top of FSDP or under a
// distributed launcher, never T5 on the CPU when T5 is sharded.
func (p *planner) allowed(flag, value string) bool {
	switch flag {
	case "--task", "--ckpt_dir":
		return false
	case "--offload_model":
		on, _ := wan.ParseBool(value)
		return !(on && p.cmd.Distributed())
	case "--convert_model_dtype":
		return !wan.Has(p.argv, "--dit_fsdp")
	case "--t5_cpu":
		return !wan.Has(p.argv, "--t5_fsdp")
	}
	return true
}

func (p *planner) apply(r *Rung) {
	before := p.clone()
	p.edit(r)
	if r.Trade != "" && !p.same(before) && !slices.Contains(p.trades, r.Trade) {
		p.trades = append(p.trades, r.Trade)
	}
}

func (p *planner) edit(r *Rung) {
	for _, flag := range slices.Sorted(maps.Keys(r.Set)) {
		if v := r.Set[flag]; p.allowed(flag, v) {
			p.argv = wan.Set(p.argv, flag, v)
		}
	}
	for _, flag := range r.Add {
		if p.allowed(flag, "") {
			p.argv = wan.AddFlag(p.argv, flag)
		}
	}
	for _, flag := range r.Remove {
		if p.allowed(flag, "") {
			p.argv = wan.Remove(p.argv, flag)
		}
	}
	if r.Size != "" {
		p.size(r.Size)
	}
	if r.FrameNum != "" {
		p.frames(r.FrameNum)
	}
	if r.Ulysses == World {
		p.ulysses()
	}
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		p.env = setEnv(p.env, k, r.Env[k])
	}
	if r.File != nil {
		p.files = append(p.files, *r.File)
	}
}

func (p *planner) currentSize() string {
	if v, ok := wan.Get(p.argv, "--size"); ok {
		return v
	}
	return p.cmd.EffectiveSize()
}

func (p *planner) currentFrames() int {
	if v, ok := wan.Get(p.argv, p.task.FrameFlag); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return p.task.DefaultFrames
}

func (p *planner) size(spec string) {
	if !p.known {
		return
	}
	cur := p.currentSize()
	next := ""
	if spec == Smaller {
		next, _ = wan.SmallerSize(p.task.Name, cur)
	} else if s := wan.OrientLike(spec, cur); p.task.AllowsSize(s) && area(s) < area(cur) && wan.OrientationOf(s) == wan.OrientationOf(cur) {
		next = s
	}
	if next != "" {
		p.argv = wan.Set(p.argv, "--size", next)
	}
}

func area(size string) int {
	w, h, _ := wan.ParseSize(size)
	return w * h
}

func (p *planner) frames(spec string) {
	if !p.known {
		return
	}
	cur := p.currentFrames()
	next := 0
	if spec == Smaller {
		next, _ = wan.SmallerFrames(p.task.Name, cur)
	} else if n, err := strconv.Atoi(spec); err == nil && n < cur && p.task.ValidFrames(n) {
		next = n
	}
	if next > 0 {
		p.argv = wan.Set(p.argv, p.task.FrameFlag, strconv.Itoa(next))
	}
}

func (p *planner) ulysses() {
	w := p.cmd.WorldSize()
	if !p.known || w < 1 || !p.task.ValidUlysses(w) {
		return
	}
	cur, ok := wan.Get(p.argv, "--ulysses_size")
	if (!ok && w == 1) || cur == strconv.Itoa(w) {
		return
	}
	p.argv = wan.Set(p.argv, "--ulysses_size", strconv.Itoa(w))
}

// allocVars hold comma-separated key:value allocator options; a rung's
// options are merged into the user's instead of replacing them.
var allocVars = []string{"PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF", "PYTORCH_HIP_ALLOC_CONF"}

func setEnv(env []string, key, value string) []string {
	out := slices.Clone(env)
	for i, kv := range out {
		k, old, _ := strings.Cut(kv, "=")
		if k != key {
			continue
		}
		if slices.Contains(allocVars, key) {
			value = mergeAllocConf(old, value)
		}
		out[i] = key + "=" + value
		return out
	}
	return append(out, key+"="+value)
}

func mergeAllocConf(old, add string) string {
	opts := strings.Split(old, ",")
	if old == "" {
		opts = nil
	}
	for _, o := range strings.Split(add, ",") {
		k, _, _ := strings.Cut(o, ":")
		i := slices.IndexFunc(opts, func(x string) bool {
			xk, _, _ := strings.Cut(x, ":")
			return strings.TrimSpace(xk) == strings.TrimSpace(k)
		})
		if i >= 0 {
			opts[i] = o
		} else {
			opts = append(opts, o)
		}
	}
	return strings.Join(opts, ",")
}

// result builds the Patch: the net changes against the original command.
func (p *planner) result(origEnv []string) Patch {
	out := Patch{Argv: p.argv, Env: p.env, Files: p.files}
	out.Changes = append(diffArgv(p.cmd.Argv, p.argv), diffEnv(origEnv, p.env)...)
	for _, f := range p.files {
		to := "merge"
		if f.Replace != "" {
			to = "replace " + f.Replace
		}
		out.Changes = append(out.Changes, Change{Kind: ChangeFile, What: f.Path, To: to})
	}
	out.Trades = p.netTrades()
	return out
}

// netTrades are the size and frame changes against the original command,
// then the applied rungs' own trades.
func (p *planner) netTrades() []string {
	var out []string
	if p.known {
		if from, to := p.cmd.EffectiveSize(), p.currentSize(); from != to {
			out = append(out, "size "+from+" -> "+to)
		}
		if from, to := p.cmd.EffectiveFrames(), p.currentFrames(); from != to {
			out = append(out, "frames "+strconv.Itoa(from)+" -> "+strconv.Itoa(to))
		}
	}
	return append(out, p.trades...)
}

type flagValue struct {
	value   string
	present bool
}

func lastValues(argv []string) (map[string]flagValue, []string) {
	vals := map[string]flagValue{}
	var order []string
	for _, a := range wan.Args(argv) {
		if _, seen := vals[a.Flag]; !seen {
			order = append(order, a.Flag)
		}
		v := a.Value
		if !a.HasValue {
			v = "on"
		}
		vals[a.Flag] = flagValue{value: v, present: true}
	}
	return vals, order
}

func diffArgv(from, to []string) []Change {
	a, aOrder := lastValues(from)
	b, bOrder := lastValues(to)
	var out []Change
	for _, f := range bOrder {
		if a[f] != b[f] {
			out = append(out, Change{Kind: ChangeArgv, What: f, From: a[f].value, To: b[f].value})
		}
	}
	for _, f := range aOrder {
		if !b[f].present {
			out = append(out, Change{Kind: ChangeArgv, What: f, From: a[f].value})
		}
	}
	return out
}

func envMap(env []string) (map[string]string, []string) {
	m := map[string]string{}
	var order []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, seen := m[k]; !seen {
			order = append(order, k)
		}
		m[k] = v
	}
	return m, order
}

func diffEnv(from, to []string) []Change {
	a, aOrder := envMap(from)
	b, bOrder := envMap(to)
	var out []Change
	for _, k := range bOrder {
		if old, ok := a[k]; !ok || old != b[k] {
			out = append(out, Change{Kind: ChangeEnv, What: k, From: old, To: b[k]})
		}
	}
	for _, k := range aOrder {
		if _, ok := b[k]; !ok {
			out = append(out, Change{Kind: ChangeEnv, What: k, From: a[k]})
		}
	}
	return out
}

// Plan applies the ladder's rungs, in the order given, to the original
// argv and environment (env is the full environment, KEY=VALUE) and
// returns the result with its net changes. Rungs apply as written,
// whatever their When says; the guards hold regardless: --task and
// --ckpt_dir never change, sizes keep their orientation and stay among the
// task's sizes, frames keep the task's rule, and no --offload_model True
// goes to a distributed launcher. Errors: ErrNoCommand for an empty argv,
// ErrRungRange for an index outside the ladder.
func Plan(argv, env []string, ladder Ladder, rungs []int) (Patch, error) {
	if len(argv) == 0 {
		return Patch{}, ErrNoCommand
	}
	p := newPlanner(wan.Parse(argv), env)
	for _, i := range rungs {
		if i < 0 || i >= len(ladder.Rungs) {
			return Patch{}, fmt.Errorf("plan ladder %s: %w: %d", ladder.Name, ErrRungRange, i)
		}
		p.apply(&ladder.Rungs[i])
	}
	return p.result(env), nil
}

// PlanState is Plan for a run's state: every rung it has taken, across
// ladders, in order (RunState.Steps, after the rungs of ladders entered
// before the first attempt; see RunState.Rungs). cmd is wan.Parse(argv).
// Errors: ErrNoCommand, ErrUnknownLadder for a ladder the policy lacks,
// ErrRungRange.
func PlanState(argv, env []string, cmd wan.Command, p *Policy, st RunState) (Patch, error) {
	if len(argv) == 0 {
		return Patch{}, ErrNoCommand
	}
	cmd.Argv = argv
	st, err := p.normalize(st, cmd, true)
	if err != nil {
		return Patch{}, err
	}
	pl := newPlanner(cmd, env)
	for _, s := range st.Steps {
		l, ok := p.Ladders[s.Ladder]
		if !ok {
			return Patch{}, fmt.Errorf("plan state: %w %q", ErrUnknownLadder, s.Ladder)
		}
		if s.Rung < 0 || s.Rung >= len(l.Rungs) {
			return Patch{}, fmt.Errorf("plan state ladder %s: %w: %d", s.Ladder, ErrRungRange, s.Rung)
		}
		pl.apply(&l.Rungs[s.Rung])
	}
	return pl.result(env), nil
}

// normalize turns ladders entered before the first attempt (a rung in
// st.Rungs, no step in st.Steps) into explicit steps: their rungs up to
// that index that fit the command, ahead of the other steps. With strict,
// an unknown ladder or an index past its end is an error; otherwise such an
// entry is left as it is. st is not modified.
func (p *Policy) normalize(st RunState, cmd wan.Command, strict bool) (RunState, error) {
	var pre []AppliedRung
	for _, name := range sortedKeys(st.Rungs) {
		r := st.Rungs[name]
		if r < 0 || slices.ContainsFunc(st.Steps, func(a AppliedRung) bool { return a.Ladder == name }) {
			continue
		}
		l, ok := p.Ladders[name]
		switch {
		case !ok && strict:
			return st, fmt.Errorf("plan state: %w %q", ErrUnknownLadder, name)
		case ok && r >= len(l.Rungs) && strict:
			return st, fmt.Errorf("plan state ladder %s: %w: %d", name, ErrRungRange, r)
		case !ok || r >= len(l.Rungs):
			continue
		}
		for i := 0; i <= r; i++ {
			if l.Rungs[i].When.Fits(cmd) {
				pre = append(pre, AppliedRung{Ladder: name, Rung: i, Name: l.Rungs[i].Name})
			}
		}
	}
	if len(pre) == 0 {
		return st, nil
	}
	st = st.Clone()
	st.Steps = append(pre, st.Steps...)
	return st, nil
}

// Prepare pins a generate.py command for a reproducible relaunch: it sets
// --base_seed to seed when seed >= 0, and --save_file to saveFile when the
// command has none and saveFile is not empty. Other scripts come back
// unchanged, since they may not know these flags. The result is a new slice.
func Prepare(argv []string, seed int64, saveFile string) []string {
	out := slices.Clone(argv)
	if !wan.Parse(argv).Generate {
		return out
	}
	if seed >= 0 {
		out = wan.Set(out, "--base_seed", strconv.FormatInt(seed, 10))
	}
	if saveFile != "" && !wan.Has(out, "--save_file") {
		out = wan.Set(out, "--save_file", saveFile)
	}
	return out
}

// walker finds the next rung of a ladder for a command.
type walker struct {
	cmd    wan.Command
	ladder *Ladder
}

// next returns the first rung after current that fits the command and the
// phase and changes the command base would launch, with the planner that
// has it applied. ok is false when none is left.
func (w walker) next(base *planner, current int, phase classify.Phase) (int, *planner, bool) {
	for i := current + 1; i < len(w.ladder.Rungs); i++ {
		r := &w.ladder.Rungs[i]
		if !r.When.Fits(w.cmd) || !r.When.InPhase(phase) {
			continue
		}
		cand := base.clone()
		cand.apply(r)
		if !cand.same(base) {
			return i, cand, true
		}
	}
	return -1, nil, false
}

// PlannedRung is one step of a dry run through a ladder.
type PlannedRung struct {
	Rung int    `json:"rung"`
	Name string `json:"name"`
	// Argv and Env are the full command at this rung.
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
	// Changes are this rung's own changes on top of the previous step.
	Changes []Change `json:"changes"`
	// Trades are the net costs against the original command.
	Trades []string `json:"trades,omitempty"`
	// PeakGiB is wan.EstimatePeakGiB of the command; Basis says how it was
	// made, or why there is none (Estimated false).
	PeakGiB   float64 `json:"peak_gib,omitempty"`
	Basis     string  `json:"basis"`
	Estimated bool    `json:"estimated"`
}

// PlanLadder walks the class's ladder for a dry run: the rungs a fallback
// would take, one after another, for a failure in phase ("" = any phase),
// each with its full argv. A class whose strategy is not fallback has no
// rungs. Errors: ErrNoCommand, ErrUnknownClass, ErrUnknownLadder.
func (p *Policy) PlanLadder(class classify.Class, argv, env []string, phase classify.Phase) ([]PlannedRung, error) {
	if len(argv) == 0 {
		return nil, ErrNoCommand
	}
	cp, ok := p.Classes[class]
	if !ok {
		return nil, fmt.Errorf("plan ladder: %w %q", ErrUnknownClass, class)
	}
	if cp.Strategy != ActionFallback {
		return nil, nil
	}
	l, ok := p.Ladders[cp.Ladder]
	if !ok {
		return nil, fmt.Errorf("plan ladder for %s: %w %q", class, ErrUnknownLadder, cp.Ladder)
	}
	cmd := wan.Parse(argv)
	w := walker{cmd: cmd, ladder: &l}
	base := newPlanner(cmd, env)
	var out []PlannedRung
	for cur := -1; ; {
		i, next, ok := w.next(base, cur, phase)
		if !ok {
			return out, nil
		}
		patch := next.result(env)
		gib, basis, est := wan.EstimatePeakGiB(wan.Parse(next.argv))
		out = append(out, PlannedRung{
			Rung: i, Name: l.Rungs[i].Name, Argv: next.argv, Env: next.env,
			Changes: append(diffArgv(base.argv, next.argv), diffEnv(base.env, next.env)...),
			Trades:  patch.Trades, PeakGiB: gib, Basis: basis, Estimated: est,
		})
		base, cur = next, i
	}
}

// Start is where the pre-flight starts a run on a ladder.
type Start struct {
	// Rung is -1 to start with the command as given, the index of the first
	// rung whose estimate fits, or len(ladder.Rungs) when none fits.
	Rung int `json:"rung"`
	// Rungs are the rungs to take before the first attempt (RunState.WithRungs):
	// only those that lower the estimate.
	Rungs []int `json:"rungs,omitempty"`
	// PeakGiB and Basis are the estimate of the chosen command.
	PeakGiB float64 `json:"peak_gib,omitempty"`
	Basis   string  `json:"basis,omitempty"`
	// Reason says why, for the log.
	Reason string `json:"reason"`
}

// StartRung picks where to start on a ladder before the first attempt,
// given the free memory of the smallest GPU the command will use:
//
//   - the command as given has no estimate: start there (Rung -1); the
//     guard does not change a command it cannot judge;
//   - its estimate fits: start there (Rung -1);
//   - else the first rung, walking the ladder for any phase, whose estimate
//     fits, taking on the way only the rungs that lower the estimate;
//   - none fits: Rung is len(ladder.Rungs), with every lowering rung in
//     Rungs; the caller decides between trying anyway and the class's Then.
func StartRung(cmd wan.Command, env []string, ladder Ladder, freeGiB float64) Start {
	gib, basis, ok := wan.EstimatePeakGiB(cmd)
	if !ok {
		return Start{Rung: -1, Basis: basis, Reason: "no estimate for the command as given; starting unchanged"}
	}
	if gib <= freeGiB {
		return Start{Rung: -1, PeakGiB: gib, Basis: basis, Reason: fmt.Sprintf("estimated peak %.1f GiB fits in %.1f GiB free", gib, freeGiB)}
	}
	w := walker{cmd: cmd, ladder: &ladder}
	base := newPlanner(cmd, env)
	var taken []int
	best, bestBasis := gib, basis
	for cur := -1; ; {
		i, next, ok := w.next(base, cur, "")
		if !ok {
			break
		}
		cur = i
		g, b, est := wan.EstimatePeakGiB(wan.Parse(next.argv))
		if !est || g >= best {
			continue
		}
		base, best, bestBasis = next, g, b
		taken = append(taken, i)
		if g <= freeGiB {
			return Start{Rung: i, Rungs: taken, PeakGiB: g, Basis: b,
				Reason: fmt.Sprintf("estimated peak %.1f GiB > %.1f GiB free; rung %d %q brings it to %.1f GiB", gib, freeGiB, i, ladder.Rungs[i].Name, g)}
		}
	}
	return Start{Rung: len(ladder.Rungs), Rungs: taken, PeakGiB: best, Basis: bestBasis,
		Reason: fmt.Sprintf("no rung fits: the lowest estimate is %.1f GiB, %.1f GiB free", best, freeGiB)}
}
