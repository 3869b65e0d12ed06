#!/usr/bin/env python3
"""How many gradient bytes are alive at once when the optimizer step is fused into backward.

One training step of a Transformers causal LM on the CPU with one AdamW per trainable
parameter, stepped from the parameter's post-accumulate-grad hook, which then sets the
gradient to None (PyTorch's `Tensor.register_post_accumulate_grad_hook`, the mechanism of
torch's `_apply_optimizer_in_backward`, torchtune's `optimizer_in_bwd` and Transformers'
`*_layerwise` optimizers). Each hook records the bytes of every gradient alive at that
moment; the largest is what peft-plan's `gradients` term must hold.

Input (stdin): a JSON list of cases {"id", "config_path", "method": "full"|"lora",
"batch", "seq", "dtype": "bf16"|"fp32"}.
Output (stdout): id -> {"peak_gradient_bytes", "all_gradient_bytes", "hooks"} or {"error"}.
"""
import json
import sys
import warnings

from peft_reference import run_cases

warnings.filterwarnings("ignore")


def main():
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    out = run_cases(json.load(sys.stdin), lambda case: run(case, torch, AutoConfig, AutoModelForCausalLM, dtypes), {})
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


def run(case, torch, AutoConfig, AutoModelForCausalLM, dtypes):
    with open(case["config_path"]) as f:
        cfg_dict = json.load(f)
    model_type = cfg_dict.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **cfg_dict)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtypes[case.get("dtype", "bf16")], attn_implementation="sdpa")
    model.train()
    if case.get("method", "full") == "lora":
        import peft
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizers = {p: torch.optim.AdamW([p], lr=1e-4, foreach=False) for p in params}
    peak, hooks = 0, 0

    def hook(p):
        nonlocal peak, hooks
        hooks += 1
        alive = sum(q.grad.numel() * q.grad.element_size() for q in params if q.grad is not None)
        peak = max(peak, alive)
        optimizers[p].step()
        optimizers[p].zero_grad(set_to_none=True)

    for p in params:
        p.register_post_accumulate_grad_hook(hook)
    ids = torch.randint(0, cfg.vocab_size, (case["batch"], case["seq"]))
    model(input_ids=ids, labels=ids).loss.backward()
    left = [p for p in params if p.grad is not None]
    if left:
        raise RuntimeError(f"{len(left)} gradients left after backward")
    return {"peak_gradient_bytes": peak, "hooks": hooks,
            "all_gradient_bytes": sum(p.numel() * p.element_size() for p in params)}


if __name__ == "__main__":
    main()
