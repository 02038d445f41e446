package statefile

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		path  string
		data  string
		valid bool
	}{
		{"json object", "s.json", `{"step": 3}`, true},
		{"json with spaces", "s.json", " \n[1, 2]\n ", true},
		{"json null", "s.json", "null", true},
		{"json upper-case ext", "S.JSON", `{}`, true},
		{"json truncated", "s.json", `{"step": 3, "lat`, false},
		{"json trailing garbage", "s.json", `{} {}`, false},
		{"json blank", "s.json", " \n", false},
		{"json empty", "s.json", "", false},
		{"yaml map", "s.yaml", "step: 3\nlist: [1, 2]\n", true},
		{"yml two docs", "s.yml", "a: 1\n---\nb: 2\n", true},
		{"yaml unclosed flow", "s.yaml", "step: 3\nlist: [1, 2\n", false},
		{"yaml bad indent", "s.yaml", "a:\n  b: 1\n c: 2\n", false},
		{"yaml blank", "s.yaml", "\n\n", false},
		{"yaml empty", "s.yaml", "", false},
		{"other non-empty", "s.pt", "\x00\x01", true},
		{"other empty", "s.pt", "", false},
		{"no extension", "state", "x", true},
	}
	for _, tt := range tests {
		err := DefaultValidate(tt.path, []byte(tt.data))
		if (err == nil) != tt.valid {
			t.Errorf("DefaultValidate(%s) = %v, want valid=%v", tt.name, err, tt.valid)
		}
	}
}

func TestJSONValid_Depth(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		for _, inner := range []string{"", "1", "{}"} {
			data := []byte(strings.Repeat("[", depth) + inner + strings.Repeat("]", depth))
			if got, want := jsonValid(data), json.Valid(data); got != want {
				t.Errorf("jsonValid(depth %d, %q inside) = %v, json.Valid = %v", depth, inner, got, want)
			}
		}
		data := []byte(strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth))
		if got, want := jsonValid(data), json.Valid(data); got != want {
			t.Errorf("jsonValid(objects, depth %d) = %v, json.Valid = %v", depth, got, want)
		}
	}
}

func TestParseError_Position(t *testing.T) {
	t.Parallel()
	data := "{\n  \"a\": 1,\n  \"b\": }\n"
	err := DefaultValidate("s.json", []byte(data))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("DefaultValidate = %v, want a *ParseError", err)
	}
	if pe.Format != "json" || pe.Offset != 20 || pe.Line != 3 || pe.Column != 8 {
		t.Errorf("ParseError = %+v, want json offset 20 line 3 column 8", pe)
	}
	if want := "json: line 3, column 8 (offset 20): "; !strings.HasPrefix(pe.Error(), want) {
		t.Errorf("Error() = %q, want prefix %q", pe.Error(), want)
	}
}

