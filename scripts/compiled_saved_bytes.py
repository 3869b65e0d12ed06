#!/usr/bin/env python3
"""Saved-for-backward bytes of one training forward, eager and under torch.compile.

Measures what `--compile-activation-factor` stands for on the machine it runs on: a
Transformers causal LM from a config.json (random weights, bf16, SDPA, the standard loss),
one forward with labels inside `torch.autograd.graph.saved_tensors_hooks`, the distinct
storages saved that are not parameters summed; compiled after one warm-up step.

Usage: scripts/compiled_saved_bytes.py CONFIG.json full|lora BATCH SEQ
Prints: eager bytes, compiled bytes and their ratio (the factor).
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")


def saved_bytes(torch, model, ids):
    from saved_tensors_trace import SavedTensors   # the trace's counting, storage by storage
    saved = SavedTensors(torch, model)
    with saved.hooks():
        out = model(input_ids=ids, labels=ids)
    total = sum(v[0] for v in saved.storages().values())
    out.loss.backward()
    return total


def build(torch, path, method):
    from transformers import AutoConfig, AutoModelForCausalLM
    with open(path) as f:
        d = json.load(f)
    cfg = AutoConfig.for_model(d.pop("model_type"), **d)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.train()
    if method == "lora":
        import peft
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    return model, cfg.vocab_size


def main():
    import torch
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    path, method, batch, seq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model, vocab = build(torch, path, method)
    ids = torch.randint(0, vocab, (batch, seq))
    eager = saved_bytes(torch, model, ids)
    model, _ = build(torch, path, method)
    compiled = torch.compile(model)
    compiled(input_ids=ids, labels=ids).loss.backward()     # warm-up: compile forward and backward
    under_compile = saved_bytes(torch, compiled, ids)
    print(json.dumps({"eager": eager, "compiled": under_compile, "factor": round(under_compile / eager, 3),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
