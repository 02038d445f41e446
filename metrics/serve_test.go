package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wan22-guard/wan22-guard/journal"
)

// tooLong bounds every wait on the test server.
const tooLong = 10 * time.Second

// get fetches url without keeping connections alive, so nothing lingers
// once the server stops.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: tooLong, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// serveLocal serves m on 127.0.0.1 at a free port and returns the base URL.
func serveLocal(t *testing.T, ctx context.Context, m *Metrics) (string, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	stop := ServeListener(ctx, ln, m)
	return "http://" + ln.Addr().String(), stop
}

func TestServe_Scrape(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := New()
	base, stop := serveLocal(t, t.Context(), m)

	m.AttemptStarted(1, nil)
	m.AttemptEnded(journal.Record{
		RunID: "run-1", Attempt: 1, Class: "cuda_oom", Action: "fallback", Ladder: "vram", Rung: 2,
		ExitCode: 1, PeakVRAMBytes: 1 << 30, Task: "t2v-A14B", Size: "1280*720",
	})
	m.BackingOff(1500 * time.Millisecond)
	m.AttemptStarted(2, nil)

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200; body:\n%s", code, body)
	}
	for _, line := range []string{
		`wan22_guard_attempts_total{action="fallback",class="cuda_oom"} 1`,
		`wan22_guard_current_attempt 2`,
		`wan22_guard_child_up 1`,
		`wan22_guard_ladder_rung{ladder="vram"} 2`,
		`wan22_guard_last_exit_code 1`,
		`wan22_guard_backoff_seconds_total 1.5`,
		`wan22_guard_peak_vram_bytes 1.073741824e+09`,
		`wan22_guard_run_info{run_id="run-1",size="1280*720",task="t2v-A14B"} 1`,
		`# TYPE go_goroutines gauge`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("GET /metrics has no line %q", line)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("stop() = %v, want nil", err)
	}
}

func TestServe_Healthz(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := New()
	base, stop := serveLocal(t, t.Context(), m)
	defer stop()

	steps := []struct {
		name     string
		do       func()
		wantCode int
		wantBody string
	}{
		{"before the first attempt", func() {}, http.StatusServiceUnavailable, "no attempt started yet\n"},
		{"child runs", func() { m.AttemptStarted(1, nil) }, http.StatusOK, "ok\n"},
		{"between attempts", func() {
			m.AttemptEnded(journal.Record{Attempt: 1, Class: "network", Action: "backoff", ExitCode: 1})
		}, http.StatusOK, "ok\n"},
		{"backing off", func() { m.BackingOff(time.Minute) }, http.StatusOK, "ok\n"},
		{"next attempt", func() { m.AttemptStarted(2, nil) }, http.StatusOK, "ok\n"},
		{"run failed", func() {
			m.AttemptEnded(journal.Record{Attempt: 2, Class: "config", Action: "guide", ExitCode: 2})
			m.Finished(false)
		}, http.StatusServiceUnavailable, "run finished: failed\n"},
	}
	for _, s := range steps {
		s.do()
		code, body := get(t, base+"/healthz")
		if code != s.wantCode || body != s.wantBody {
			t.Errorf("%s: GET /healthz = %d %q, want %d %q", s.name, code, body, s.wantCode, s.wantBody)
		}
	}
}

func TestServe_BindError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer busy.Close()
	addr := busy.Addr().String()

	stop, err := Serve(t.Context(), addr, New())
	if err == nil {
		_ = stop()
		t.Fatalf("Serve(%s) on a busy address: no error", addr)
	}
	if stop != nil {
		t.Errorf("Serve(%s) returned a stop function with its error", addr)
	}
	want := fmt.Sprintf("listen %s: bind: address already in use", addr)
	if err.Error() != want {
		t.Errorf("Serve(%s) error = %q, want %q", addr, err, want)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Serve(%s) error %v does not match EADDRINUSE", addr, err)
	}
}

func TestServe_StopAndCancel(t *testing.T) {
	t.Run("stop twice", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		stop, err := Serve(t.Context(), "127.0.0.1:0", New())
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if err := stop(); err != nil {
			t.Errorf("first stop() = %v, want nil", err)
		}
		if err := stop(); err != nil {
			t.Errorf("second stop() = %v, want nil", err)
		}
	})
	t.Run("context done", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		ctx, cancel := context.WithCancel(t.Context())
		base, stop := serveLocal(t, ctx, New())
		if code, _ := get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("GET /healthz before any attempt = %d, want 503", code)
		}
		cancel()
		if err := stop(); err != nil {
			t.Errorf("stop() after cancel = %v, want nil", err)
		}
		c := &http.Client{Timeout: tooLong, Transport: &http.Transport{DisableKeepAlives: true}}
		if resp, err := c.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("GET /healthz after the context was done = %d, want a refused connection", resp.StatusCode)
		}
	})
}

func TestHandler_Methods(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	base, stop := serveLocal(t, t.Context(), New())
	defer stop()
	c := &http.Client{Timeout: tooLong, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Post(base+"/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatalf("POST /metrics: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %d, want 405", resp.StatusCode)
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}
