package classify

import (
	"strings"
	"testing"
)

// A torchrun run where rank 0 runs out of GPU memory during VAE decode; the
// other ranks then report NCCL errors and torchrun prints its summary.
const torchrunOOM = `[rank0]:Traceback (most recent call last):
[rank0]:  File "/root/Wan2.2/generate.py", line 575, in <module>
[rank0]:    generate(args)
[rank0]:  File "/root/Wan2.2/wan/modules/vae2_1.py", line 660, in decode
[rank0]:    self.model.decode(u.unsqueeze(0), self.scale).float().clamp_(-1, 1).squeeze(0)
[rank0]:torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 7.03 GiB. GPU 0 has a total capacity of 79.10 GiB of which 3.17 GiB is free.
[rank1]:[E1029 10:01:02.123456 12345 ProcessGroupNCCL.cpp:616] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600023 milliseconds before timing out.
[rank1]:torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, unhandled system error
W1029 10:11:02.000000 140 torch/distributed/elastic/multiprocessing/api.py:890] Sending process 1235 closing signal SIGTERM
E1029 10:11:03.000000 140 torch/distributed/elastic/multiprocessing/api.py:862] failed (exitcode: 1) local_rank: 0 (pid: 1234) of binary: /usr/bin/python
Traceback (most recent call last):
  File "/usr/bin/torchrun", line 8, in <module>
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
generate.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2025-10-29_10:11:03
  host      : node1
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 1234)
  error_file: /tmp/torchelastic_x/error.json
  traceback : Traceback (most recent call last):
    File "/root/Wan2.2/generate.py", line 575, in <module>
      generate(args)
  torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 7.03 GiB.
============================================================
`

const torchrunKill = `[2025-07-29 10:01:02,127] INFO: Creating WanT2V pipeline.
[2025-07-29 10:02:41,001] INFO: Creating WanModel from ./Wan2.2-T2V-A14B
W0729 10:03:00.000000 140 torch/distributed/elastic/multiprocessing/api.py:890] Sending process 1235 closing signal SIGTERM
E0729 10:03:01.000000 140 torch/distributed/elastic/multiprocessing/api.py:862] failed (exitcode: -9) local_rank: 3 (pid: 1234) of binary: /usr/bin/python
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
generate.py FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2025-07-29_10:03:01
  host      : node1
  rank      : 3 (local_rank: 3)
  exitcode  : -9 (pid: 1234)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 1234
============================================================
`

func oomTrace(frame string) string {
	return "Traceback (most recent call last):\n" +
		"  File \"/root/Wan2.2/generate.py\", line 575, in <module>\n" +
		"    generate(args)\n" + frame +
		"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.60 GiB. GPU 0 has a total capacity of 23.55 GiB of which 1.02 GiB is free.\n"
}

type verdictCase struct {
	name  string
	text  string
	out   Outcome
	class Class
	rule  string
	phase Phase // checked when set
	line  int   // checked when set
}

var failed = Outcome{ExitCode: 1}

