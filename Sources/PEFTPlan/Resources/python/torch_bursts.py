#!/usr/bin/env python3
"""Real training bursts on PyTorch + Transformers + PEFT: measured memory per phase and speed.

A burst is a few real training steps of one configuration: a causal LM built from a
config.json with random weights (no download), the method applied with PEFT, AdamW
(fused on CUDA) on the trainable parameters, random token ids of shape batch × seq, the
loss from the model's own labels path. Each step is timed and, phase by phase (forward,
backward, optimizer step), the caching allocator's peak is read. peft-plan compares its
predictions with these records (hf-cuda runtime profile on CUDA).

Usage: torch_bursts.py [JOB.json|-] [PARTIAL.json]
Input: a JSON object {"device": "cuda"|"cpu"|"meta", "defaults": {...}, "bursts": [...]}.
Each burst: {"id", "config": {config.json} or "config_path", "method": full|lora|qlora|ia3|
prefix|prompt|p-tuning, the method's options as scripts/peft_reference.py reads them,
"batch", "seq", "grad_checkpointing": bool, "dtype": "bf16", "steps" (timed, 4),
"warmup" (2), "autocast": bool (forward under torch.autocast in bf16, as the Trainer's
bf16=True runs it)}.
Output (stdout): JSON {"environment": {...}, "matmul_tflops": ..., "bursts": [{id, ...
"measured": {...}} or {"id", "error"} or {"id", "oom": true}]}.

Measured per burst (bytes unless stated):
  weights          memory_allocated() after the model is built and the method applied
  frozen_weights / trainable_weights   bytes of frozen / trainable parameters (storages once)
  gradients        bytes of .grad after backward;  optimizer_states  bytes in optimizer.state
  activations      memory_allocated() after forward − before forward (saved tensors + loss);
                   on cpu and meta: the bytes of the storages autograd saved in the last
                   step's forward (saved_tensors_hooks, each storage once, parameters left out)
  forward_peak / backward_peak / optimizer_peak    max_memory_allocated() within each phase
                   of a steady-state step (the last timed step)
  allocated_peak   max_memory_allocated() over the whole burst (first steps included)
  reserved_peak    max_memory_reserved() over the whole burst
  outside_allocator  device memory in use (cudaMemGetInfo) − memory_reserved(): the CUDA
                   context and library workspaces (the first burst of a process also holds
                   what later ones share)
  step_ms          median step time of the timed steps (CUDA events), tokens_per_second
"""
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import weakref
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peft_reference import config_of, peft_config  # noqa: E402  same case format


def main():
    import torch
    import transformers
    import peft
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    source = open(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else sys.stdin
    job = json.load(source)
    # With a second argument the record so far is rewritten there after every burst, so a
    # run stopped part way keeps what it measured.
    partial = sys.argv[2] if len(sys.argv) > 2 else None
    defaults = job.get("defaults", {})
    device = job.get("device", "cuda")
    env = environment(torch, transformers, peft, device)
    out = {"environment": env, "bursts": []}
    if device == "cuda":
        out["matmul_tflops"] = matmul_tflops(torch)
    saved = {}
    for raw in job["bursts"]:
        burst = dict(defaults, **raw)
        started = time.time()
        try:
            record = run(burst, torch, device, saved)
        except torch.cuda.OutOfMemoryError as exc:
            record = {"oom": True, "error": str(exc).splitlines()[0]}
        except Exception as exc:  # reported per burst, never hidden
            record = {"error": f"{type(exc).__name__}: {exc}"}
        record = dict(id=burst["id"], **record)
        record["wall_s"] = round(time.time() - started, 2)
        out["bursts"].append(record)
        print(json.dumps({k: record.get(k) for k in ("id", "wall_s", "error", "tokens_per_second")}), file=sys.stderr, flush=True)
        cleanup(torch)
        if partial:
            with open(partial + ".tmp", "w") as f:
                json.dump(out, f, indent=1)
            os.replace(partial + ".tmp", partial)
    json.dump(out, sys.stdout, indent=1)


def environment(torch, transformers, peft, device):
    env = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
           "device": device, "python": sys.version.split()[0]}
    try:
        import bitsandbytes
        env["bitsandbytes"] = bitsandbytes.__version__
    except Exception:
        env["bitsandbytes"] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_memory_bytes=p.total_memory, cuda=torch.version.cuda,
                   sm_count=p.multi_processor_count)
    return env


