package journal

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/wan22-guard/wan22-guard/classify"
)

// Stats describes a set of attempt records. It is computed from the records
// alone (Compute, Tally). An attempt succeeded when its Class is "success";
// a run succeeded when its last attempt (by attempt number) did.
type Stats struct {
	// Runs is the number of distinct run IDs.
	Runs int `json:"runs"`
	// RunsSucceeded is the number of runs that succeeded.
	RunsSucceeded int `json:"runs_succeeded"`
	// Attempts is the number of records.
	Attempts int `json:"attempts"`
	// Outcomes counts attempts per class.
	Outcomes map[string]int `json:"outcomes"`
	// Actions has one row per action taken after a failed attempt, most
	// used first.
	Actions []ActionStats `json:"actions"`
	// Rungs has one row per ladder rung, ordered by ladder and rung. Rung 0
	// of ladder "" is the command as given.
	Rungs []RungStats `json:"rungs"`
	// Recoveries counts failures that were followed by a success in the same
	// run: each run of consecutive failed attempts ended by a successful one.
	Recoveries int `json:"recoveries"`
	// MTTRMS is the mean time to recovery in milliseconds: from the end of
	// the first failed attempt of a recovery to the end of the successful
	// attempt. 0 when there were no recoveries.
	MTTRMS int64 `json:"mttr_ms"`
	// Endings says on which rung runs ended, per task, size and GPU model.
	Endings []Ending `json:"endings"`
}

// ActionStats is how often an action led to success.
type ActionStats struct {
	// Action is the action's name.
	Action string `json:"action"`
	// Used counts failed attempts after which the action was taken.
	Used int `json:"used"`
	// NextSucceeded counts the uses whose next attempt in the run succeeded.
	NextSucceeded int `json:"next_succeeded"`
	// SuccessRate is NextSucceeded / Used.
	SuccessRate float64 `json:"success_rate"`
	// Runs counts runs that took the action at least once.
	Runs int `json:"runs"`
	// RunsSucceeded counts those runs that succeeded.
	RunsSucceeded int `json:"runs_succeeded"`
}

// RungStats is how runs fared on one ladder rung. A record names the rung in
// effect once its decision is applied (Record.Ladder, Record.Rung); a record
// that names none stays on the last rung named earlier in its run. So the
// successful attempt of a run that fell back counts for the rung it
// succeeded on.
type RungStats struct {
	Ladder   string `json:"ladder"`
	Rung     int    `json:"rung"`
	RungName string `json:"rung_name"`
	// Runs counts runs that had a record naming the rung.
	Runs int `json:"runs"`
	// Ended counts runs whose last record names the rung.
	Ended int `json:"ended"`
	// Succeeded counts runs that succeeded on the rung.
	Succeeded int `json:"succeeded"`
	// SuccessRate is Succeeded / Runs.
	SuccessRate float64 `json:"success_rate"`
}

// Ending counts runs that ended on one rung, for one task, size and GPU
// model. Task, size and GPU model are those of the run's first attempt (what
// was asked for, before any rung changed it); the rung is the one in effect
// at its last (see RungStats).
type Ending struct {
	Task      string `json:"task"`
	Size      string `json:"size"`
	GPUModel  string `json:"gpu_model"`
	Ladder    string `json:"ladder"`
	Rung      int    `json:"rung"`
	RungName  string `json:"rung_name"`
	Runs      int    `json:"runs"`
	Succeeded int    `json:"succeeded"`
}

// Compute returns the Stats of records, in any order.
func Compute(records iter.Seq[Record]) Stats {
	var t Tally
	for r := range records {
		t.Add(r)
	}
	return t.Stats()
}

// Tally accumulates records for Stats, keeping only what the statistics
// need. Its zero value is ready to use; it is not safe for concurrent use.
// Use it with ReadAll:
//
//	var t journal.Tally
//	_, err := journal.ReadAll(dir, since, func(r journal.Record) error { t.Add(r); return nil })
type Tally struct {
	runs     map[string][]row
	outcomes map[string]int
	attempts int
}

