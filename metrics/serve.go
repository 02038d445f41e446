package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server timeouts. A scrape is small; a client that holds a connection
// longer than this is dropped rather than allowed to pin a goroutine.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownTimeout   = 5 * time.Second
)

// Serve listens on addr and serves /metrics and /healthz for m until ctx
// is done or stop is called.
//
// A bind failure is returned at once as one error that names the address
// ("listen 127.0.0.1:9: bind: address already in use") and still matches
// the system error (errors.Is(err, syscall.EADDRINUSE)). stop shuts the
// server down, waits for its goroutine and returns what the server failed
// with, if anything; it may be called more than once and after ctx is done.
func Serve(ctx context.Context, addr string, m *Metrics) (stop func() error, err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, m), nil
}

// ServeListener is Serve on a listener the caller opened; the server owns
// ln from then on and closes it.
func ServeListener(ctx context.Context, ln net.Listener, m *Metrics) (stop func() error) {
	srv := &http.Server{
		Handler:           Handler(m),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()

	shutDone := make(chan struct{})
	shutdown := func() {
		defer close(shutDone)
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}
	stopAfter := context.AfterFunc(ctx, shutdown)

	var once sync.Once
	var serveErr error
	return func() error {
		once.Do(func() {
			if stopAfter() {
				shutdown()
			}
			// When ctx was done first, the AfterFunc is shutting the
			// server down; wait for it so nothing outlives stop.
			<-shutDone
			serveErr = <-done
			if serveErr != nil {
				serveErr = fmt.Errorf("serve metrics on %s: %w", ln.Addr(), serveErr)
			}
		})
		return serveErr
	}
}

// Handler returns the guard's HTTP handler: /metrics in the Prometheus
// exposition format from m's private registry, and /healthz, which answers
// 200 "ok" while m is healthy and 503 with the reason otherwise.
func Handler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ok, reason := m.Healthy()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, reason)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
