package nvml

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/wan22-guard/wan22-guard/gpu"
)

// Defaults of the deadlines.
const (
	// DefaultCallTimeout bounds every NVML call.
	DefaultCallTimeout = 2 * time.Second
	// DefaultInitTimeout bounds loading NVML; nvmlInit on a machine with
	// many GPUs and no persistence daemon can take several seconds.
	DefaultInitTimeout = 10 * time.Second
)

// notAvailable is NVML_VALUE_NOT_AVAILABLE as an unsigned long long, what
// NVML reports as a process's used memory when it may not say (containers,
// Windows WDDM).
const notAvailable = ^uint64(0)

// Option configures a Prober.
type Option func(*Prober)

// WithCallTimeout sets the deadline of each NVML call (DefaultCallTimeout).
func WithCallTimeout(d time.Duration) Option {
	return func(p *Prober) {
		if d > 0 {
			p.callTimeout = d
		}
	}
}

// WithInitTimeout sets how long Probe waits for NVML to load (DefaultInitTimeout).
func WithInitTimeout(d time.Duration) Option {
	return func(p *Prober) {
		if d > 0 {
			p.initTimeout = d
		}
	}
}

// WithLibraryPath loads NVML from path instead of libnvidia-ml.so.1.
func WithLibraryPath(path string) Option {
	return func(p *Prober) {
		p.newLib = func() gonvml.Interface { return gonvml.New(gonvml.WithLibraryPath(path)) }
	}
}

// Prober reads gpu.Facts from NVML. It implements gpu.Prober and is safe for
// concurrent use. NVML is loaded once, on first use; a Prober whose NVML
// failed to load keeps answering gpu.ErrUnavailable. Use one Prober per
// process: go-nvml keeps the loaded library's state in package variables,
// so two Probers loading or closing NVML at once would race.
type Prober struct {
	callTimeout time.Duration
	initTimeout time.Duration
	newLib      func() gonvml.Interface

	mu        sync.Mutex
	started   bool
	initDone  chan struct{}
	initStart time.Time
	lib       gonvml.Interface // set once NVML initialised
	memV2     bool             // nvmlDeviceGetMemoryInfo_v2 exists
	initErr   error
	closed    bool
	active    int           // Probe and WatchXid calls in progress
	idle      chan struct{} // closed when active drops to 0 after Close

	stuck atomic.Int64 // abandoned NVML calls that have not returned yet
}

var _ gpu.Prober = (*Prober)(nil)

// New returns a Prober. It does not touch NVML: that happens on the first
// Probe, WatchXid or Preload.
func New(opts ...Option) *Prober {
	p := &Prober{
		callTimeout: DefaultCallTimeout,
		initTimeout: DefaultInitTimeout,
		newLib:      func() gonvml.Interface { return gonvml.New() },
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Preload starts loading NVML in the background and returns at once, so
// that the first Probe finds it ready. Calling it again does nothing.
func (p *Prober) Preload() {
	p.startInit()
}

func (p *Prober) startInit() (<-chan struct{}, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		p.started = true
		p.initDone = make(chan struct{})
		p.initStart = time.Now()
		go p.init(p.initDone)
	}
	return p.initDone, p.initStart.Add(p.initTimeout)
}

// init loads NVML. It runs once, in its own goroutine, because nvmlInit
// may hang; nobody waits for it longer than initTimeout.
func (p *Prober) init(done chan struct{}) {
	defer close(done)
	lib, memV2, err := open(p.newLib)
	p.mu.Lock()
	closed := p.closed
	if err == nil && closed {
		err = fail("nvml closed", gpu.ErrUnavailable)
	} else {
		p.lib, p.memV2 = lib, memV2
	}
	p.initErr = err
	p.mu.Unlock()
	if lib != nil && closed {
		shutdown(lib)
	}
}

func open(newLib func() gonvml.Interface) (lib gonvml.Interface, memV2 bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			lib, memV2, err = nil, false, fail(fmt.Sprintf("nvml init: panic: %v", r), gpu.ErrUnavailable)
		}
	}()
	l := newLib()
	if ret := l.Init(); ret != gonvml.SUCCESS {
		return nil, false, fail(initReason(ret), gpu.ErrUnavailable)
	}
	return l, hasSymbol(l, "nvmlDeviceGetMemoryInfo_v2"), nil
}

// hasSymbol says whether the loaded library exports name. go-nvml calls
// unversioned symbols unchecked, and calling one an old driver lacks would
// crash the process, so optional functions are looked up first.
func hasSymbol(l gonvml.Interface, name string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return l.Extensions().LookupSymbol(name) == nil
}

func shutdown(l gonvml.Interface) {
	defer func() { _ = recover() }()
	l.Shutdown()
}

