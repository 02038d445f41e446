#!/usr/bin/env python3
"""Stand-in for Wan2.2's generate.py: same flags, log lines, exit codes and failure text; no GPU.

Usage:
  python3 generate.py --task t2v-A14B --size 1280*720 --ckpt_dir CKPT \
      --offload_model True --convert_model_dtype --prompt "..."
  python3 generate.py --make-ckpt DIR TASK     (same as mkckpt.py / mkckpt.sh)
  torchrun --nproc_per_node=N generate.py ...  (testdata/fakewan/torchrun)

Environment:
  FAKEWAN_VRAM_GB=G[,G1,..]  GPU size in GiB, one value or one per LOCAL_RANK; unset = unlimited
  FAKEWAN_STEP_MS=20         ms per denoising step
  FAKEWAN_LOAD_MS=50         ms per checkpoint load; T5 encode takes LOAD_MS (10x with --t5_cpu),
                             VAE decode 2x LOAD_MS, the A14B expert switch LOAD_MS
  FAKEWAN_SKIP_CKPT=1        do not check the files under --ckpt_dir
  FAKEWAN_FAIL=MODE[@PHASE]  inject a failure; MODE is one of
                               oom sigkill hang exit2 nccl flashattn nosave diskfull
                               quantize_hang exit0_after_nccl truncate_state
                             PHASE is one of import args load t5 denoise denoise:K decode save end
  FAKEWAN_FAIL_RANK=K        only rank K fails (default: every rank)
  FAKEWAN_FAIL_ONCE=PATH     fail only if PATH does not exist yet; the failing launch creates it
  FAKEWAN_FAIL_TIMES=N       with FAKEWAN_COUNTER=PATH: fail the first N launches; PATH holds the
                             number of launches so far (without a counter every launch fails)
  FAKEWAN_STATE=PATH         JSON state {"version":1,"step":k,"seed":s,...}: read at start (resumes
                             at step k when task/size/frames/seed agree), rewritten after each step
                             through a temp file and rename
  FAKEWAN_TRAP_TERM=1        ignore SIGTERM (default: one line on stderr, exit 143)
  FAKEWAN_PRINT_VRAM=1       print the computed per-phase need to stderr before generating
  PYTORCH_CUDA_ALLOC_CONF / PYTORCH_ALLOC_CONF with expandable_segments:True: every need x0.95
  RANK, WORLD_SIZE, LOCAL_RANK  read like Wan2.2 (set by torchrun)
"""
import argparse
import json
import logging
import os
import random
import signal
import socket
import sys
import time
from datetime import datetime

ROOT = os.path.dirname(os.path.abspath(__file__))
SITE = "/usr/local/lib/python3.10/dist-packages"

TASKS = ["t2v-A14B", "i2v-A14B", "ti2v-5B", "animate-14B", "s2v-14B"]

SIZE_CONFIGS = {
    "720*1280": (720, 1280),
    "1280*720": (1280, 720),
    "480*832": (480, 832),
    "832*480": (832, 480),
    "704*1280": (704, 1280),
    "1280*704": (1280, 704),
    "1024*704": (1024, 704),
    "704*1024": (704, 1024),
}

SUPPORTED_SIZES = {
    "t2v-A14B": ("720*1280", "1280*720", "480*832", "832*480"),
    "i2v-A14B": ("720*1280", "1280*720", "480*832", "832*480"),
    "ti2v-5B": ("704*1280", "1280*704"),
    "s2v-14B": ("720*1280", "1280*720", "480*832", "832*480", "1024*704", "704*1024",
                "704*1280", "1280*704"),
    "animate-14B": ("720*1280", "1280*720"),
}

T5_CKPT = "models_t5_umt5-xxl-enc-bf16.pth"
T5_TOKENIZER = "google/umt5-xxl"
CLIP_CKPT = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"

NEG_PROMPT = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
              "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，"
              "毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")

EXAMPLE_PROMPT = {
    "t2v-A14B": "Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a spotlighted stage.",
    "i2v-A14B": "Summer beach vacation style, a white cat wearing sunglasses sits on a surfboard. The fluffy-furred feline gazes directly at the camera with a relaxed expression.",
    "ti2v-5B": "Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a spotlighted stage.",
    "animate-14B": "视频中的人在做动作",
    "s2v-14B": "Summer beach vacation style, a white cat wearing sunglasses sits on a surfboard. The fluffy-furred feline gazes directly at the camera with a relaxed expression.",
}
EXAMPLE_IMAGE = "examples/i2v_input.JPG"
EXAMPLE_AUDIO = "examples/talk.wav"

# Files and folders each task reads from --ckpt_dir, in the order the pipeline opens them.
# Kind "file": a checkpoint file; "tokenizer": a tokenizer folder; "dit": a diffusers model
# folder (config.json + weights); "dir": a plain folder.
CKPT_LAYOUT = {
    "t2v-A14B": [("file", T5_CKPT), ("tokenizer", T5_TOKENIZER), ("file", "Wan2.1_VAE.pth"),
                 ("dit", "low_noise_model"), ("dit", "high_noise_model")],
    "i2v-A14B": [("file", T5_CKPT), ("tokenizer", T5_TOKENIZER), ("file", "Wan2.1_VAE.pth"),
                 ("dit", "low_noise_model"), ("dit", "high_noise_model")],
    "ti2v-5B": [("file", T5_CKPT), ("tokenizer", T5_TOKENIZER), ("file", "Wan2.2_VAE.pth"),
                ("dit", "")],
    "s2v-14B": [("file", T5_CKPT), ("tokenizer", T5_TOKENIZER), ("file", "Wan2.1_VAE.pth"),
                ("dir", "wav2vec2-large-xlsr-53-english"), ("dit", "")],
    "animate-14B": [("file", T5_CKPT), ("tokenizer", T5_TOKENIZER), ("file", "Wan2.1_VAE.pth"),
                    ("file", CLIP_CKPT), ("tokenizer", "xlm-roberta-large"), ("dit", ""),
                    ("file", "relighting_lora.ckpt")],
}
# Created by mkckpt but not read by generate.py (preprocessing only).
CKPT_EXTRA = {"animate-14B": ["process_checkpoint/"]}


class _Dtype:

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "torch." + self.name


BF16 = _Dtype("bfloat16")

_SHARED = {
    "t5_model": "umt5_xxl", "t5_dtype": BF16, "text_len": 512, "param_dtype": BF16,
    "num_train_timesteps": 1000, "sample_neg_prompt": NEG_PROMPT,
    "t5_checkpoint": T5_CKPT, "t5_tokenizer": T5_TOKENIZER,
}
_A14B = {"vae_stride": (4, 8, 8), "patch_size": (1, 2, 2), "dim": 5120, "ffn_dim": 13824,
         "freq_dim": 256, "num_heads": 40, "num_layers": 40, "window_size": (-1, -1),
         "qk_norm": True, "cross_attn_norm": True, "eps": 1e-06}