// row is what Tally keeps of one record.
type row struct {
	attempt  int
	ok       bool
	action   string
	ladder   string
	rung     int
	rungName string
	end      time.Time
	task     string
	size     string
	gpu      string
}

// Add counts one record.
func (t *Tally) Add(r Record) {
	if t.runs == nil {
		t.runs = map[string][]row{}
		t.outcomes = map[string]int{}
	}
	t.attempts++
	t.outcomes[r.Class]++
	t.runs[r.RunID] = append(t.runs[r.RunID], row{
		attempt:  r.Attempt,
		ok:       r.Class == string(classify.ClassSuccess),
		action:   r.Action,
		ladder:   r.Ladder,
		rung:     r.Rung,
		rungName: r.RungName,
		end:      r.when(),
		task:     r.Task,
		size:     r.Size,
		gpu:      r.GPUModel,
	})
}

type rungKey struct {
	ladder string
	rung   int
}

type endKey struct {
	task, size, gpu string
	rungKey
}

// Stats returns the statistics of the records added so far.
func (t *Tally) Stats() Stats {
	s := Stats{Runs: len(t.runs), Attempts: t.attempts, Outcomes: map[string]int{}}
	maps.Copy(s.Outcomes, t.outcomes)
	actions := map[string]*ActionStats{}
	rungs := map[rungKey]*RungStats{}
	endings := map[endKey]*Ending{}
	var recovery time.Duration
	seenAction := map[string]bool{}
	seenRung := map[rungKey]bool{}
	for _, rows := range t.runs {
		slices.SortStableFunc(rows, func(a, b row) int {
			return cmp.Or(cmp.Compare(a.attempt, b.attempt), a.end.Compare(b.end))
		})
		first, last := rows[0], rows[len(rows)-1]
		if last.ok {
			s.RunsSucceeded++
		}
		clear(seenAction)
		clear(seenRung)
		var failedAt time.Time
		failing := false
		var k rungKey // the rung in effect
		for i, r := range rows {
			if r.ladder != "" || r.rung != 0 {
				k = rungKey{r.ladder, r.rung}
			}
			rs := rungs[k]
			if rs == nil {
				rs = &RungStats{Ladder: k.ladder, Rung: k.rung}
				rungs[k] = rs
			}
			if rs.RungName == "" && k == (rungKey{r.ladder, r.rung}) {
				rs.RungName = r.rungName
			}
			if !seenRung[k] {
				seenRung[k] = true
				rs.Runs++
			}
			if r.ok {
				if failing {
					s.Recoveries++
					recovery += r.end.Sub(failedAt)
					failing = false
				}
				continue
			}
			if !failing {
				failing, failedAt = true, r.end
			}
			if r.action == "" {
				continue
			}
			as := actions[r.action]
			if as == nil {
				as = &ActionStats{Action: r.action}
				actions[r.action] = as
			}
			as.Used++
			if i+1 < len(rows) && rows[i+1].ok {
				as.NextSucceeded++
			}
			if !seenAction[r.action] {
				seenAction[r.action] = true
				as.Runs++
				if last.ok {
					as.RunsSucceeded++
				}
			}
		}
		lk := k
		rs := rungs[lk]
		rs.Ended++
		if last.ok {
			rs.Succeeded++
		}
		ek := endKey{first.task, first.size, first.gpu, lk}
		e := endings[ek]
		if e == nil {
			e = &Ending{Task: first.task, Size: first.size, GPUModel: first.gpu, Ladder: lk.ladder, Rung: lk.rung}
			endings[ek] = e
		}
		e.Runs++
		if last.ok {
			e.Succeeded++
		}
	}
	if s.Recoveries > 0 {
		s.MTTRMS = (recovery / time.Duration(s.Recoveries)).Milliseconds()
	}

	s.Actions = make([]ActionStats, 0, len(actions))
	for _, a := range actions {
		a.SuccessRate = rate(a.NextSucceeded, a.Used)
		s.Actions = append(s.Actions, *a)
	}
	slices.SortFunc(s.Actions, func(a, b ActionStats) int {
		return cmp.Or(cmp.Compare(b.Used, a.Used), cmp.Compare(a.Action, b.Action))
	})
	s.Rungs = make([]RungStats, 0, len(rungs))
	for _, r := range rungs {
		r.SuccessRate = rate(r.Succeeded, r.Runs)
		s.Rungs = append(s.Rungs, *r)
	}
	slices.SortFunc(s.Rungs, func(a, b RungStats) int {
		return cmp.Or(cmp.Compare(a.Ladder, b.Ladder), cmp.Compare(a.Rung, b.Rung))
	})
	s.Endings = make([]Ending, 0, len(endings))
	for _, e := range endings {
		e.RungName = rungs[rungKey{e.Ladder, e.Rung}].RungName
		s.Endings = append(s.Endings, *e)
	}
	slices.SortFunc(s.Endings, func(a, b Ending) int {
		return cmp.Or(cmp.Compare(a.Task, b.Task), cmp.Compare(a.Size, b.Size), cmp.Compare(a.GPUModel, b.GPUModel),
			cmp.Compare(a.Ladder, b.Ladder), cmp.Compare(a.Rung, b.Rung))
	})
	return s
}