func initReason(ret gonvml.Return) string {
	switch ret {
	case gonvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so.1 not found (no NVIDIA driver here)"
	case gonvml.ERROR_DRIVER_NOT_LOADED:
		return "NVIDIA driver not loaded"
	case gonvml.ERROR_NO_PERMISSION:
		return "no permission to open the NVIDIA devices"
	case gonvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "libnvidia-ml and the kernel driver differ in version (reload the driver or reboot)"
	}
	return "nvml init: " + ret.Error()
}

// ready waits for NVML to load, at most until initTimeout after loading
// began, and returns the library.
func (p *Prober) ready(ctx context.Context) (gonvml.Interface, bool, error) {
	done, deadline := p.startInit()
	select {
	case <-done:
	default:
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, false, fail(fmt.Sprintf("nvml init: no answer within %s", p.initTimeout), gpu.ErrTimeout)
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			return nil, false, fail(fmt.Sprintf("nvml init: no answer within %s", p.initTimeout), gpu.ErrTimeout)
		case <-ctx.Done():
			return nil, false, fail("nvml init", ctx.Err())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, fail("nvml closed", gpu.ErrUnavailable)
	}
	return p.lib, p.memV2, p.initErr
}

// enter registers a call that uses the library; false once closed.
func (p *Prober) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.active++
	return true
}

func (p *Prober) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active--
	if p.active == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

func (p *Prober) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// use runs fn with the loaded library, between enter and leave.
func (p *Prober) use(ctx context.Context, fn func(lib gonvml.Interface, memV2 bool) error) error {
	if err := ctx.Err(); err != nil {
		return fail("nvml", err)
	}
	lib, memV2, err := p.ready(ctx)
	if err != nil {
		return err
	}
	if !p.enter() {
		return fail("nvml closed", gpu.ErrUnavailable)
	}
	defer p.leave()
	return fn(lib, memV2)
}

// Probe reads the facts of every GPU NVML sees. Outcomes:
//   - Facts{Available: true, ...}, nil;
//   - no libnvidia-ml, no driver, no device, or Close was called:
//     Facts{Available: false, Reason}, an error wrapping gpu.ErrUnavailable;
//   - NVML did not load or answer in time (now or in an earlier call that
//     still has not returned): the same, with gpu.ErrTimeout as well;
//   - ctx ended: Facts{Available: false, Reason}, an error wrapping ctx.Err().
//
// A device NVML cannot reach is listed with its Fault set; a field the
// device does not support stays zero.
func (p *Prober) Probe(ctx context.Context) (gpu.Facts, error) {
	now := time.Now()
	var f gpu.Facts
	err := p.use(ctx, func(lib gonvml.Interface, memV2 bool) error {
		var err error
		f, err = p.collect(ctx, lib, memV2)
		return err
	})
	f.Time = now
	if err != nil {
		return gpu.Facts{Reason: reasonOf(err), Time: now}, err
	}
	return f, nil
}

func (p *Prober) collect(ctx context.Context, lib gonvml.Interface, memV2 bool) (gpu.Facts, error) {
	count, ret, err := call(ctx, p, "DeviceGetCount", lib.DeviceGetCount)
	if err != nil {
		return gpu.Facts{}, err
	}
	if ret != gonvml.SUCCESS {
		return gpu.Facts{}, fail("nvml DeviceGetCount: "+ret.Error(), gpu.ErrUnavailable)
	}
	if count == 0 {
		return gpu.Facts{}, fail("no NVIDIA GPU found", gpu.ErrUnavailable)
	}
	f := gpu.Facts{Available: true}
	driver, ret, err := call(ctx, p, "SystemGetDriverVersion", lib.SystemGetDriverVersion)
	if err != nil {
		return gpu.Facts{}, err
	}
	if ret == gonvml.SUCCESS {
		f.Driver = driver
	}
	cuda, ret, err := call(ctx, p, "SystemGetCudaDriverVersion", lib.SystemGetCudaDriverVersion)
	if err != nil {
		return gpu.Facts{}, err
	}
	if ret == gonvml.SUCCESS {
		f.CUDA = cudaVersion(cuda)
	}
	for i := range count {
		d, err := p.device(ctx, lib, i, memV2)
		if err != nil {
			return gpu.Facts{}, err
		}
		f.Devices = append(f.Devices, d)
	}
	return f, nil
}

