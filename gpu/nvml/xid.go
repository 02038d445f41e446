package nvml

import (
	"context"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/wan22-guard/wan22-guard/gpu"
)

// xidWait is how long one nvmlEventSetWait blocks; WatchXid notices ctx
// and Close between waits.
const xidWait = 500 * time.Millisecond

const xidEvent = uint64(gonvml.EventTypeXidCriticalError)

// WatchXid calls fn for every Xid critical error NVML reports on any GPU,
// with the device's index and the Xid number, until ctx ends or the Prober
// is closed. It blocks; run it in its own goroutine while a child runs. It
// notices the end of ctx and Close between event waits, so it returns up to
// half a second after them. fn is called from that goroutine, one event at
// a time.
//
// Outcomes:
//   - nil once ctx has ended or Close was called;
//   - at once, an error wrapping gpu.ErrUnavailable when there is no NVML or
//     no device supports Xid events (consumer GPUs, some containers), or
//     wrapping gpu.ErrTimeout when NVML hangs; ctx's error when ctx ended
//     before watching began.
func (p *Prober) WatchXid(ctx context.Context, fn func(dev int, xid uint64)) error {
	return p.use(ctx, func(lib gonvml.Interface, _ bool) error {
		set, devs, err := p.register(ctx, lib)
		if err != nil {
			return err
		}
		defer func() { _, _ = call0(context.Background(), p, "EventSetFree", set.Free) }()
		return p.watch(ctx, set, devs, fn)
	})
}

// register creates an event set and registers every device that supports
// Xid events on it, and returns the set with the devices registered.
func (p *Prober) register(ctx context.Context, lib gonvml.Interface) (gonvml.EventSet, []registered, error) {
	count, ret, err := call(ctx, p, "DeviceGetCount", lib.DeviceGetCount)
	if err != nil {
		return nil, nil, err
	}
	if ret != gonvml.SUCCESS || count == 0 {
		return nil, nil, fail("no NVIDIA GPU found", gpu.ErrUnavailable)
	}
	set, ret, err := call(ctx, p, "EventSetCreate", lib.EventSetCreate)
	if err != nil {
		return nil, nil, err
	}
	if ret != gonvml.SUCCESS {
		return nil, nil, fail("nvml EventSetCreate: "+ret.Error(), gpu.ErrUnavailable)
	}
	var devs []registered
	for i := range count {
		h, ret, err := call(ctx, p, "DeviceGetHandleByIndex", func() (gonvml.Device, gonvml.Return) {
			return lib.DeviceGetHandleByIndex(i)
		})
		if err == nil && ret == gonvml.SUCCESS {
			var types uint64
			types, ret, err = call(ctx, p, "DeviceGetSupportedEventTypes", h.GetSupportedEventTypes)
			if err == nil && ret == gonvml.SUCCESS && types&xidEvent != 0 {
				ret, err = call0(ctx, p, "DeviceRegisterEvents", func() gonvml.Return { return h.RegisterEvents(xidEvent, set) })
				if err == nil && ret == gonvml.SUCCESS {
					devs = append(devs, registered{index: i, dev: h})
				}
			}
		}
		if err != nil {
			_, _ = call0(context.Background(), p, "EventSetFree", set.Free)
			return nil, nil, err
		}
	}
	if len(devs) == 0 {
		_, _ = call0(context.Background(), p, "EventSetFree", set.Free)
		return nil, nil, fail("Xid events not supported", gpu.ErrUnavailable)
	}
	return set, devs, nil
}

type registered struct {
	index int
	dev   gonvml.Device
}

func (p *Prober) watch(ctx context.Context, set gonvml.EventSet, devs []registered, fn func(int, uint64)) error {
	wait := min(xidWait, p.callTimeout/2)
	ms := uint32(wait / time.Millisecond)
	for ctx.Err() == nil && !p.isClosed() {
		data, ret, err := call(ctx, p, "EventSetWait", func() (gonvml.EventData, gonvml.Return) { return set.Wait(ms) })
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		switch ret {
		case gonvml.SUCCESS:
			if data.EventType&xidEvent != 0 {
				fn(indexOf(devs, data.Device), data.EventData)
			}
		case gonvml.ERROR_TIMEOUT:
		default:
			// A failing wait returns at once; pace the retries.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	return nil
}

// indexOf returns the NVML index of an event's device, or -1.
func indexOf(devs []registered, d gonvml.Device) int {
	for _, r := range devs {
		if r.dev == d {
			return r.index
		}
	}
	return -1
}
