package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wan22-guard/wan22-guard/journal"
	"github.com/wan22-guard/wan22-guard/statefile"
	"github.com/wan22-guard/wan22-guard/strategies"
	"github.com/wan22-guard/wan22-guard/wan"
)

// RunFileVersion is the version of run.json this guard writes.
const RunFileVersion = 1

// RunFile is the guard's own progress, saved atomically after every attempt
// in <run-dir>/run.json so a restarted guard continues where it stopped.
type RunFile struct {
	Version     int                 `json:"version"`
	RunID       string              `json:"run_id"`
	Command     []string            `json:"command"`
	CommandHash string              `json:"command_hash"`
	Started     time.Time           `json:"started"`
	Updated     time.Time           `json:"updated"`
	State       strategies.RunState `json:"state"`
	Last        *journal.Record     `json:"last,omitempty"`
	Done        bool                `json:"done,omitempty"`
}

// CommandHash identifies a command line for resuming.
func CommandHash(argv []string) string {
	h := sha256.Sum256([]byte(strings.Join(argv, "\x00")))
	return hex.EncodeToString(h[:8])
}

// LoadRunFile reads run.json.
func LoadRunFile(path string) (RunFile, error) {
	var rf RunFile
	err := statefile.LoadJSON(path, &rf)
	return rf, err
}

// loadRun returns the run to continue: run.json when it belongs to this
// command (or Resume is set) and did not finish, else a fresh one.
func loadRun(o Options, cmd wan.Command, log *logrus.Entry) RunFile {
	fresh := RunFile{Version: RunFileVersion, RunID: o.RunID, Command: journal.RedactArgv(o.Argv), CommandHash: CommandHash(o.Argv)}
	if o.RunFile == "" {
		return fresh
	}
	rf, err := LoadRunFile(o.RunFile)
	switch {
	case errors.Is(err, statefile.ErrNoState):
		return fresh
	case err != nil:
		log.WithError(err).Warn("run.json unreadable; starting a new run")
		return fresh
	}
	if rf.Done || rf.Version != RunFileVersion {
		return fresh
	}
	if rf.CommandHash != fresh.CommandHash && !o.Resume {
		return fresh
	}
	log.WithFields(logrus.Fields{"run_id": rf.RunID, "attempt": rf.State.Attempts}).Info("resuming run")
	rf.Command = fresh.Command
	return rf
}

// saveRun writes run.json; the Supervisor reports a failure once.
func saveRun(o Options, rf RunFile) error {
	if o.RunFile == "" {
		return nil
	}
	rf.Updated = time.Now().UTC()
	return statefile.SaveJSON(o.RunFile, rf)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	return statefile.WriteFileAtomic(path, data, mode)
}

// liveFileName is written in the run dir while a guard runs there and
// removed when it ends: finding one at start means the last guard was killed.
const liveFileName = "live.json"

// liveFile says which guard runs in a run dir.
type liveFile struct {
	RunID string `json:"run_id"`
	Pid   int    `json:"pid"`
	// Start is the guard's start time in clock ticks since boot
	// (/proc/<pid>/stat), so a reused pid is not taken for the guard.
	Start uint64 `json:"start"`
}

func readLive(path string) (liveFile, bool) {
	var lf liveFile
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &lf) != nil || lf.RunID == "" {
		return lf, false
	}
	return lf, true
}

// writeLive records this guard. It is not fsynced: it only has to survive
// the guard being killed, which the page cache does; after a power loss
// nothing of the old run is left to kill.
func writeLive(path, runID string) {
	lf := liveFile{RunID: runID, Pid: os.Getpid(), Start: procStart(os.Getpid())}
	if b, err := json.Marshal(lf); err == nil {
		_ = os.WriteFile(path, b, 0o600)
	}
}

// alive reports whether the guard that wrote lf still runs.
func (lf liveFile) alive() bool {
	return lf.Pid > 0 && lf.Pid != os.Getpid() && lf.Start != 0 && procStart(lf.Pid) == lf.Start
}
