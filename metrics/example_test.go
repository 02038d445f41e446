package metrics_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/wan22-guard/wan22-guard/journal"
	"github.com/wan22-guard/wan22-guard/metrics"
)

func ExampleHandler() {
	m := metrics.New()
	healthz := func() {
		rec := httptest.NewRecorder()
		metrics.Handler(m).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		fmt.Print(rec.Code, " ", rec.Body.String())
	}

	m.AttemptStarted(1, []string{"python", "generate.py", "--task", "t2v-A14B"})
	healthz()
	m.AttemptEnded(journal.Record{Attempt: 1, Class: "success", ExitCode: 0})
	m.Finished(true)
	healthz()
	// Output:
	// 200 ok
	// 503 run finished: success
}