func rate(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// Text writes s as plain tables: totals, outcomes per class, actions, rungs
// and endings. Empty values print as "-".
func (s Stats) Text(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	p := func(cells ...string) {
		for i, c := range cells {
			if c == "" {
				c = "-"
			}
			if i > 0 {
				io.WriteString(tw, "\t")
			}
			io.WriteString(tw, c)
		}
		io.WriteString(tw, "\n")
	}
	itoa := strconv.Itoa
	mttr := "-"
	if s.Recoveries > 0 {
		mttr = (time.Duration(s.MTTRMS) * time.Millisecond).String()
	}
	p("runs", itoa(s.Runs))
	p("runs succeeded", itoa(s.RunsSucceeded), percent(rate(s.RunsSucceeded, s.Runs)))
	p("attempts", itoa(s.Attempts))
	p("recoveries", itoa(s.Recoveries))
	p("mean time to recovery", mttr)

	p()
	p("CLASS", "ATTEMPTS")
	classes := slices.Collect(maps.Keys(s.Outcomes))
	slices.SortFunc(classes, func(a, b string) int {
		return cmp.Or(cmp.Compare(s.Outcomes[b], s.Outcomes[a]), cmp.Compare(a, b))
	})
	for _, c := range classes {
		p(c, itoa(s.Outcomes[c]))
	}

	p()
	p("ACTION", "USED", "NEXT OK", "RATE", "RUNS", "RUNS OK")
	for _, a := range s.Actions {
		p(a.Action, itoa(a.Used), itoa(a.NextSucceeded), percent(a.SuccessRate), itoa(a.Runs), itoa(a.RunsSucceeded))
	}

	p()
	p("LADDER", "RUNG", "NAME", "RUNS", "ENDED", "SUCCEEDED", "RATE")
	for _, r := range s.Rungs {
		p(r.Ladder, itoa(r.Rung), r.RungName, itoa(r.Runs), itoa(r.Ended), itoa(r.Succeeded), percent(r.SuccessRate))
	}

	p()
	p("TASK", "SIZE", "GPU", "LADDER", "RUNG", "NAME", "RUNS", "SUCCEEDED")
	for _, e := range s.Endings {
		p(e.Task, e.Size, e.GPUModel, e.Ladder, itoa(e.Rung), e.RungName, itoa(e.Runs), itoa(e.Succeeded))
	}
	tw.Flush() // writes to a bytes.Buffer, which does not fail
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

func percent(f float64) string {
	return strconv.FormatFloat(100*f, 'f', 1, 64) + "%"
}
