package nvml

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/wan22-guard/wan22-guard/gpu"
)

// reasonError carries the short reason that goes into gpu.Facts.Reason.
type reasonError struct {
	reason string
	err    error // gpu.ErrUnavailable, gpu.ErrTimeout or a context error
}

func (e *reasonError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

func fail(reason string, err error) error { return &reasonError{reason: reason, err: err} }

// reasonOf returns the short reason of err.
func reasonOf(err error) string {
	var re *reasonError
	if errors.As(err, &re) {
		return re.reason
	}
	return err.Error()
}

// call states shared between a call's goroutine and its caller.
const (
	callRunning int32 = iota
	callFinished
	callAbandoned
)

// outcome is what one NVML call returned.
type outcome[T any] struct {
	v     T
	ret   gonvml.Return
	panic any
}

// call runs fn, one NVML call, in its own goroutine and waits for it at
// most p.callTimeout. A call that does not return in time is abandoned and
// counted as stuck until it does return; while any call is stuck, call
// refuses at once with gpu.ErrTimeout rather than piling more goroutines
// onto a hung driver. A panic in fn becomes an error.
//
// ctx is checked before the call starts, not during it: NVML calls cannot
// be interrupted, and abandoning a healthy call that is about to return
// would only make the next one look stuck.
//
// The error is non-nil only when fn's result is not known (ctx ended,
// timeout, panic); otherwise ret is NVML's own answer.
func call[T any](ctx context.Context, p *Prober, name string, fn func() (T, gonvml.Return)) (T, gonvml.Return, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, gonvml.ERROR_UNKNOWN, fail("nvml "+name, err)
	}
	if p.stuck.Load() > 0 {
		return zero, gonvml.ERROR_UNKNOWN, fail("nvml "+name+": an earlier NVML call has not returned", gpu.ErrTimeout)
	}
	ch := make(chan outcome[T], 1)
	var state atomic.Int32
	go func() {
		var o outcome[T]
		defer func() {
			if r := recover(); r != nil {
				o.panic = r
			}
			ch <- o
			if !state.CompareAndSwap(callRunning, callFinished) {
				p.stuck.Add(-1)
			}
		}()
		o.v, o.ret = fn()
	}()

	t := time.NewTimer(p.callTimeout)
	defer t.Stop()
	select {
	case o := <-ch:
		return result(name, o)
	case <-t.C:
	}
	p.stuck.Add(1)
	if !state.CompareAndSwap(callRunning, callAbandoned) {
		p.stuck.Add(-1) // it returned meanwhile
		return result(name, <-ch)
	}
	return zero, gonvml.ERROR_UNKNOWN, fail(fmt.Sprintf("nvml %s: no answer within %s", name, p.callTimeout), gpu.ErrTimeout)
}

func result[T any](name string, o outcome[T]) (T, gonvml.Return, error) {
	if o.panic != nil {
		var zero T
		return zero, gonvml.ERROR_UNKNOWN, fail(fmt.Sprintf("nvml %s: panic: %v", name, o.panic), gpu.ErrUnavailable)
	}
	return o.v, o.ret, nil
}

// call0 is call for NVML functions that return only a Return.
func call0(ctx context.Context, p *Prober, name string, fn func() gonvml.Return) (gonvml.Return, error) {
	_, ret, err := call(ctx, p, name, func() (struct{}, gonvml.Return) { return struct{}{}, fn() })
	return ret, err
}