func verdictCases() []verdictCase {
	full := wanHead + bars(0, 40, 40) + wanTail
	return []verdictCase{
		{"clean run", full, Outcome{}, ClassSuccess, "", PhaseDone, 0},
		{"Xid during a failed attempt", wanHead + "RuntimeError: CUDA error: unspecified launch failure\n",
			Outcome{ExitCode: 1, Xid: "GPU 0: Xid 79"}, ClassGPUFault, RuleXid, "", 0},
		{"Xid during a clean run is not a failure", full, Outcome{Xid: "GPU 0: Xid 13"}, ClassSuccess, "", PhaseDone, 0},
		{"GPU memory not released beats the OOM", wanHead + "torch.OutOfMemoryError: CUDA out of memory.\n",
			Outcome{ExitCode: 1, GPUNotReleased: "GPU 0: 30.2 GiB still used by pid 1234 after 2m0s"}, ClassGPUFault, RuleGPUNotReleased, "", 0},
		{"exit 0 without output", full, Outcome{OutputMissing: true}, ClassSaveFailed, RuleOutputMissing, PhaseDone, 0},
		{"save_video logged and exit 0", wanHead + bars(0, 40, 40) +
			"[2025-07-29 10:23:00,000] INFO: Saving generated video to out.mp4\n" +
			"[2025-07-29 10:23:01,000] INFO: save_video failed, error: [Errno 13] Permission denied: 'out.mp4'\n" +
			"[2025-07-29 10:23:05,000] INFO: Finished.\n",
			Outcome{}, ClassSaveFailed, "wan_save_video_failed", PhaseSave, 52},
		{"save_video on a full disk", wanHead + bars(0, 40, 40) +
			"[2025-07-29 10:23:01,000] INFO: save_video failed, error: [Errno 28] No space left on device\n",
			Outcome{}, ClassDiskFull, "no_space_left", PhaseDecode, 0},
		{"handled OOM and exit 0", full + "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n",
			Outcome{}, ClassSuccess, "", "", 0},
		{"OOM at VAE decode", wanHead + bars(0, 40, 40) + oomTrace(
			"  File \"/root/Wan2.2/wan/modules/vae2_2.py\", line 1043, in decode\n    return [\n"),
			failed, ClassCUDAOOM, "cuda_oom_allocator", PhaseDecode, 56},
		{"OOM in the DiT forward", wanHead + bars(0, 12, 40) + oomTrace(
			"  File \"/root/Wan2.2/wan/modules/model.py\", line 480, in forward\n    x = block(x, **kwargs)\n"),
			failed, ClassCUDAOOM, "cuda_oom_allocator", PhaseDenoise, 0},
		{"OOM in the T5 encode", wanHead + oomTrace(
			"  File \"/root/Wan2.2/wan/modules/t5.py\", line 496, in __call__\n    context = self.model(ids, mask)\n"),
			failed, ClassCUDAOOM, "cuda_oom_allocator", PhaseT5, 0},
		{"OOM right after Generating video", wanHead + "torch.OutOfMemoryError: CUDA out of memory.\n",
			failed, ClassCUDAOOM, "cuda_oom_allocator", PhaseT5, 10},
		{"old RuntimeError OOM", "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 11.17 GiB total capacity)\n",
			failed, ClassCUDAOOM, "cuda_oom_allocator", PhaseStart, 1},
		{"torch.cuda.OutOfMemoryError", "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB\n",
			failed, ClassCUDAOOM, "cuda_oom_allocator", "", 0},
		{"driver OOM as AcceleratorError", "torch.AcceleratorError: CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported\n",
			failed, ClassCUDAOOM, "cuda_oom_driver", "", 1},
		{"cuBLAS allocation", "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`\n",
			failed, ClassCUDAOOM, "cuda_lib_alloc_failed", "", 0},
		{"ComfyUI allocation on device", "torch.OutOfMemoryError: Allocation on device\n",
			failed, ClassCUDAOOM, "torch_oom_error", "", 0},
		{"HIP OOM", "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 2.00 GiB\n",
			failed, ClassCUDAOOM, "accelerator_oom", "", 0},
		{"OOM inside a torchrun summary beats NCCL", torchrunOOM,
			failed, ClassCUDAOOM, "cuda_oom_allocator", PhaseDecode, 6},
		{"torchrun root cause -9", torchrunKill,
			failed, ClassHostOOM, "torchrun_exitcode_sigkill", PhaseLoad, 4},
		{"shell Killed line", wanHead + "bash: line 1:  1234 Killed                  python generate.py --task t2v-A14B\n",
			Outcome{ExitCode: 137}, ClassHostOOM, "shell_killed", PhaseT5, 10},
		{"bare Killed line", "[2025-07-29 10:02:41,001] INFO: Creating WanModel from ./ckpt\nKilled\n",
			Outcome{ExitCode: 137}, ClassHostOOM, "shell_killed", PhaseLoad, 2},
		{"SIGKILL and nothing printed", wanHead,
			Outcome{ExitCode: 137, Signal: "SIGKILL"}, ClassHostOOM, RuleSIGKILLNoTraceback, PhaseT5, 0},
		{"SIGKILL after an unknown traceback", "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad\n",
			Outcome{ExitCode: 137, Signal: "SIGKILL"}, ClassUnknown, "", PhaseStart, 3},
		{"cgroup OOM kill beats rules", "torch.OutOfMemoryError: CUDA out of memory.\n",
			Outcome{ExitCode: 137, Signal: "SIGKILL", OOMKills: 1}, ClassHostOOM, RuleCgroupOOMKill, "", 0},
		{"cgroup OOM kill of a worker", "E0729 failed (exitcode: 1)\n",
			Outcome{ExitCode: 1, OOMKills: 2}, ClassHostOOM, RuleCgroupOOMKill, "", 0},
		{"CPU allocator", "RuntimeError: [enforce fail at alloc_cpu.cpp:83] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 35389440000 bytes. Error code 12 (Cannot allocate memory)\n",
			failed, ClassHostOOM, "cpu_allocator_oom", "", 1},
		{"NCCL watchdog timeout", "[rank1]:[E1029 10:01:02.123456 12345 ProcessGroupNCCL.cpp:616] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5, OpType=ALLREDUCE) ran for 600023 milliseconds before timing out.\n",
			failed, ClassNCCL, "nccl_watchdog_timeout", "", 1},
		{"NCCL error then exit 0", full + "[rank0]: torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled system error\n",
			Outcome{}, ClassNCCL, "nccl_error", PhaseDone, 0},
		{"rendezvous port taken", "[W socket.cpp:464] [c10d] The server socket has failed to bind to [::]:29500 (errno: 98 - Address already in use).\ntorch.distributed.DistNetworkError: The server socket has failed to listen on any local network address. port: 29500, useIPv6: false, code: -98, name: EADDRINUSE, message: address already in use\n",
			failed, ClassNCCL, "c10d_socket_error", "", 2},
		{"Xid in the kernel log", "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.\n",
			failed, ClassGPUFault, "nvrm_xid", "", 1},
		{"illegal memory access", "RuntimeError: CUDA error: an illegal memory access was encountered\n",
			failed, ClassGPUFault, "cuda_illegal_address", "", 1},
		{"illegal memory access beats NCCL", "[rank0]: Process group watchdog thread terminated with exception: CUDA error: an illegal memory access was encountered\n",
			failed, ClassGPUFault, "cuda_illegal_address", "", 1},
		{"device-side assert is not a GPU fault", "../aten/src/ATen/native/cuda/IndexKernel.cu:92: operator(): block: [0,0,0], thread: [0,0,0] Assertion `index out of bounds` failed.\nRuntimeError: CUDA error: device-side assert triggered\n",
			failed, ClassUnknown, "cuda_device_assert", "", 1},
		{"no GPUs", "RuntimeError: No CUDA GPUs are available\n", failed, ClassCUDAEnv, "no_cuda_gpus", "", 1},
		{"no kernel image", "RuntimeError: CUDA error: no kernel image is available for execution on the device\n",
			failed, ClassCUDAEnv, "no_kernel_image", "", 1},
		{"flash_attn not installed", wanHead + bars(0, 0, 40) + "    assert FLASH_ATTN_2_AVAILABLE\nAssertionError\n",
			failed, ClassMissingDep, "flash_attn_missing", PhaseDenoise, 11},
		{"flash_attn ABI", "ImportError: /venv/lib/python3.10/site-packages/flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so: undefined symbol: _ZN3c104cuda9SetDeviceEi\n",
			failed, ClassMissingDep, "flash_attn_abi", "", 1},
		{"T5 checkpoint missing", "[2025-07-29 10:02:10,001] INFO: loading ./ckpt/models_t5_umt5-xxl-enc-bf16.pth\nFileNotFoundError: [Errno 2] No such file or directory: './ckpt/models_t5_umt5-xxl-enc-bf16.pth'\n",
			failed, ClassMissingDep, "checkpoint_missing", PhaseT5, 2},
		{"module not found", "ModuleNotFoundError: No module named 'easydict'\n", failed, ClassMissingDep, "module_not_found", "", 1},
		{"command not found", "", Outcome{ExitCode: 127, StartErr: `exec: "pythn": executable file not found in $PATH`},
			ClassMissingDep, "command_not_found", "", 0},
		{"argparse choice", "usage: generate.py [-h] [--task {t2v-A14B,i2v-A14B,ti2v-5B}]\ngenerate.py: error: argument --task: invalid choice: 't2v-14B' (choose from 't2v-A14B', 'i2v-A14B')\n",
			Outcome{ExitCode: 2}, ClassConfig, "argparse_error", "", 2},
		{"argparse usage alone", "usage: generate.py [-h] [--task TASK]\n", Outcome{ExitCode: 2}, ClassConfig, "argparse_usage", "", 1},
		{"unsupported size", "AssertionError: Unsupport size 1280*720 for task ti2v-5B, supported sizes are: 704*1280, 1280*704\n",
			failed, ClassConfig, "wan_unsupported_size", "", 1},
		{"ulysses size", "[rank0]: AssertionError: The number of ulysses_size should be equal to the world size.\n",
			failed, ClassConfig, "wan_ulysses_world_size", "", 1},
		{"full disk", "OSError: [Errno 28] No space left on device\n", failed, ClassDiskFull, "no_space_left", "", 1},
		{"hub read timeout", "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='huggingface.co', port=443): Read timed out. (read timeout=10)\n",
			failed, ClassNetwork, "http_timeout", "", 1},
		{"hub 503", "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: https://huggingface.co/api/models\n",
			failed, ClassNetwork, "http_server_busy", "", 1},
		{"gated repo is config", "huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo\n",
			failed, ClassConfig, "hub_access_denied", "", 1},
		{"bitsandbytes", "RuntimeError: CUDA Setup failed despite GPU being available. Please run the following command to get more information\n",
			failed, ClassQuantizationError, "bitsandbytes_error", "", 1},
		{"error while quantizing", "Quantization of model 'transformer' started to format 'qint8'\nValueError: unsupported dtype\n",
			failed, ClassQuantizationError, "quantize_phase_exception", PhaseQuantize, 2},
		{"quantization watchdog", "Quantization of model 'transformer' started to format 'qint8'\n",
			Outcome{ExitCode: 137, Signal: "SIGKILL", Watchdog: WatchdogPhase}, ClassQuantizationTimeout, RuleWatchdogQuantize, PhaseQuantize, 0},
		{"quantization done then stall", "Quantization of model 'transformer' started to format 'qint8'\nQuantization of model 'transformer' done\n",
			Outcome{ExitCode: 137, Signal: "SIGKILL", Watchdog: WatchdogNoOutput}, ClassStall, RuleWatchdogStall, PhaseLoad, 0},
		{"no output watchdog", wanHead + bars(0, 7, 40),
			Outcome{ExitCode: 143, Signal: "SIGTERM", Watchdog: WatchdogNoOutput}, ClassStall, RuleWatchdogStall, PhaseDenoise, 0},
		{"watchdog phase from outcome", wanHead,
			Outcome{ExitCode: 143, Signal: "SIGTERM", Watchdog: WatchdogPhase, Phase: PhaseQuantize}, ClassQuantizationTimeout, RuleWatchdogQuantize, PhaseQuantize, 0},
		{"hang after an NCCL error", wanHead + bars(0, 3, 40) + "[rank0]: torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970\n",
			Outcome{ExitCode: 143, Signal: "SIGTERM", Watchdog: WatchdogNoOutput}, ClassNCCL, "nccl_error", PhaseDenoise, 0},
		{"state file invalid", full, Outcome{StateInvalid: true}, ClassStateCorrupt, RuleStateInvalid, PhaseDone, 0},
		{"state file invalid on a full disk", "OSError: [Errno 28] No space left on device\n",
			Outcome{ExitCode: 1, StateInvalid: true}, ClassDiskFull, "no_space_left", "", 1},
		{"JSON state file rejected", "  File \"run.py\", line 3, in load_state\n    state = json.load(f)\njson.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n",
			failed, ClassStateCorrupt, "json_decode_error", "", 3},
		{"interrupted wins", "torch.OutOfMemoryError: CUDA out of memory.\n",
			Outcome{ExitCode: 130, Signal: "SIGINT", Interrupted: true}, ClassInterrupted, RuleInterrupted, "", 0},
		{"SIGTERM from outside", wanHead, Outcome{ExitCode: 143, Signal: "SIGTERM"}, ClassInterrupted, "terminated_by_signal", "", 0},
		{"unknown exception", "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    f()\nKeyError: 'frames_tracked_per_obj'\n",
			failed, ClassUnknown, "", PhaseStart, 4},
		{"unknown without output", "", Outcome{ExitCode: 3}, ClassUnknown, "", PhaseStart, 0},
		{"ANSI and rank prefix", "\x1b[31m[rank2]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1 GiB\x1b[0m\n",
			failed, ClassCUDAOOM, "cuda_oom_allocator", "", 1},
		{"default rank prefix and timestamp", "[default3]:[2025-07-29 10:01:02,123] ERROR: No space left on device\n",
			failed, ClassDiskFull, "no_space_left", "", 1},
	}
}

