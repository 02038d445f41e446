package nvml

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/wan22-guard/wan22-guard/gpu"
)

// tooLong bounds every wait in these tests.
const tooLong = 30 * time.Second

// realProbe probes the real NVML, or skips when it cannot initialise.
// Tests that load the real library do not run in parallel: go-nvml keeps
// the loaded library's state in package variables.
func realProbe(t testing.TB) (*Prober, gpu.Facts) {
	t.Helper()
	p := New()
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), tooLong)
	defer cancel()
	f, err := p.Probe(ctx)
	if errors.Is(err, gpu.ErrUnavailable) {
		t.Skipf("NVML cannot initialise here: %s", f.Reason)
	}
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	return p, f
}

func TestProber_Probe_withoutNVML(t *testing.T) {
	p := New()
	defer p.Close()
	ctx, cancel := context.WithTimeout(t.Context(), tooLong)
	defer cancel()
	start := time.Now()
	f, err := p.Probe(ctx)
	took := time.Since(start)
	if err == nil {
		t.Skipf("NVML works here: %s", gpu.Summary(f))
	}
	if !errors.Is(err, gpu.ErrUnavailable) {
		t.Fatalf("Probe error = %v, want gpu.ErrUnavailable", err)
	}
	if f.Available || f.Reason == "" || f.Time.IsZero() {
		t.Errorf("Probe = %+v, want unavailable facts with a reason and a time", f)
	}
	if took > DefaultInitTimeout {
		t.Errorf("Probe took %v, want it bounded by the init deadline", took)
	}
	t.Logf("%s (%v)", gpu.Summary(f), took)
	if _, err2 := p.Probe(ctx); !errors.Is(err2, gpu.ErrUnavailable) || err2.Error() != err.Error() {
		t.Errorf("second Probe error = %v, want the same %v", err2, err)
	}
	if err := p.WatchXid(ctx, func(int, uint64) { t.Error("xid callback without NVML") }); !errors.Is(err, gpu.ErrUnavailable) {
		t.Errorf("WatchXid error = %v, want gpu.ErrUnavailable", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
}

func TestProber_Probe_realGPU(t *testing.T) {
	_, f := realProbe(t)
	if !f.Available || len(f.Devices) == 0 || f.Driver == "" || f.CUDA == "" {
		t.Fatalf("Probe = %+v, want devices, driver and CUDA version", f)
	}
	for _, d := range f.Devices {
		if d.MemTotal == 0 || d.MemFree > d.MemTotal || d.MemUsed > d.MemTotal || !strings.HasPrefix(d.UUID, "GPU-") || d.Name == "" {
			t.Errorf("device %+v, want memory, UUID and name", d)
		}
	}
	t.Log(gpu.Summary(f))
}

func TestProber_WatchXid_realGPU(t *testing.T) {
	p, _ := realProbe(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err := p.WatchXid(ctx, func(dev int, xid uint64) { t.Logf("Xid %d on GPU %d", xid, dev) })
	if err != nil && !errors.Is(err, gpu.ErrUnavailable) {
		t.Errorf("WatchXid = %v, want nil or gpu.ErrUnavailable", err)
	}
	t.Logf("WatchXid: %v", err)
}

// fakeDevice is a healthy device answering every query.
func fakeDevice(uuid string, total, used uint64) *mock.Device {
	return &mock.Device{
		GetUUIDFunc: func() (string, gonvml.Return) { return uuid, gonvml.SUCCESS },
		GetNameFunc: func() (string, gonvml.Return) { return "NVIDIA H200", gonvml.SUCCESS },
		GetMemoryInfo_v2Func: func() (gonvml.Memory_v2, gonvml.Return) {
			return gonvml.Memory_v2{Total: total, Reserved: 512 << 20, Used: used, Free: total - used - 512<<20}, gonvml.SUCCESS
		},
		GetMemoryInfoFunc: func() (gonvml.Memory, gonvml.Return) {
			return gonvml.Memory{Total: total, Used: used, Free: total - used}, gonvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (gonvml.Utilization, gonvml.Return) {
			return gonvml.Utilization{Gpu: 90, Memory: 50}, gonvml.SUCCESS
		},
		GetTemperatureFunc: func(s gonvml.TemperatureSensors) (uint32, gonvml.Return) {
			if s != gonvml.TEMPERATURE_GPU {
				return 0, gonvml.ERROR_INVALID_ARGUMENT
			}
			return 41, gonvml.SUCCESS
		},
		GetPowerUsageFunc: func() (uint32, gonvml.Return) { return 350125, gonvml.SUCCESS },
		GetComputeRunningProcessesFunc: func() ([]gonvml.ProcessInfo, gonvml.Return) {
			return nil, gonvml.SUCCESS
		},
		GetGraphicsRunningProcessesFunc: func() ([]gonvml.ProcessInfo, gonvml.Return) {
			return nil, gonvml.SUCCESS
		},
		GetSupportedEventTypesFunc: func() (uint64, gonvml.Return) {
			return gonvml.EventTypeXidCriticalError | gonvml.EventTypeSingleBitEccError, gonvml.SUCCESS
		},
		RegisterEventsFunc: func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.SUCCESS },
	}
}

// fakeLib is an NVML with the given devices and a v2 memory symbol.
func fakeLib(devs ...*mock.Device) *mock.Interface {
	return &mock.Interface{
		InitFunc:     func() gonvml.Return { return gonvml.SUCCESS },
		ShutdownFunc: func() gonvml.Return { return gonvml.SUCCESS },
		ExtensionsFunc: func() gonvml.ExtendedInterface {
			return &mock.ExtendedInterface{LookupSymbolFunc: func(string) error { return nil }}
		},
		DeviceGetCountFunc: func() (int, gonvml.Return) { return len(devs), gonvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (gonvml.Device, gonvml.Return) {
			if i < 0 || i >= len(devs) {
				return nil, gonvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], gonvml.SUCCESS
		},
		SystemGetDriverVersionFunc:     func() (string, gonvml.Return) { return "550.54.15", gonvml.SUCCESS },
		SystemGetCudaDriverVersionFunc: func() (int, gonvml.Return) { return 12040, gonvml.SUCCESS },
	}
}

func newFake(lib gonvml.Interface, opts ...Option) *Prober {
	p := New(opts...)
	p.newLib = func() gonvml.Interface { return lib }
	return p
}

func TestProber_Probe_collects(t *testing.T) {
	t.Parallel()
	d0 := fakeDevice("GPU-0000", 141<<30, 40<<30)
	d0.GetComputeRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) {
		return []gonvml.ProcessInfo{
			{Pid: 30, UsedGpuMemory: 20 << 30},
			{Pid: 10, UsedGpuMemory: 5 << 30},
			{Pid: 11, UsedGpuMemory: ^uint64(0)},
		}, gonvml.SUCCESS
	}
	d0.GetGraphicsRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) {
		return []gonvml.ProcessInfo{{Pid: 10, UsedGpuMemory: 1 << 30}, {Pid: 12, UsedGpuMemory: 2 << 30}}, gonvml.SUCCESS
	}
	d1 := fakeDevice("GPU-1111", 80<<30, 0)
	d1.GetMemoryInfo_v2Func = func() (gonvml.Memory_v2, gonvml.Return) { return gonvml.Memory_v2{}, gonvml.ERROR_NOT_SUPPORTED }
	d1.GetPowerUsageFunc = func() (uint32, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
	d1.GetGraphicsRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) { return nil, gonvml.ERROR_NOT_SUPPORTED }
	d2 := fakeDevice("GPU-2222", 80<<30, 0)
	d2.GetNameFunc = func() (string, gonvml.Return) { return "", gonvml.ERROR_GPU_IS_LOST }
	lib := fakeLib(d0, d1, d2)
	p := newFake(lib)
	defer p.Close()

	f, err := p.Probe(t.Context())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if !f.Available || f.Driver != "550.54.15" || f.CUDA != "12.4" || len(f.Devices) != 3 || f.Time.IsZero() {
		t.Fatalf("Probe = %+v, want 3 devices, driver 550.54.15, CUDA 12.4", f)
	}
	g0 := f.Devices[0]
	want0 := gpu.Device{
		Index: 0, UUID: "GPU-0000", Name: "NVIDIA H200",
		MemTotal: 141 << 30, MemUsed: 40 << 30, MemFree: 141<<30 - 40<<30 - 512<<20,
		UtilGPU: 90, UtilMem: 50, TempC: 41, PowerW: 350.125,
		Processes: []gpu.GPUProcess{{Pid: 10, UsedBytes: 5 << 30}, {Pid: 11}, {Pid: 12, UsedBytes: 2 << 30}, {Pid: 30, UsedBytes: 20 << 30}},
	}
	if !equalDevice(g0, want0) {
		t.Errorf("device 0 = %+v, want %+v", g0, want0)
	}
	g1 := f.Devices[1]
	if g1.MemTotal != 80<<30 || g1.MemFree != 80<<30 || g1.PowerW != 0 || g1.Fault != "" {
		t.Errorf("device 1 = %+v, want v1 memory, no power, no fault", g1)
	}
	if g2 := f.Devices[2]; g2.Fault != "ERROR_GPU_IS_LOST" || g2.UUID != "GPU-2222" {
		t.Errorf("device 2 = %+v, want Fault ERROR_GPU_IS_LOST and its other fields", g2)
	}
	if n := len(lib.InitCalls()); n != 1 {
		t.Errorf("Init called %d times, want 1", n)
	}
}

func equalDevice(a, b gpu.Device) bool {
	return reflect.DeepEqual(a, b)
}

func TestProber_Probe_memoryV1WhenV2IsMissing(t *testing.T) {
	t.Parallel()
	d := fakeDevice("GPU-0000", 24<<30, 4<<30)
	d.GetMemoryInfo_v2Func = nil // calling it would panic, as calling a missing symbol would crash
	lib := fakeLib(d)
	lib.ExtensionsFunc = func() gonvml.ExtendedInterface {
		return &mock.ExtendedInterface{LookupSymbolFunc: func(s string) error { return errors.New(s + " not found") }}
	}
	p := newFake(lib)
	defer p.Close()
	f, err := p.Probe(t.Context())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if d := f.Devices[0]; d.MemTotal != 24<<30 || d.MemUsed != 4<<30 || d.MemFree != 20<<30 {
		t.Errorf("device = %+v, want v1 memory", d)
	}
}

func TestProber_Probe_unavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		lib        func() *mock.Interface
		wantReason string
	}{
		{"library missing", func() *mock.Interface {
			l := fakeLib()
			l.InitFunc = func() gonvml.Return { return gonvml.ERROR_LIBRARY_NOT_FOUND }
			return l
		}, "libnvidia-ml.so.1 not found"},
		{"driver not loaded", func() *mock.Interface {
			l := fakeLib()
			l.InitFunc = func() gonvml.Return { return gonvml.ERROR_DRIVER_NOT_LOADED }
			return l
		}, "NVIDIA driver not loaded"},
		{"init panics", func() *mock.Interface {
			l := fakeLib()
			l.InitFunc = nil
			return l
		}, "nvml init: panic"},
		{"no devices", func() *mock.Interface { return fakeLib() }, "no NVIDIA GPU found"},
		{"device count fails", func() *mock.Interface {
			l := fakeLib()
			l.DeviceGetCountFunc = func() (int, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
			return l
		}, "nvml DeviceGetCount: ERROR_UNKNOWN"},
		{"a call panics", func() *mock.Interface {
			l := fakeLib(fakeDevice("GPU-0", 1<<30, 0))
			l.SystemGetDriverVersionFunc = nil
			return l
		}, "nvml SystemGetDriverVersion: panic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lib := tt.lib()
			p := newFake(lib)
			defer p.Close()
			for range 2 {
				f, err := p.Probe(t.Context())
				if !errors.Is(err, gpu.ErrUnavailable) || errors.Is(err, gpu.ErrTimeout) {
					t.Fatalf("Probe error = %v, want gpu.ErrUnavailable", err)
				}
				if f.Available || !strings.HasPrefix(f.Reason, tt.wantReason) {
					t.Errorf("Probe = %+v, want reason %q", f, tt.wantReason)
				}
			}
			if n := len(lib.InitCalls()); lib.InitFunc != nil && n != 1 {
				t.Errorf("Init called %d times, want once", n)
			}
		})
	}
}

