package journal_test

import (
	"fmt"

	"github.com/wan22-guard/wan22-guard/journal"
)

func ExampleRedactArgv() {
	argv := []string{"env", "HF_TOKEN=hf_abc", "python", "generate.py", "--hf-token", "hf_abc", "--api_key=sk", "--size", "1280*720"}
	fmt.Println(journal.RedactArgv(argv))
	// Output: [env HF_TOKEN=[REDACTED] python generate.py --hf-token [REDACTED] --api_key=[REDACTED] --size 1280*720]
}

func ExampleRedactLine() {
	fmt.Println(journal.RedactLine("Generation job args: Namespace(task='t2v-A14B', hf_token='hf_abc', size='1280*720')"))
	// Output: Generation job args: Namespace(task='t2v-A14B', hf_token='[REDACTED]', size='1280*720')
}