func TestScanner_Verdict(t *testing.T) {
	t.Parallel()
	r := defaultRules(t)
	for _, tt := range verdictCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := feed(r, tt.text).Verdict(tt.out)
			if got.Class != tt.class || got.Rule != tt.rule {
				t.Errorf("Verdict(%s) = %s/%q (evidence %q), want %s/%q", tt.name, got.Class, got.Rule, got.Evidence, tt.class, tt.rule)
			}
			if tt.phase != "" && got.Phase != tt.phase {
				t.Errorf("Verdict(%s).Phase = %q, want %q", tt.name, got.Phase, tt.phase)
			}
			if tt.line != 0 && got.Line != tt.line {
				t.Errorf("Verdict(%s).Line = %d, want %d", tt.name, got.Line, tt.line)
			}
			if got.Class != ClassSuccess && got.Evidence == "" {
				t.Errorf("Verdict(%s) has no evidence", tt.name)
			}
		})
	}
}

func TestScanner_Verdict_everyClass(t *testing.T) {
	t.Parallel()
	seen := map[Class]bool{}
	for _, tt := range verdictCases() {
		seen[tt.class] = true
	}
	for _, c := range Classes {
		if !seen[c] {
			t.Errorf("no Verdict case reaches class %s", c)
		}
	}
}