func TestProber_Probe_cancelled(t *testing.T) {
	t.Parallel()
	p := newFake(fakeLib(fakeDevice("GPU-0", 1<<30, 0)))
	defer p.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f, err := p.Probe(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, gpu.ErrUnavailable) || f.Available {
		t.Errorf("Probe(cancelled) = %+v, %v, want context.Canceled", f, err)
	}
}

func TestProber_initHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		lib := fakeLib(fakeDevice("GPU-0", 1<<30, 0))
		lib.InitFunc = func() gonvml.Return { <-release; return gonvml.SUCCESS }
		p := newFake(lib, WithInitTimeout(3*time.Second))

		start := time.Now()
		_, err := p.Probe(t.Context())
		if !errors.Is(err, gpu.ErrTimeout) || time.Since(start) != 3*time.Second {
			t.Errorf("Probe = %v after %v, want gpu.ErrTimeout after 3s", err, time.Since(start))
		}
		start = time.Now()
		if _, err := p.Probe(t.Context()); !errors.Is(err, gpu.ErrTimeout) || time.Since(start) != 0 {
			t.Errorf("second Probe = %v after %v, want gpu.ErrTimeout at once", err, time.Since(start))
		}

		close(release)
		synctest.Wait()
		if f, err := p.Probe(t.Context()); err != nil || !f.Available {
			t.Errorf("Probe after init returned = %+v, %v, want facts", f, err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		if n := len(lib.ShutdownCalls()); n != 1 {
			t.Errorf("Shutdown called %d times, want 1", n)
		}
	})
}

