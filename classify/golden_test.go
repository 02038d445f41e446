package classify

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestGolden")

const (
	corpusDir = "../testdata/classify"
	goldenDir = "testdata/golden"
)

// corpusCase is one excerpt of real output, with its header:
//
//	# source: URL
//	# class: <expected class>
//	# exit: N            (optional; 0 for success, else 1)
//	# signal: SIGKILL    (optional; exit then defaults to 128+N)
type corpusCase struct {
	name   string
	header map[string]string
	want   Class
	out    Outcome
	lines  [][]byte
}

var headerLine = regexp.MustCompile(`^# ([a-z_]+): ?(.*)$`)

var signalNumbers = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
	"SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12,
	"SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGSYS": 31,
}

func readCase(path string) (corpusCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return corpusCase{}, err
	}
	c := corpusCase{name: strings.TrimSuffix(filepath.Base(path), ".log"), header: map[string]string{}}
	lines := bytes.Split(data, []byte("\n"))
	i := 0
	for ; i < len(lines); i++ {
		m := headerLine.FindSubmatch(bytes.TrimRight(lines[i], "\r"))
		if m == nil {
			break
		}
		c.header[string(m[1])] = strings.TrimSpace(string(m[2]))
	}
	c.want = Class(c.header["class"])
	if !c.want.Valid() {
		return c, fmt.Errorf("%s: header class %q is not a class", path, c.want)
	}
	c.out, err = caseOutcome(c.header, c.want)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	// The runner splits on \n and \r; so do we.
	for _, l := range lines[i:] {
		c.lines = append(c.lines, bytes.Split(l, []byte("\r"))...)
	}
	return c, nil
}

func caseOutcome(h map[string]string, want Class) (Outcome, error) {
	var o Outcome
	o.Signal = h["signal"]
	if o.Signal != "" {
		n, ok := signalNumbers[o.Signal]
		if !ok {
			return o, fmt.Errorf("unknown signal %q", o.Signal)
		}
		o.ExitCode = 128 + n
	} else if want != ClassSuccess {
		o.ExitCode = 1
	}
	if v, ok := h["exit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, fmt.Errorf("exit %q: %w", v, err)
		}
		o.ExitCode = n
	}
	o.Watchdog = Watchdog(h["watchdog"])
	o.Phase = Phase(h["phase"])
	o.StartErr = h["start_error"]
	for key, dst := range map[string]*bool{
		"interrupted": &o.Interrupted, "output_missing": &o.OutputMissing, "state_invalid": &o.StateInvalid,
	} {
		if v, ok := h[key]; ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("%s %q: %w", key, v, err)
			}
			*dst = b
		}
	}
	if v, ok := h["oom_kills"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, fmt.Errorf("oom_kills %q: %w", v, err)
		}
		o.OOMKills = n
	}
	return o, nil
}

func loadCorpus(tb testing.TB) []corpusCase {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(corpusDir, "*.log"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) == 0 {
		tb.Skipf("no corpus in %s", corpusDir)
	}
	cases := make([]corpusCase, 0, len(paths))
	for _, p := range paths {
		c, err := readCase(p)
		if err != nil {
			tb.Fatal(err)
		}
		cases = append(cases, c)
	}
	return cases
}

func (c corpusCase) verdict(r *Rules) Result {
	s := NewScanner(r)
	for _, l := range c.lines {
		s.Line(l)
	}
	return s.Verdict(c.out)
}

// TestGolden compares the Result of every corpus excerpt with its golden
// file; -update rewrites them.
func TestGolden(t *testing.T) {
	r := defaultRules(t)
	cases := loadCorpus(t)
	if *update {
		old, _ := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
		for _, p := range old {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if !*update {
		names := map[string]bool{}
		for _, c := range cases {
			names[c.name] = true
		}
		goldens, _ := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
		for _, g := range goldens {
			if name := strings.TrimSuffix(filepath.Base(g), ".golden"); !names[name] {
				t.Errorf("%s has no %s.log in %s (run go test ./classify -run Golden -update)", g, name, corpusDir)
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := json.MarshalIndent(c.verdict(r), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join(goldenDir, c.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./classify -run Golden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Result of %s differs from %s:\ngot:\n%s\nwant:\n%s", c.name, path, got, want)
			}
		})
	}
}

// TestGolden_Class checks every excerpt against the class its header
// expects and prints the accuracy per class.
func TestGolden_Class(t *testing.T) {
	r := defaultRules(t)
	cases := loadCorpus(t)
	type tally struct{ ok, all int }
	per := map[Class]*tally{}
	var wrong []string
	for _, c := range cases {
		got := c.verdict(r)
		tl := per[c.want]
		if tl == nil {
			tl = &tally{}
			per[c.want] = tl
		}
		tl.all++
		if got.Class == c.want {
			tl.ok++
			continue
		}
		wrong = append(wrong, fmt.Sprintf("%s: got %s (rule %q, line %d: %.120q), want %s",
			c.name, got.Class, got.Rule, got.Line, got.Evidence, c.want))
	}
	var sum strings.Builder
	ok, all := 0, 0
	for _, cl := range Classes {
		if tl := per[cl]; tl != nil {
			fmt.Fprintf(&sum, "\n  %-22s %3d/%-3d", cl, tl.ok, tl.all)
			ok += tl.ok
			all += tl.all
		}
	}
	fmt.Fprintf(&sum, "\n  %-22s %3d/%-3d", "total", ok, all)
	t.Logf("accuracy per class:%s", sum.String())
	slices.Sort(wrong)
	for _, w := range wrong {
		t.Errorf("misclassified %s", w)
	}
}
