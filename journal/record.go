package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/sirupsen/logrus"
)

// Record is what the journal keeps about one attempt. Each record is one line
// of attempts.jsonl: a logrus JSON object whose top-level keys are the
// record's fields plus logrus's "level", "msg" (always "attempt") and "time"
// (when the line was written). Fields marked "omitted when empty" are left
// out of the line when they hold their zero value.
//
// Free text in a record is data: the JSON encoder escapes it, so nothing the
// child prints can end a line or add a field. Write redacts secrets from
// Argv, EnvChanges, Changes and the free-text fields before writing.
type Record struct {
	// RunID identifies the run (one invocation of the guard, resumed or not).
	RunID string `json:"run_id"`
	// Attempt is the attempt number within the run, from 1.
	Attempt int `json:"attempt"`
	// Argv is the command line the attempt ran, after ladder changes,
	// redacted. Omitted when empty.
	Argv []string `json:"argv,omitempty"`
	// EnvChanges maps each environment variable the guard set for this
	// attempt to its value, redacted. Omitted when empty.
	EnvChanges map[string]string `json:"env_changes,omitempty"`
	// Start is when the attempt was launched (RFC 3339 with nanoseconds).
	Start time.Time `json:"start"`
	// End is when the attempt ended (RFC 3339 with nanoseconds).
	End time.Time `json:"end"`
	// DurationMS is how long the attempt ran, in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// ExitCode is the child's exit code, 128+N when signal N killed it, or
	// 127/126 when it could not be started.
	ExitCode int `json:"exit_code"`
	// Signal names the signal that killed the child ("SIGKILL"). Omitted when empty.
	Signal string `json:"signal,omitempty"`
	// StartError says why the child could not be started. Omitted when empty.
	StartError string `json:"start_error,omitempty"`
	// Watchdog names the guard watchdog that ended the attempt ("no_output",
	// "phase", "attempt"). Omitted when empty.
	Watchdog string `json:"watchdog,omitempty"`

	// Class is the failure class of the attempt ("success", "cuda_oom", ...).
	Class string `json:"class"`
	// Rule names the rule that chose Class. Omitted when empty.
	Rule string `json:"rule,omitempty"`
	// Evidence is the output line that matched Rule, redacted. Omitted when empty.
	Evidence string `json:"evidence,omitempty"`
	// Line is the 1-based line number of Evidence in the child's output.
	// Omitted when zero.
	Line int `json:"line,omitempty"`
	// Phase is where the child was when the attempt ended ("load", "denoise",
	// ...). Omitted when empty.
	Phase string `json:"phase,omitempty"`
	// Progress is the last step counter the child printed. Omitted when zero.
	Progress Progress `json:"progress,omitzero"`
	// RootCause is what torchrun's root-cause block said. Omitted when absent.
	RootCause *RootCause `json:"root_cause,omitempty"`

	// Action is what the guard decided to do after the attempt ("retry",
	// "backoff", "fallback", ...). Omitted when empty.
	Action string `json:"action,omitempty"`
	// DelayMS is how long the guard waits before the next attempt, in
	// milliseconds. Omitted when zero.
	DelayMS int64 `json:"delay_ms,omitempty"`
	// Reason is the decision's reason constant. Omitted when empty.
	Reason string `json:"reason,omitempty"`
	// Message is the decision explained for people, redacted. Omitted when empty.
	Message string `json:"message,omitempty"`
	// Ladder names the ladder in effect once the decision is applied: for a
	// fallback, the ladder the next attempt runs on; otherwise the one this
	// attempt ran on. Omitted when empty: the command as given, or, when an
	// earlier record of the run named a rung, still that rung.
	Ladder string `json:"ladder,omitempty"`
	// Rung is the 1-based rung of Ladder in effect once the decision is
	// applied, read like Ladder. Omitted when zero.
	Rung int `json:"rung,omitempty"`
	// RungName is Rung's name in the config. Omitted when empty.
	RungName string `json:"rung_name,omitempty"`
	// Changes lists what the rung changes relative to the command as given,
	// redacted. Omitted when empty.
	Changes []Change `json:"changes,omitempty"`
	// Trades lists what the rung gives up ("slower", "lower resolution").
	// Omitted when empty.
	Trades []string `json:"trades,omitempty"`

	// Task is the Wan2.2 --task of the attempt. Omitted when empty.
	Task string `json:"task,omitempty"`
	// Size is the --size the attempt ran with ("1280*720"). Omitted when empty.
	Size string `json:"size,omitempty"`
	// FrameNum is the --frame_num the attempt ran with. Omitted when zero.
	FrameNum int `json:"frame_num,omitempty"`
	// SaveFile is the output file the attempt was to write. Omitted when empty.
	SaveFile string `json:"save_file,omitempty"`
	// OutputBytes is the size of SaveFile after a clean exit. Omitted when zero.
	OutputBytes int64 `json:"output_bytes,omitempty"`
	// SeedSeen is the seed the child reported using. Omitted when zero, so a
	// seed of 0 is not recorded.
	SeedSeen int64 `json:"seed_seen,omitempty"`
	// Tail is the last lines the child printed (both streams), redacted.
	// Omitted when empty.
	Tail []string `json:"tail,omitempty"`
	// DroppedChunks counts chunks of output that skipped the scanner because
	// it fell behind (they still reached the guard's own output). Omitted
	// when zero.
	DroppedChunks int64 `json:"dropped_chunks,omitempty"`

	// Host holds facts about the host as JSON, kept as given. It must be
	// valid JSON; otherwise Write leaves it out. Omitted when empty.
	Host json.RawMessage `json:"host,omitempty"`
	// GPUs holds facts about the GPUs as JSON, kept as given. It must be
	// valid JSON; otherwise Write leaves it out. Omitted when empty.
	GPUs json.RawMessage `json:"gpus,omitempty"`
	// PeakRSSBytes is the highest resident memory of the child's process
	// tree during the attempt. Omitted when zero.
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
	// PeakVRAMBytes is the highest GPU memory the attempt used. Omitted when zero.
	PeakVRAMBytes int64 `json:"peak_vram_bytes,omitempty"`
	// OOMKills is how much the cgroup's oom_kill counter rose during the
	// attempt. Omitted when zero.
	OOMKills int `json:"oom_kills,omitempty"`
	// Xid lists the Xid critical errors the driver reported during the
	// attempt ("GPU 0: Xid 79"); omitted when none (or no NVML).
	Xid string `json:"xid,omitempty"`
	// GPUModel is the model name of the GPU the attempt ran on. Omitted when empty.
	GPUModel string `json:"gpu_model,omitempty"`
}