WAN_CONFIGS = {
    "t2v-A14B": dict({"__name__": "Config: Wan T2V A14B"}, **_SHARED, sample_fps=16, frame_num=81,
                     vae_checkpoint="Wan2.1_VAE.pth", **_A14B,
                     low_noise_checkpoint="low_noise_model", high_noise_checkpoint="high_noise_model",
                     sample_shift=12.0, sample_steps=40, boundary=0.875,
                     sample_guide_scale=(3.0, 4.0)),
    "i2v-A14B": dict({"__name__": "Config: Wan I2V A14B"}, **_SHARED, sample_fps=16, frame_num=81,
                     vae_checkpoint="Wan2.1_VAE.pth", **_A14B,
                     low_noise_checkpoint="low_noise_model", high_noise_checkpoint="high_noise_model",
                     sample_shift=5.0, sample_steps=40, boundary=0.900,
                     sample_guide_scale=(3.5, 3.5)),
    "ti2v-5B": dict({"__name__": "Config: Wan TI2V 5B"}, **_SHARED, sample_fps=24, frame_num=121,
                    vae_checkpoint="Wan2.2_VAE.pth", vae_stride=(4, 16, 16), patch_size=(1, 2, 2),
                    dim=3072, ffn_dim=14336, freq_dim=256, num_heads=24, num_layers=30,
                    window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-06,
                    sample_shift=5.0, sample_steps=50, sample_guide_scale=5.0),
    "animate-14B": dict({"__name__": "Config: Wan Animate 14B"}, **_SHARED, sample_fps=30,
                        frame_num=77, vae_checkpoint="Wan2.1_VAE.pth", clip_checkpoint=CLIP_CKPT,
                        clip_tokenizer="xlm-roberta-large", lora_checkpoint="relighting_lora.ckpt",
                        **_A14B, sample_shift=5.0, sample_steps=20, sample_guide_scale=1.0),
    "s2v-14B": dict({"__name__": "Config: Wan S2V 14B"}, **_SHARED, sample_fps=16, frame_num=80,
                    vae_checkpoint="Wan2.1_VAE.pth",
                    wav2vec="wav2vec2-large-xlsr-53-english", **_A14B,
                    sample_shift=3, sample_steps=40, sample_guide_scale=4.5),
}

PIPELINE = {  # task -> (log name, variable in generate.py, module file, generate.py line)
    "t2v-A14B": ("WanT2V", "wan_t2v", "text2video.py", 421),
    "i2v-A14B": ("WanI2V", "wan_i2v", "image2video.py", 552),
    "ti2v-5B": ("WanTI2V", "wan_ti2v", "textimage2video.py", 446),
    "animate-14B": ("Wan-Animate", "wan_animate", "animate.py", 478),
    "s2v-14B": ("WanS2V", "wan_s2v", "speech2video.py", 508),
}

# ---------------------------------------------------------------------------------------------
# GPU memory model (GiB). Calibrated on the Wan2.2 efficiency table (peak GB, see WAN22.md 1.4):
# single GPU, offload+convert: t2v 59.8 (720P) / 41.3 (480P), i2v 59.7 / 41.0,
# ti2v-5B 22.9 (1280*704x121, +t5_cpu); torchrun FSDP+ulysses: t2v 51.7/37.0 (720P, 4/8 GPUs),
# 40.9/26.2 (480P), ti2v 22.6 with ulysses + offload + convert + t5_cpu.
# Decode (rank 0, s2v every rank) is the peak; denoise and T5 encode sit below it.
# ---------------------------------------------------------------------------------------------
VRAM = {
    # experts: DiT copies; w: one DiT in bf16; bf16_load: DiT loaded as bf16 straight to the GPU
    # c1/s1: single-GPU decode = c1 + s1*tokens; cm/sm: same under torchrun;
    # act: denoise activations per token; extra: CLIP / wav2vec kept on the GPU
    "t2v-A14B": dict(experts=2, w=28.0, bf16_load=False, c1=27.153, s1=4.31839e-4, cm=3.24,
                     sm=2.52101e-4, act=2.7778e-4, extra=0.0, div=16, ref=(1280, 720)),
    "i2v-A14B": dict(experts=2, w=28.0, bf16_load=False, c1=26.700, s1=4.36508e-4, cm=3.14,
                     sm=2.52101e-4, act=2.7778e-4, extra=0.0, div=16, ref=(1280, 720)),
    "ti2v-5B": dict(experts=1, w=10.0, bf16_load=False, c1=12.000, s1=3.99560e-4, cm=11.70,
                    sm=3.99560e-4, act=3.0e-4, extra=0.0, div=32, ref=(1280, 704)),
    "s2v-14B": dict(experts=1, w=28.0, bf16_load=True, c1=27.153, s1=4.31839e-4, cm=3.24,
                    sm=2.52101e-4, act=2.7778e-4, extra=1.2, div=16, ref=(1280, 720)),
    "animate-14B": dict(experts=1, w=28.0, bf16_load=True, c1=27.153, s1=4.31839e-4, cm=3.24,
                        sm=2.52101e-4, act=2.7778e-4, extra=1.2, div=16, ref=(1280, 720)),
}
T5_GB = 11.0          # umt5-xxl encoder on the GPU
T5_SHARDS_GB = 5.6    # T5 under --t5_fsdp, divided by world size
BASE_1 = 1.0          # CUDA context + VAE weights, one process
BASE_M = 3.24         # same plus NCCL buffers under torchrun
FSDP_GATHER_GB = 0.7  # one all-gathered block
NO_CONVERT_ACT = 1.25 # activations without --convert_model_dtype (fp32 weights)
EXPANDABLE = 0.95
NON_PYTORCH_GB = 0.76
DEFAULT_CAPACITY = 79.19


