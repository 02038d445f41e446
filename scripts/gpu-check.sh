#!/usr/bin/env bash
# The checks that need a real NVIDIA GPU and PyTorch (CI never runs this).
# It builds the guard, prints what NVML sees, then under the guard:
#   1. a program that allocates GPU memory until a real torch.OutOfMemoryError:
#      the guard must classify it cuda_oom, record peak VRAM, and see the
#      memory come back before it would relaunch;
#   2. a program that leaves an orphan holding GPU memory and exits 1: the
#      guard must kill the orphan and see the memory come back.
# Takes well under 3 minutes. Usage: scripts/gpu-check.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
export CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}"
PY=${PYTHON:-python3}

go build -tags urfave_cli_no_docs -o "$out/wan22-guard" .
go build -o "$out/gpucheck" ./gpu/nvml/cmd/gpucheck
echo "== NVML"
"$out/gpucheck" | tee "$out/gpucheck.json"

cat >"$out/oom.py" <<'PY'
import torch, time
print("allocating until CUDA runs out", flush=True)
blocks = []
while True:
    blocks.append(torch.empty(1 << 30, dtype=torch.uint8, device="cuda"))
    time.sleep(0.05)
PY
cat >"$out/orphan.py" <<'PY'
import os, sys, time
if os.fork() == 0:
    os.setsid()
    import torch
    x = torch.empty(4 << 30, dtype=torch.uint8, device="cuda")
    print(f"orphan {os.getpid()} holds 4 GiB", flush=True)
    time.sleep(3600)
    sys.exit(0)
time.sleep(20)
sys.exit(1)
PY

fail=0
check() { if python3 -c "$1" "$2"; then echo "PASS: $3"; else echo "FAIL: $3"; fail=1; fi; }

echo "== 1. real CUDA OOM"
set +e
"$out/wan22-guard" --run-dir "$out/run1" --max-attempts 1 --sample-interval 200ms --report "$out/report1.json" -- "$PY" "$out/oom.py" 2>&1 | tail -5
set -e
check 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(0 if r["class"]=="cuda_oom" else 1)' "$out/run1/attempts.jsonl" "classified cuda_oom"
check 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(0 if r.get("peak_vram_bytes",0)>(1<<30) else 1)' "$out/run1/attempts.jsonl" "peak VRAM recorded"
check 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(0 if r["class"]!="gpu_fault" else 1)' "$out/run1/attempts.jsonl" "memory came back (no gpu_fault from the release gate)"

echo "== 2. orphan holding GPU memory"
set +e
"$out/wan22-guard" --run-dir "$out/run2" --max-attempts 1 --gpu-release-timeout 60s -- "$PY" "$out/orphan.py" 2>&1 | tail -5
set -e
check 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(0 if r["class"]!="gpu_fault" else 1)' "$out/run2/attempts.jsonl" "orphan killed and its memory released"
if pgrep -f "$out/orphan.py" >/dev/null; then echo "FAIL: orphan still running"; fail=1; else echo "PASS: no orphan left"; fi
"$out/gpucheck" >"$out/gpucheck-after.json" || true
echo "== results in $out"
exit $fail