def matmul_tflops(torch, n=8192, reps=20):
    """Achieved bf16 dense matmul rate: the ceiling a training step's GEMMs can approach."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000 / reps
    del a, b
    return 2 * n ** 3 / seconds / 1e12


def cleanup(torch):
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def build(burst, torch, device, saved):
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg_dict = dict(config_of(burst))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[burst.get("dtype", "bf16")]
    attn = burst.get("attention", "sdpa")
    if burst["method"] == "qlora":
        # bitsandbytes quantises while loading: save random bf16 weights once per config,
        # then load them 4-bit as users do (from_pretrained with a BitsAndBytesConfig).
        from transformers import BitsAndBytesConfig
        key = json.dumps(cfg_dict, sort_keys=True)
        if key not in saved:
            folder = tempfile.mkdtemp(prefix="bursts-")
            model_type = cfg_dict.pop("model_type")
            cfg = AutoConfig.for_model(model_type, **cfg_dict)
            with torch.device(device):
                AutoModelForCausalLM.from_config(cfg, dtype=dtype).save_pretrained(folder)
            cleanup(torch)
            saved[key] = folder
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=burst.get("quant", "nf4"),
                                   bnb_4bit_use_double_quant=burst.get("double_quant", True),
                                   bnb_4bit_compute_dtype=dtype)
        model = AutoModelForCausalLM.from_pretrained(saved[key], quantization_config=quant, dtype=dtype,
                                                     attn_implementation=attn, device_map={"": 0})
        import peft
        model = peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(burst.get("grad_checkpointing")),
            gradient_checkpointing_kwargs={"use_reentrant": False})
        return model
    model_type = cfg_dict.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **cfg_dict)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn)


def storage_bytes(tensors):
    seen = {}
    for t in tensors:
        if t is None:
            continue
        st = t.untyped_storage()
        seen[st._cdata] = st.nbytes()  # the storage object: shared storages count once, also on meta (no addresses)
    return sum(seen.values())


def run(burst, torch, device, saved):
    import peft
    cuda = device == "cuda"
    cleanup(torch)
    base = torch.cuda.memory_allocated() if cuda else 0
    model = build(burst, torch, device, saved)
    model.train()
    method = burst["method"]
    if method != "full":
        model = peft.get_peft_model(model, peft_config(burst))
    if burst.get("grad_checkpointing") and method != "qlora":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if method != "full":
            model.enable_input_require_grads()
    params = [p for p in model.parameters()]
    trainable = [p for p in params if p.requires_grad]
    frozen = [p for p in params if not p.requires_grad]
    rec = {"trainable_params": sum(p.numel() for p in trainable),
           "frozen_weights": storage_bytes(frozen), "trainable_weights": storage_bytes(trainable)}
    rec["weights"] = (torch.cuda.memory_allocated() - base) if cuda else rec["frozen_weights"] + rec["trainable_weights"]
    opt = torch.optim.AdamW(trainable, lr=1e-5, fused=cuda)
    b, s = burst["batch"], burst["seq"]
    vocab = model.get_output_embeddings().weight.shape[0] if hasattr(model, "get_output_embeddings") else 1000
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, vocab, (b, s), generator=gen).to(device)
    warmup, steps = burst.get("warmup", 2), burst.get("steps", 4)
    last = warmup + steps - 1
    times = []
    phase = {}
    reserved = [0]

    def mark(key=None):
        """Reads the allocator's peak since the last mark into `key`, then starts a new window."""
        if not cuda:
            return
        if key:
            phase[key] = torch.cuda.max_memory_allocated() - base
        reserved[0] = max(reserved[0], torch.cuda.max_memory_reserved())
        torch.cuda.reset_peak_memory_stats()

    mark("load_peak")
    for i in range(warmup + steps):
        if i == last and i > 0:
            mark()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            before = torch.cuda.memory_allocated()
        else:
            t0 = time.perf_counter()
        # The Trainer keeps only the loss: the logits tensor is dropped after forward.
        # "autocast": true runs forward as Trainer(bf16=True) does (accelerate's autocast).
        # Off CUDA the last step's forward records what autograd saves (weak references, each
        # storage once, parameters left out): the saved activations and logits.
        packed = []

        def pack(t):
            packed.append(weakref.ref(t))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack if (i == last and not cuda) else (lambda t: t), lambda t: t), \
                torch.autocast(device_type="cpu" if device == "meta" else device, dtype=torch.bfloat16, enabled=bool(burst.get("autocast"))):
            loss = model(input_ids=ids, labels=ids).loss
        if i == last and not cuda:
            params = {p.untyped_storage()._cdata for p in model.parameters()}
            seen = {}
            for ref in packed:
                t = ref()
                if t is not None and t.untyped_storage()._cdata not in params:
                    seen[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
            rec["activations"] = sum(seen.values())
        if i == last:
            mark("forward_peak")
            if cuda:
                phase["activations"] = torch.cuda.memory_allocated() - before
                phase["before_step"] = before - base
        loss.backward()
        del loss
        if i == last:
            rec["gradients"] = storage_bytes([p.grad for p in trainable])
            mark("backward_peak")
            if cuda:
                phase["after_backward"] = torch.cuda.memory_allocated() - base
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i == last:
            mark("optimizer_peak")
        if i == 0:
            # The first step creates the optimizer states: its peak counts too.
            mark("first_step_peak")
        if cuda:
            end.record()
            torch.cuda.synchronize()
            if i >= warmup:
                times.append(start.elapsed_time(end))
        elif i >= warmup and device == "cpu":
            times.append((time.perf_counter() - t0) * 1000)
        if i == warmup - 1:
            mark()
    rec["optimizer_states"] = storage_bytes([t for st in opt.state.values() for t in st.values()
                                             if torch.is_tensor(t) and t.dim() > 0])
    if cuda:
        rec.update(phase)
        rec["allocated_peak"] = max(rec["forward_peak"], rec["backward_peak"], rec["optimizer_peak"], rec["first_step_peak"])
        rec["peak_phase"] = max(("forward", rec["forward_peak"]), ("backward", rec["backward_peak"]),
                                ("optimizer", rec["optimizer_peak"]), key=lambda kv: kv[1])[0]
        mark()
        rec["reserved_peak"] = reserved[0]
        free, total = torch.cuda.mem_get_info()
        rec["outside_allocator"] = (total - free) - torch.cuda.memory_reserved()
    if times:  # the meta device computes nothing: no time to report
        rec["step_ms"] = statistics.median(times)
        rec["step_ms_all"] = [round(t, 3) for t in times]
        rec["tokens_per_second"] = b * s / (rec["step_ms"] / 1000)
    del opt, model, params, trainable, frozen
    return rec


if __name__ == "__main__":
    from peft_reference import require
    require("torch", "transformers", "peft")
    main()
