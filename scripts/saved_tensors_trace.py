#!/usr/bin/env python3
"""What a Transformers causal LM really saves for backward, and its FLOPs, without memory.

Builds the model from a config.json on PyTorch's meta device, runs one training forward
(with labels, so the loss is included) inside `torch.autograd.graph.saved_tensors_hooks`
and sums the bytes of the distinct storages saved for backward that are not parameters.
peft-plan's tests compare its activation and logits terms with these figures.

Input (stdin): a JSON list of cases
  {"id": str, "config": {config.json dict} or "config_path": str, "batch": int, "seq": int,
   "dtype": "bf16"|"fp16"|"fp32", "attention": "sdpa"|"eager", "grad_checkpointing": bool,
   "device": "meta" (default) or "cpu" (real weights: needed for gradient checkpointing),
   "method": ..., and the method's options as scripts/peft_reference.py reads them,
   "loss": "standard" (default) or "chunked" (TRL's fused LM head, as its SFTTrainer runs it),
   "reentrant": true for use_reentrant=True checkpointing,
   "padding_free": true for TRL's padding-free batch (its collator's layout: the batch's `batch`
   sequences of `seq` tokens concatenated into one row, position ids restarting at each, no
   attention mask),
   "selective": true for TRL's selective activation checkpointing (the attention op's outputs
   cached by PyTorch's SAC, outside the autograd graph, and counted here with the rest)}
Output (stdout): a JSON object id -> {"saved_bytes", "logits_bytes", "by_dtype",
"forward_flops", "backward_flops" (PyTorch's FlopCounterMode over forward and backward), ...}
or {"error": str}.
"""
import json
import os
import sys
import warnings
import weakref

from peft_reference import config_of, full_trainable_ids, peft_config, run_cases  # same case format as the parameter counts

warnings.filterwarnings("ignore")


