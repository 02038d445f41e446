#!/usr/bin/env bash
# Quick scenarios for the fake Wan2.2 generate.py and torchrun: exit codes and key lines.
# Usage: testdata/fakewan/selftest.sh   (exit status 1 if any check fails)
# Environment: PYTHON (default python3). Sets FAKEWAN_STEP_MS=0 and FAKEWAN_LOAD_MS=0 itself.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)') || exit 1
export PYTHON="$PY"
GEN="$HERE/generate.py"
TR="$HERE/torchrun"
TRUN=("$PY" "$TR")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export FAKEWAN_STEP_MS=0 FAKEWAN_LOAD_MS=0
unset FAKEWAN_FAIL FAKEWAN_FAIL_RANK FAKEWAN_FAIL_ONCE FAKEWAN_FAIL_TIMES FAKEWAN_COUNTER \
	FAKEWAN_STATE FAKEWAN_TRAP_TERM FAKEWAN_VRAM_GB FAKEWAN_SKIP_CKPT FAKEWAN_PRINT_VRAM \
	PYTORCH_CUDA_ALLOC_CONF PYTORCH_ALLOC_CONF RANK WORLD_SIZE LOCAL_RANK

FAILS=0
PASSES=0
NAME=""
OUT="$T/out"
ERR="$T/err"

bad() {
	echo "FAIL [$NAME]: $*" >&2
	FAILS=$((FAILS + 1))
}

# run NAME WANT_RC CMD...: run CMD, stdout to $OUT, stderr to $ERR, check the exit status.
run() {
	NAME=$1
	local want=$2
	shift 2
	("$@" >"$OUT" 2>"$ERR"; echo $? >"$T/rc") 2>/dev/null
	local rc
	rc=$(cat "$T/rc")
	if [ "$rc" != "$want" ]; then
		bad "exit $rc, want $want"
		sed 's/^/    | /' "$ERR" | tr '\r' '\n' | tail -n 15 >&2
	else
		PASSES=$((PASSES + 1))
	fi
}

# run_sig NAME WANT_RC SIGNAL MARKER CMD...: start CMD, wait until MARKER shows in its output,
# send SIGNAL, SIGKILL it 2 s later if it is still there, check the exit status.
run_sig() {
	NAME=$1
	local want=$2 sig=$3 marker=$4
	shift 4
	(
		"$@" >"$OUT" 2>"$ERR" &
		pid=$!
		i=0
		while ! grep -qF -- "$marker" "$OUT" "$ERR" 2>/dev/null && [ $i -lt 400 ]; do
			sleep 0.05
			i=$((i + 1))
		done
		sleep 0.2
		kill -s "$sig" "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 40 ]; do
			sleep 0.05
			i=$((i + 1))
		done
		kill -s KILL "$pid" 2>/dev/null
		wait "$pid"
		echo $? >"$T/rc"
	) 2>/dev/null
	local rc
	rc=$(cat "$T/rc")
	if [ "$rc" != "$want" ]; then
		bad "exit $rc, want $want"
		sed 's/^/    | /' "$ERR" | tr '\r' '\n' | tail -n 15 >&2
	else
		PASSES=$((PASSES + 1))
	fi
}

# has FILE PATTERN (fixed string); hasnt FILE PATTERN
has() { grep -qF -- "$2" "$1" || bad "$(basename "$1") lacks: $2"; }
hasnt() { ! grep -qF -- "$2" "$1" || bad "$(basename "$1") has: $2"; }

# in_order FILE PATTERN...: the fixed strings appear in FILE in this order.
in_order() {
	local f=$1 last=0 n
	shift
	for p in "$@"; do
		n=$(grep -nF -- "$p" "$f" | head -n 1 | cut -d: -f1)
		if [ -z "$n" ] || [ "$n" -lt "$last" ]; then
			bad "out of order or missing: $p"
			return
		fi
		last=$n
	done
}

"$HERE/mkckpt.sh" "$T/a14b" t2v-A14B || bad "mkckpt.sh t2v-A14B"
$PY "$HERE/mkckpt.py" "$T/ti2v" ti2v-5B || bad "mkckpt.py ti2v-5B"
A14B=(--task t2v-A14B --ckpt_dir "$T/a14b" --offload_model True --convert_model_dtype --sample_steps 4)

# 1. happy path: markers in order on stdout, tqdm on stderr, default save name, file written
mkdir -p "$T/cwd"
run "happy path" 0 env -C "$T/cwd" $PY "$GEN" --task t2v-A14B --size 832*480 --ckpt_dir "$T/a14b" --sample_steps 4 --base_seed 42
in_order "$OUT" "offload_model is not specified, set to True." "Generation job args: Namespace(" \
	"Generation model config: " "Input prompt: " "Creating WanT2V pipeline." \
	"loading $T/a14b/models_t5_umt5-xxl-enc-bf16.pth" "loading $T/a14b/Wan2.1_VAE.pth" \
	"Creating WanModel from $T/a14b" "Generating video ..." "Saving generated video to t2v-A14B_832*480_1_Two_anthropomorphic_cats_in_comfy_boxing_gear_and_" "Finished."
