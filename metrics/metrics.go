package metrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wan22-guard/wan22-guard/journal"
)

// Namespace prefixes every metric the guard exports.
const Namespace = "wan22_guard"

// DefaultGrace is how long /healthz stays healthy after an attempt ended or a
// backoff was due to end without the next attempt starting. The Supervisor
// decides and saves run.json in that gap; longer means it is stuck.
const DefaultGrace = time.Minute

// phase is where the run is, as far as the observer calls tell.
type phase int

const (
	phaseIdle       phase = iota // no attempt started yet
	phaseRunning                 // the child runs
	phaseBetween                 // an attempt ended; the next step is being decided
	phaseBackingOff              // waiting before the next attempt
	phaseFinished                // Finished was called
)

// Metrics holds the guard's metrics on a private registry and the health
// state /healthz reports. It implements runner.Observer. Its methods are
// safe for concurrent use and never block.
type Metrics struct {
	reg *prometheus.Registry

	attempts      *prometheus.CounterVec
	currentTry    prometheus.Gauge
	ladderRung    *prometheus.GaugeVec
	childUp       prometheus.Gauge
	lastExitCode  prometheus.Gauge
	backoffTotal  prometheus.Counter
	peakVRAMBytes prometheus.Gauge
	peakRSSBytes  prometheus.Gauge
	runInfo       *prometheus.GaugeVec

	now   func() time.Time
	grace time.Duration

	mu       sync.Mutex
	phase    phase
	attempt  int
	deadline time.Time // phaseBetween, phaseBackingOff: healthy until then
	ok       bool      // phaseFinished: whether the run succeeded
}

// New returns Metrics with every metric registered on a fresh private
// registry, together with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "attempts_total",
			Help: "Attempts that ended, by failure class and the action the guard took.",
		}, []string{"class", "action"}),
		currentTry: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "current_attempt",
			Help: "Number of the attempt that runs or ran last, from 1; 0 before the first.",
		}),
		ladderRung: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "ladder_rung",
			Help: "Rung of the fallback ladder in effect, from 1; absent while the command runs as given.",
		}, []string{"ladder"}),
		childUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "child_up",
			Help: "1 while the child runs, 0 otherwise.",
		}),
		lastExitCode: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "last_exit_code",
			Help: "Exit code of the last attempt (128+N for signal N); -1 before the first attempt ends.",
		}),
		backoffTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "backoff_seconds_total",
			Help: "Seconds the guard decided to wait between attempts.",
		}),
		peakVRAMBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "peak_vram_bytes",
			Help: "Highest GPU memory the last ended attempt used; 0 when not measured.",
		}),
		peakRSSBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "peak_rss_bytes",
			Help: "Highest resident memory of the last ended attempt's process tree; 0 when not measured.",
		}),
		runInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "run_info",
			Help: "Always 1; labels name the run and the Wan2.2 task and size of its last attempt.",
		}, []string{"run_id", "task", "size"}),
		now:   time.Now,
		grace: DefaultGrace,
	}
	m.lastExitCode.Set(-1)
	m.reg.MustRegister(
		m.attempts, m.currentTry, m.ladderRung, m.childUp, m.lastExitCode,
		m.backoffTotal, m.peakVRAMBytes, m.peakRSSBytes, m.runInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Gatherer returns the private registry the metrics are on.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// AttemptStarted records that attempt n was launched with argv.
func (m *Metrics) AttemptStarted(n int, _ []string) {
	m.currentTry.Set(float64(n))
	m.childUp.Set(1)
	m.mu.Lock()
	m.phase = phaseRunning
	m.attempt = n
	m.mu.Unlock()
}

// AttemptEnded records how an attempt ended and what the guard decided.
func (m *Metrics) AttemptEnded(rec journal.Record) {
	action := rec.Action
	if action == "" {
		action = "none"
	}
	m.attempts.WithLabelValues(rec.Class, action).Inc()
	m.childUp.Set(0)
	m.lastExitCode.Set(float64(rec.ExitCode))
	m.peakVRAMBytes.Set(float64(rec.PeakVRAMBytes))
	m.peakRSSBytes.Set(float64(rec.PeakRSSBytes))
	// An empty Ladder keeps the rung an earlier record named (see
	// journal.Record), so only a named ladder replaces the series.
	if rec.Ladder != "" {
		m.ladderRung.Reset()
		m.ladderRung.WithLabelValues(rec.Ladder).Set(float64(rec.Rung))
	}
	if rec.RunID != "" {
		m.runInfo.Reset()
		m.runInfo.WithLabelValues(rec.RunID, rec.Task, rec.Size).Set(1)
	}
	now := m.now()
	m.mu.Lock()
	m.phase = phaseBetween
	m.attempt = rec.Attempt
	m.deadline = now.Add(m.grace)
	m.mu.Unlock()
}

// BackingOff records that the guard waits d before the next attempt.
func (m *Metrics) BackingOff(d time.Duration) {
	m.backoffTotal.Add(d.Seconds())
	now := m.now()
	m.mu.Lock()
	m.phase = phaseBackingOff
	m.deadline = now.Add(d + m.grace)
	m.mu.Unlock()
}

// Finished records that the run is over: ok when it succeeded. /healthz
// answers 503 from then on.
func (m *Metrics) Finished(ok bool) {
	m.childUp.Set(0)
	m.mu.Lock()
	m.phase = phaseFinished
	m.ok = ok
	m.mu.Unlock()
}

// Healthy reports whether the guard is doing its job: the child runs, or the
// guard is between attempts or backing off and the next attempt is not
// overdue. When it is not healthy, reason says why in a few words.
func (m *Metrics) Healthy() (ok bool, reason string) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.phase {
	case phaseIdle:
		return false, "no attempt started yet"
	case phaseRunning:
		return true, ""
	case phaseBetween:
		if now.Before(m.deadline) {
			return true, ""
		}
		return false, fmt.Sprintf("attempt %d ended and no next step for %s", m.attempt, (now.Sub(m.deadline) + m.grace).Round(time.Second))
	case phaseBackingOff:
		if now.Before(m.deadline) {
			return true, ""
		}
		return false, fmt.Sprintf("backoff after attempt %d overran by %s", m.attempt, (now.Sub(m.deadline) + m.grace).Round(time.Second))
	case phaseFinished:
		if m.ok {
			return false, "run finished: success"
		}
		return false, "run finished: failed"
	}
	return false, fmt.Sprintf("unknown phase %d", int(m.phase))
}