// cudaVersion turns NVML's 12040 into "12.4".
func cudaVersion(v int) string {
	if v <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

// isFault says whether ret means the device itself is in trouble, rather
// than that it lacks a feature.
func isFault(ret gonvml.Return) bool {
	switch ret {
	case gonvml.ERROR_GPU_IS_LOST, gonvml.ERROR_RESET_REQUIRED, gonvml.ERROR_CORRUPTED_INFOROM:
		return true
	}
	return false
}

// field runs one device query; ok is false when NVML gave no value, and a
// fault is noted on d.
func field[T any](ctx context.Context, p *Prober, d *gpu.Device, name string, fn func() (T, gonvml.Return)) (T, bool, error) {
	v, ret, err := call(ctx, p, name, fn)
	if err != nil {
		return v, false, err
	}
	if ret != gonvml.SUCCESS {
		if isFault(ret) && d.Fault == "" {
			d.Fault = ret.Error()
		}
		return v, false, nil
	}
	return v, true, nil
}

func (p *Prober) device(ctx context.Context, lib gonvml.Interface, i int, memV2 bool) (gpu.Device, error) {
	d := gpu.Device{Index: i}
	h, ret, err := call(ctx, p, "DeviceGetHandleByIndex", func() (gonvml.Device, gonvml.Return) {
		return lib.DeviceGetHandleByIndex(i)
	})
	if err != nil {
		return d, err
	}
	if ret != gonvml.SUCCESS {
		d.Fault = ret.Error()
		return d, nil
	}
	if v, ok, err := field(ctx, p, &d, "DeviceGetUUID", h.GetUUID); err != nil {
		return d, err
	} else if ok {
		d.UUID = v
	}
	if v, ok, err := field(ctx, p, &d, "DeviceGetName", h.GetName); err != nil {
		return d, err
	} else if ok {
		d.Name = v
	}
	gotMem := false
	if memV2 {
		m, ok, err := field(ctx, p, &d, "DeviceGetMemoryInfo_v2", h.GetMemoryInfo_v2)
		if err != nil {
			return d, err
		}
		if ok && m.Total > 0 {
			d.MemTotal, d.MemUsed, d.MemFree, gotMem = m.Total, m.Used, m.Free, true
		}
	}
	if !gotMem {
		m, ok, err := field(ctx, p, &d, "DeviceGetMemoryInfo", h.GetMemoryInfo)
		if err != nil {
			return d, err
		}
		if ok {
			d.MemTotal, d.MemUsed, d.MemFree = m.Total, m.Used, m.Free
		}
	}
	if u, ok, err := field(ctx, p, &d, "DeviceGetUtilizationRates", h.GetUtilizationRates); err != nil {
		return d, err
	} else if ok {
		d.UtilGPU, d.UtilMem = int(u.Gpu), int(u.Memory)
	}
	if t, ok, err := field(ctx, p, &d, "DeviceGetTemperature", func() (uint32, gonvml.Return) {
		return h.GetTemperature(gonvml.TEMPERATURE_GPU)
	}); err != nil {
		return d, err
	} else if ok {
		d.TempC = int(t)
	}
	if mw, ok, err := field(ctx, p, &d, "DeviceGetPowerUsage", h.GetPowerUsage); err != nil {
		return d, err
	} else if ok {
		d.PowerW = float64(mw) / 1000
	}
	used := make(map[int]uint64)
	for _, q := range []struct {
		name string
		fn   func() ([]gonvml.ProcessInfo, gonvml.Return)
	}{
		{"DeviceGetComputeRunningProcesses", h.GetComputeRunningProcesses},
		{"DeviceGetGraphicsRunningProcesses", h.GetGraphicsRunningProcesses},
	} {
		procs, ok, err := field(ctx, p, &d, q.name, q.fn)
		if err != nil {
			return d, err
		}
		if !ok {
			continue
		}
		for _, pi := range procs {
			b := pi.UsedGpuMemory
			if b == notAvailable {
				b = 0
			}
			used[int(pi.Pid)] = max(used[int(pi.Pid)], b)
		}
	}
	for pid, b := range used {
		d.Processes = append(d.Processes, gpu.GPUProcess{Pid: pid, UsedBytes: b})
	}
	slices.SortFunc(d.Processes, func(a, b gpu.GPUProcess) int { return a.Pid - b.Pid })
	return d, nil
}

// Close shuts NVML down once the Probe and WatchXid calls in progress have
// ended (WatchXid notices Close within its wait interval). Afterwards Probe
// answers gpu.ErrUnavailable. When calls do not end in time, or an NVML
// call is still hung, NVML is left loaded rather than pulled from under
// them, and Close returns an error wrapping gpu.ErrTimeout. Closing twice,
// or a Prober that never loaded NVML, returns nil.
func (p *Prober) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	lib := p.lib
	var idle chan struct{}
	if p.active > 0 {
		idle = make(chan struct{})
		p.idle = idle
	}
	p.mu.Unlock()
	if lib == nil {
		return nil
	}
	if idle != nil {
		t := time.NewTimer(2*p.callTimeout + xidWait)
		defer t.Stop()
		select {
		case <-idle:
		case <-t.C:
			return fmt.Errorf("nvml close: calls still running: %w", gpu.ErrTimeout)
		}
	}
	ret, err := call0(context.Background(), p, "Shutdown", lib.Shutdown)
	if err != nil {
		return fmt.Errorf("nvml close: %w", err)
	}
	if ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml close: %s: %w", ret.Error(), gpu.ErrUnavailable)
	}
	return nil
}