has "$OUT" "base_seed=42"
has "$OUT" "] INFO: "
has "$ERR" $'\r100%|██████████| 4/4 ['
hasnt "$OUT" "%|"
ls "$T"/cwd/t2v-A14B_832\*480_1_Two_anthropomorphic_cats_in_comfy_boxing_gear_and__*.mp4 >/dev/null 2>&1 || bad "default save file missing"

# 2. argparse errors exit 2
run "bad size choice" 2 $PY "$GEN" --size 640*480 --ckpt_dir "$T/a14b"
has "$ERR" "argument --size: invalid choice: '640*480'"
run "bad str2bool" 2 $PY "$GEN" --offload_model maybe --ckpt_dir "$T/a14b"
has "$ERR" "argument --offload_model: Boolean value expected (True/False)"
run "FAKEWAN_FAIL=exit2" 2 env FAKEWAN_FAIL=exit2 $PY "$GEN" "${A14B[@]}" --size 832*480

# 3. Wan2.2's assertions exit 1
run "unsupported size" 1 $PY "$GEN" --task ti2v-5B --size 1280*720 --ckpt_dir "$T/ti2v"
has "$ERR" "AssertionError: Unsupport size 1280*720 for task ti2v-5B, supported sizes are: 704*1280, 1280*704"
run "no ckpt_dir" 1 $PY "$GEN" --task t2v-A14B
has "$ERR" "AssertionError: Please specify the checkpoint directory."
run "ulysses without torchrun" 1 $PY "$GEN" "${A14B[@]}" --size 832*480 --ulysses_size 2
has "$ERR" "AssertionError: sequence parallel are not supported in non-distributed environments."
run "fsdp without torchrun" 1 $PY "$GEN" "${A14B[@]}" --size 832*480 --dit_fsdp
has "$ERR" "AssertionError: t5_fsdp and dit_fsdp are not supported in non-distributed environments."
run "offload given: no default line" 0 $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/o0.mp4"
hasnt "$OUT" "offload_model is not specified"

# 4. missing checkpoint
run "missing ckpt" 1 $PY "$GEN" --task t2v-A14B --size 832*480 --ckpt_dir "$T/nowhere"
has "$ERR" "FileNotFoundError: [Errno 2] No such file or directory: '$T/nowhere/models_t5_umt5-xxl-enc-bf16.pth'"
run "missing ckpt skipped" 0 env FAKEWAN_SKIP_CKPT=1 $PY "$GEN" --task t2v-A14B --size 832*480 --ckpt_dir "$T/nowhere" --sample_steps 1 --save_file "$T/skip.mp4"

# 5. VRAM model: 720P OOMs at VAE decode on 56 GB, 480P fits
run "720P on 56 GB: decode OOM" 1 env FAKEWAN_VRAM_GB=56 $PY "$GEN" "${A14B[@]}" --size 1280*720 --save_file "$T/o1.mp4"
has "$ERR" "wan/modules/vae2_1.py\", line 636, in decode"
has "$ERR" "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.60 GiB. GPU 0 has a total capacity of 56.00 GiB"
has "$ERR" "4/4 ["
has "$OUT" "Generating video ..."
hasnt "$OUT" "Saving generated video"
[ ! -e "$T/o1.mp4" ] || bad "file written after OOM"
run "480P on 56 GB fits" 0 env FAKEWAN_VRAM_GB=56 $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/o2.mp4"
[ -s "$T/o2.mp4" ] || bad "480P output missing"
run "58 GB without expandable_segments" 1 env FAKEWAN_VRAM_GB=58 $PY "$GEN" "${A14B[@]}" --size 1280*720 --save_file "$T/o3.mp4"
run "58 GB with expandable_segments" 0 env FAKEWAN_VRAM_GB=58 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True $PY "$GEN" "${A14B[@]}" --size 1280*720 --save_file "$T/o3.mp4"
run "10 GB: T5 OOM" 1 env FAKEWAN_VRAM_GB=10 $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/o4.mp4"
has "$ERR" "wan/modules/t5.py"
run "10 GB + t5_cpu: denoise OOM" 1 env FAKEWAN_VRAM_GB=10 $PY "$GEN" "${A14B[@]}" --size 832*480 --t5_cpu --save_file "$T/o4.mp4"
has "$ERR" "wan/modules/model.py"
hasnt "$ERR" "t5.py"
run "80 GB without convert: denoise OOM" 1 env FAKEWAN_VRAM_GB=80 $PY "$GEN" --task t2v-A14B --ckpt_dir "$T/a14b" --sample_steps 2 --size 1280*720 --save_file "$T/o5.mp4"
has "$ERR" "wan/modules/model.py"
run "ti2v-5B README flags on 24 GB" 0 env FAKEWAN_VRAM_GB=24 $PY "$GEN" --task ti2v-5B --size 1280*704 --ckpt_dir "$T/ti2v" --offload_model True --convert_model_dtype --t5_cpu --sample_steps 2 --save_file "$T/o6.mp4"
has "$OUT" "loading $T/ti2v/Wan2.2_VAE.pth"
run "ti2v-5B on 22 GB: vae2_2 decode OOM" 1 env FAKEWAN_VRAM_GB=22 $PY "$GEN" --task ti2v-5B --size 1280*704 --ckpt_dir "$T/ti2v" --offload_model True --convert_model_dtype --t5_cpu --sample_steps 2 --save_file "$T/o7.mp4"
has "$ERR" "wan/modules/vae2_2.py\", line 1039, in decode"

