package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"
)

// podFailurePolicy actions, as the Job API spells them.
const (
	pfpFailJob   = "FailJob"
	pfpFailIndex = "FailIndex"
	pfpIgnore    = "Ignore"
	pfpCount     = "Count"
)

// contractFamily is one family of the exit-code contract and the
// podFailurePolicy actions that fit it.
type contractFamily struct {
	name    string
	code    int
	actions []string
}

// contractFamilies lists every non-zero code of the contract (main.go) with
// what a Kubernetes Job should do about it: stop for what no retry can fix,
// count what another pod may get past, ignore an outside stop.
var contractFamilies = []contractFamily{
	{"usage", ExitUsage, []string{pfpFailJob, pfpFailIndex}},
	{"config", ExitConfig, []string{pfpFailJob, pfpFailIndex}},
	{"internal", ExitInternal, []string{pfpCount}},
	{"needs the user", ExitNeedsUser, []string{pfpFailJob, pfpFailIndex}},
	{"infeasible", ExitInfeasible, []string{pfpFailJob, pfpFailIndex}},
	{"transient budget spent", ExitTransient, []string{pfpCount}},
	{"GPU fault", ExitGPUFault, []string{pfpCount}},
	{"not executable", ExitNotExecutable, []string{pfpFailJob, pfpFailIndex}},
	{"not found", ExitNotFound, []string{pfpFailJob, pfpFailIndex}},
	{"interrupted by SIGTERM", ExitSignalBase + int(syscall.SIGTERM), []string{pfpIgnore}},
	{"interrupted by SIGINT", ExitSignalBase + int(syscall.SIGINT), []string{pfpIgnore}},
}

func familyOf(code int) (contractFamily, bool) {
	for _, f := range contractFamilies {
		if f.code == code {
			return f, true
		}
	}
	return contractFamily{}, false
}

