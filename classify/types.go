package classify

import "time"

// Class is a named failure class. One vocabulary is used in code, YAML, logs
// and docs.
type Class string

// The classes the guard knows. Configs may only name these.
const (
	ClassSuccess             Class = "success"
	ClassCUDAOOM             Class = "cuda_oom"
	ClassHostOOM             Class = "host_oom"
	ClassNCCL                Class = "nccl"
	ClassGPUFault            Class = "gpu_fault"
	ClassCUDAEnv             Class = "cuda_env"
	ClassMissingDep          Class = "missing_dep"
	ClassConfig              Class = "config"
	ClassDiskFull            Class = "disk_full"
	ClassNetwork             Class = "network"
	ClassQuantizationTimeout Class = "quantization_timeout"
	ClassQuantizationError   Class = "quantization_error"
	ClassStall               Class = "stall"
	ClassStateCorrupt        Class = "state_corrupt"
	ClassSaveFailed          Class = "save_failed"
	ClassInterrupted         Class = "interrupted"
	ClassUnknown             Class = "unknown"
)

// Classes lists every class in a stable order.
var Classes = []Class{
	ClassSuccess, ClassCUDAOOM, ClassHostOOM, ClassNCCL, ClassGPUFault,
	ClassCUDAEnv, ClassMissingDep, ClassConfig, ClassDiskFull, ClassNetwork,
	ClassQuantizationTimeout, ClassQuantizationError, ClassStall,
	ClassStateCorrupt, ClassSaveFailed, ClassInterrupted, ClassUnknown,
}

// Valid reports whether c is one of Classes.
func (c Class) Valid() bool {
	for _, k := range Classes {
		if k == c {
			return true
		}
	}
	return false
}

// Phase is where in its run the child was when something happened. Phases are
// named by the config; these are the built-in names.
type Phase string

// Built-in phases, in the order Wan2.2 goes through them.
const (
	PhaseStart    Phase = "start"    // launched, nothing recognised yet
	PhaseLoad     Phase = "load"     // pipeline and model creation
	PhaseQuantize Phase = "quantize" // a front-end quantizing weights while loading
	PhaseT5       Phase = "t5"       // T5 load and prompt encode
	PhaseDenoise  Phase = "denoise"  // "Generating video ...", the step loop
	PhaseDecode   Phase = "decode"   // all steps done, VAE decode
	PhaseSave     Phase = "save"     // "Saving generated video to"
	PhaseDone     Phase = "done"     // "Finished."
)

// Progress is the last step counter the child printed (tqdm "k/n").
type Progress struct {
	Step  int `json:"step"`
	Total int `json:"total"`
}

// Watchdog names which guard watchdog ended an attempt, if any.
type Watchdog string

// Watchdogs the runner may report in Outcome.Watchdog.
const (
	WatchdogNone     Watchdog = ""
	WatchdogNoOutput Watchdog = "no_output" // no output for longer than the no-output timeout
	WatchdogPhase    Watchdog = "phase"     // Outcome.Phase outlived its phase timeout
	WatchdogAttempt  Watchdog = "attempt"   // the attempt deadline passed
)

// Outcome is the plain facts about one finished attempt.
type Outcome struct {
	// StartErr is set when the child could not be started; ExitCode is then
	// 127 (not found) or 126 (not executable).
	StartErr string `json:"start_error,omitempty"`
	// ExitCode is the child's exit code, or 128+N when signal N killed it.
	ExitCode int `json:"exit_code"`
	// Signal is the name of the signal that killed the child ("SIGKILL"), or "".
	Signal string `json:"signal,omitempty"`
	// Uptime is how long the attempt ran.
	Uptime time.Duration `json:"uptime"`
	// Watchdog names the watchdog that killed the child, if one did.
	Watchdog Watchdog `json:"watchdog,omitempty"`
	// Phase is the phase the child was in when the attempt ended, as the
	// runner saw it (the phase a phase watchdog judged); "" means the
	// scanner's own phase at the end.
	Phase Phase `json:"phase,omitempty"`
	// Interrupted is true when the guard itself was asked to stop.
	Interrupted bool `json:"interrupted,omitempty"`
	// OOMKills is how much the cgroup's oom_kill counter rose during the attempt.
	OOMKills int `json:"oom_kills,omitempty"`
	// OutputMissing is true when the child exited 0 but the expected output
	// file is missing or empty.
	OutputMissing bool `json:"output_missing,omitempty"`
	// StateInvalid is true when the state file failed validation after the attempt.
	StateInvalid bool `json:"state_invalid,omitempty"`
	// GPUNotReleased carries evidence when GPU memory was not released after the attempt.
	GPUNotReleased string `json:"gpu_not_released,omitempty"`
	// Xid carries the Xid critical errors the driver reported during the
	// attempt ("GPU 0: Xid 79"), or "".
	Xid string `json:"xid,omitempty"`
}

// RootCause is what torchrun's "Root Cause (first observed failure)" block says.
type RootCause struct {
	Rank     int    `json:"rank"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}

// Result is the verdict on one attempt.
type Result struct {
	Class     Class      `json:"class"`
	Rule      string     `json:"rule,omitempty"`
	Evidence  string     `json:"evidence,omitempty"`
	Line      int        `json:"line,omitempty"` // 1-based line number of Evidence in the child's output
	Phase     Phase      `json:"phase"`
	Progress  Progress   `json:"progress"`
	RootCause *RootCause `json:"root_cause,omitempty"`
}