func TestCommandValidator(t *testing.T) {
	t.Parallel()
	errStart := errors.New("exec: not found")
	type call struct {
		argv     []string
		stdin    string
		deadline bool
	}
	tests := []struct {
		name    string
		argv    []string
		data    string
		code    int
		out     string
		runErr  error
		wantErr string // "" = valid
		wantRun bool
	}{
		{"exit 0 is valid", []string{"check", "-q"}, "{}", 0, "", nil, "", true},
		{"exit 1 is invalid", []string{"check"}, "{}", 1, "Traceback\nValueError: bad state\n", nil, `exit code 1: "Traceback\nValueError: bad state"`, true},
		{"silent rejection", []string{"check"}, "{}", 2, "", nil, `exit code 2: "no output"`, true},
		{"run error", []string{"check"}, "{}", 0, "", errStart, "exec: not found", true},
		{"empty data is not run", []string{"check"}, "", 0, "", nil, "empty file", false},
		{"empty argv", nil, "{}", 0, "", nil, "no command", false},
	}
	for _, tt := range tests {
		var calls []call
		run := func(ctx context.Context, argv []string, stdin []byte) (int, []byte, error) {
			_, ok := ctx.Deadline()
			calls = append(calls, call{argv, string(stdin), ok})
			return tt.code, []byte(tt.out), tt.runErr
		}
		argv := append([]string(nil), tt.argv...)
		v := CommandValidator(run, argv)
		if len(argv) > 0 {
			argv[0] = "changed-by-caller"
		}
		err := v("state.json", []byte(tt.data))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: validator = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: validator = %v, want an error containing %q", tt.name, err, tt.wantErr)
		}
		if tt.runErr != nil && !errors.Is(err, tt.runErr) {
			t.Errorf("%s: error %v does not wrap %v", tt.name, err, tt.runErr)
		}
		if (len(calls) == 1) != tt.wantRun {
			t.Fatalf("%s: run called %d times, want run=%v", tt.name, len(calls), tt.wantRun)
		}
		if tt.wantRun {
			c := calls[0]
			if strings.Join(c.argv, " ") != strings.Join(tt.argv, " ") || c.stdin != tt.data || !c.deadline {
				t.Errorf("%s: run got argv %q stdin %q deadline %v; want %q, %q, true", tt.name, c.argv, c.stdin, c.deadline, tt.argv, tt.data)
			}
		}
	}
	if err := CommandValidator(nil, []string{"x"})("s", []byte("x")); err == nil {
		t.Error("CommandValidator(nil run) accepted the state")
	}
}

func TestCommandValidator_InStore(t *testing.T) {
	t.Parallel()
	run := func(_ context.Context, _ []string, stdin []byte) (int, []byte, error) {
		if strings.Contains(string(stdin), "nan") {
			return 1, []byte("state has NaN"), nil
		}
		return 0, nil, nil
	}
	m, err := NewMemStore("state.json", Options{Validate: CommandValidator(run, []string{"python", "check.py"}), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	m.SetState([]byte(`{"loss": "nan"}`))
	if err := m.Check(); !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), "state has NaN") {
		t.Errorf("Check = %v, want ErrCorruptState naming the command's output", err)
	}
	m.SetState([]byte(`{"loss": 0.1}`))
	if err := m.Check(); err != nil {
		t.Errorf("Check = %v, want nil", err)
	}
}

func FuzzValidate(f *testing.F) {
	seeds := []string{
		`-0.5e+10`, `[1e5, -0, 0.0, 1E-2]`, `"\u00e9\n\"\\\/"`, `"\u12"`, `"\x"`, "\"a\tb\"",
		`{"a":1,}`, `[1,]`, `{"a" 1}`, `{1: 2}`, `[01]`, `[1.]`, `[.5]`, `[-]`, `[1e]`, `tru`, `nulll`,
		"\xef\xbb\xbf{}", "\"\xff\xfe\"", `{"a":{"b":[[],{}]}}`, "  {}  ", "{}\x00",
		`{"step": 3}`, `{"a": [1, 2, {"b": null}]}`, `{"a":`, "", "\x00", "[[[[[[",
		"a: 1\nb: [1, 2]\n", "- &a x\n- *a\n", "a: !!binary AAAA\n", "{{{", "? - a\n: b\n",
		"---\n...\n---\n", "a: &x [*x]\n", "\t- x",
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, yaml bool) {
		path := "state.json"
		if yaml {
			path = "state.yaml"
		}
		err := DefaultValidate(path, data)
		if len(data) == 0 && err == nil {
			t.Fatalf("DefaultValidate(%s, empty) = nil", path)
		}
		// The fast JSON check must agree with encoding/json both ways.
		if got, want := jsonValid(data), json.Valid(data); got != want {
			t.Fatalf("jsonValid(%q) = %v, json.Valid = %v", data, got, want)
		}
		if !yaml && (err == nil) != json.Valid(data) {
			t.Fatalf("DefaultValidate(%s, %q) = %v, json.Valid = %v", path, data, err, json.Valid(data))
		}
		var pe *ParseError
		if errors.As(err, &pe) && pe.Offset >= 0 && (pe.Line < 1 || pe.Column < 1 || pe.Offset > int64(len(data))) {
			t.Fatalf("ParseError %+v out of range for %d bytes", pe, len(data))
		}
	})
}
