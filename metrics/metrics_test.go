package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/wan22-guard/wan22-guard/journal"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runMetrics are the guard's own metric names, in the order the tests list them.
var runMetrics = []string{
	"wan22_guard_attempts_total",
	"wan22_guard_backoff_seconds_total",
	"wan22_guard_child_up",
	"wan22_guard_current_attempt",
	"wan22_guard_ladder_rung",
	"wan22_guard_last_exit_code",
	"wan22_guard_peak_rss_bytes",
	"wan22_guard_peak_vram_bytes",
	"wan22_guard_run_info",
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newWithClock() (*Metrics, *fakeClock) {
	clk := &fakeClock{t: time.Date(2025, 7, 28, 12, 0, 0, 0, time.UTC)}
	m := New()
	m.now = clk.Now
	return m, clk
}

func TestMetrics_New(t *testing.T) {
	t.Parallel()
	m := New()
	want := `
# HELP wan22_guard_backoff_seconds_total Seconds the guard decided to wait between attempts.
# TYPE wan22_guard_backoff_seconds_total counter
wan22_guard_backoff_seconds_total 0
# HELP wan22_guard_child_up 1 while the child runs, 0 otherwise.
# TYPE wan22_guard_child_up gauge
wan22_guard_child_up 0
# HELP wan22_guard_current_attempt Number of the attempt that runs or ran last, from 1; 0 before the first.
# TYPE wan22_guard_current_attempt gauge
wan22_guard_current_attempt 0
# HELP wan22_guard_last_exit_code Exit code of the last attempt (128+N for signal N); -1 before the first attempt ends.
# TYPE wan22_guard_last_exit_code gauge
wan22_guard_last_exit_code -1
# HELP wan22_guard_peak_rss_bytes Highest resident memory of the last ended attempt's process tree; 0 when not measured.
# TYPE wan22_guard_peak_rss_bytes gauge
wan22_guard_peak_rss_bytes 0
# HELP wan22_guard_peak_vram_bytes Highest GPU memory the last ended attempt used; 0 when not measured.
# TYPE wan22_guard_peak_vram_bytes gauge
wan22_guard_peak_vram_bytes 0
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), runMetrics...); err != nil {
		t.Errorf("fresh metrics:\n%v", err)
	}
}

func TestMetrics_PrivateRegistry(t *testing.T) {
	t.Parallel()
	// Two instances in one process would panic on a shared registry.
	a, b := New(), New()
	a.AttemptStarted(1, nil)
	if got := testutil.ToFloat64(b.currentTry); got != 0 {
		t.Errorf("second instance current_attempt = %v, want 0", got)
	}
	mfs, err := a.Gatherer().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var goSeen bool
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") {
			goSeen = true
			continue
		}
		if !strings.HasPrefix(name, "wan22_guard_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %q has neither the wan22_guard_ prefix nor a collector's", name)
		}
	}
	if !goSeen {
		t.Error("no go_ runtime metrics on the registry")
	}
}

func TestMetrics_Observer(t *testing.T) {
	t.Parallel()
	m := New()
	const gb = 1 << 30

	m.AttemptStarted(1, []string{"python", "generate.py", "--task", "t2v-A14B"})
	if got := testutil.ToFloat64(m.childUp); got != 1 {
		t.Errorf("child_up while attempt 1 runs = %v, want 1", got)
	}
	m.AttemptEnded(journal.Record{
		RunID: "20250728T120000-abcd", Attempt: 1, Class: "cuda_oom", Action: "fallback",
		Ladder: "vram", Rung: 1, ExitCode: 1, PeakVRAMBytes: 56 * gb, PeakRSSBytes: 30 * gb,
		Task: "t2v-A14B", Size: "1280*720",
	})
	m.AttemptStarted(2, nil)
	m.AttemptEnded(journal.Record{
		RunID: "20250728T120000-abcd", Attempt: 2, Class: "network", Action: "backoff",
		ExitCode: 1, DelayMS: 10_000, PeakVRAMBytes: 41 * gb, PeakRSSBytes: 28 * gb,
		Task: "t2v-A14B", Size: "1280*720",
	})
	m.BackingOff(10 * time.Second)
	m.AttemptStarted(3, nil)
	m.AttemptEnded(journal.Record{
		RunID: "20250728T120000-abcd", Attempt: 3, Class: "cuda_oom", Action: "fallback",
		Ladder: "vram", Rung: 2, ExitCode: 137, PeakVRAMBytes: 44 * gb, PeakRSSBytes: 31 * gb,
		Task: "t2v-A14B", Size: "1280*720",
	})
	m.BackingOff(2500 * time.Millisecond)
	m.AttemptStarted(4, nil)
	m.AttemptEnded(journal.Record{
		RunID: "20250728T120000-abcd", Attempt: 4, Class: "success",
		ExitCode: 0, PeakVRAMBytes: 39 * gb, Task: "t2v-A14B", Size: "960*544",
	})
	m.Finished(true)

	want := `
# HELP wan22_guard_attempts_total Attempts that ended, by failure class and the action the guard took.
# TYPE wan22_guard_attempts_total counter
wan22_guard_attempts_total{action="backoff",class="network"} 1
wan22_guard_attempts_total{action="fallback",class="cuda_oom"} 2
wan22_guard_attempts_total{action="none",class="success"} 1
# HELP wan22_guard_backoff_seconds_total Seconds the guard decided to wait between attempts.
# TYPE wan22_guard_backoff_seconds_total counter
wan22_guard_backoff_seconds_total 12.5
# HELP wan22_guard_child_up 1 while the child runs, 0 otherwise.
# TYPE wan22_guard_child_up gauge
wan22_guard_child_up 0
# HELP wan22_guard_current_attempt Number of the attempt that runs or ran last, from 1; 0 before the first.
# TYPE wan22_guard_current_attempt gauge
wan22_guard_current_attempt 4
# HELP wan22_guard_ladder_rung Rung of the fallback ladder in effect, from 1; absent while the command runs as given.
# TYPE wan22_guard_ladder_rung gauge
wan22_guard_ladder_rung{ladder="vram"} 2
# HELP wan22_guard_last_exit_code Exit code of the last attempt (128+N for signal N); -1 before the first attempt ends.
# TYPE wan22_guard_last_exit_code gauge
wan22_guard_last_exit_code 0
# HELP wan22_guard_peak_rss_bytes Highest resident memory of the last ended attempt's process tree; 0 when not measured.
# TYPE wan22_guard_peak_rss_bytes gauge
wan22_guard_peak_rss_bytes 0
# HELP wan22_guard_peak_vram_bytes Highest GPU memory the last ended attempt used; 0 when not measured.
# TYPE wan22_guard_peak_vram_bytes gauge
wan22_guard_peak_vram_bytes 4.1875931136e+10
# HELP wan22_guard_run_info Always 1; labels name the run and the Wan2.2 task and size of its last attempt.
# TYPE wan22_guard_run_info gauge
wan22_guard_run_info{run_id="20250728T120000-abcd",size="960*544",task="t2v-A14B"} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), runMetrics...); err != nil {
		t.Errorf("after four attempts:\n%v", err)
	}
}

