package journal

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// statsRecords are four runs: A falls back twice and succeeds on vram rung 2
// (its last record names no rung: it stays on the one named before),
// B backs off once and succeeds as given, C falls back once and is guided
// away, D succeeds at once. They are listed out of order.
func statsRecords() []Record {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	h100 := func(r Record) Record {
		r.Task, r.Size, r.GPUModel = "t2v-A14B", "1280*720", "NVIDIA H100"
		r.Start = r.End.Add(-time.Minute)
		return r
	}
	rtx := func(r Record) Record {
		r.Task, r.Size, r.GPUModel = "i2v-A14B", "832*480", "RTX 4090"
		r.Start = r.End.Add(-time.Minute)
		return r
	}
	return []Record{
		h100(Record{RunID: "A", Attempt: 3, Class: "success", Action: "none", End: at(10), Size: "832*480"}),
		h100(Record{RunID: "A", Attempt: 1, Class: "cuda_oom", Action: "fallback", Ladder: "vram", Rung: 1, RungName: "offload", End: at(1)}),
		h100(Record{RunID: "B", Attempt: 1, Class: "network", Action: "backoff", End: at(1)}),
		rtx(Record{RunID: "C", Attempt: 2, Class: "cuda_oom", Action: "guide", Ladder: "vram", Rung: 1, End: at(5)}),
		h100(Record{RunID: "A", Attempt: 2, Class: "cuda_oom", Action: "fallback", Ladder: "vram", Rung: 2, RungName: "t5_cpu", End: at(3)}),
		h100(Record{RunID: "B", Attempt: 2, Class: "success", Action: "none", End: at(2)}),
		rtx(Record{RunID: "C", Attempt: 1, Class: "cuda_oom", Action: "fallback", Ladder: "vram", Rung: 1, RungName: "offload", End: at(1)}),
		h100(Record{RunID: "D", Attempt: 1, Class: "success", End: at(1)}),
	}
}

func TestCompute(t *testing.T) {
	t.Parallel()
	got := Compute(slices.Values(statsRecords()))
	want := Stats{
		Runs:          4,
		RunsSucceeded: 3,
		Attempts:      8,
		Outcomes:      map[string]int{"cuda_oom": 4, "network": 1, "success": 3},
		Actions: []ActionStats{
			{Action: "fallback", Used: 3, NextSucceeded: 1, SuccessRate: 1.0 / 3, Runs: 2, RunsSucceeded: 1},
			{Action: "backoff", Used: 1, NextSucceeded: 1, SuccessRate: 1, Runs: 1, RunsSucceeded: 1},
			{Action: "guide", Used: 1, NextSucceeded: 0, SuccessRate: 0, Runs: 1, RunsSucceeded: 0},
		},
		Rungs: []RungStats{
			{Ladder: "", Rung: 0, Runs: 2, Ended: 2, Succeeded: 2, SuccessRate: 1},
			{Ladder: "vram", Rung: 1, RungName: "offload", Runs: 2, Ended: 1, Succeeded: 0, SuccessRate: 0},
			{Ladder: "vram", Rung: 2, RungName: "t5_cpu", Runs: 1, Ended: 1, Succeeded: 1, SuccessRate: 1},
		},
		Recoveries: 2,
		MTTRMS:     (5 * time.Minute).Milliseconds(),
		Endings: []Ending{
			{Task: "i2v-A14B", Size: "832*480", GPUModel: "RTX 4090", Ladder: "vram", Rung: 1, RungName: "offload", Runs: 1, Succeeded: 0},
			{Task: "t2v-A14B", Size: "1280*720", GPUModel: "NVIDIA H100", Runs: 2, Succeeded: 2},
			{Task: "t2v-A14B", Size: "1280*720", GPUModel: "NVIDIA H100", Ladder: "vram", Rung: 2, RungName: "t5_cpu", Runs: 1, Succeeded: 1},
		},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("Compute =\n%s\nwant\n%s", g, w)
	}
}