func TestScanner_Verdict_details(t *testing.T) {
	t.Parallel()
	r := defaultRules(t)

	t.Run("progress at the evidence line", func(t *testing.T) {
		got := feed(r, wanHead+bars(0, 12, 40)+"torch.OutOfMemoryError: CUDA out of memory.\n"+bars(13, 14, 40)).Verdict(failed)
		if got.Progress != (Progress{Step: 12, Total: 40}) || got.Phase != PhaseDenoise {
			t.Errorf("Verdict = %s %+v, want denoise 12/40", got.Phase, got.Progress)
		}
	})
	t.Run("root cause of a torchrun OOM", func(t *testing.T) {
		got := feed(r, torchrunOOM).Verdict(failed)
		want := RootCause{Rank: 0, ExitCode: 1, Error: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 7.03 GiB."}
		if got.RootCause == nil || *got.RootCause != want {
			t.Errorf("RootCause = %+v, want %+v", got.RootCause, want)
		}
	})
	t.Run("root cause of a killed worker", func(t *testing.T) {
		got := feed(r, torchrunKill).Verdict(failed)
		want := RootCause{Rank: 3, ExitCode: -9, Error: "Signal 9 (SIGKILL) received by PID 1234"}
		if got.RootCause == nil || *got.RootCause != want {
			t.Errorf("RootCause = %+v, want %+v", got.RootCause, want)
		}
	})
	t.Run("no root cause without torchrun", func(t *testing.T) {
		if got := feed(r, wanHead).Verdict(failed); got.RootCause != nil {
			t.Errorf("RootCause = %+v, want nil", got.RootCause)
		}
	})
	t.Run("evidence is cleaned and capped", func(t *testing.T) {
		long := "\x1b[1m[rank0]: RuntimeError: CUDA out of memory " + strings.Repeat("é", 400)
		got := feed(r, long).Verdict(failed)
		if len(got.Evidence) > maxEvidence || !strings.HasPrefix(got.Evidence, "RuntimeError: CUDA out of memory ") ||
			!strings.HasSuffix(got.Evidence, "é") {
			t.Errorf("Evidence = %q (%d bytes)", got.Evidence, len(got.Evidence))
		}
	})
	t.Run("first match of a rule is kept", func(t *testing.T) {
		got := feed(r, "CUDA out of memory first\nCUDA out of memory second\n").Verdict(failed)
		if got.Line != 1 || got.Evidence != "CUDA out of memory first" {
			t.Errorf("Verdict = line %d %q, want line 1", got.Line, got.Evidence)
		}
	})
	t.Run("verdict does not change the scanner", func(t *testing.T) {
		s := feed(r, wanHead)
		a, b := s.Verdict(failed), s.Verdict(failed)
		if a.Class != b.Class || a.Evidence != b.Evidence || s.Lines() != 9 || s.Phase() != PhaseT5 {
			t.Errorf("Verdict twice = %+v, %+v; lines %d phase %s", a, b, s.Lines(), s.Phase())
		}
	})
}

func TestScanner_Phase(t *testing.T) {
	t.Parallel()
	r := defaultRules(t)
	steps := []struct {
		line string
		want Phase
	}{
		{"[2025-07-29 10:01:02,123] INFO: offload_model is not specified, set to True.", PhaseStart},
		{"[2025-07-29 10:01:02,127] INFO: Creating WanI2V pipeline.", PhaseLoad},
		{"[2025-07-29 10:02:10,001] INFO: loading /ckpt/models_t5_umt5-xxl-enc-bf16.pth", PhaseT5},
		{"[2025-07-29 10:02:40,001] INFO: loading /ckpt/Wan2.1_VAE.pth", PhaseLoad},
		{"[2025-07-29 10:02:41,001] INFO: Creating WanModel from /ckpt", PhaseLoad},
		{"Loading checkpoint shards: 100%|██████████| 6/6 [00:10<00:00,  1.70s/it]", PhaseLoad},
		{"[2025-07-29 10:05:00,000] INFO: Generating video ...", PhaseT5},
		{"  0%|          | 0/40 [00:00<?, ?it/s]", PhaseDenoise},
		{" 98%|█████████▊| 39/40 [16:55<00:26, 26.04s/it]", PhaseDenoise},
		{"100%|██████████| 40/40 [17:21<00:00, 26.04s/it]", PhaseDecode},
		{"[2025-07-29 10:23:00,000] INFO: Saving generated video to out.mp4", PhaseSave},
		{"[2025-07-29 10:23:05,000] INFO: Finished.", PhaseDone},
	}
	s := NewScanner(r)
	for i, st := range steps {
		s.Line([]byte(st.line))
		if got := s.Phase(); got != st.want {
			t.Errorf("after line %d %q: Phase() = %q, want %q", i+1, st.line, got, st.want)
		}
	}
	if got := s.Progress(); got != (Progress{Step: 40, Total: 40}) {
		t.Errorf("Progress() = %+v, want 40/40", got)
	}
	if s.Lines() != len(steps) {
		t.Errorf("Lines() = %d, want %d", s.Lines(), len(steps))
	}
}

func TestParseBar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in          string
		step, total int
		ok          bool
	}{
		{"100%|██████████| 40/40 [17:21<00:00, 26.04s/it]", 40, 40, true},
		{"2%|▎         | 1/40 [00:26<17:01, 26.20s/it]", 1, 40, true},
		{"0%|          | 0/50 [00:00<?, ?it/s]", 0, 50, true},
		{"Sampling: 45%|####5     | 18/40 [07:49<09:34]", 18, 40, true},
		{"100%|██████████| 40/40", 40, 40, true},
		{"Loading checkpoint shards: 100%|██████████| 3/3 [00:05<00:00]", 0, 0, false},
		{"model.safetensors:  45%|████▌     | 4.50G/10.0G [01:02<01:10, 78.5MB/s]", 0, 0, false},
		{"Fetching 12 files: 100%|██████████| 12/12", 0, 0, false},
		{"50%| 5/4 [", 0, 0, false},
		{"50%| 5/0 [", 0, 0, false},
		{"%| 5/10", 0, 0, false},
		{"no bar here", 0, 0, false},
		{"50%|no closing bar", 0, 0, false},
		{"50%|#####| 12345678901/12345678902", 0, 0, false},
	}
	for _, tt := range tests {
		step, total, ok := parseBar([]byte(tt.in))
		if step != tt.step || total != tt.total || ok != tt.ok {
			t.Errorf("parseBar(%q) = %d, %d, %v, want %d, %d, %v", tt.in, step, total, ok, tt.step, tt.total, tt.ok)
		}
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		indented       bool
	}{
		{"plain", "Killed", "Killed", false},
		{"wan logging", "[2025-07-29 10:01:02,123] INFO: Creating WanT2V pipeline.", "Creating WanT2V pipeline.", false},
		{"rank prefix", "[rank3]: torch.OutOfMemoryError: CUDA out of memory.", "torch.OutOfMemoryError: CUDA out of memory.", false},
		{"rank prefix keeps indentation", "[rank3]:   File \"x.py\", line 1, in f", "File \"x.py\", line 1, in f", true},
		{"default prefix and logging", "[default0]:[2025-07-29 10:01:02,123] WARNING: slow", "slow", false},
		{"glog", "E0729 10:01:02.123456 12345 api.py:862] failed (exitcode: -9)", "failed (exitcode: -9)", false},
		{"c10 header", "[W socket.cpp:464] [c10d] The server socket has failed", "[c10d] The server socket has failed", false},
		{"rank and c10 header", "[rank1]:[E1029 10:01:02.123456 12345 ProcessGroupNCCL.cpp:616] [Rank 1] Watchdog caught", "[Rank 1] Watchdog caught", false},
		{"ansi colours", "\x1b[1;31mERROR\x1b[0m: \x1b]0;title\x07boom", "boom", false},
		{"iso time with dash level", "2024-12-16 17:10:56,767 - root - ERROR - boom", "root - ERROR - boom", false},
		{"iso time with level", "2025-07-29T10:01:02.123Z ERROR something", "something", false},
		{"loguru", "2025-07-29 10:01:02.123 | INFO     | module:fn:12 - msg", "module:fn:12 - msg", false},
		{"kernel time", "[12345.678901] NVRM: Xid (PCI:0000:3b:00): 79", "NVRM: Xid (PCI:0000:3b:00): 79", false},
		{"bare level", "WARNING: something odd", "something odd", false},
		{"torchrun index kept", "[0]:", "[0]:", false},
		{"errno kept", "[Errno 28] No space left on device", "[Errno 28] No space left on device", false},
		{"rank words kept", "[Rank 1] Watchdog caught", "[Rank 1] Watchdog caught", false},
		{"not a level", "Error: something", "Error: something", false},
		{"blanks", "  \t  ", "", false},
		{"trailing cr", "Finished.\r", "Finished.", false},
	}
	for _, tt := range tests {
		got, indented := clean(make([]byte, 0, maxScan), []byte(tt.in))
		if string(got) != tt.want || indented != tt.indented {
			t.Errorf("clean(%s) = %q, %v, want %q, %v", tt.name, got, indented, tt.want, tt.indented)
		}
	}
}