def token_count(args):
    v = VRAM[args.task]
    w, h = SIZE_CONFIGS[args.size]
    if args.task == "s2v-14B":
        lat = args.infer_frames // 4 + 1
    elif args.task == "animate-14B":
        lat = (args.frame_num - 1) // 4 + 2
    else:
        lat = (args.frame_num - 1) // 4 + 1
    return lat * (h // v["div"]) * (w // v["div"])


def alloc_conf_expandable(env):
    for key in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"):
        parts = [p.strip().replace(" ", "") for p in env.get(key, "").split(",")]
        if any(p.lower() == "expandable_segments:true" for p in parts):
            return True
    return False


def vram_plan(args, world, rank, env):
    """Return {phase: (need GiB, size of the failing allocation GiB)} for this rank."""
    v = VRAM[args.task]
    T = token_count(args)
    multi = world > 1
    fsdp = args.dit_fsdp and multi
    convert = args.convert_model_dtype or v["bf16_load"] or fsdp
    w = v["w"] * (1.0 if convert else 2.0)
    sp = args.ulysses_size if multi else 1
    act = v["act"] * T / sp * (1.0 if convert else NO_CONVERT_ACT)
    if args.t5_cpu:
        t5 = 0.0
    elif args.t5_fsdp and multi:
        t5 = T5_SHARDS_GB / world
    else:
        t5 = T5_GB
    t5_stays = 0.0 if args.offload_model else t5
    if not multi:
        on_gpu_at_load = w if v["bf16_load"] else 0.0
        need_t5 = BASE_1 + on_gpu_at_load + t5 + v["extra"]
        need_denoise = BASE_1 + w + act + t5_stays + v["extra"]
        need_decode = v["c1"] + v["s1"] * T + v["extra"] + (0.0 if args.offload_model else w + t5)
    else:
        if fsdp:
            dit = v["experts"] * 2.0 * v["w"] / world
        elif args.offload_model:
            dit = w
        else:
            dit = v["experts"] * w
        need_t5 = BASE_M + dit + t5 + v["extra"]
        need_denoise = BASE_M + dit + (FSDP_GATHER_GB if fsdp else 0.0) + act + t5_stays + v["extra"]
        dit_at_decode = 0.0 if (args.offload_model and not fsdp) else dit
        need_decode = v["cm"] + v["sm"] * T + dit_at_decode + t5_stays + v["extra"]
    scale = EXPANDABLE if alloc_conf_expandable(env) else 1.0
    w_px, h_px = SIZE_CONFIGS[args.size]
    rw, rh = v["ref"]
    plan = {
        "t5": (need_t5 * scale, 0.16),
        "denoise": (need_denoise * scale, max(0.05, 1.73 * T / 75600.0 / sp)),
        "decode": (need_decode * scale, 2.60 * (w_px * h_px) / float(rw * rh)),
    }
    if multi and rank != 0 and args.task != "s2v-14B":
        plan.pop("decode")
    return plan


def capacity(env, local_rank):
    raw = env.get("FAKEWAN_VRAM_GB", "").strip()
    if not raw:
        return None
    vals = [float(x) for x in raw.split(",") if x.strip()]
    if not vals:
        return None
    return vals[local_rank] if local_rank < len(vals) else vals[-1]


def fmt_size(gib):
    if gib >= 1.0:
        return f"{gib:.2f} GiB"
    return f"{gib * 1024.0:.2f} MiB"


def oom_message(cap, need, req, device, expandable):
    held = need - req
    free = cap - held
    if free <= 0 or free >= req:
        free = min(req * 0.4, 0.02 + 0.005 * cap)
    in_use = cap - free
    unalloc = in_use * (0.008 if expandable else 0.054)
    allocated = max(0.0, in_use - NON_PYTORCH_GB - unalloc)
    return (f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {fmt_size(req)}. "
            f"GPU {device} has a total capacity of {fmt_size(cap)} of which {fmt_size(free)} is free. "
            f"Including non-PyTorch memory, this process has {fmt_size(in_use)} memory in use. "
            f"Of the allocated memory {fmt_size(allocated)} is allocated by PyTorch, and "
            f"{fmt_size(unalloc)} is reserved by PyTorch but unallocated. If reserved but unallocated "
            f"memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
            f"fragmentation.  See documentation for Memory Management  "
            f"(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def err(text):
    sys.stderr.write(text)
    sys.stderr.flush()


def flush_all():
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


def die(text, code=1):
    flush_all()
    err(text if text.endswith("\n") else text + "\n")
    os._exit(code)


def sigkill_self():
    flush_all()
    os.kill(os.getpid(), signal.SIGKILL)
    while True:
        time.sleep(1)


def hang_forever():
    flush_all()
    while True:
        time.sleep(3600)


def frame(path, line, func, code):
    return f'  File "{path}", line {line}, in {func}\n    {code}\n'


def module_frames():
    return (frame(f"{SITE}/torch/nn/modules/module.py", 1736, "_wrapped_call_impl",
                  "return self._call_impl(*args, **kwargs)") +
            frame(f"{SITE}/torch/nn/modules/module.py", 1747, "_call_impl",
                  "return forward_call(*args, **kwargs)"))


def head_frames(task):
    _, var, _, line = PIPELINE[task]
    return ("Traceback (most recent call last):\n" +
            frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
            frame(f"{ROOT}/generate.py", line, "generate", f"video = {var}.generate("))


def pipe_file(task):
    return f"{ROOT}/wan/{PIPELINE[task][2]}"


def t5_frames(task):
    return (head_frames(task) +
            frame(pipe_file(task), 338, "generate",
                  "context = self.text_encoder([input_prompt], self.device)") +
            frame(f"{ROOT}/wan/modules/t5.py", 501, "__call__", "context = self.model(ids, mask)") +
            module_frames() +
            frame(f"{ROOT}/wan/modules/t5.py", 330, "forward", "x = block(x, mask, pos_bias=e)") +
            module_frames() +
            frame(f"{ROOT}/wan/modules/t5.py", 260, "forward",
                  "x = fp16_clamp(x + self.ffn(self.norm2(x)))") +
            module_frames() +
            frame(f"{ROOT}/wan/modules/t5.py", 225, "forward", "x = self.fc1(x) * self.gate(x)"))


def dit_frames(task, fsdp):
    out = head_frames(task)
    out += frame(pipe_file(task), 381, "generate",
                 "noise_pred_cond = model(latent_model_input, t=timestep, **arg_c)[0]")
    out += module_frames()
    if fsdp:
        out += frame(f"{SITE}/torch/distributed/fsdp/fully_sharded_data_parallel.py", 863,
                     "forward", "output = self._fsdp_wrapped_module(*args, **kwargs)")
        out += module_frames()
    if task == "s2v-14B":
        out += frame(f"{ROOT}/wan/modules/s2v/model_s2v.py", 852, "forward",
                     "x = block(x, **kwargs)")
    elif task == "animate-14B":
        out += frame(f"{ROOT}/wan/modules/animate/model_animate.py", 466, "forward",
                     "x = block(x, **kwargs)")
    else:
        out += frame(f"{ROOT}/wan/modules/model.py", 480, "forward", "x = block(x, **kwargs)")
    out += module_frames()
    return out


def denoise_oom_frames(task, fsdp):
    return (dit_frames(task, fsdp) +
            frame(f"{ROOT}/wan/modules/model.py", 250, "forward",
                  "y = self.ffn(self.norm2(x).float() * (1 + e[4].squeeze(2)) + e[3].squeeze(2))") +
            module_frames() +
            frame(f"{SITE}/torch/nn/modules/container.py", 250, "forward", "input = module(input)") +
            module_frames() +
            frame(f"{SITE}/torch/nn/modules/linear.py", 125, "forward",
                  "return F.linear(input, self.weight, self.bias)"))


def decode_frames(task):
    out = head_frames(task)
    out += frame(pipe_file(task), 412, "generate", "videos = self.vae.decode(x0)")
    if task == "ti2v-5B":
        vae = f"{ROOT}/wan/modules/vae2_2.py"
        out += frame(vae, 1039, "decode",
                     "self.model.decode(u.unsqueeze(0), self.scale).float().clamp_(-1, 1).squeeze(0)")
        out += frame(vae, 877, "decode", "out_ = self.decoder(")
        out += module_frames()
        out += frame(vae, 726, "forward", "x = layer(x, feat_cache, feat_idx, first_chunk)")
        out += module_frames()
        out += frame(vae, 230, "forward", "x = layer(x, feat_cache[idx])")
        out += module_frames()
        out += frame(vae, 42, "forward", "return super().forward(x)")
    else:
        vae = f"{ROOT}/wan/modules/vae2_1.py"
        out += frame(vae, 636, "decode",
                     "self.model.decode(u.unsqueeze(0), self.scale).float().clamp_(-1, 1).squeeze(0)")
        out += frame(vae, 548, "decode", "out = self.decoder(")
        out += module_frames()
        out += frame(vae, 426, "forward", "x = layer(x, feat_cache, feat_idx)")
        out += module_frames()
        out += frame(vae, 168, "forward", "x = layer(x, feat_cache[idx])")
        out += module_frames()
        out += frame(vae, 36, "forward", "return super().forward(x)")
    out += frame(f"{SITE}/torch/nn/modules/conv.py", 725, "forward",
                 "return self._conv_forward(input, self.weight, self.bias)")
    out += frame(f"{SITE}/torch/nn/modules/conv.py", 720, "_conv_forward", "return F.conv3d(")
    return out


def oom_traceback(task, phase, fsdp):
    if phase == "t5":
        return t5_frames(task)
    if phase == "decode":
        return decode_frames(task)
    if phase == "load":
        return (head_frames(task).replace(f"video = {PIPELINE[task][1]}.generate(",
                                          f"{PIPELINE[task][1]} = wan.{PIPELINE[task][0].replace('-', '')}(") +
                frame(pipe_file(task), 128, "__init__", "model.to(self.device)") +
                frame(f"{SITE}/torch/nn/modules/module.py", 1343, "to", "return self._apply(convert)") +
                frame(f"{SITE}/torch/nn/modules/module.py", 930, "_apply",
                      "param_applied = fn(param)") +
                frame(f"{SITE}/torch/nn/modules/module.py", 1329, "convert",
                      "return t.to(device, dtype if t.is_floating_point() or t.is_complex() else None, non_blocking)"))
    return denoise_oom_frames(task, fsdp)


# ---------------------------------------------------------------------------------------------
# Failure injection
# ---------------------------------------------------------------------------------------------

MODES = {
    "oom": "decode", "sigkill": "load", "hang": "denoise", "exit2": "args", "nccl": "denoise",
    "flashattn": "import", "nosave": "save", "diskfull": "save", "quantize_hang": "load",
    "exit0_after_nccl": "end", "truncate_state": "denoise",
}
PHASES = ("import", "args", "load", "t5", "denoise", "decode", "save", "end")


class Fail:
    """The failure this process injects: mode, phase and (for denoise) the step."""

    def __init__(self, mode, phase, step):
        self.mode, self.phase, self.step = mode, phase, step

    def at(self, phase):
        return self.phase == phase


def parse_fail(spec):
    mode, _, phase = spec.strip().partition("@")
    mode = mode.strip()
    if mode not in MODES:
        err(f"FAKEWAN_FAIL: unknown mode {mode!r}; known: {', '.join(sorted(MODES))}\n")
        os._exit(2)
    phase = phase.strip() or MODES[mode]
    step = None
    if phase.startswith("denoise:"):
        try:
            step = int(phase.split(":", 1)[1])
        except ValueError:
            err(f"FAKEWAN_FAIL: bad step in {spec!r}\n")
            os._exit(2)
        phase = "denoise"
    if phase not in PHASES:
        err(f"FAKEWAN_FAIL: unknown phase {phase!r}; known: {', '.join(PHASES)}, denoise:K\n")
        os._exit(2)
    if phase in ("import", "args") and mode not in ("sigkill", "hang", "exit2", "flashattn"):
        err(f"FAKEWAN_FAIL: mode {mode} cannot happen at {phase}\n")
        os._exit(2)
    return Fail(mode, phase, step)


def _atomic_write(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def gate_allows_failure(env):
    """Apply FAKEWAN_FAIL_ONCE / FAKEWAN_FAIL_TIMES once per launch; True if this launch fails."""
    once = env.get("FAKEWAN_FAIL_ONCE", "")
    if once:
        if os.path.exists(once):
            return False
        d = os.path.dirname(os.path.abspath(once))
        os.makedirs(d, exist_ok=True)
        with open(once, "w") as f:
            f.write(f"{os.getpid()}\n")
    times = env.get("FAKEWAN_FAIL_TIMES", "")
    counter = env.get("FAKEWAN_COUNTER", "")
    if times and counter:
        try:
            with open(counter) as f:
                n = int(f.read().strip() or "0")
        except (OSError, ValueError):
            n = 0
        _atomic_write(counter, f"{n + 1}\n")
        if n >= int(times):
            return False
    return True


def resolve_fail(env, rank):
    spec = env.get("FAKEWAN_FAIL", "").strip()
    if not spec:
        return None
    fail = parse_fail(spec)
    only = env.get("FAKEWAN_FAIL_RANK", "").strip()
    if only and int(only) != rank:
        return None
    if not gate_allows_failure(env):
        return None
    return fail


# ---------------------------------------------------------------------------------------------
# Arguments (Wan2.2 generate.py)
# ---------------------------------------------------------------------------------------------


def str2bool(v):
    if isinstance(v, bool):
        return v
    v_lower = v.lower()
    if v_lower in ("yes", "true", "t", "y", "1"):
        return True
    elif v_lower in ("no", "false", "f", "n", "0"):
        return False
    else:
        raise argparse.ArgumentTypeError("Boolean value expected (True/False)")


def build_parser():
    p = argparse.ArgumentParser(
        description="Generate a image or video from a text prompt or image using Wan")
    p.add_argument("--task", type=str, default="t2v-A14B", choices=TASKS, help="The task to run.")
    p.add_argument("--size", type=str, default="1280*720", choices=list(SIZE_CONFIGS.keys()),
                   help="The area (width*height) of the generated video. For the I2V task, the "
                   "aspect ratio of the output video will follow that of the input image.")
    p.add_argument("--frame_num", type=int, default=None,
                   help="How many frames of video are generated. The number should be 4n+1")
    p.add_argument("--ckpt_dir", type=str, default=None,
                   help="The path to the checkpoint directory.")
    p.add_argument("--offload_model", type=str2bool, default=None,
                   help="Whether to offload the model to CPU after each model forward, reducing "
                   "GPU memory usage.")
    p.add_argument("--ulysses_size", type=int, default=1,
                   help="The size of the ulysses parallelism in DiT.")
    p.add_argument("--t5_fsdp", action="store_true", default=False,
                   help="Whether to use FSDP for T5.")
    p.add_argument("--t5_cpu", action="store_true", default=False,
                   help="Whether to place T5 model on CPU.")
    p.add_argument("--dit_fsdp", action="store_true", default=False,
                   help="Whether to use FSDP for DiT.")
    p.add_argument("--save_file", type=str, default=None,
                   help="The file to save the generated video to.")
    p.add_argument("--prompt", type=str, default=None,
                   help="The prompt to generate the video from.")
    p.add_argument("--use_prompt_extend", action="store_true", default=False,
                   help="Whether to use prompt extend.")
    p.add_argument("--prompt_extend_method", type=str, default="local_qwen",
                   choices=["dashscope", "local_qwen"], help="The prompt extend method to use.")
    p.add_argument("--prompt_extend_model", type=str, default=None,
                   help="The prompt extend model to use.")
    p.add_argument("--prompt_extend_target_lang", type=str, default="zh", choices=["zh", "en"],
                   help="The target language of prompt extend.")
    p.add_argument("--base_seed", type=int, default=-1,
                   help="The seed to use for generating the video.")
    p.add_argument("--image", type=str, default=None,
                   help="The image to generate the video from.")
    p.add_argument("--sample_solver", type=str, default="unipc", choices=["unipc", "dpm++"],
                   help="The solver used to sample.")
    p.add_argument("--sample_steps", type=int, default=None, help="The sampling steps.")
    p.add_argument("--sample_shift", type=float, default=None,
                   help="Sampling shift factor for flow matching schedulers.")
    p.add_argument("--sample_guide_scale", type=float, default=None,
                   help="Classifier free guidance scale.")
    p.add_argument("--convert_model_dtype", action="store_true", default=False,
                   help="Whether to convert model paramerters dtype.")
    p.add_argument("--src_root_path", type=str, default=None,
                   help="The file of the process output path. Default None.")
    p.add_argument("--refert_num", type=int, default=77,
                   help="How many frames used for temporal guidance. Recommended to be 1 or 5.")
    p.add_argument("--replace_flag", action="store_true", default=False,
                   help="Whether to use replace.")
    p.add_argument("--use_relighting_lora", action="store_true", default=False,
                   help="Whether to use relighting lora.")
    p.add_argument("--num_clip", type=int, default=None,
                   help="Number of video clips to generate, the whole video will not exceed the "
                   "length of audio.")
    p.add_argument("--audio", type=str, default=None,
                   help="Path to the audio file, e.g. wav, mp3")
    p.add_argument("--enable_tts", action="store_true", default=False,
                   help="Use CosyVoice to synthesis audio")
    p.add_argument("--tts_prompt_audio", type=str, default=None,
                   help="Path to the tts prompt audio file, e.g. wav, mp3. Must be greater than "
                   "16khz, and between 5s to 15s.")
    p.add_argument("--tts_prompt_text", type=str, default=None,
                   help="Content to the tts prompt audio. If provided, must exactly match "
                   "tts_prompt_audio")
    p.add_argument("--tts_text", type=str, default=None, help="Text wish to synthesize")
    p.add_argument("--pose_video", type=str, default=None,
                   help="Provide Dw-pose sequence to do Pose Driven")
    p.add_argument("--start_from_ref", action="store_true", default=False,
                   help="whether set the reference image as the starting point for generation")
    p.add_argument("--infer_frames", type=int, default=80,
                   help="Number of frames per clip, 48 or 80 or others (must be multiple of 4) "
                   "for 14B s2v")
    return p


def assertion(frames, message):
    tail = f"AssertionError: {message}" if message else "AssertionError"
    die(frames + tail)


def validate(args):
    """Wan2.2's _validate_args. Returns whether --image came from the user."""
    head = ("Traceback (most recent call last):\n" +
            frame(f"{ROOT}/generate.py", 574, "<module>", "args = _parse_args()") +
            frame(f"{ROOT}/generate.py", 297, "_parse_args", "_validate_args(args)"))
    if args.ckpt_dir is None:
        assertion(head + frame(f"{ROOT}/generate.py", 66, "_validate_args",
                               'assert args.ckpt_dir is not None, "Please specify the checkpoint directory."'),
                  "Please specify the checkpoint directory.")
    user_image = args.image is not None
    if args.prompt is None:
        args.prompt = EXAMPLE_PROMPT[args.task]
    if args.image is None and args.task in ("i2v-A14B", "s2v-14B"):
        args.image = EXAMPLE_IMAGE
    if args.audio is None and args.enable_tts is False and args.task == "s2v-14B":
        args.audio = EXAMPLE_AUDIO
    cfg = WAN_CONFIGS[args.task]
    if args.sample_steps is None:
        args.sample_steps = cfg["sample_steps"]
    if args.sample_shift is None:
        args.sample_shift = cfg["sample_shift"]
    if args.sample_guide_scale is None:
        args.sample_guide_scale = cfg["sample_guide_scale"]
    if args.frame_num is None:
        args.frame_num = cfg["frame_num"]
    args.base_seed = args.base_seed if args.base_seed >= 0 else random.randint(0, sys.maxsize)
    if "s2v" not in args.task:
        if args.size not in SUPPORTED_SIZES[args.task]:
            assertion(head + frame(f"{ROOT}/generate.py", 103, "_validate_args",
                                   "assert args.size in SUPPORTED_SIZES["),
                      f"Unsupport size {args.size} for task {args.task}, supported sizes are: "
                      f"{', '.join(SUPPORTED_SIZES[args.task])}")
    return user_image


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def make_ckpt(directory, task):
    if task not in CKPT_LAYOUT:
        err(f"unknown task {task!r}; known: {', '.join(TASKS)}\n")
        return 2
    os.makedirs(directory, exist_ok=True)
    for kind, name in CKPT_LAYOUT[task]:
        path = os.path.join(directory, name) if name else directory
        if kind == "file":
            open(path, "ab").close()
        elif kind == "tokenizer":
            os.makedirs(path, exist_ok=True)
            for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                open(os.path.join(path, f), "ab").close()
        elif kind == "dit":
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "config.json"), "w") as f:
                json.dump({"_class_name": "WanModel", "_diffusers_version": "0.33.0"}, f)
            with open(os.path.join(path, "diffusion_pytorch_model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {}, "weight_map": {}}, f)
            open(os.path.join(path, "diffusion_pytorch_model-00001-of-00001.safetensors"), "ab").close()
        else:
            os.makedirs(path, exist_ok=True)
            open(os.path.join(path, "config.json"), "ab").close()
    for name in CKPT_EXTRA.get(task, []):
        os.makedirs(os.path.join(directory, name), exist_ok=True)
    return 0


def _file_missing_tb(task, path, via):
    out = ("Traceback (most recent call last):\n" +
           frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
           frame(f"{ROOT}/generate.py", PIPELINE[task][3] - 12, "generate",
                 f"{PIPELINE[task][1]} = wan.{PIPELINE[task][0].replace('-', '')}("))
    out += via
    out += (frame(f"{SITE}/torch/serialization.py", 1425, "load",
                  "with _open_file_like(f, \"rb\") as opened_file:") +
            frame(f"{SITE}/torch/serialization.py", 751, "_open_file_like",
                  "return _open_file(name_or_buffer, mode)") +
            frame(f"{SITE}/torch/serialization.py", 732, "__init__",
                  "super().__init__(open(name, mode))"))
    return out + f"FileNotFoundError: [Errno 2] No such file or directory: '{path}'"


def check_ckpt(args, kind, name):
    """Fail like Wan2.2 when a checkpoint piece is missing; else return."""
    task = args.task
    base = args.ckpt_dir
    path = os.path.join(base, name) if name else base
    pf = pipe_file(task)
    if kind == "file":
        if os.path.isfile(path):
            return
        if name == T5_CKPT:
            via = (frame(pf, 94, "__init__", "self.text_encoder = T5EncoderModel(") +
                   frame(f"{ROOT}/wan/modules/t5.py", 496, "__init__",
                         "model.load_state_dict(torch.load(checkpoint_path, map_location='cpu'))"))
        elif name.endswith("VAE.pth"):
            vae = "vae2_2.py" if "2.2" in name else "vae2_1.py"
            cls = "Wan2_2_VAE" if "2.2" in name else "Wan2_1_VAE"
            via = (frame(pf, 103, "__init__", f"self.vae = {cls}(") +
                   frame(f"{ROOT}/wan/modules/{vae}", 620, "__init__",
                         "self.model = _video_vae(") +
                   frame(f"{ROOT}/wan/modules/{vae}", 595, "_video_vae",
                         "torch.load(pretrained_path, map_location=device), assign=True)"))
        elif name == CLIP_CKPT:
            via = (frame(pf, 110, "__init__", "self.clip = CLIPModel(") +
                   frame(f"{ROOT}/wan/modules/animate/clip.py", 521, "__init__",
                         "torch.load(self.checkpoint_path, map_location='cpu'))"))
        else:
            if not args.use_relighting_lora:
                return
            via = frame(pf, 152, "__init__",
                        "self.noise_model = self._configure_model(") + \
                frame(pf, 188, "_configure_model",
                      "lora_state = torch.load(self.lora_path, map_location='cpu')")
        die(_file_missing_tb(task, path, via))
    if kind == "tokenizer":
        if os.path.isdir(path):
            return
        die("Traceback (most recent call last):\n" +
            frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
            frame(pf, 94, "__init__", "self.text_encoder = T5EncoderModel(") +
            frame(f"{ROOT}/wan/modules/t5.py", 502, "__init__",
                  "self.tokenizer = HuggingfaceTokenizer(") +
            frame(f"{ROOT}/wan/modules/tokenizers.py", 39, "__init__",
                  "self.tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)") +
            frame(f"{SITE}/transformers/models/auto/tokenization_auto.py", 1013, "from_pretrained",
                  "return tokenizer_class_fast.from_pretrained(pretrained_model_name_or_path, *inputs, **kwargs)") +
            frame(f"{SITE}/transformers/tokenization_utils_base.py", 2046, "from_pretrained",
                  "raise EnvironmentError(") +
            f"OSError: Can't load tokenizer for '{path}'. If you were trying to load it from "
            f"'https://huggingface.co/models', make sure you don't have a local directory with the "
            f"same name. Otherwise, make sure '{path}' is the correct path to a directory containing "
            f"all relevant files for a T5TokenizerFast tokenizer.")
    if kind == "dit":
        weights = os.path.isdir(path) and any(
            f.startswith("diffusion_pytorch_model") for f in os.listdir(path))
        if os.path.isfile(os.path.join(path, "config.json")) and weights:
            return
        if not os.path.isfile(os.path.join(path, "config.json")):
            msg = f"OSError: Error no file named config.json found in directory {base}."
        else:
            msg = (f"OSError: Error no file named diffusion_pytorch_model.safetensors found in "
                   f"directory {path}.")
        sub = f", subfolder=config.{'low_noise_checkpoint' if name == 'low_noise_model' else 'high_noise_checkpoint'}" if name else ""
        die("Traceback (most recent call last):\n" +
            frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
            frame(pf, 111, "__init__", f"WanModel.from_pretrained(checkpoint_dir{sub})") +
            frame(f"{SITE}/huggingface_hub/utils/_validators.py", 114, "_inner_fn",
                  "return fn(*args, **kwargs)") +
            frame(f"{SITE}/diffusers/models/modeling_utils.py", 1013, "from_pretrained",
                  "config, unused_kwargs, commit_hash = cls.load_config(") +
            frame(f"{SITE}/diffusers/configuration_utils.py", 389, "load_config",
                  "raise EnvironmentError(") + msg)
    if kind == "dir":
        if os.path.isdir(path):
            return
        die("Traceback (most recent call last):\n" +
            frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
            frame(pf, 122, "__init__", "self.audio_encoder = AudioEncoder(") +
            frame(f"{ROOT}/wan/modules/s2v/audio_encoder.py", 50, "__init__",
                  "self.processor = Wav2Vec2Processor.from_pretrained(model_id)") +
            f"OSError: Can't load feature extractor for '{path}'. If you were trying to load it "
            f"from 'https://huggingface.co/models', make sure you don't have a local directory with "
            f"the same name. Otherwise, make sure '{path}' is the correct path to a directory "
            f"containing a preprocessor_config.json file")


# ---------------------------------------------------------------------------------------------
# State file
# ---------------------------------------------------------------------------------------------


def load_state(path, task):
    if not path or not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        raw = f.read()
    try:
        state = json.loads(raw.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as e:
        die("Traceback (most recent call last):\n" +
            frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
            frame(f"{ROOT}/generate.py", 371, "generate", "state = _load_state(state_file)") +
            frame(f"{ROOT}/generate.py", 350, "_load_state", "return json.load(f)") +
            frame("/usr/lib/python3.10/json/__init__.py", 293, "load", "return loads(fp.read(),") +
            frame("/usr/lib/python3.10/json/__init__.py", 346, "loads",
                  "return _default_decoder.decode(s)") +
            frame("/usr/lib/python3.10/json/decoder.py", 337, "decode",
                  "obj, end = self.raw_decode(s, idx=_w(s, 0).end())") +
            frame("/usr/lib/python3.10/json/decoder.py", 355, "raw_decode",
                  "raise JSONDecodeError(\"Expecting value\", s, err.value) from None") +
            f"json.decoder.JSONDecodeError: {e}\n"
            f"while reading state file {path}")
    if not isinstance(state, dict) or state.get("version") != 1:
        got = state.get("version") if isinstance(state, dict) else type(state).__name__
        die("Traceback (most recent call last):\n" +
            frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
            frame(f"{ROOT}/generate.py", 371, "generate", "state = _load_state(state_file)") +
            frame(f"{ROOT}/generate.py", 354, "_load_state",
                  "raise ValueError(f\"unsupported state in {path}: version {got}\")") +
            f"ValueError: unsupported state in {path}: version {got}")
    return state


def state_text(args, step, done=False):
    return json.dumps({"version": 1, "task": args.task, "size": args.size,
                       "frame_num": args.frame_num, "sample_steps": args.sample_steps,
                       "seed": args.base_seed, "step": step, "done": done,
                       "updated": datetime.now().isoformat(timespec="seconds")}, sort_keys=True)


def save_state(path, args, step, done=False):
    if path:
        _atomic_write(path, state_text(args, step, done) + "\n")


# ---------------------------------------------------------------------------------------------
# Progress bar (tqdm's default format, written to stderr with \r)
# ---------------------------------------------------------------------------------------------


def fmt_interval(t):
    mins, s = divmod(int(t), 60)
    h, m = divmod(mins, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def tqdm_line(n, total, elapsed, done_since_start):
    frac = n / total if total else 1.0
    bar_len, frac_len = divmod(int(frac * 10 * 8), 8)
    bar = "█" * bar_len
    if bar_len < 10:
        bar += " ▏▎▍▌▋▊▉"[frac_len] + " " * max(10 - bar_len - 1, 0)
    rate = done_since_start / elapsed if elapsed > 0 and done_since_start > 0 else None
    if rate is None:
        rate_s, remaining = "?it/s", "?"
    else:
        rate_s = f"{1 / rate:5.2f}s/it" if rate < 1 else f"{rate:5.2f}it/s"
        remaining = fmt_interval((total - n) / rate)
    return f"{frac * 100:3.0f}%|{bar}| {n}/{total} [{fmt_interval(elapsed)}<{remaining}, {rate_s}]"


# ---------------------------------------------------------------------------------------------
# Failures written the way Wan2.2 / PyTorch write them
# ---------------------------------------------------------------------------------------------


def watchdog_lines(rank):
    return (f"[rank{rank}]:[E ProcessGroupNCCL.cpp:1316] [PG 0 Rank {rank}] Watchdog caught collective "
            f"operation timeout: WorkNCCL(SeqNum=1234, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, "
            f"Timeout(ms)=600000) ran for 600012 milliseconds before timing out.\n"
            f"[rank{rank}]:[E ProcessGroupNCCL.cpp:1785] [PG 0 Rank {rank}] Exception (either an error "
            f"or timeout) detected by watchdog at work: 1234, last enqueued NCCL work: 1234, last "
            f"completed NCCL work: 1233.\n"
            f"[rank{rank}]:[E ProcessGroupNCCL.cpp:630] [Rank {rank}] Some NCCL operations have failed "
            f"or timed out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations "
            f"might run on corrupted/incomplete data.\n"
            f"[rank{rank}]:[E ProcessGroupNCCL.cpp:636] [Rank {rank}] To avoid data inconsistency, we "
            f"are taking the entire process down.\n")


def fail_nccl(args, rank, phase):
    err(watchdog_lines(rank))
    tb = dit_frames(args.task, args.dit_fsdp) if phase == "denoise" else (
        "Traceback (most recent call last):\n" +
        frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
        frame(f"{ROOT}/generate.py", 595, "generate", "dist.barrier()"))
    if phase == "denoise":
        tb += (frame(f"{ROOT}/wan/distributed/sequence_parallel.py", 132, "sp_attn_forward",
                     "q = all_to_all(q, scatter_dim=1, gather_dim=2)") if args.ulysses_size > 1 else
               frame(f"{ROOT}/wan/modules/model.py", 183, "forward", "x = flash_attention("))
        tb += frame(f"{SITE}/torch/distributed/c10d_logger.py", 83, "wrapper",
                    "return func(*args, **kwargs)")
        tb += frame(f"{SITE}/torch/distributed/distributed_c10d.py", 2501, "all_reduce",
                    "work.wait()")
    else:
        tb += frame(f"{SITE}/torch/distributed/c10d_logger.py", 83, "wrapper",
                    "return func(*args, **kwargs)")
        tb += frame(f"{SITE}/torch/distributed/distributed_c10d.py", 4166, "barrier",
                    "work.wait()")
    die(tb + f"torch.distributed.DistBackendError: NCCL communicator was aborted on rank {rank}. "
        f"Original reason for failure was: [PG 0 Rank {rank}] Watchdog caught collective operation "
        f"timeout: WorkNCCL(SeqNum=1234, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) "
        f"ran for 600012 milliseconds before timing out.")


FLASH_SO = f"{SITE}/flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so"


def fail_flashattn_import():
    die("Traceback (most recent call last):\n" +
        frame(f"{ROOT}/generate.py", 17, "<module>", "import wan") +
        frame(f"{ROOT}/wan/__init__.py", 2, "<module>", "from . import configs, distributed, modules") +
        frame(f"{ROOT}/wan/distributed/__init__.py", 2, "<module>", "from .fsdp import shard_model") +
        frame(f"{ROOT}/wan/modules/__init__.py", 2, "<module>", "from .attention import flash_attention") +
        frame(f"{ROOT}/wan/modules/attention.py", 12, "<module>", "import flash_attn") +
        frame(f"{SITE}/flash_attn/__init__.py", 3, "<module>",
              "from flash_attn.flash_attn_interface import (") +
        frame(f"{SITE}/flash_attn/flash_attn_interface.py", 15, "<module>",
              "import flash_attn_2_cuda as flash_attn_gpu") +
        f"ImportError: {FLASH_SO}: undefined symbol: "
        "_ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE")


def fail_flashattn_forward(args):
    die(dit_frames(args.task, args.dit_fsdp) +
        frame(f"{ROOT}/wan/modules/model.py", 183, "forward", "x = flash_attention(") +
        frame(f"{ROOT}/wan/modules/attention.py", 112, "flash_attention",
              "assert FLASH_ATTN_2_AVAILABLE") + "AssertionError")


def fail_diskfull(args, phase, state_path):
    if phase == "save":
        tb = (head_frames(args.task).replace(f"video = {PIPELINE[args.task][1]}.generate(",
                                             "save_video(") +
              frame(f"{ROOT}/wan/utils/utils.py", 93, "save_video", "writer.close()") +
              frame(f"{SITE}/imageio/core/format.py", 343, "close", "self._close()") +
              frame(f"{SITE}/imageio/plugins/ffmpeg.py", 600, "_close", "self._write_gen.close()") +
              frame(f"{SITE}/imageio_ffmpeg/_io.py", 633, "write_frames", "raise IOError(msg)"))
    elif state_path:
        tb = ("Traceback (most recent call last):\n" +
              frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
              frame(f"{ROOT}/generate.py", 402, "generate", "_save_state(state_file, step)") +
              frame(f"{ROOT}/generate.py", 361, "_save_state", "f.write(text)"))
    else:
        tb = ("Traceback (most recent call last):\n" +
              frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)") +
              frame(f"{SITE}/torch/serialization.py", 850, "save",
                    "_save(obj, opened_zipfile, pickle_module, pickle_protocol, _disable_byteorder_record)"))
    die(tb + "OSError: [Errno 28] No space left on device")


def fail_exit2():
    build_parser().error("argument --offload_model: Boolean value expected (True/False)")


def fail_oom(args, phase, need, req, cap, local_rank, env):
    flush_all()
    if cap is None:
        cap = DEFAULT_CAPACITY
        need = cap + req * 0.6
    elif need <= cap:
        need = cap + req * 0.6
    die(oom_traceback(args.task, phase, args.dit_fsdp) +
        oom_message(cap, need, req, local_rank, alloc_conf_expandable(env)))


def inject(fail, phase, args, rank, local_rank, env, plan, cap, state_path, step=None):
    """Run the injected failure if it is due now. Returns only when nothing was due."""
    if fail is None or not fail.at(phase):
        return
    if phase == "denoise" and step != fail.step:
        return
    m = fail.mode
    if m == "oom":
        need, req = plan.get(phase, (0.0, 0.5))
        fail_oom(args, phase if phase in ("t5", "denoise", "decode", "load") else "decode",
                 need, req, cap, local_rank, env)
    elif m == "sigkill":
        sigkill_self()
    elif m == "hang":
        hang_forever()
    elif m == "exit2":
        fail_exit2()
    elif m == "nccl":
        fail_nccl(args, rank, phase)
    elif m == "flashattn":
        if phase == "import":
            fail_flashattn_import()
        fail_flashattn_forward(args)
    elif m == "diskfull":
        fail_diskfull(args, phase, state_path)
    elif m == "quantize_hang":
        logging.info("Quantizing transformer to int8 ...")
        flush_all()
        err("Quantizing:   0%|          | 0/400 [00:00<?, ?it/s]")
        hang_forever()
    elif m == "truncate_state":
        if state_path:
            text = state_text(args, step or 0)
            with open(state_path, "w") as f:
                f.write(text[:max(1, len(text) // 2)])
                f.flush()
                os.fsync(f.fileno())
        sigkill_self()
    elif m == "exit0_after_nccl":
        err(watchdog_lines(rank).splitlines()[0] + "\n")
        err(f"[rank{rank}]:[E ProcessGroupNCCL.cpp:1970] NCCL error in: "
            f"../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, unhandled system error "
            f"(run with NCCL_DEBUG=INFO for details), NCCL version 2.20.5\n")
        flush_all()
        os._exit(0)


# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------


def sleep_ms(ms):
    if ms > 0:
        time.sleep(ms / 1000.0)


def env_ms(env, key, default):
    try:
        return max(0.0, float(env.get(key, default)))
    except ValueError:
        return float(default)


def install_signals(env):
    def on_term(signum, _frame):
        flush_all()
        err("\nTerminated: received signal 15 (SIGTERM)\n")
        os._exit(143)

    def on_int(signum, _frame):
        flush_all()
        err("\nKeyboardInterrupt\n")
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)

    if env.get("FAKEWAN_TRAP_TERM", "") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_int)


def barrier(rank, world, env):
    rdzv = env.get("FAKEWAN_RDZV", "")
    if world <= 1 or not rdzv:
        return
    open(os.path.join(rdzv, f"barrier.{rank}"), "w").close()
    while not all(os.path.exists(os.path.join(rdzv, f"barrier.{r}")) for r in range(world)):
        time.sleep(0.01)


def write_video(path, args, cfg):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    frames = args.infer_frames if args.task == "s2v-14B" else args.frame_num
    header = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
    body = (f"fakewan {args.task} {args.size} frames={frames} fps={cfg['sample_fps']} "
            f"seed={args.base_seed}\n").encode()
    with open(path, "wb") as f:
        f.write(header + b"\x00\x00\x00\x08free" + body * 16)


def generate(args, user_image, fail, env):
    rank = int(os.getenv("RANK", 0))
    world_size = int(os.getenv("WORLD_SIZE", 1))
    local_rank = int(os.getenv("LOCAL_RANK", 0))
    if rank == 0:
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s: %(message)s",
                            handlers=[logging.StreamHandler(stream=sys.stdout)])
    else:
        logging.basicConfig(level=logging.ERROR)
    load_ms = env_ms(env, "FAKEWAN_LOAD_MS", 50)
    step_ms = env_ms(env, "FAKEWAN_STEP_MS", 20)
    state_path = env.get("FAKEWAN_STATE", "")

    if args.offload_model is None:
        args.offload_model = False if world_size > 1 else True
        logging.info(f"offload_model is not specified, set to {args.offload_model}.")
    gen_head = ("Traceback (most recent call last):\n" +
                frame(f"{ROOT}/generate.py", 575, "<module>", "generate(args)"))
    if world_size <= 1:
        if args.t5_fsdp or args.dit_fsdp:
            assertion(gen_head + frame(f"{ROOT}/generate.py", 331, "generate", "assert not ("),
                      "t5_fsdp and dit_fsdp are not supported in non-distributed environments.")
        if args.ulysses_size > 1:
            assertion(gen_head + frame(f"{ROOT}/generate.py", 334, "generate", "assert not ("),
                      "sequence parallel are not supported in non-distributed environments.")
    if args.ulysses_size > 1:
        if args.ulysses_size != world_size:
            assertion(gen_head + frame(
                f"{ROOT}/generate.py", 339, "generate",
                'assert args.ulysses_size == world_size, f"The number of ulysses_size should be equal to the world size."'),
                "The number of ulysses_size should be equal to the world size.")
    if args.use_prompt_extend and args.prompt_extend_method == "dashscope":
        if not env.get("DASH_API_KEY"):
            die(gen_head + frame(f"{ROOT}/generate.py", 344, "generate",
                                 "prompt_expander = DashScopePromptExpander(") +
                frame(f"{ROOT}/wan/utils/prompt_extend.py", 210, "__init__",
                      'raise ValueError("DASH_API_KEY is not set")') +
                "ValueError: DASH_API_KEY is not set")
    cfg = WAN_CONFIGS[args.task]
    if args.ulysses_size > 1 and cfg["num_heads"] % args.ulysses_size != 0:
        assertion(gen_head + frame(f"{ROOT}/generate.py", 362, "generate",
                                   "assert cfg.num_heads % args.ulysses_size == 0, f\"`{cfg.num_heads=}` cannot be divided evenly by `{args.ulysses_size=}`.\""),
                  f"`cfg.num_heads={cfg['num_heads']}` cannot be divided evenly by "
                  f"`args.ulysses_size={args.ulysses_size}`.")

    state = load_state(state_path, args.task) if state_path else None
    start_step = 0
    if state and not state.get("done") and state.get("task") == args.task and \
            state.get("size") == args.size and state.get("frame_num") == args.frame_num and \
            state.get("sample_steps") == args.sample_steps and isinstance(state.get("step"), int):
        if args.seed_given and state.get("seed") != args.base_seed:
            pass
        elif 0 < state["step"] < args.sample_steps:
            start_step = state["step"]
            if isinstance(state.get("seed"), int):
                args.base_seed = state["seed"]
    del args.seed_given

    logging.info(f"Generation job args: {args}")
    logging.info(f"Generation model config: {cfg}")
    logging.info(f"Input prompt: {args.prompt}")
    if args.image is not None and args.task in ("i2v-A14B", "ti2v-5B", "s2v-14B"):
        if user_image and not os.path.exists(args.image):
            die(gen_head + frame(f"{ROOT}/generate.py", 386, "generate",
                                 'img = Image.open(args.image).convert("RGB")') +
                frame(f"{SITE}/PIL/Image.py", 3431, "open", 'fp = builtins.open(filename, "rb")') +
                f"FileNotFoundError: [Errno 2] No such file or directory: '{args.image}'")
        logging.info(f"Input image: {args.image}")
    if args.use_prompt_extend:
        logging.info("Extending prompt ...")
        sleep_ms(load_ms)
        logging.info(f"Extended prompt: {args.prompt}")

    cap = capacity(env, local_rank)
    plan = vram_plan(args, world_size, rank, env)
    if env.get("FAKEWAN_PRINT_VRAM") == "1":
        parts = " ".join(f"{k}={v[0]:.2f}" for k, v in plan.items())
        err(f"fakewan vram rank={rank} tokens={token_count(args)} {parts} "
            f"capacity={'unlimited' if cap is None else f'{cap:.2f}'} GiB\n")

    # pipeline creation
    name = PIPELINE[args.task][0]
    logging.info(f"Creating {name} pipeline.")
    skip_ckpt = env.get("FAKEWAN_SKIP_CKPT", "") == "1"
    for kind, item in CKPT_LAYOUT[args.task]:
        if kind == "dit":
            continue
        if kind == "file" and item == "relighting_lora.ckpt":
            continue
        if kind == "file":
            logging.info(f"loading {os.path.join(args.ckpt_dir, item)}")
        if not skip_ckpt:
            check_ckpt(args, kind, item)
        if kind == "file":
            sleep_ms(load_ms)
    logging.info(f"Creating WanModel from {args.ckpt_dir}")
    if not skip_ckpt:
        for kind, item in CKPT_LAYOUT[args.task]:
            if kind == "dit" or item == "relighting_lora.ckpt":
                check_ckpt(args, kind, item)
    sleep_ms(load_ms * (2 if VRAM[args.task]["experts"] == 2 else 1))
    inject(fail, "load", args, rank, local_rank, env, plan, cap, state_path)

    logging.info("Generating video ...")
    # text encode
    inject(fail, "t5", args, rank, local_rank, env, plan, cap, state_path)
    need, req = plan["t5"]
    if cap is not None and need > cap:
        fail_oom(args, "t5", need, req, cap, local_rank, env)
    sleep_ms(load_ms * (10 if args.t5_cpu else 1))

    # denoise
    total = args.sample_steps
    started = time.monotonic()
    err("\r" + tqdm_line(start_step, total, 0.0, 0))
    need, req = plan["denoise"]
    switch = int(total * 0.4) if VRAM[args.task]["experts"] == 2 else -1
    if fail is not None and fail.at("denoise") and fail.step is None:
        early = fail.mode in ("oom", "flashattn", "nccl")
        fail.step = start_step if early else max(start_step, total // 2)
    for step in range(start_step, total):
        inject(fail, "denoise", args, rank, local_rank, env, plan, cap, state_path, step=step)
        if step == start_step and cap is not None and need > cap:
            err("\n")
            fail_oom(args, "denoise", need, req, cap, local_rank, env)
        if step == switch and (args.offload_model or world_size <= 1):
            sleep_ms(load_ms)
        sleep_ms(step_ms)
        save_state(state_path if rank == 0 else "", args, step + 1)
        err("\r" + tqdm_line(step + 1, total, time.monotonic() - started, step + 1 - start_step))
    err("\n")

    # decode
    video_on_this_rank = rank == 0 or args.task == "s2v-14B"
    if video_on_this_rank:
        inject(fail, "decode", args, rank, local_rank, env, plan, cap, state_path)
        need, req = plan["decode"]
        if cap is not None and need > cap:
            fail_oom(args, "decode", need, req, cap, local_rank, env)
        sleep_ms(load_ms * 2)

    if rank == 0:
        if args.save_file is None:
            formatted_time = datetime.now().strftime("%Y%m%d_%H%M%S")
            formatted_prompt = args.prompt.replace(" ", "_").replace("/", "_")[:50]
            size = args.size.replace("*", "x") if sys.platform == "win32" else args.size
            args.save_file = (f"{args.task}_{size}_{args.ulysses_size}_{formatted_prompt}_"
                              f"{formatted_time}.mp4")
        logging.info(f"Saving generated video to {args.save_file}")
        inject(fail, "save", args, rank, local_rank, env, plan, cap, state_path)
        try:
            write_video(args.save_file, args, cfg)
        except Exception as e:
            logging.info(f"save_video failed, error: {e}")
        if args.task == "s2v-14B":
            logging.info("Start merging video and audio...")
            logging.info(f"Merge completed, saved to {args.save_file}")
        save_state(state_path, args, total, done=True)

    barrier(rank, world_size, env)
    logging.info("Finished.")
    inject(fail, "end", args, rank, local_rank, env, plan, cap, state_path)


def nosave_patch(fail):
    """For mode nosave: make the video write fail the way imageio does without ffmpeg."""
    global write_video

    def broken(path, args, cfg):
        raise RuntimeError(f"Could not find a backend to open `{path}`` with iomode `wI`.")

    if fail is not None and fail.mode == "nosave":
        write_video = broken


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--make-ckpt"]:
        if len(argv) != 3:
            err("usage: generate.py --make-ckpt DIR TASK\n")
            return 2
        return make_ckpt(argv[1], argv[2])
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except Exception:
        pass
    env = dict(os.environ)
    install_signals(env)
    rank = int(env.get("RANK", 0))
    fail = resolve_fail(env, rank)
    for phase in ("import", "args"):
        if fail is not None and fail.at(phase):
            if fail.mode == "sigkill":
                sigkill_self()
            if fail.mode == "hang":
                hang_forever()
            if fail.mode == "flashattn":
                fail_flashattn_import()
            fail_exit2()
    parser = build_parser()
    args = parser.parse_args(argv)
    seed_given = args.base_seed >= 0
    user_image = validate(args)
    args.seed_given = seed_given
    nosave_patch(fail)
    generate(args, user_image, fail, env)
    flush_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
