package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"testing"
)

func threeGPUs() Facts {
	return Facts{
		Available: true,
		Driver:    "550.54.15",
		CUDA:      "12.4",
		Devices: []Device{
			{Index: 0, UUID: "GPU-aaaa1111", Name: "NVIDIA H100 80GB HBM3", MemTotal: 80 * GiB, MemFree: 70 * GiB},
			{Index: 1, UUID: "GPU-aaaa2222", Name: "NVIDIA H100 80GB HBM3", MemTotal: 80 * GiB, MemFree: 79 * GiB},
			{Index: 2, UUID: "GPU-bbbb3333", Name: "NVIDIA H100 80GB HBM3", MemTotal: 80 * GiB, MemFree: 10 * GiB},
		},
	}
}

func indices(ds []Device) []int {
	out := []int{}
	for _, d := range ds {
		out = append(out, d.Index)
	}
	return out
}

func TestFacts_Visible(t *testing.T) {
	t.Parallel()
	f := threeGPUs()
	tests := []struct {
		name string
		cvd  string
		want []int
	}{
		{"unset means all", "", []int{0, 1, 2}},
		{"minus one means none", "-1", []int{}},
		{"none means none", "none", []int{}},
		{"one index", "1", []int{1}},
		{"order is kept", "2,0", []int{2, 0}},
		{"spaces are trimmed", " 2 , 1 ", []int{2, 1}},
		{"list stops at a bad index", "1,7,0", []int{1}},
		{"list stops at garbage", "0,x,1", []int{0}},
		{"repeats are dropped", "1,1,0", []int{1, 0}},
		{"full uuid", "GPU-bbbb3333", []int{2}},
		{"unique uuid prefix", "GPU-bbbb,GPU-aaaa1", []int{2, 0}},
		{"ambiguous uuid prefix stops", "GPU-aaaa", []int{}},
		{"mixed index and uuid", "2,GPU-aaaa2222", []int{2, 1}},
		{"mig uuid names no physical gpu", "MIG-1234", []int{}},
	}
	for _, tt := range tests {
		if got := indices(f.Visible(tt.cvd)); !slices.Equal(got, tt.want) {
			t.Errorf("Visible(%s: %q) = %v, want %v", tt.name, tt.cvd, got, tt.want)
		}
	}
}

func TestFacts_Visible_doesNotAlias(t *testing.T) {
	t.Parallel()
	f := threeGPUs()
	v := f.Visible("")
	v[0].Name = "changed"
	if f.Devices[0].Name == "changed" {
		t.Error("Visible(\"\") returned the Facts' own slice")
	}
}

