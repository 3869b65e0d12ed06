#!/usr/bin/env python3
"""One real TRL training step per case on the CPU: what the step saves for backward and holds.

Runs TRL's own trainers (DPOTrainer, KTOTrainer, the experimental ORPOTrainer and CPOTrainer,
SimPO being CPOConfig(loss_type="simpo"), and GRPOTrainer with Transformers' generate) for one
optimizer step on a small model with random weights and a word-level tokenizer (one token per
word, so every prompt and completion has the length the case names). Records:
- the shapes of every model forward (with and without gradients: the policy, the reference,
  KTO's KL forward, GRPO's generation and its log-probability forwards);
- the bytes saved for backward inside `compute_loss` (torch.autograd.graph.saved_tensors_hooks,
  each storage once, parameters left out, as scripts/saved_tensors_trace.py counts them);
- trainable, frozen and reference-model parameter bytes, the gradient bytes at the optimizer
  step and the optimizer's state bytes after it (AdamW's exp_avg and exp_avg_sq; its `step`
  counters live on the CPU even for a CUDA model and are left out);
- GRPO: the bytes of Transformers' KV cache at the end of generation.
peft-plan's tests plan the same step and compare.

Input (stdin): a JSON list of cases {"id", "config_path", "trainer": dpo|orpo|kto|simpo|grpo,
"method": full|lora, "batch" (per_device_train_batch_size), "prompt", "completion" (tokens),
"dtype": fp32|bf16, "grad_checkpointing": bool, "num_generations" (grpo), "beta" (optional),
"precompute_ref": bool (dpo, kto), "grad_accum" (default 1), "num_iterations" (grpo, default 1), "compact": bool (TRL's fused head
scores only the labelled positions, as it does where Triton runs: trl.trainer.utils._use_triton
answered True for that decision only; the tiles still fold on the CPU)}.
Output (stdout): id -> {...} or {"error": str}, and "_versions".
"""
import json
import sys
import tempfile
import warnings

from peft_reference import run_cases
from saved_tensors_trace import SavedTensors

warnings.filterwarnings("ignore")


def main():
    # the trainers print their metrics: keep stdout for the JSON
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    import torch
    import transformers
    import trl
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    out = {"_versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}}
    run_cases(json.load(sys.stdin), lambda case: run(case, torch), out)
    json.dump(out, real_stdout, indent=1, sort_keys=True)


def tokenizer(vocab, transformers):
    """A word-level tokenizer over the model's whole vocabulary: "<pad>" 0, "<eos>" 1, "w2"…"""
    from tokenizers import Tokenizer, models, pre_tokenizers
    words = {"<pad>": 0, "<eos>": 1, **{f"w{i}": i for i in range(2, vocab)}}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def text(n, seed, vocab):
    return " ".join(f"w{2 + (seed * 131 + i * 17) % (vocab - 2)}" for i in range(n))


def dataset(case, vocab):
    from datasets import Dataset
    p, c, rows = case["prompt"], case.get("completion", 0), 4 * case["batch"]
    kind = case["trainer"]
    if kind in ("dpo", "orpo", "simpo"):
        data = [{"prompt": text(p, i, vocab), "chosen": text(c, 1000 + i, vocab), "rejected": text(c, 2000 + i, vocab)}
                for i in range(rows)]
    elif kind == "kto":
        data = [{"prompt": text(p, i, vocab), "completion": text(c, 1000 + i, vocab), "label": i % 2 == 0}
                for i in range(rows)]
    else:
        data = [{"prompt": text(p, i, vocab)} for i in range(rows)]
    return Dataset.from_list(data)


def trainer_for(case, model, tok, data, outdir, torch):
    import peft
    kind = case["trainer"]
    common = dict(output_dir=outdir, model_init_kwargs={"dtype": case.get("dtype_name", "float32")},
                  per_device_train_batch_size=case["batch"], max_steps=1, report_to="none",
                  use_cpu=True, save_strategy="no", logging_strategy="no", bf16=False, learning_rate=1e-3,
                  gradient_checkpointing=bool(case.get("grad_checkpointing")), seed=0, dataloader_num_workers=0,
                  gradient_accumulation_steps=case.get("grad_accum", 1))
    if "beta" in case:
        common["beta"] = case["beta"]
    lora = peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]) if case["method"] == "lora" else None
    if kind == "dpo":
        from trl import DPOConfig, DPOTrainer
        args = DPOConfig(precompute_ref_log_probs=bool(case.get("precompute_ref")), **common)
        return DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=lora)
    if kind == "kto":
        from trl import KTOConfig, KTOTrainer
        args = KTOConfig(precompute_ref_log_probs=bool(case.get("precompute_ref")), **common)
        return KTOTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=lora)
    if kind == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        return ORPOTrainer(model=model, args=ORPOConfig(**common), train_dataset=data, processing_class=tok, peft_config=lora)
    if kind == "simpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer
        args = CPOConfig(loss_type="simpo", cpo_alpha=0.0, **common)
        return CPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=lora)
    if kind == "grpo":
        from trl import GRPOConfig, GRPOTrainer
        c = case["completion"]
        # every completion runs to max_completion_length: the end-of-sequence token is held back
        args = GRPOConfig(num_generations=case["num_generations"], max_completion_length=c,
                          num_iterations=case.get("num_iterations", 1),
                          generation_kwargs={"min_new_tokens": c}, **common)

        def reward(completions, **kwargs):
            return [float(len(x)) for x in completions]
        return GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok,
                           peft_config=lora)
    raise ValueError(f"unknown trainer {kind!r}")