func TestScanner_LineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	r := defaultRules(t)
	var lines [][]byte
	for _, l := range strings.Split(wanHead+bars(0, 40, 40)+"\x1b[32mINFO\x1b[0m colour\n"+wanTail, "\n") {
		lines = append(lines, []byte(l))
	}
	s := NewScanner(r)
	allocs := testing.AllocsPerRun(50, func() {
		for _, l := range lines {
			s.Line(l)
		}
	})
	if allocs != 0 {
		t.Errorf("Line allocates %.1f times per %d lines, want 0", allocs, len(lines))
	}
}

func TestScanner_boundedState(t *testing.T) {
	t.Parallel()
	r := defaultRules(t)
	s := NewScanner(r)
	errs := []string{
		"torch.OutOfMemoryError: CUDA out of memory. " + strings.Repeat("x", maxScan),
		"Traceback (most recent call last):",
		"Root Cause (first observed failure):",
		"  traceback : Traceback (most recent call last):",
		"NCCL error " + strings.Repeat("y", maxScan),
	}
	for i := range 200 {
		s.Line([]byte(errs[i%len(errs)]))
	}
	if s.Lines() != 200 || cap(s.buf) != maxScan || cap(s.hits) != int(r.markBase)+numMarks || len(s.matches) != r.Len() {
		t.Fatalf("state grew: lines %d buf %d hits %d matches %d", s.Lines(), cap(s.buf), cap(s.hits), len(s.matches))
	}
	for i, m := range s.matches {
		if len(m.text) > maxEvidence {
			t.Errorf("rule %d keeps %d bytes of evidence", i, len(m.text))
		}
	}
	if rc := s.root.result(); rc == nil || len(rc.Error) > maxEvidence {
		t.Errorf("root cause = %+v", rc)
	}
}