func TestProber_callHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var once sync.Once
		lib := fakeLib(fakeDevice("GPU-0", 1<<30, 0))
		lib.DeviceGetCountFunc = func() (int, gonvml.Return) {
			once.Do(func() { <-release })
			return 1, gonvml.SUCCESS
		}
		p := newFake(lib, WithCallTimeout(time.Second))

		start := time.Now()
		f, err := p.Probe(t.Context())
		if !errors.Is(err, gpu.ErrTimeout) || time.Since(start) != time.Second {
			t.Errorf("Probe = %v after %v, want gpu.ErrTimeout after 1s", err, time.Since(start))
		}
		if f.Reason != "nvml DeviceGetCount: no answer within 1s" {
			t.Errorf("Reason = %q", f.Reason)
		}
		start = time.Now()
		f, err = p.Probe(t.Context())
		if !errors.Is(err, gpu.ErrTimeout) || time.Since(start) != 0 || !strings.Contains(f.Reason, "has not returned") {
			t.Errorf("Probe while hung = %v (%q) after %v, want gpu.ErrTimeout at once", err, f.Reason, time.Since(start))
		}
		if err := p.Close(); !errors.Is(err, gpu.ErrTimeout) {
			t.Errorf("Close while hung = %v, want gpu.ErrTimeout", err)
		}
		if n := len(lib.ShutdownCalls()); n != 0 {
			t.Errorf("Shutdown called %d times while a call hung, want 0", n)
		}
		close(release)
		synctest.Wait()
	})
}

