package runner

import (
	"testing"

	"github.com/wan22-guard/wan22-guard/configs"
)

// TestDefaults_matchTheConfig: with LaunchEarly the first attempt is
// launched with the built-in tail and line sizes before the config is read;
// they must be the config's defaults.
func TestDefaults_matchTheConfig(t *testing.T) {
	t.Parallel()
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Runtime.Grace.D() != DefaultGrace {
		t.Errorf("default.yaml grace = %s, built-in %s", cfg.Runtime.Grace.D(), DefaultGrace)
	}
	if cfg.Runtime.TailLines != DefaultTailLines || cfg.Runtime.MaxLine != DefaultMaxLine {
		t.Errorf("default.yaml tail_lines/max_line = %d/%d, built-in %d/%d", cfg.Runtime.TailLines, cfg.Runtime.MaxLine, DefaultTailLines, DefaultMaxLine)
	}
}