# 6. injected failures
run "sigkill at load" 137 env FAKEWAN_FAIL=sigkill $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/k.mp4"
hasnt "$ERR" "Traceback"
has "$OUT" "Creating WanModel from"
hasnt "$OUT" "Generating video"
run "nccl" 1 env FAKEWAN_FAIL=nccl $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/n.mp4"
has "$ERR" "[rank0]:[E ProcessGroupNCCL.cpp:1316] [PG 0 Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1234, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600012 milliseconds before timing out."
has "$ERR" "torch.distributed.DistBackendError: "
run "flashattn import" 1 env FAKEWAN_FAIL=flashattn $PY "$GEN" "${A14B[@]}" --size 832*480
has "$ERR" "flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so: undefined symbol: "
run "flashattn at first forward" 1 env FAKEWAN_FAIL=flashattn@denoise $PY "$GEN" "${A14B[@]}" --size 832*480
has "$ERR" "assert FLASH_ATTN_2_AVAILABLE"
run "nosave exits 0 without a file" 0 env FAKEWAN_FAIL=nosave $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/ns.mp4"
has "$OUT" "INFO: save_video failed, error: "
[ ! -e "$T/ns.mp4" ] || bad "nosave wrote a file"
run "diskfull" 1 env FAKEWAN_FAIL=diskfull $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/df.mp4"
has "$ERR" "OSError: [Errno 28] No space left on device"
run "exit0_after_nccl" 0 env FAKEWAN_FAIL=exit0_after_nccl $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/e0.mp4"
has "$ERR" "NCCL error in: "
run "forced oom at t5" 1 env FAKEWAN_FAIL=oom@t5 $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/f.mp4"
has "$ERR" "t5.py"
has "$ERR" "torch.OutOfMemoryError: CUDA out of memory."

# 7. hangs and signals
run_sig "hang then SIGTERM -> 143" 143 TERM "Generating video ..." env FAKEWAN_FAIL=hang $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/h.mp4"
has "$ERR" "SIGTERM"
run_sig "trapped SIGTERM -> SIGKILL" 137 TERM "Generating video ..." env FAKEWAN_FAIL=hang FAKEWAN_TRAP_TERM=1 $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/h.mp4"
run_sig "quantize_hang" 143 TERM "Quantizing transformer to int8 ..." env FAKEWAN_FAIL=quantize_hang $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/q.mp4"
has "$OUT" "Quantizing transformer to int8 ..."
hasnt "$OUT" "Generating video"

# 8. fail once / fail N times
M="$T/once.marker"
run "FAIL_ONCE first launch fails" 1 env FAKEWAN_FAIL=oom FAKEWAN_FAIL_ONCE="$M" $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/once.mp4"
run "FAIL_ONCE relaunch succeeds" 0 env FAKEWAN_FAIL=oom FAKEWAN_FAIL_ONCE="$M" $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/once.mp4"
C="$T/counter"
for i in 1 2; do
	run "FAIL_TIMES=2 launch $i fails" 1 env FAKEWAN_FAIL=diskfull FAKEWAN_FAIL_TIMES=2 FAKEWAN_COUNTER="$C" $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/t.mp4"
done
run "FAIL_TIMES=2 launch 3 succeeds" 0 env FAKEWAN_FAIL=diskfull FAKEWAN_FAIL_TIMES=2 FAKEWAN_COUNTER="$C" $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/t.mp4"