// k8sObject is the part of a manifest the test reads.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Spec       struct {
		CompletionMode       string `yaml:"completionMode"`
		BackoffLimitPerIndex *int   `yaml:"backoffLimitPerIndex"`
		PodFailurePolicy     *struct {
			Rules []podFailureRule `yaml:"rules"`
		} `yaml:"podFailurePolicy"`
		Template struct {
			Spec struct {
				RestartPolicy string `yaml:"restartPolicy"`
				Containers    []struct {
					Name                     string `yaml:"name"`
					TerminationMessagePath   string `yaml:"terminationMessagePath"`
					TerminationMessagePolicy string `yaml:"terminationMessagePolicy"`
					VolumeMounts             []struct {
						MountPath   string `yaml:"mountPath"`
						SubPathExpr string `yaml:"subPathExpr"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podFailureRule struct {
	Action      string `yaml:"action"`
	OnExitCodes *struct {
		ContainerName string `yaml:"containerName"`
		Operator      string `yaml:"operator"`
		Values        []int  `yaml:"values"`
	} `yaml:"onExitCodes"`
	OnPodConditions []struct {
		Type string `yaml:"type"`
	} `yaml:"onPodConditions"`
}

func readManifests(t *testing.T, path string) []k8sObject {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(false)
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("parse %s: document %d: %v", path, len(objs)+1, err)
		}
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
}

func TestDeploy_KubernetesPodFailurePolicy(t *testing.T) {
	t.Parallel()
	const path = "deploy/kubernetes/indexed-job.yaml"
	var jobs []k8sObject
	for _, o := range readManifests(t, path) {
		if o.Kind == "Job" {
			jobs = append(jobs, o)
		}
	}
	if len(jobs) != 1 {
		t.Fatalf("%s has %d Jobs, want 1", path, len(jobs))
	}
	job := jobs[0]
	pod := job.Spec.Template.Spec

	// The API rejects podFailurePolicy unless pods are never restarted in
	// place, and FailIndex needs backoffLimitPerIndex.
	if pod.RestartPolicy != "Never" {
		t.Errorf("restartPolicy = %q, want Never", pod.RestartPolicy)
	}
	if job.Spec.CompletionMode != "Indexed" {
		t.Errorf("completionMode = %q, want Indexed", job.Spec.CompletionMode)
	}
	if job.Spec.BackoffLimitPerIndex == nil {
		t.Error("backoffLimitPerIndex is not set")
	}
	containers := map[string]bool{}
	for _, c := range pod.Containers {
		containers[c.Name] = true
		if c.TerminationMessagePath != "/dev/termination-log" || c.TerminationMessagePolicy != "FallbackToLogsOnError" {
			t.Errorf("container %s: termination message %q, %q, want /dev/termination-log, FallbackToLogsOnError",
				c.Name, c.TerminationMessagePath, c.TerminationMessagePolicy)
		}
		var perIndexRunDir bool
		for _, m := range c.VolumeMounts {
			if m.MountPath == "/data/run" && strings.Contains(m.SubPathExpr, "$(JOB_COMPLETION_INDEX)") {
				perIndexRunDir = true
			}
		}
		if !perIndexRunDir {
			t.Errorf("container %s: /data/run is not a per-index subPathExpr of $(JOB_COMPLETION_INDEX)", c.Name)
		}
	}

	if job.Spec.PodFailurePolicy == nil || len(job.Spec.PodFailurePolicy.Rules) == 0 {
		t.Fatalf("%s: the Job has no podFailurePolicy rules", path)
	}
	// Rules match in order and the first match wins, so the action a code
	// gets is that of the first rule naming it.
	got := map[int]string{}
	var disruptionIgnored bool
	for i, r := range job.Spec.PodFailurePolicy.Rules {
		if !slices.Contains([]string{pfpFailJob, pfpFailIndex, pfpIgnore, pfpCount}, r.Action) {
			t.Errorf("rule %d: unknown action %q", i, r.Action)
		}
		if (r.OnExitCodes == nil) == (len(r.OnPodConditions) == 0) {
			t.Errorf("rule %d: want exactly one of onExitCodes and onPodConditions", i)
			continue
		}
		if r.OnExitCodes == nil {
			for _, c := range r.OnPodConditions {
				if c.Type == "DisruptionTarget" && r.Action == pfpIgnore {
					disruptionIgnored = true
				}
			}
			continue
		}
		ec := r.OnExitCodes
		if ec.Operator != "In" {
			t.Errorf("rule %d: operator %q, want In (NotIn would match codes this test cannot see)", i, ec.Operator)
		}
		if ec.ContainerName != "" && !containers[ec.ContainerName] {
			t.Errorf("rule %d: containerName %q is not a container of the pod", i, ec.ContainerName)
		}
		if !slices.IsSorted(ec.Values) || len(slices.Compact(slices.Clone(ec.Values))) != len(ec.Values) {
			t.Errorf("rule %d: values %v are not sorted and unique, as the API requires", i, ec.Values)
		}
		for _, code := range ec.Values {
			f, ok := familyOf(code)
			if !ok {
				t.Errorf("rule %d: exit code %d is not in the guard's exit-code contract", i, code)
				continue
			}
			if prev, dup := got[code]; dup {
				t.Errorf("rule %d: exit code %d (%s) is already matched by an earlier %s rule", i, code, f.name, prev)
				continue
			}
			got[code] = r.Action
			if !slices.Contains(f.actions, r.Action) {
				t.Errorf("rule %d: exit code %d (%s) gets %s, want one of %v", i, code, f.name, r.Action, f.actions)
			}
		}
	}
	for _, f := range contractFamilies {
		if _, ok := got[f.code]; !ok {
			t.Errorf("exit code %d (%s) is not named by any rule; want one of %v", f.code, f.name, f.actions)
		}
	}
	if !disruptionIgnored {
		t.Error("no Ignore rule for the DisruptionTarget pod condition (preemption, eviction)")
	}
}

// slurmCaseArm matches one arm of a shell case statement whose patterns are
// exit codes: "12)", "2 | 3 | 10)".
var slurmCaseArm = regexp.MustCompile(`(?m)^\s*([0-9]+(?:\s*\|\s*[0-9]+)*)\)\s*$`)

// slurmRequeueCall matches a line that calls the script's requeue function.
var slurmRequeueCall = regexp.MustCompile(`(?m)^\s*requeue\b`)

func TestDeploy_SlurmRequeueCodes(t *testing.T) {
	t.Parallel()
	const path = "deploy/slurm/wan22-guard.sbatch"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	script := string(b)
	for _, want := range []string{"#SBATCH --requeue", "#SBATCH --open-mode=append", `scontrol requeue "$SLURM_JOB_ID"`} {
		if !strings.Contains(script, want) {
			t.Errorf("%s has no %q", path, want)
		}
	}
	if !regexp.MustCompile(`(?m)^run_dir="[^"\n]*\$SLURM_JOB_ID"`).MatchString(script) {
		t.Errorf("%s: the run dir is not keyed by $SLURM_JOB_ID, so a requeued job would not resume", path)
	}

	start := strings.Index(script, `case "$code" in`)
	end := strings.LastIndex(script, "esac")
	if start < 0 || end < start {
		t.Fatalf(`%s has no case "$code" in ... esac over the guard's exit code`, path)
	}
	block := script[start:end]
	arms := slurmCaseArm.FindAllStringSubmatchIndex(block, -1)
	if len(arms) == 0 {
		t.Fatalf("%s: no exit-code arms in the case statement", path)
	}
	var requeued []int
	seen := map[int]bool{}
	for i, a := range arms {
		body := block[a[1]:]
		if i+1 < len(arms) {
			body = block[a[1]:arms[i+1][0]]
		}
		if j := strings.Index(body, ";;"); j >= 0 {
			body = body[:j]
		}
		requeues := slurmRequeueCall.MatchString(body)
		for p := range strings.SplitSeq(block[a[2]:a[3]], "|") {
			code, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				t.Fatalf("%s: case pattern %q: %v", path, p, err)
			}
			if seen[code] {
				t.Errorf("%s: exit code %d appears in two case arms", path, code)
			}
			seen[code] = true
			if _, ok := familyOf(code); !ok && code != ExitOK {
				t.Errorf("%s: exit code %d is not in the guard's exit-code contract", path, code)
			}
			if requeues {
				requeued = append(requeued, code)
			}
		}
	}
	slices.Sort(requeued)
	want := []int{ExitTransient, ExitGPUFault, ExitSignalBase + int(syscall.SIGTERM)}
	slices.Sort(want)
	if !slices.Equal(requeued, want) {
		t.Errorf("%s requeues on %v, want %v (transient, GPU fault, SIGTERM from preemption)", path, requeued, want)
	}
	for _, f := range contractFamilies {
		if !seen[f.code] {
			t.Errorf("%s: exit code %d (%s) has no case arm of its own", path, f.code, f.name)
		}
	}
}

func TestDeploy_Dockerfile(t *testing.T) {
	t.Parallel()
	const path = "deploy/Dockerfile"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	df := string(b)
	for _, want := range []string{
		`ENTRYPOINT ["/usr/local/bin/wan22-guard", "--run-dir", "/data/run", "--"]`,
		"STOPSIGNAL SIGTERM",
		"CGO_CFLAGS=-Wno-deprecated-declarations",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("%s has no %q", path, want)
		}
	}
	for line := range strings.SplitSeq(df, "\n") {
		l := strings.ToLower(strings.TrimSpace(line))
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.Contains(l, "tini") || strings.Contains(l, "dumb-init") {
			t.Errorf("%s: %q: the guard is PID 1 itself and needs no init shim", path, strings.TrimSpace(line))
		}
	}
}