func TestProber_recoversAfterHang(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var once sync.Once
		lib := fakeLib(fakeDevice("GPU-0", 1<<30, 0))
		lib.SystemGetDriverVersionFunc = func() (string, gonvml.Return) {
			once.Do(func() { <-release })
			return "550", gonvml.SUCCESS
		}
		p := newFake(lib)
		if _, err := p.Probe(t.Context()); !errors.Is(err, gpu.ErrTimeout) {
			t.Errorf("Probe = %v, want gpu.ErrTimeout", err)
		}
		close(release)
		synctest.Wait()
		if f, err := p.Probe(t.Context()); err != nil || f.Driver != "550" {
			t.Errorf("Probe after the call returned = %+v, %v, want facts", f, err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
}

func TestProber_Close(t *testing.T) {
	t.Parallel()
	lib := fakeLib(fakeDevice("GPU-0", 1<<30, 0))
	p := newFake(lib)
	if err := p.Close(); err != nil {
		t.Errorf("Close before use = %v", err)
	}
	if _, err := p.Probe(t.Context()); !errors.Is(err, gpu.ErrUnavailable) {
		t.Errorf("Probe after Close = %v, want gpu.ErrUnavailable", err)
	}

	lib = fakeLib(fakeDevice("GPU-0", 1<<30, 0))
	p = newFake(lib)
	if _, err := p.Probe(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	if n := len(lib.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times, want 1", n)
	}
	if f, err := p.Probe(t.Context()); !errors.Is(err, gpu.ErrUnavailable) || f.Reason != "nvml closed" {
		t.Errorf("Probe after Close = %+v, %v, want nvml closed", f, err)
	}
}

func TestProber_CloseWhileInitRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		lib := fakeLib()
		lib.InitFunc = func() gonvml.Return { <-release; return gonvml.SUCCESS }
		p := newFake(lib)
		p.Preload()
		synctest.Wait()
		if err := p.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		close(release)
		synctest.Wait()
		if n := len(lib.ShutdownCalls()); n != 1 {
			t.Errorf("Shutdown called %d times, want 1 (by the init that finished after Close)", n)
		}
	})
}