func TestFacts_FreeGiB(t *testing.T) {
	t.Parallel()
	f := threeGPUs()
	if got := f.MaxFreeGiB(); got != 79 {
		t.Errorf("MaxFreeGiB() = %v, want 79", got)
	}
	if got := f.TotalFreeGiB(); got != 159 {
		t.Errorf("TotalFreeGiB() = %v, want 159", got)
	}
	if got := (Facts{Devices: f.Visible("2")}).MaxFreeGiB(); got != 10 {
		t.Errorf("MaxFreeGiB() of GPU 2 = %v, want 10", got)
	}
	if got := (Facts{}).MaxFreeGiB(); got != 0 {
		t.Errorf("MaxFreeGiB() with no devices = %v, want 0", got)
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	mixed := Facts{Available: true, Devices: []Device{
		{Name: "NVIDIA A100-SXM4-40GB", MemTotal: 40 * GiB, MemFree: 39 * GiB},
		{Name: "Tesla T4", MemTotal: 15 * GiB, MemFree: 15 * GiB},
		{Name: "NVIDIA A100-SXM4-40GB", MemTotal: 40 * GiB, MemFree: 20 * GiB},
	}}
	two := Facts{Available: true, Driver: "550.54", CUDA: "12.4", Devices: []Device{
		{Name: "NVIDIA H100 80GB HBM3", MemTotal: 85520809984, MemFree: 84934852608},
		{Name: "NVIDIA H100 80GB HBM3", MemTotal: 85520809984, MemFree: 80000000000},
	}}
	tests := []struct {
		name string
		in   Facts
		want string
	}{
		{"two of a kind", two, "2x NVIDIA H100 80GB HBM3, driver 550.54, CUDA 12.4, free 79.1/79.6 GiB"},
		{"mixed models", mixed, "2x NVIDIA A100-SXM4-40GB + 1x Tesla T4, free 39.0/40.0 GiB"},
		{"unavailable", Facts{Reason: "libnvidia-ml.so.1 not found"}, "no GPU: libnvidia-ml.so.1 not found"},
		{"no reason", Facts{}, "no GPU: no devices"},
	}
	for _, tt := range tests {
		if got := Summary(tt.in); got != tt.want {
			t.Errorf("Summary(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// keys collects every object key in a JSON document.
func keys(v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			out[k] = true
			keys(x, out)
		}
	case []any:
		for _, x := range v {
			keys(x, out)
		}
	}
}

func TestJSON_snakeCase(t *testing.T) {
	t.Parallel()
	f := threeGPUs()
	f.Devices[0].Processes = []GPUProcess{{Pid: 1, UsedBytes: 2}}
	f.Devices[0].Fault = "ERROR_GPU_IS_LOST"
	f.Reason = "x"
	values := []any{
		f,
		HostFacts{DiskFree: map[string]uint64{"/": 1}, CgroupMemLimit: 1, CgroupVersion: 2},
		Peaks{PeakVRAMBytes: map[int]uint64{0: 1}},
		GateResult{Stragglers: []int{1}, Evidence: "e"},
	}
	for _, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		ks := make(map[string]bool)
		keys(m, ks)
		for k := range ks {
			if k != "/" && k != "0" && !snake.MatchString(k) {
				t.Errorf("%T has JSON key %q, want snake_case", v, k)
			}
		}
	}
}

func TestErrTimeout_isUnavailable(t *testing.T) {
	t.Parallel()
	if !errors.Is(ErrTimeout, ErrUnavailable) {
		t.Error("errors.Is(ErrTimeout, ErrUnavailable) = false, want true")
	}
}

func TestFakeProber_Probe(t *testing.T) {
	t.Parallel()
	full := Facts{Available: true, Devices: []Device{{MemFree: 1}}}
	back := Facts{Available: true, Devices: []Device{{MemFree: 80 * GiB}}}
	boom := errors.New("boom")
	p := &FakeProber{Facts: back, Seq: []FakeResult{{Facts: full}, {Err: boom}}}
	ctx := t.Context()
	if f, err := p.Probe(ctx); err != nil || f.Devices[0].MemFree != 1 {
		t.Errorf("Probe #1 = %v, %v, want the first scripted facts", f, err)
	}
	if _, err := p.Probe(ctx); !errors.Is(err, boom) {
		t.Errorf("Probe #2 error = %v, want %v", err, boom)
	}
	for i := 3; i <= 4; i++ {
		if f, err := p.Probe(ctx); err != nil || f.Devices[0].MemFree != 80*GiB {
			t.Errorf("Probe #%d = %v, %v, want Facts", i, f, err)
		}
	}
	if got := p.Calls(); got != 4 {
		t.Errorf("Calls() = %d, want 4", got)
	}
}

func TestFakeProber_ProbeCancelled(t *testing.T) {
	t.Parallel()
	p := &FakeProber{Seq: []FakeResult{{Facts: Facts{Available: true}}}}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Probe(ctx); err == nil {
		t.Error("Probe(cancelled ctx) error = nil, want ctx error")
	}
	if p.Calls() != 0 {
		t.Errorf("Calls() = %d after a cancelled Probe, want 0", p.Calls())
	}
}
