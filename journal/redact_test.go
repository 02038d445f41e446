package journal

import (
	"reflect"
	"strings"
	"testing"
)

func TestSensitive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"env token", "HF_TOKEN", true},
		{"lower token", "hf_token", true},
		{"mixed case key", "Api_Key", true},
		{"flag with dashes", "--api-key", true},
		{"secret", "AWS_SECRET_ACCESS_KEY", true},
		{"password", "DB_PASSWORD", true},
		{"dotted key", "db.Password", true},
		{"key inside a word", "monkey", true},
		{"tokens plural", "max_tokens", true},
		{"plain flag", "--size", false},
		{"cuda conf", "PYTORCH_CUDA_ALLOC_CONF", false},
		{"passwd is not password", "PASSWD", false},
		{"empty", "", false},
		{"partial word", "TOKE", false},
	}
	for _, tt := range tests {
		if got := Sensitive(tt.in); got != tt.want {
			t.Errorf("Sensitive(%s: %q) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestRedactArgv(t *testing.T) {
	t.Parallel()
	const R = Redacted
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"nil", nil, nil},
		{"empty", []string{}, []string{}},
		{"nothing secret",
			[]string{"python", "generate.py", "--task", "t2v-A14B", "--size", "1280*720"},
			[]string{"python", "generate.py", "--task", "t2v-A14B", "--size", "1280*720"}},
		{"flag then value", []string{"x", "--hf-token", "hf_abc"}, []string{"x", "--hf-token", R}},
		{"underscore flag then value", []string{"x", "--hf_token", "hf_abc"}, []string{"x", "--hf_token", R}},
		{"single dash flag", []string{"x", "-api_key", "k"}, []string{"x", "-api_key", R}},
		{"upper case flag", []string{"x", "--API-KEY", "k"}, []string{"x", "--API-KEY", R}},
		{"flag equals value", []string{"x", "--api_key=abc"}, []string{"x", "--api_key=" + R}},
		{"flag equals value with equals", []string{"x", "--api_key=a=b"}, []string{"x", "--api_key=" + R}},
		{"flag equals value with spaces", []string{"x", "--password=a b c"}, []string{"x", "--password=" + R}},
		{"flag equals empty", []string{"x", "--api_key="}, []string{"x", "--api_key="}},
		{"env style", []string{"env", "HF_TOKEN=hf_abc", "python"}, []string{"env", "HF_TOKEN=" + R, "python"}},
		{"env style lower", []string{"env", "hf_token=hf_abc"}, []string{"env", "hf_token=" + R}},
		{"env style secret", []string{"AWS_SECRET_ACCESS_KEY=zzz"}, []string{"AWS_SECRET_ACCESS_KEY=" + R}},
		{"env style not secret", []string{"env", "CUDA_VISIBLE_DEVICES=0,1"}, []string{"env", "CUDA_VISIBLE_DEVICES=0,1"}},
		{"flag at the end", []string{"x", "--hf-token"}, []string{"x", "--hf-token"}},
		{"flag then flag", []string{"x", "--use-token", "--offload_model", "True"}, []string{"x", "--use-token", "--offload_model", "True"}},
		{"flag then empty", []string{"x", "--token", ""}, []string{"x", "--token", ""}},
		{"flag then double dash", []string{"x", "--token", "--", "y"}, []string{"x", "--token", "--", "y"}},
		{"only the next value", []string{"x", "--token", "a", "b"}, []string{"x", "--token", R, "b"}},
		{"two secrets", []string{"--token", "a", "--password", "b"}, []string{"--token", R, "--password", R}},
		{"value looks like a flag name", []string{"--key", "token"}, []string{"--key", R}},
		{"secret inside a prompt", []string{"--prompt", "use HF_TOKEN=abc now"}, []string{"--prompt", "use HF_TOKEN=" + R + " now"}},
		{"secret inside a shell script", []string{"bash", "-c", "export HF_TOKEN=abc; python x.py --api-key k"},
			[]string{"bash", "-c", "export HF_TOKEN=" + R + "; python x.py --api-key " + R}},
		{"already redacted", []string{"--token", R, "HF_TOKEN=" + R}, []string{"--token", R, "HF_TOKEN=" + R}},
		{"value equals sign in non-name", []string{"a b=c"}, []string{"a b=c"}},
		{"program path with key", []string{"/opt/keys/run", "--size", "1"}, []string{"/opt/keys/run", "--size", "1"}},
	}
	for _, tt := range tests {
		var in []string
		if tt.in != nil {
			in = append([]string{}, tt.in...)
		}
		got := RedactArgv(in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("RedactArgv(%s: %q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
		if !reflect.DeepEqual(in, tt.in) {
			t.Errorf("RedactArgv(%s) modified its input: %q", tt.name, in)
		}
	}
}

func TestRedactEnv(t *testing.T) {
	t.Parallel()
	const R = Redacted
	tests := []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"nil", nil, nil},
		{"empty", map[string]string{}, map[string]string{}},
		{"token", map[string]string{"HF_TOKEN": "hf_abc"}, map[string]string{"HF_TOKEN": R}},
		{"key lower", map[string]string{"openai_api_key": "sk"}, map[string]string{"openai_api_key": R}},
		{"secret", map[string]string{"MY_SECRET": "x"}, map[string]string{"MY_SECRET": R}},
		{"password", map[string]string{"Password": "x"}, map[string]string{"Password": R}},
		{"empty value stays", map[string]string{"HF_TOKEN": ""}, map[string]string{"HF_TOKEN": ""}},
		{"not secret", map[string]string{"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
			map[string]string{"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}},
		{"secret in another value", map[string]string{"EXTRA": "--hf-token abc"}, map[string]string{"EXTRA": "--hf-token " + R}},
		{"mixed", map[string]string{"HF_TOKEN": "a", "OMP_NUM_THREADS": "4"}, map[string]string{"HF_TOKEN": R, "OMP_NUM_THREADS": "4"}},
	}
	for _, tt := range tests {
		got := RedactEnv(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("RedactEnv(%s: %v) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
	in := map[string]string{"HF_TOKEN": "a"}
	RedactEnv(in)
	if in["HF_TOKEN"] != "a" {
		t.Errorf("RedactEnv modified its input: %v", in)
	}
}

func TestRedactLine(t *testing.T) {
	t.Parallel()
	const R = Redacted
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"no secret", "Generating video ...", "Generating video ..."},
		{"progress bar", " 40%|████      | 20/50 [01:00<01:30]", " 40%|████      | 20/50 [01:00<01:30]"},
		{"env pair", "HF_TOKEN=hf_abc", "HF_TOKEN=" + R},
		{"export", "export HF_TOKEN=hf_abc", "export HF_TOKEN=" + R},
		{"pair in the middle", "a HF_TOKEN=x b", "a HF_TOKEN=" + R + " b"},
		{"lower case name", "api_key=abc", "api_key=" + R},
		{"double quoted", `HF_TOKEN="a b c" rest`, `HF_TOKEN="` + R + `" rest`},
		{"single quoted", `password='p w' rest`, `password='` + R + `' rest`},
		{"unterminated quote", `password="abc`, `password="` + R},
		{"empty quoted", `HF_TOKEN="" x`, `HF_TOKEN="" x`},
		{"empty value", "HF_TOKEN= x", "HF_TOKEN= x"},
		{"argparse namespace", "Namespace(task='t2v-A14B', hf_token='hf_abc', size='1280*720')",
			"Namespace(task='t2v-A14B', hf_token='" + R + "', size='1280*720')"},
		{"ends at comma", "hf_token=abc, size=1", "hf_token=" + R + ", size=1"},
		{"ends at ampersand", "https://h/x?api_key=abc&n=1", "https://h/x?api_key=" + R + "&n=1"},
		{"ends at paren", "f(secret=abc)", "f(secret=" + R + ")"},
		{"json string", `{"env":"HF_TOKEN=abc"}`, `{"env":"HF_TOKEN=` + R + `"}`},
		{"flag equals", "run --api-key=abc --size 1", "run --api-key=" + R + " --size 1"},
		{"flag space value", "run --hf-token abc --size 1", "run --hf-token " + R + " --size 1"},
		{"flag tab value", "run --hf-token\tabc", "run --hf-token\t" + R},
		{"flag at line start", "--token abc", "--token " + R},
		{"flag quoted value", `--password "a b" x`, `--password "` + R + `" x`},
		{"flag then flag", "--use-token --size 1", "--use-token --size 1"},
		{"flag at the end", "run --token", "run --token"},
		{"dash inside a word", "my-token abc", "my-token abc"},
		{"two pairs", "A_KEY=1 B_SECRET=2", "A_KEY=" + R + " B_SECRET=" + R},
		{"not a secret pair", "CUDA_VISIBLE_DEVICES=0 x", "CUDA_VISIBLE_DEVICES=0 x"},
		{"word without pair", "the token expired", "the token expired"},
		{"already redacted", "HF_TOKEN=" + R, "HF_TOKEN=" + R},
		{"unicode around", "é HF_TOKEN=ü é", "é HF_TOKEN=" + R + " é"},
		{"guard line", "[wan22-guard] HF_TOKEN=abc", "[wan22-guard] HF_TOKEN=" + R},
	}
	for _, tt := range tests {
		if got := RedactLine(tt.in); got != tt.want {
			t.Errorf("RedactLine(%s: %q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
		if got := RedactLine(RedactLine(tt.in)); got != tt.want {
			t.Errorf("RedactLine twice (%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRedactLine_noAllocWithoutSecrets(t *testing.T) {
	line := strings.Repeat("denoising step 12/50 ", 10)
	if n := testing.AllocsPerRun(100, func() { RedactLine(line) }); n != 0 {
		t.Errorf("RedactLine allocates %v times on a line without secrets, want 0", n)
	}
}

func TestRedactChanges(t *testing.T) {
	t.Parallel()
	in := []Change{
		{Kind: "env", What: "HF_TOKEN", From: "a", To: "b"},
		{Kind: "argv", What: "--api_key", To: "k"},
		{Kind: "argv", What: "--offload_model", From: "False", To: "True"},
		{Kind: "argv", What: "--prompt", From: "x HF_TOKEN=s", To: ""},
	}
	want := []Change{
		{Kind: "env", What: "HF_TOKEN", From: Redacted, To: Redacted},
		{Kind: "argv", What: "--api_key", To: Redacted},
		{Kind: "argv", What: "--offload_model", From: "False", To: "True"},
		{Kind: "argv", What: "--prompt", From: "x HF_TOKEN=" + Redacted, To: ""},
	}
	if got := redactChanges(in); !reflect.DeepEqual(got, want) {
		t.Errorf("redactChanges = %+v, want %+v", got, want)
	}
	if in[0].From != "a" {
		t.Errorf("redactChanges modified its input: %+v", in[0])
	}
}