def main():
    # Libraries log to stdout as they load (DeepSpeed's accelerator warning when bitsandbytes
    # loads a QLoRA case): send the process's stdout to stderr while working and write only
    # the JSON to the real one.
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    cases = json.load(sys.stdin)
    out = {"_versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    run_cases(cases, lambda case: trace(case, torch, AutoConfig, AutoModelForCausalLM, dtypes), out)
    sys.stdout.flush()
    json.dump(out, real_stdout, indent=1, sort_keys=True)
    real_stdout.flush()


def trace(case, torch, AutoConfig, AutoModelForCausalLM, dtypes):
    cfg_dict = dict(config_of(case))
    model_type = cfg_dict.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **cfg_dict)
    dtype = dtypes[case.get("dtype", "bf16")]
    # PyTorch's checkpoint cannot run on the meta device: checkpointed cases run on the CPU
    # with real (random) weights, so they must be small.
    device = case.get("device", "meta")
    from transformers import AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    auto = AutoModelForCausalLM if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES else AutoModelForImageTextToText
    with torch.device(device):
        try:
            model = auto.from_config(cfg, dtype=dtype, attn_implementation=case.get("attention", "sdpa"))
        except ValueError:
            # Gemma 2 and BLOOM refuse sdpa: Transformers users get eager attention there.
            model = auto.from_config(cfg, dtype=dtype, attn_implementation="eager")
    method = case.get("method", "full")
    if method == "qlora":
        model = quantised(model, case, torch)
    model.train()
    if method == "full":
        # a vision-language model trains its language model; tower and projector stay frozen
        keep = full_trainable_ids(model)
        for p in model.parameters():
            p.requires_grad_(keep is None or id(p) in keep)
    if method != "full":
        model = apply_peft(model, case, method)
    loss = case.get("loss", "standard")
    if loss == "chunked":
        # TRL's SFTTrainer (trl/trainer/sft_trainer.py, TRL 1.16.0) patches the base model with
        # its fused LM head and calls the model with fused_lm_head=True; on a device without
        # Triton the tiles are folded in torch ops, which save the same tensors.
        from trl.trainer.utils import add_fused_lm_head
        add_fused_lm_head(model.get_base_model() if method != "full" else model, outputs=("log_probs", "entropy", "is_top1"))
    elif loss != "standard":
        raise ValueError(f"loss {loss!r} runs only on CUDA (Triton kernels); nothing to trace on the CPU")
    sac_storages = []
    if case.get("selective"):
        # TRL 1.16's SFTTrainer with gradient_checkpointing_kwargs={"selective": True} wraps the
        # model's gradient_checkpointing_enable (trl/models/selective_activation_checkpointing.py);
        # each checkpointed call then builds its SAC contexts, whose cache is recorded here.
        import trl.models.selective_activation_checkpointing as sac
        original = sac.create_selective_checkpoint_contexts

        def recording(*args, **kwargs):
            contexts = original(*args, **kwargs)
            sac_storages.append(contexts[0].storage)
            return contexts

        sac.create_selective_checkpoint_contexts = recording
        sac.enable_selective_activation_checkpointing(model)
    if case.get("grad_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": bool(case.get("reentrant"))})
        if method != "full":
            model.enable_input_require_grads()
    b, s = case["batch"], case["seq"]
    ids = torch.zeros((b, s), dtype=torch.long, device=device)
    row = {}
    if case.get("padding_free"):
        # DataCollatorForLanguageModeling with padding_free (TRL 1.16): one row, position ids
        # per sequence; Transformers builds the block-diagonal mask from them (masking_utils)
        ids = torch.zeros((1, b * s), dtype=torch.long, device=device)
        # and TRL's SFTTrainer passes use_cache=False (sft_trainer.py compute_loss)
        row = {"position_ids": torch.arange(s, device=device).repeat(b).unsqueeze(0), "use_cache": False}
    images = image_inputs(case, cfg, ids, dtype, torch) if case.get("image_tokens") else {}

    trainable_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    saved = SavedTensors(torch, model)

    from torch.utils.flop_counter import FlopCounterMode
    mapping = grouped_mm_mapping(torch)
    forward_flops = FlopCounterMode(display=False, custom_mapping=mapping)
    with forward_flops, saved.hooks():
        fused = {"fused_lm_head": True} if loss == "chunked" else {}
        output = model(input_ids=ids, labels=ids, **images, **fused, **row)
    # What the graph still holds at the end of forward, each storage once.
    seen = saved.storages()
    # What selective checkpointing cached: each op's outputs, per checkpointed call.
    for storage in sac_storages:
        for per_op in storage.values():
            for out in per_op.values():
                for w in (out if isinstance(out, (tuple, list)) else (out,)):
                    saved.add(getattr(w, "val", w))   # each output is held in a _VersionWrapper
    backward_flops = FlopCounterMode(display=False, custom_mapping=mapping)
    with backward_flops:
        output.loss.backward()
    del output
    total = sum(v[0] for v in seen.values())
    vocab = model.get_output_embeddings().weight.shape[0]
    # Storages shaped like the logits (b, s, V) or flattened (b*s, V): the logits/loss part.
    logits = sum(v[0] for v in seen.values() if v[2] and v[2][-1] == vocab and len(v[2]) >= 2)
    by_dtype = {}
    for nbytes, dt, _ in seen.values():
        by_dtype[dt] = by_dtype.get(dt, 0) + nbytes
    return {"saved_bytes": total, "logits_bytes": logits, "by_dtype": by_dtype, "tensors": len(seen),
            "trainable_bytes": trainable_bytes,
            "forward_flops": forward_flops.get_total_flops(), "backward_flops": backward_flops.get_total_flops()}


class SavedTensors:
    """What autograd saves for backward inside `hooks()`, each storage once, parameters left out."""

    def __init__(self, torch, model):
        self.torch = torch
        self.params = {p.untyped_storage()._cdata for p in model.parameters()}
        self.packed = []
        self.seen = {}

    def pack(self, t):
        # The graph keeps a detached alias (the same storage): a node that saves its own
        # output would otherwise hold it, with its grad_fn, in a reference cycle that outlives
        # a branch autograd drops (DeepSeek-V4's indexer, whose top-k values are discarded),
        # which training without hooks frees. Keep only a weak reference to the alias: what
        # autograd drops (a detached branch, such as DoRA's weight norm) is freed, and its
        # storage address may then be reused.
        alias = t.detach()
        self.packed.append(weakref.ref(alias))
        return alias

    def hooks(self):
        return self.torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)

    def add(self, t):
        """Counts `t`'s storage (a tensor held outside the graph's saved tensors)."""
        if isinstance(t, self.torch.Tensor):
            st = t.untyped_storage()
            if st._cdata not in self.params and st._cdata not in self.seen:
                self.seen[st._cdata] = (st.nbytes(), str(t.dtype), tuple(t.shape))

    def storages(self):
        """storage id -> (bytes, dtype, shape) of what is still alive of the packed tensors."""
        for ref in self.packed:
            self.add(ref())
        return self.seen


