package host

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/wan22-guard/wan22-guard/gpu"
)

// Default locations of the cgroup files.
const (
	DefaultCgroupRoot = "/sys/fs/cgroup"
	DefaultSelfCgroup = "/proc/self/cgroup"
)

// Reader reads host facts. The zero value reads the live system; tests point
// the cgroup fields at fake trees.
type Reader struct {
	CgroupRoot string // where the cgroup file systems are mounted (DefaultCgroupRoot)
	SelfCgroup string // the file naming the guard's cgroups (DefaultSelfCgroup)
}

// Read returns the live host's facts, with free disk space for each of
// paths. See Reader.Read.
func Read(ctx context.Context, paths ...string) (gpu.HostFacts, error) {
	return Reader{}.Read(ctx, paths...)
}

// Read returns the host facts it could read, with free disk space (for
// unprivileged users) for each of paths. A part that cannot be read stays
// zero (a path whose disk cannot be read is left out of DiskFree), and the
// error joins what went wrong; the other parts are still filled in. A
// machine without cgroups gives CgroupVersion 0 and no error.
func (r Reader) Read(ctx context.Context, paths ...string) (gpu.HostFacts, error) {
	f := gpu.HostFacts{CPUs: runtime.NumCPU()}
	var errs []error
	if vm, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("read memory: %w", err))
	} else {
		f.MemTotal, f.MemAvailable = vm.Total, vm.Available
	}
	if sw, err := mem.SwapMemoryWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("read swap: %w", err))
	} else {
		f.SwapTotal, f.SwapFree = sw.Total, sw.Free
	}
	if avg, err := load.AvgWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("read load: %w", err))
	} else {
		f.Load1 = avg.Load1
	}
	for _, p := range paths {
		u, err := disk.UsageWithContext(ctx, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read free disk %s: %w", p, err))
			continue
		}
		if f.DiskFree == nil {
			f.DiskFree = make(map[string]uint64, len(paths))
		}
		f.DiskFree[p] = u.Free
	}
	cg, err := r.Cgroup()
	if err != nil {
		errs = append(errs, err)
	}
	f.CgroupVersion, f.CgroupMemLimit, f.OOMKills = cg.Version, cg.MemLimit, cg.OOMKills
	return f, errors.Join(errs...)
}