func TestProber_concurrentProbes(t *testing.T) {
	t.Parallel()
	p := newFake(fakeLib(fakeDevice("GPU-0", 1<<30, 0), fakeDevice("GPU-1", 1<<30, 0)))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if f, err := p.Probe(t.Context()); err != nil || len(f.Devices) != 2 {
					t.Errorf("Probe = %+v, %v", f, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

type xidHit struct {
	dev int
	xid uint64
}

func TestProber_WatchXid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d0 := fakeDevice("GPU-0", 1<<30, 0)
		d1 := fakeDevice("GPU-1", 1<<30, 0)
		d2 := fakeDevice("GPU-2", 1<<30, 0)
		d2.GetSupportedEventTypesFunc = func() (uint64, gonvml.Return) { return gonvml.EventTypePState, gonvml.SUCCESS }
		events := []struct {
			data gonvml.EventData
			ret  gonvml.Return
		}{
			{ret: gonvml.ERROR_TIMEOUT},
			{data: gonvml.EventData{Device: d1, EventType: gonvml.EventTypeXidCriticalError, EventData: 79}, ret: gonvml.SUCCESS},
			{data: gonvml.EventData{Device: d0, EventType: gonvml.EventTypeSingleBitEccError}, ret: gonvml.SUCCESS},
			{ret: gonvml.ERROR_UNKNOWN},
			{data: gonvml.EventData{Device: d0, EventType: gonvml.EventTypeXidCriticalError, EventData: 48}, ret: gonvml.SUCCESS},
		}
		var mu sync.Mutex
		next := 0
		set := &mock.EventSet{
			WaitFunc: func(ms uint32) (gonvml.EventData, gonvml.Return) {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i < len(events) {
					return events[i].data, events[i].ret
				}
				time.Sleep(time.Duration(ms) * time.Millisecond)
				return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
			},
			FreeFunc: func() gonvml.Return { return gonvml.SUCCESS },
		}
		lib := fakeLib(d0, d1, d2)
		lib.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) { return set, gonvml.SUCCESS }
		p := newFake(lib)

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		var hits []xidHit
		err := p.WatchXid(ctx, func(dev int, xid uint64) { hits = append(hits, xidHit{dev, xid}) })
		if err != nil {
			t.Errorf("WatchXid = %v, want nil at the end of ctx", err)
		}
		if want := []xidHit{{1, 79}, {0, 48}}; !slices.Equal(hits, want) {
			t.Errorf("Xid hits = %v, want %v", hits, want)
		}
		if len(d0.RegisterEventsCalls()) != 1 || len(d1.RegisterEventsCalls()) != 1 || len(d2.RegisterEventsCalls()) != 0 {
			t.Error("want Xid events registered on the devices that support them only")
		}
		if c := d0.RegisterEventsCalls(); len(c) == 1 && c[0].V != gonvml.EventTypeXidCriticalError {
			t.Errorf("registered event types %#x, want Xid only", c[0].V)
		}
		if n := len(set.FreeCalls()); n != 1 {
			t.Errorf("event set freed %d times, want 1", n)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
}

func TestProber_WatchXid_endsOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := &mock.EventSet{
			WaitFunc: func(ms uint32) (gonvml.EventData, gonvml.Return) {
				time.Sleep(time.Duration(ms) * time.Millisecond)
				return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
			},
			FreeFunc: func() gonvml.Return { return gonvml.SUCCESS },
		}
		lib := fakeLib(fakeDevice("GPU-0", 1<<30, 0))
		lib.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) { return set, gonvml.SUCCESS }
		p := newFake(lib)
		done := make(chan error, 1)
		go func() { done <- p.WatchXid(context.Background(), func(int, uint64) {}) }()
		time.Sleep(2 * time.Second)
		if err := p.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("WatchXid after Close = %v, want nil", err)
		}
		if len(set.FreeCalls()) != 1 || len(lib.ShutdownCalls()) != 1 {
			t.Error("want the event set freed before NVML is shut down")
		}
	})
}