func TestCompute_cases(t *testing.T) {
	t.Parallel()
	r := func(run string, attempt int, class string, endMin int) Record {
		return Record{RunID: run, Attempt: attempt, Class: class, Action: "retry", End: t0.Add(time.Duration(endMin) * time.Minute)}
	}
	tests := []struct {
		name           string
		in             []Record
		wantRuns       int
		wantOK         int
		wantRecoveries int
		wantMTTR       time.Duration
	}{
		{"no records", nil, 0, 0, 0, 0},
		{"success at once", []Record{r("a", 1, "success", 1)}, 1, 1, 0, 0},
		{"failure only", []Record{r("a", 1, "stall", 1), r("a", 2, "stall", 3)}, 1, 0, 0, 0},
		{"two recoveries in a run",
			[]Record{r("a", 1, "stall", 1), r("a", 2, "stall", 2), r("a", 3, "success", 4), r("a", 4, "network", 10), r("a", 5, "success", 12)},
			1, 1, 2, (3*time.Minute + 2*time.Minute) / 2},
		{"failure after success ends the run failed",
			[]Record{r("a", 1, "success", 1), r("a", 2, "network", 2)}, 1, 0, 0, 0},
		{"missing end uses start",
			[]Record{{RunID: "a", Attempt: 1, Class: "stall", Start: t0}, {RunID: "a", Attempt: 2, Class: "success", Start: t0.Add(time.Minute)}},
			1, 1, 1, time.Minute},
	}
	for _, tt := range tests {
		got := Compute(slices.Values(tt.in))
		if got.Runs != tt.wantRuns || got.RunsSucceeded != tt.wantOK || got.Recoveries != tt.wantRecoveries ||
			got.MTTRMS != tt.wantMTTR.Milliseconds() || got.Attempts != len(tt.in) {
			t.Errorf("Compute(%s) = runs %d ok %d recoveries %d mttr %dms attempts %d; want %d %d %d %dms %d",
				tt.name, got.Runs, got.RunsSucceeded, got.Recoveries, got.MTTRMS, got.Attempts,
				tt.wantRuns, tt.wantOK, tt.wantRecoveries, tt.wantMTTR.Milliseconds(), len(tt.in))
		}
	}
}

func TestCompute_emptyJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Compute(slices.Values([]Record(nil))))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"runs":0,"runs_succeeded":0,"attempts":0,"outcomes":{},"actions":[],"rungs":[],"recoveries":0,"mttr_ms":0,"endings":[]}`
	if string(b) != want {
		t.Errorf("empty Stats JSON = %s, want %s", b, want)
	}
}

func TestStats_Text(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := Compute(slices.Values(statsRecords())).Text(&b); err != nil {
		t.Fatalf("Text = %v", err)
	}
	want := strings.TrimPrefix(`
runs                   4
runs succeeded         3  75.0%
attempts               8
recoveries             2
mean time to recovery  5m0s

CLASS     ATTEMPTS
cuda_oom  4
success   3
network   1

ACTION    USED  NEXT OK  RATE    RUNS  RUNS OK
fallback  3     1        33.3%   2     1
backoff   1     1        100.0%  1     1
guide     1     0        0.0%    1     0

LADDER  RUNG  NAME     RUNS  ENDED  SUCCEEDED  RATE
-       0     -        2     2      2          100.0%
vram    1     offload  2     1      0          0.0%
vram    2     t5_cpu   1     1      1          100.0%

TASK      SIZE      GPU          LADDER  RUNG  NAME     RUNS  SUCCEEDED
i2v-A14B  832*480   RTX 4090     vram    1     offload  1     0
t2v-A14B  1280*720  NVIDIA H100  -       0     -        2     2
t2v-A14B  1280*720  NVIDIA H100  vram    2     t5_cpu   1     1
`, "\n")
	if got := b.String(); got != want {
		t.Errorf("Text =\n%s\nwant\n%s", got, want)
	}
}

func TestTally_withReadAll(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openT(t, dir, DefaultOptions())
	for _, r := range statsRecords() {
		if err := j.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	var tally Tally
	if _, err := ReadAll(dir, time.Time{}, func(r Record) error { tally.Add(r); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, want := tally.Stats(), Compute(slices.Values(statsRecords())); !reflect.DeepEqual(got, want) {
		t.Errorf("stats of the journal = %+v, want %+v", got, want)
	}
}