def run(case, torch):
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM
    with open(case["config_path"]) as f:
        cfg_dict = json.load(f)
    model_type = cfg_dict.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **cfg_dict)
    cfg.pad_token_id, cfg.eos_token_id, cfg.bos_token_id = 0, 1, None
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[case.get("dtype", "fp32")]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 1
    model.generation_config.bos_token_id = None
    tok = tokenizer(cfg.vocab_size, transformers)
    case = dict(case, dtype_name={torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype])

    forwards = []

    def record(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            forwards.append({"grad": torch.is_grad_enabled(), "shape": list(ids.shape)})

    caches = []
    from transformers.generation.utils import GenerationMixin
    original_generate = GenerationMixin.generate

    def generate(self, *args, **kwargs):
        wanted = kwargs.get("return_dict_in_generate", False)
        kwargs["return_dict_in_generate"] = True
        result = original_generate(self, *args, **kwargs)
        cache = result.past_key_values
        caches.append(sum(t.numel() * t.element_size() for layer in cache.layers
                          for t in (layer.keys, layer.values) if t is not None))
        return result if wanted else result.sequences
    GenerationMixin.generate = generate

    import trl.trainer.utils as trl_utils
    use_triton = trl_utils._use_triton
    if case.get("compact"):
        trl_utils._use_triton = lambda device: True
    with tempfile.TemporaryDirectory() as outdir:
        # The trainers load the model by path, as users run them (a full fine-tune's DPO and
        # KTO reference model is loaded again from that path).
        path = f"{outdir}/model"
        model.save_pretrained(path)
        tok.save_pretrained(path)
        del model
        try:
            trainer = trainer_for(case, path, tok, dataset(case, cfg.vocab_size), outdir, torch)
            ref = getattr(trainer, "ref_model", None)
            policy = trainer.model
            causal = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
            causal.register_forward_pre_hook(record, with_kwargs=True)
            if ref is not None:
                ref.register_forward_pre_hook(record, with_kwargs=True)
            modules = torch.nn.ModuleList([policy] + ([ref] if ref is not None else []))
            record_out = {}
            original_loss = trainer.compute_loss

            def compute_loss(*args, **kwargs):
                saved = SavedTensors(torch, modules)
                start = len(forwards)
                with saved.hooks():
                    result = original_loss(*args, **kwargs)
                seen = saved.storages()
                record_out["saved_bytes"] = sum(v[0] for v in seen.values())
                vocab = cfg.vocab_size
                record_out["vocab_shaped_bytes"] = sum(v[0] for v in seen.values() if v[2] and v[2][-1] == vocab)
                record_out["loss_forwards"] = forwards[start:]
                return result
            trainer.compute_loss = compute_loss

            from torch.optim.optimizer import register_optimizer_step_pre_hook
            grads = {}

            def before_step(optimizer, args, kwargs):
                grads["bytes"] = sum(p.grad.numel() * p.grad.element_size() for g in optimizer.param_groups
                                     for p in g["params"] if p.grad is not None)
            handle = register_optimizer_step_pre_hook(before_step)
            try:
                trainer.train()
            finally:
                handle.remove()
        finally:
            GenerationMixin.generate = original_generate
            trl_utils._use_triton = use_triton
        params = list(policy.parameters())
        ref_params = [p for p in ref.parameters()] if ref is not None else []
        policy_storages = {p.untyped_storage()._cdata for p in params}
        state = trainer.optimizer.state
        states = sum(t.numel() * t.element_size() for s in state.values() for k, t in s.items()
                     if k != "step" and isinstance(t, torch.Tensor))
        result = {
            "trainable_bytes": sum(p.numel() * p.element_size() for p in params if p.requires_grad),
            "frozen_bytes": sum(p.numel() * p.element_size() for p in params if not p.requires_grad),
            "reference_bytes": sum(p.numel() * p.element_size() for p in ref_params
                                   if p.untyped_storage()._cdata not in policy_storages),
            "gradient_bytes": grads.get("bytes"),
            "optimizer_state_bytes": states,
            "forwards": forwards,
            **record_out,
        }
        if caches:
            result["generation_cache_bytes"] = max(caches)
        return result


if __name__ == "__main__":
    main()
