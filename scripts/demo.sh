#!/usr/bin/env bash
# The demo: the guard runs the bundled fake Wan2.2 generator on a pretend
# 56 GB GPU. A 720P t2v-A14B run runs out of memory at VAE decode; the guard
# classifies it, steps down the VRAM ladder and relaunches until it fits.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
python3 testdata/fakewan/mkckpt.py "$demo/ckpt" t2v-A14B >/dev/null
echo "== wan22-guard -- python3 testdata/fakewan/generate.py --task t2v-A14B --size 1280*720 ... (card: 56 GB)"
set +e
FAKEWAN_VRAM_GB=56 FAKEWAN_STEP_MS=5 \
  ./bin/wan22-guard --run-dir "$demo/run" --backoff-initial 200ms --backoff-max 1s --no-preflight -- \
  python3 testdata/fakewan/generate.py --task t2v-A14B --size '1280*720' --ckpt_dir "$demo/ckpt" \
  --offload_model True --convert_model_dtype --sample_steps 8 --save_file "$demo/out.mp4" \
  --prompt "Two anthropomorphic cats in comfy boxing gear fight on a spotlighted stage"
code=$?
set -e
echo "== guard exit code: $code"
echo "== attempt log ($demo/run/attempts.jsonl), one JSON record per attempt:"
python3 - "$demo/run/attempts.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    ran = ", ".join(f"{c['what']}={c.get('to','')}" for c in r.get("changes") or []) or "the command as given"
    nxt = r.get("action", "")
    if r.get("rung_name"):
        nxt += " " + r["rung_name"]
    print(f"  attempt {r['attempt']}: ran with {ran}")
    print(f"             -> {r['class']} at {r.get('phase','')}; next: {nxt}")
PY
exit "$code"