func TestProber_WatchXid_unsupported(t *testing.T) {
	t.Parallel()
	d := fakeDevice("GPU-0", 1<<30, 0)
	d.GetSupportedEventTypesFunc = func() (uint64, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
	set := &mock.EventSet{FreeFunc: func() gonvml.Return { return gonvml.SUCCESS }}
	lib := fakeLib(d)
	lib.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) { return set, gonvml.SUCCESS }
	p := newFake(lib)
	defer p.Close()
	err := p.WatchXid(t.Context(), func(int, uint64) { t.Error("unexpected Xid") })
	if !errors.Is(err, gpu.ErrUnavailable) || !strings.Contains(err.Error(), "Xid events not supported") {
		t.Errorf("WatchXid = %v, want gpu.ErrUnavailable: Xid events not supported", err)
	}
	if n := len(set.FreeCalls()); n != 1 {
		t.Errorf("event set freed %d times, want 1", n)
	}
}

func TestCudaVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[int]string{12040: "12.4", 11080: "11.8", 12090: "12.9", 13000: "13.0", 0: ""} {
		if got := cudaVersion(in); got != want {
			t.Errorf("cudaVersion(%d) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkProbeUnavailable(b *testing.B) {
	p := New()
	defer p.Close()
	ctx := b.Context()
	if _, err := p.Probe(ctx); err == nil {
		b.Skip("NVML works here")
	}
	for b.Loop() {
		if _, err := p.Probe(ctx); !errors.Is(err, gpu.ErrUnavailable) {
			b.Fatal(err)
		}
	}
}

func BenchmarkProbeFake(b *testing.B) {
	p := newFake(fakeLib(fakeDevice("GPU-0", 1<<30, 0), fakeDevice("GPU-1", 1<<30, 0)))
	defer p.Close()
	ctx := b.Context()
	for b.Loop() {
		if _, err := p.Probe(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
