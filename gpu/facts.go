package gpu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrUnavailable means there are no GPU facts to be had: no NVIDIA driver or
// libnvidia-ml, no device, or NVML did not answer in time. It is an ordinary
// answer, not a failure of the guard.
var ErrUnavailable = errors.New("gpu facts unavailable")

// ErrTimeout means a GPU query did not return within its deadline (a hung
// driver). It wraps ErrUnavailable, so errors.Is(err, ErrUnavailable) holds
// for it too.
var ErrTimeout = fmt.Errorf("%w: query timed out", ErrUnavailable)

// GiB is the number of bytes in a gibibyte.
const GiB = 1 << 30

// GPUProcess is a process holding memory on a device, as NVML sees it. Inside
// a container the pid may be a host pid.
type GPUProcess struct {
	Pid       int    `json:"pid"`
	UsedBytes uint64 `json:"used_bytes"` // 0 when the driver does not say
}

// Device is one GPU at the time of a probe. Memory is in bytes.
type Device struct {
	Index     int          `json:"index"` // NVML index (PCI bus order)
	UUID      string       `json:"uuid"`  // "GPU-..."
	Name      string       `json:"name"`
	MemTotal  uint64       `json:"mem_total"`
	MemUsed   uint64       `json:"mem_used"` // excludes driver-reserved memory where the driver reports it
	MemFree   uint64       `json:"mem_free"`
	UtilGPU   int          `json:"util_gpu"` // percent
	UtilMem   int          `json:"util_mem"` // percent
	TempC     int          `json:"temp_c"`
	PowerW    float64      `json:"power_w"`
	Processes []GPUProcess `json:"processes,omitempty"`
	// Fault names a device-level error NVML reported while probing this
	// device ("ERROR_GPU_IS_LOST"); empty when the device answered.
	Fault string `json:"fault,omitempty"`
}

// Facts is what a probe found out about the machine's GPUs.
type Facts struct {
	Available bool      `json:"available"`
	Reason    string    `json:"reason,omitempty"` // why not, when !Available
	Driver    string    `json:"driver,omitempty"` // "550.54.15"
	CUDA      string    `json:"cuda,omitempty"`   // highest CUDA version the driver supports, "12.4"
	Devices   []Device  `json:"devices,omitempty"`
	Time      time.Time `json:"time"`
}

// HostFacts is what the host looks like: memory and swap from /proc/meminfo,
// the CPUs this process may use, load, free disk space per path and the
// memory cgroup the guard (and so its child) lives in. Sizes are in bytes.
type HostFacts struct {
	MemTotal       uint64            `json:"mem_total"`
	MemAvailable   uint64            `json:"mem_available"`
	SwapTotal      uint64            `json:"swap_total"`
	SwapFree       uint64            `json:"swap_free"`
	CPUs           int               `json:"cpus"`
	Load1          float64           `json:"load1"`
	DiskFree       map[string]uint64 `json:"disk_free,omitempty"`        // path -> free bytes for unprivileged users
	CgroupMemLimit uint64            `json:"cgroup_mem_limit,omitempty"` // 0 = no limit
	OOMKills       int               `json:"oom_kills"`                  // memory.events oom_kill (v2) or memory.oom_control oom_kill (v1)
	CgroupVersion  int               `json:"cgroup_version,omitempty"`   // 1, 2, or 0 when unknown
}

// Visible returns the devices a CUDA program sees under the given value of
// CUDA_VISIBLE_DEVICES, in the order CUDA numbers them:
//
//   - "" (unset): all devices;
//   - "-1" or "none": no device;
//   - a comma-separated list of NVML indices or UUIDs ("GPU-" or "MIG-"
//     followed by a unique prefix of the rest).
//
// As in CUDA, the list ends at the first entry that names no device;
// repeated entries are dropped. Indices are NVML's (PCI bus order), which is
// CUDA's order when CUDA_DEVICE_ORDER=PCI_BUS_ID.
func (f Facts) Visible(cudaVisibleDevices string) []Device {
	s := strings.TrimSpace(cudaVisibleDevices)
	switch s {
	case "":
		return append([]Device(nil), f.Devices...)
	case "-1", "none":
		return nil
	}
	var out []Device
	seen := make(map[int]bool)
	for _, e := range strings.Split(s, ",") {
		i := f.lookup(strings.TrimSpace(e))
		if i < 0 {
			break
		}
		if seen[i] {
			continue
		}
		seen[i] = true
		out = append(out, f.Devices[i])
	}
	return out
}

// lookup returns the position in f.Devices of the device a
// CUDA_VISIBLE_DEVICES entry names, or -1.
func (f Facts) lookup(e string) int {
	if n, err := strconv.Atoi(e); err == nil {
		for i, d := range f.Devices {
			if d.Index == n {
				return i
			}
		}
		return -1
	}
	if !strings.HasPrefix(e, "GPU-") && !strings.HasPrefix(e, "MIG-") {
		return -1
	}
	found := -1
	for i, d := range f.Devices {
		if d.UUID != "" && strings.HasPrefix(d.UUID, e) {
			if found >= 0 {
				return -1 // ambiguous prefix
			}
			found = i
		}
	}
	return found
}

// MaxFreeGiB returns the free memory of the device with the most free
// memory, in GiB (0 with no devices). For the devices a child will see, use
// Facts{Devices: f.Visible(cvd)}.MaxFreeGiB().
func (f Facts) MaxFreeGiB() float64 {
	var m uint64
	for _, d := range f.Devices {
		m = max(m, d.MemFree)
	}
	return float64(m) / GiB
}

// TotalFreeGiB returns the free memory summed over all devices, in GiB.
func (f Facts) TotalFreeGiB() float64 {
	var t uint64
	for _, d := range f.Devices {
		t += d.MemFree
	}
	return float64(t) / GiB
}

// Summary returns one line about f, such as
// "2x NVIDIA H100 80GB HBM3, driver 550.54, CUDA 12.4, free 79.1/79.6 GiB"
// (free and total of the device with the most free memory), or
// "no GPU: <reason>".
func Summary(f Facts) string {
	if !f.Available || len(f.Devices) == 0 {
		r := f.Reason
		if r == "" {
			r = "no devices"
		}
		return "no GPU: " + r
	}
	var names []string
	count := make(map[string]int)
	for _, d := range f.Devices {
		n := d.Name
		if n == "" {
			n = "unknown GPU"
		}
		if count[n] == 0 {
			names = append(names, n)
		}
		count[n]++
	}
	parts := make([]string, 0, len(names)+3)
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%dx %s", count[n], n))
	}
	var b strings.Builder
	b.WriteString(strings.Join(parts, " + "))
	if f.Driver != "" {
		b.WriteString(", driver " + f.Driver)
	}
	if f.CUDA != "" {
		b.WriteString(", CUDA " + f.CUDA)
	}
	best := f.Devices[0]
	for _, d := range f.Devices[1:] {
		if d.MemFree > best.MemFree {
			best = d
		}
	}
	fmt.Fprintf(&b, ", free %.1f/%.1f GiB", float64(best.MemFree)/GiB, float64(best.MemTotal)/GiB)
	return b.String()
}
