package main

import (
	"context"

	"github.com/wan22-guard/wan22-guard/metrics"
	"github.com/wan22-guard/wan22-guard/runner"
)

// metricsObserver is the metrics the Supervisor feeds, plus how the run
// ended, which /healthz reports.
type metricsObserver struct {
	*metrics.Metrics
}

var _ runner.Observer = metricsObserver{}

// startMetrics serves /metrics and /healthz on addr until stop is called.
func startMetrics(ctx context.Context, addr string) (metricsObserver, func(ok bool), error) {
	m := metrics.New()
	stop, err := metrics.Serve(ctx, addr, m)
	if err != nil {
		return metricsObserver{}, nil, err
	}
	return metricsObserver{m}, func(ok bool) { m.Finished(ok); _ = stop() }, nil
}