func TestRules_Rule(t *testing.T) {
	t.Parallel()
	r := defaultRules(t)
	for _, name := range []string{"cuda_oom_allocator", RuleCgroupOOMKill, RuleOutputMissing} {
		spec, ok := r.Rule(name)
		if !ok || spec.Name != name || spec.Remedy == "" || strings.ContainsAny(spec.Remedy, "\n") {
			t.Errorf("Rule(%q) = %+v, %v", name, spec, ok)
		}
	}
	if _, ok := r.Rule("no_such_rule"); ok {
		t.Error("Rule(no_such_rule) found a rule")
	}
}

// TestRules_defaultFile checks the shipped rules file as a whole.
func TestRules_defaultFile(t *testing.T) {
	t.Parallel()
	f := loadRuleFile(t)
	r := defaultRules(t)
	byClass := map[Class]int{}
	for _, rs := range f.Rules {
		byClass[rs.Class]++
		if rs.Remedy == "" {
			t.Errorf("rule %s has no remedy", rs.Name)
		}
	}
	for _, b := range builtinRules {
		byClass[b.Class]++
	}
	for _, c := range Classes {
		if c != ClassSuccess && byClass[c] == 0 {
			t.Errorf("no rule reports class %s", c)
		}
	}
	if r.Len() != len(f.Rules) {
		t.Errorf("Len() = %d, want %d", r.Len(), len(f.Rules))
	}
}
