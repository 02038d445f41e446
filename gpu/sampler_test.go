package gpu

import (
	"context"
	"errors"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

func facts(used ...uint64) Facts {
	f := Facts{Available: true}
	for i, u := range used {
		f.Devices = append(f.Devices, Device{Index: i, MemTotal: 80 * GiB, MemUsed: u, MemFree: 80*GiB - u})
	}
	return f
}

func TestSampler_peaks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &FakeProber{
			Seq: []FakeResult{
				{Facts: facts(10*GiB, 1*GiB)},
				{Facts: facts(30*GiB, 2*GiB)},
				{Err: ErrUnavailable},
				{Facts: facts(20*GiB, 25*GiB)},
			},
			Facts: facts(5*GiB, 5*GiB),
		}
		self := os.Getpid()
		s := NewSampler(p, 100*time.Millisecond, func() []int { return []int{self} })
		s.Start(t.Context())
		time.Sleep(550 * time.Millisecond) // fake time: samples at 100, 200, 300, 400, 500 ms
		synctest.Wait()
		got := s.Stop()

		if got.Samples != 5 {
			t.Errorf("Samples = %d, want 5", got.Samples)
		}
		if got.PeakVRAMBytes[0] != 30*GiB || got.PeakVRAMBytes[1] != 25*GiB {
			t.Errorf("PeakVRAMBytes = %v, want 0: 30 GiB, 1: 25 GiB", got.PeakVRAMBytes)
		}
		if got.PeakVRAMTotal != 45*GiB {
			t.Errorf("PeakVRAMTotal = %d, want 45 GiB (one sample's sum, not the sum of peaks)", got.PeakVRAMTotal)
		}
		if got.PeakRSSBytes == 0 {
			t.Error("PeakRSSBytes = 0, want this test's RSS")
		}
		if again := s.Stop(); again.Samples != got.Samples {
			t.Errorf("second Stop Samples = %d, want %d", again.Samples, got.Samples)
		}
	})
}

func TestSampler_failuresAreSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &FakeProber{Err: errors.New("nvml is having a bad day")}
		s := NewSampler(p, time.Second, func() []int { return []int{1 << 30} })
		s.Start(t.Context())
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		got := s.Stop()
		if got.Samples != 2 || got.PeakRSSBytes != 0 || got.PeakVRAMBytes != nil || got.PeakVRAMTotal != 0 {
			t.Errorf("Stop() = %+v, want 2 empty samples (at 1s and 2s)", got)
		}
	})
}

func TestSampler_stopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := NewSampler(&FakeProber{Facts: facts(GiB)}, 0, nil)
		s.Start(ctx)
		time.Sleep(2500 * time.Millisecond) // default interval 1s: samples at 1s and 2s
		cancel()
		synctest.Wait()
		if got := s.Peaks(); got.Samples != 2 {
			t.Errorf("Samples = %d, want 2", got.Samples)
		}
		time.Sleep(10 * time.Second)
		if got := s.Stop(); got.Samples != 2 {
			t.Errorf("Samples after cancel = %d, want 2", got.Samples)
		}
	})
}

func TestSampler_stopWithoutStart(t *testing.T) {
	t.Parallel()
	s := NewSampler(nil, time.Second, nil)
	if got := s.Stop(); got.Samples != 0 {
		t.Errorf("Stop() without Start = %+v, want zero", got)
	}
}