func TestMetrics_LadderKeptWhenRecordNamesNone(t *testing.T) {
	t.Parallel()
	m := New()
	m.AttemptEnded(journal.Record{Attempt: 1, Class: "cuda_oom", Action: "fallback", Ladder: "vram", Rung: 3})
	m.AttemptEnded(journal.Record{Attempt: 2, Class: "stall", Action: "retry"})
	if got := testutil.ToFloat64(m.ladderRung.WithLabelValues("vram")); got != 3 {
		t.Errorf("ladder_rung{ladder=vram} after a record with no ladder = %v, want 3", got)
	}
	m.AttemptEnded(journal.Record{Attempt: 3, Class: "cuda_oom", Action: "fallback", Ladder: "offload", Rung: 1})
	if got := testutil.CollectAndCount(m.ladderRung); got != 1 {
		t.Errorf("ladder_rung series after switching ladders = %d, want 1", got)
	}
}

func TestMetrics_Healthy(t *testing.T) {
	t.Parallel()
	m, clk := newWithClock()
	check := func(step string, wantOK bool, wantReason string) {
		t.Helper()
		ok, reason := m.Healthy()
		if ok != wantOK || reason != wantReason {
			t.Errorf("%s: Healthy() = %v, %q, want %v, %q", step, ok, reason, wantOK, wantReason)
		}
	}

	check("before the first attempt", false, "no attempt started yet")
	m.AttemptStarted(1, nil)
	check("child runs", true, "")
	clk.Advance(3 * time.Hour)
	check("child runs for hours", true, "")
	m.AttemptEnded(journal.Record{Attempt: 1, Class: "network", Action: "backoff", ExitCode: 1})
	check("just after the attempt ended", true, "")
	m.BackingOff(5 * time.Minute)
	clk.Advance(5*time.Minute + DefaultGrace - time.Second)
	check("backoff within its grace", true, "")
	clk.Advance(31 * time.Second)
	check("backoff overran", false, "backoff after attempt 1 overran by 1m30s")
	m.AttemptStarted(2, nil)
	check("next attempt runs", true, "")
	m.AttemptEnded(journal.Record{Attempt: 2, Class: "stall", Action: "retry", ExitCode: 143})
	clk.Advance(DefaultGrace + 5*time.Second)
	check("no next step after an attempt", false, "attempt 2 ended and no next step for 1m5s")
	m.Finished(false)
	check("run failed", false, "run finished: failed")
	m.Finished(true)
	check("run succeeded", false, "run finished: success")
}

func TestMetrics_ConcurrentUse(t *testing.T) {
	t.Parallel()
	m := New()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				n := g*1000 + i
				m.AttemptStarted(n, nil)
				m.AttemptEnded(journal.Record{RunID: "r", Attempt: n, Class: "network", Action: "retry", Ladder: "vram", Rung: i % 3})
				m.BackingOff(time.Millisecond)
				m.Healthy()
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if _, err := m.Gatherer().Gather(); err != nil {
				t.Errorf("Gather: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if got := testutil.ToFloat64(m.attempts.WithLabelValues("network", "retry")); got != 800 {
		t.Errorf("attempts_total{network,retry} = %v, want 800", got)
	}
	if got := testutil.CollectAndCount(m.ladderRung); got != 1 {
		t.Errorf("ladder_rung series = %d, want 1", got)
	}
}
