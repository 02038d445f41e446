// Package host reads facts about the machine the guard runs on: memory and
// swap, usable CPUs, load, free disk space and the memory cgroup of the
// guard (limit and oom_kill count, cgroup v2 or v1). Memory, load and disk
// come from gopsutil (pure Go, no cgo); the cgroup files are read directly.
//
// host returns gpu.HostFacts. It imports no cgo and no go-nvml, and it does
// no work at import time (gopsutil's cpu and process packages, which read
// /proc in init, are not used). It is kept apart from package gpu because
// gopsutil brings in os/exec, which the pure packages must not import.
package host