# 9. state file
S="$T/state.json"
: >"$S"
run "empty state file" 1 env FAKEWAN_STATE="$S" $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/s.mp4"
has "$ERR" "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)"
has "$ERR" "$S"
rm -f "$S"
run "killed mid-run leaves a valid state" 137 env FAKEWAN_STATE="$S" FAKEWAN_FAIL=sigkill@denoise:2 $PY "$GEN" --task t2v-A14B --ckpt_dir "$T/a14b" --sample_steps 6 --size 832*480 --save_file "$T/s.mp4"
$PY -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["step"]==2 and s["version"]==1 else 1)' "$S" || bad "state after kill at step 2"
run "relaunch resumes at step 2" 0 env FAKEWAN_STATE="$S" $PY "$GEN" --task t2v-A14B --ckpt_dir "$T/a14b" --sample_steps 6 --size 832*480 --save_file "$T/s.mp4"
has "$ERR" " 2/6 [00:00<?, ?it/s]"
$PY -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["step"]==6 and s["done"] else 1)' "$S" || bad "state after success"
run "truncate_state" 137 env FAKEWAN_STATE="$S" FAKEWAN_FAIL=truncate_state $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/s.mp4"
run "truncated state is rejected" 1 env FAKEWAN_STATE="$S" $PY "$GEN" "${A14B[@]}" --size 832*480 --save_file "$T/s.mp4"
has "$ERR" "json.decoder.JSONDecodeError: "

# 10. torchrun
run "torchrun 2 ranks" 0 "${TRUN[@]}" --nproc_per_node=2 "$GEN" --task t2v-A14B --ckpt_dir "$T/a14b" --sample_steps 4 --size 832*480 --dit_fsdp --t5_fsdp --ulysses_size 2 --save_file "$T/tr.mp4"
[ "$(grep -c "Generation job args" "$OUT")" = 1 ] || bad "more than rank 0 logged at INFO"
has "$OUT" "offload_model is not specified, set to False."
[ -s "$T/tr.mp4" ] || bad "torchrun output missing"
run "torchrun rank 1 SIGKILL" 1 env FAKEWAN_FAIL=sigkill FAKEWAN_FAIL_RANK=1 "${TRUN[@]}" --nproc_per_node=2 "$GEN" "${A14B[@]}" --size 832*480 --dit_fsdp --t5_fsdp --ulysses_size 2 --save_file "$T/tr2.mp4"
has "$ERR" "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"
has "$ERR" "Root Cause (first observed failure):"
has "$ERR" "  rank      : 1 (local_rank: 1)"
has "$ERR" "  exitcode  : -9 (pid: "
has "$ERR" "  traceback : Signal 9 (SIGKILL) received by PID "
has "$ERR" "closing signal SIGTERM"
run "torchrun ulysses != world size" 1 "${TRUN[@]}" --nproc_per_node 2 "$GEN" "${A14B[@]}" --size 832*480 --ulysses_size 4
has "$ERR" "AssertionError: The number of ulysses_size should be equal to the world size."
has "$ERR" "  exitcode  : 1 (pid: "
run "torchrun 4 GPUs 720P on 48 GB: OOM" 1 env FAKEWAN_VRAM_GB=48 "${TRUN[@]}" --nproc_per_node=4 "$GEN" "${A14B[@]}" --size 1280*720 --dit_fsdp --t5_fsdp --ulysses_size 4 --save_file "$T/tr3.mp4"
has "$ERR" "torch.OutOfMemoryError: CUDA out of memory."
run "torchrun 8 GPUs 720P on 48 GB fits" 0 env FAKEWAN_VRAM_GB=48 "${TRUN[@]}" --nproc_per_node=8 "$GEN" "${A14B[@]}" --size 1280*720 --dit_fsdp --t5_fsdp --ulysses_size 8 --save_file "$T/tr3.mp4"
M2="$T/once2.marker"
run "torchrun FAIL_ONCE fails" 1 env FAKEWAN_FAIL=nccl FAKEWAN_FAIL_ONCE="$M2" "${TRUN[@]}" --nproc_per_node=2 "$GEN" "${A14B[@]}" --size 832*480 --dit_fsdp --t5_fsdp --ulysses_size 2 --save_file "$T/tr4.mp4"
run "torchrun FAIL_ONCE relaunch succeeds" 0 env FAKEWAN_FAIL=nccl FAKEWAN_FAIL_ONCE="$M2" "${TRUN[@]}" --nproc_per_node=2 "$GEN" "${A14B[@]}" --size 832*480 --dit_fsdp --t5_fsdp --ulysses_size 2 --save_file "$T/tr4.mp4"
run_sig "torchrun SIGTERM" 1 TERM "Generating video ..." env FAKEWAN_FAIL=hang "${TRUN[@]}" --nproc_per_node=2 "$GEN" "${A14B[@]}" --size 832*480 --dit_fsdp --t5_fsdp --ulysses_size 2 --save_file "$T/tr5.mp4"
has "$ERR" "torch.distributed.elastic.multiprocessing.api.SignalException: Process "

echo "fakewan selftest: $PASSES exit codes ok, $FAILS mismatches"
[ "$FAILS" -eq 0 ]
