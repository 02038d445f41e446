// Command wan22-guard runs a Wan2.2 video-generation command as a child,
// passes its output through untouched, classifies each failure, applies the
// recovery strategy for its class (retry, backoff, a lower-VRAM fallback,
// state restore, guided steps, shutdown), relaunches, and logs every attempt
// as JSON.
//
//	wan22-guard [flags] -- python generate.py --task t2v-A14B --size 1280*720 ...
//
// # Exit codes
//
// With --exit-code=contract (the default) the exit code says how the run
// ended:
//
//	  0  success: an attempt succeeded
//	  2  usage: the guard's own flags or arguments are wrong
//	  3  config: the config file is invalid (FILE:LINE:COL on stderr)
//	  4  internal: the guard could not run (run dir, unexpected error)
//	 10  needs the user: config, missing_dep, cuda_env, disk_full, state_corrupt;
//	     a workflow was printed; retrying will not help
//	 11  infeasible: a fallback ladder ran out (cuda_oom, host_oom, quantization)
//	 12  transient budget spent: network, nccl, stall, unknown, save_failed;
//	     another node or a later run may succeed
//	 13  GPU fault: the node is suspect (Xid, ECC, memory not released)
//	126  the command is not executable
//	127  the command was not found
//	128+N  interrupted by signal N (130 for SIGINT, 143 for SIGTERM)
//
// With --exit-code=child the guard exits with the child's last exit code,
// or 128+N if signal N killed it (126/127 and 128+N as above).
package main

import (
	"context"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
}