// Progress is the last step counter the child printed (tqdm "k/n").
type Progress struct {
	Step  int `json:"step"`
	Total int `json:"total"`
}

// RootCause is what torchrun's "Root Cause (first observed failure)" block says.
type RootCause struct {
	Rank     int    `json:"rank"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}

// Change is one thing a ladder rung changes: an argv flag, an environment
// variable or a config file key.
type Change struct {
	// Kind is "argv", "env" or "config".
	Kind string `json:"kind"`
	// What names the flag, variable or key.
	What string `json:"what"`
	// From is the value before the change ("" when it was absent).
	From string `json:"from,omitempty"`
	// To is the value after the change ("" when it was removed).
	To string `json:"to,omitempty"`
}

// msgAttempt is the logrus message of every record line.
const msgAttempt = "attempt"

// fields turns r into logrus fields with the same keys and omission rules as
// its JSON tags, redacting secrets on the way. A Host or GPUs value that is
// not valid JSON is left out and reported in the error, which wraps
// ErrInvalidRecord; the fields are usable either way.
//
// The fields are set one by one rather than by a JSON round trip: the
// formatter marshals them once, and marshalling the record first would double
// the work. Every slice and map is a copy, because a write that outlives its
// deadline still reads them after Write has returned.
func (r *Record) fields() (logrus.Fields, error) {
	f := make(logrus.Fields, 48)
	f["run_id"] = r.RunID
	f["attempt"] = r.Attempt
	if len(r.Argv) > 0 {
		f["argv"] = RedactArgv(r.Argv)
	}
	if len(r.EnvChanges) > 0 {
		f["env_changes"] = RedactEnv(r.EnvChanges)
	}
	f["start"] = r.Start
	f["end"] = r.End
	f["duration_ms"] = r.DurationMS
	f["exit_code"] = r.ExitCode
	putString(f, "signal", r.Signal)
	putString(f, "start_error", RedactLine(r.StartError))
	putString(f, "watchdog", r.Watchdog)

	f["class"] = r.Class
	putString(f, "rule", r.Rule)
	putString(f, "evidence", RedactLine(r.Evidence))
	putInt(f, "line", int64(r.Line))
	putString(f, "phase", r.Phase)
	if r.Progress != (Progress{}) {
		f["progress"] = r.Progress
	}
	if r.RootCause != nil {
		rc := *r.RootCause
		rc.Error = RedactLine(rc.Error)
		f["root_cause"] = rc
	}

	putString(f, "action", r.Action)
	putInt(f, "delay_ms", r.DelayMS)
	putString(f, "reason", r.Reason)
	putString(f, "message", RedactLine(r.Message))
	putString(f, "ladder", r.Ladder)
	putInt(f, "rung", int64(r.Rung))
	putString(f, "rung_name", r.RungName)
	if len(r.Changes) > 0 {
		f["changes"] = redactChanges(r.Changes)
	}
	if len(r.Trades) > 0 {
		f["trades"] = slices.Clone(r.Trades)
	}

	putString(f, "task", r.Task)
	putString(f, "size", r.Size)
	putInt(f, "frame_num", int64(r.FrameNum))
	putString(f, "save_file", r.SaveFile)
	putInt(f, "output_bytes", r.OutputBytes)
	putInt(f, "seed_seen", r.SeedSeen)
	if len(r.Tail) > 0 {
		f["tail"] = redactLines(r.Tail)
	}
	putInt(f, "dropped_chunks", r.DroppedChunks)

	var err error
	if len(r.Host) > 0 {
		if json.Valid(r.Host) {
			f["host"] = json.RawMessage(bytes.Clone(r.Host))
		} else {
			err = fmt.Errorf("attempt %d: host facts are not valid JSON, left out: %w", r.Attempt, ErrInvalidRecord)
		}
	}
	if len(r.GPUs) > 0 {
		if json.Valid(r.GPUs) {
			f["gpus"] = json.RawMessage(bytes.Clone(r.GPUs))
		} else {
			err = fmt.Errorf("attempt %d: gpu facts are not valid JSON, left out: %w", r.Attempt, ErrInvalidRecord)
		}
	}
	putInt(f, "peak_rss_bytes", r.PeakRSSBytes)
	putInt(f, "peak_vram_bytes", r.PeakVRAMBytes)
	putInt(f, "oom_kills", int64(r.OOMKills))
	putString(f, "xid", r.Xid)
	putString(f, "gpu_model", r.GPUModel)
	return f, err
}

func putString(f logrus.Fields, k, v string) {
	if v != "" {
		f[k] = v
	}
}

func putInt(f logrus.Fields, k string, v int64) {
	if v != 0 {
		f[k] = v
	}
}

// when is the time a record is filtered by: its end, or its start when it
// has no end.
func (r *Record) when() time.Time {
	if r.End.IsZero() {
		return r.Start
	}
	return r.End
}
