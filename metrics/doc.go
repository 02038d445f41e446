// Package metrics owns the guard's Prometheus metrics and its small HTTP
// endpoint: /metrics for scrapes and /healthz for probes.
//
// Metrics implements runner.Observer. Its methods only set gauges, add to
// counters and update a few fields under a short mutex, so they never block
// the Supervisor's loop. Everything is registered on a private registry: the
// package touches neither prometheus.DefaultRegisterer nor any other global,
// and init() does no work.
//
// metrics reads journal records; it must not import runner, strategies,
// os/exec or os/signal, and it decides nothing about the run.
package metrics