def grouped_mm_mapping(torch):
    """FLOP formulas FlopCounterMode lacks or gets wrong: in-place addmm_, grouped convolution backward (below) and
    torch._grouped_mm, which FlopCounterMode lacks and the Transformers
    v5 mixture of experts runs its experts with: every row of the left operand meets the
    matrix of its group, 2 FLOPs per multiply-add, as for mm. The forward and the input's
    gradient are (rows × k) against (groups × k × n); the weights' gradient is (k × rows)
    against (rows × n), giving (groups × k × n), where each row belongs to one group."""
    # The in-place addmm_ (TRL's chunked LM head accumulates its gradients with it on the CPU)
    # does the work of addmm, for which the counter has a formula; it has none for the in-place op.
    def addmm_inplace(_self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs):
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]

    mapping = {torch.ops.aten.convolution_backward: conv_backward_flops, torch.ops.aten.addmm_: addmm_inplace}
    op = getattr(torch.ops.aten, "_grouped_mm", None)
    if op is None:
        return mapping

    def flops(a_shape, b_shape, *args, out_shape=None, **kwargs):
        if len(a_shape) == 2 and len(b_shape) == 3:
            return 2 * a_shape[0] * a_shape[1] * b_shape[2]
        if len(a_shape) == 2 and len(b_shape) == 2:
            return 2 * a_shape[0] * a_shape[1] * b_shape[1]
        out = 1
        for d in out_shape:
            out *= d
        return 2 * out * a_shape[-1]   # batched (groups × m × k) against (groups × k × n)

    mapping[op] = flops
    return mapping


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs):
    """Convolution backward, counting grouped (depthwise) convolutions as they run: each
    gradient costs what the forward does, 2 × output elements × (input channels / groups) ×
    taps. (FlopCounterMode's own formula transposes the shapes for the weight's gradient and
    so loses the groups: for LFM2's depthwise convolution it counts hidden-size times too much.)"""
    out = 1
    for d in (x_shape if transposed else grad_out_shape):
        out *= d
    per = 1
    for d in w_shape[1:]:
        per *= d
    forward = 2 * out * per
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def quantised(model, case, torch):
    """QLoRA's base as a QLoRA run loads it: the model saved with its (random) bf16 weights and
    loaded back through bitsandbytes 4-bit (nf4, double quantisation, bf16 compute) on the CPU;
    then PEFT's prepare_model_for_kbit_training (the rest upcast to fp32) unless the case's
    "qlora_rest" is "model" (a stack that never calls it, as TRL 1.16's SFTTrainer)."""
    import tempfile
    import peft
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    if case.get("device") != "cpu":
        raise ValueError("a QLoRA case needs real weights: set device cpu")
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        q = AutoModelForCausalLM.from_pretrained(
            folder, device_map="cpu", dtype=torch.bfloat16, attn_implementation=case.get("attention", "sdpa"),
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                                   bnb_4bit_compute_dtype=torch.bfloat16))
    if case.get("qlora_rest", "fp32") == "fp32":
        # checkpointing is the case's own (the tests set it as the plan does)
        q = peft.prepare_model_for_kbit_training(q, use_gradient_checkpointing=False)
    return q


def apply_peft(model, case, method):
    import peft
    # "adapter_dtype": "model" keeps LoRA's adapters in the model's dtype (PEFT upcasts them to
    # fp32 unless told not to)
    return peft.get_peft_model(model, peft_config(case, model),
                               autocast_adapter_dtype=case.get("adapter_dtype", "fp32") == "fp32")


def image_inputs(case, cfg, ids, dtype, torch):
    """One square image per sample for Qwen2.5-VL / Qwen3-VL: `image_tokens` image tokens
    after a vision-start token at the start of each sequence (written into `ids`), and the
    pixel patches the processor would give for them: (patches, C·T·P·P) and the grid."""
    n = case["image_tokens"]
    v = cfg.vision_config
    merge = v.spatial_merge_size
    side = int(round(n ** 0.5))
    if side * side != n:
        raise ValueError("image_tokens must be a square number of merged tokens")
    grid = side * merge
    ids[:, 0] = cfg.vision_start_token_id
    ids[:, 1:1 + n] = cfg.image_token_id
    per_patch = v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size
    b = ids.shape[0]
    pixels = torch.randn((b * grid * grid, per_patch), dtype=dtype, device=ids.device)
    thw = torch.tensor([[1, grid, grid]] * b, dtype=torch.long, device=ids.device)
    return {"pixel_values": pixels, "image_grid_thw": thw}


if __name__ == "__main__":
    from peft_reference import require
    require("torch", "transformers", "peft")
    main()
