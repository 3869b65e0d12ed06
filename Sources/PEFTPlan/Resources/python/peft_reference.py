#!/usr/bin/env python3
"""Parameter counts from the real Hugging Face Transformers + PEFT, for peft-plan's tests.

For each case it writes the given config.json to a temporary folder, builds the model
from it on PyTorch's meta device (no weights, no memory, no download), applies the PEFT
configuration and reports what `print_trainable_parameters()` prints (trainable, all)
plus the base model's own count. Cases with "save": true are also built with real
(random) weights on the CPU and saved with `save_pretrained()`, to report the size of
adapter_model.safetensors. peft-plan computes the same numbers itself; the tests compare.

Input (stdin): JSON list of {"id", "config": {...} or "config_path", "method": full|lora|qlora|ia3|prefix|
prompt|p-tuning, "r", "alpha", "targets": null|"all-linear"|[...], "dora", "tokens",
"projection", "encoder_hidden", "ia3_targets", "ia3_feedforward", "save"}.
Output (stdout): JSON {id: {"trainable", "all", "base", "file_bytes"?} or {"error"}} and
"_versions". QLoRA is counted as LoRA on the unquantised model: bitsandbytes needs CUDA,
and since PEFT 0.5 a 4-bit weight is counted at its true size, so the counts are equal.
"""
import json
import os
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")


def main():
    import peft
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    cases = json.load(sys.stdin)
    out = {"_versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}}
    for case in cases:
        try:
            out[case["id"]] = run(case)
        except Exception as exc:  # reported per case, never hidden
            out[case["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


def targets(value):
    """Targets as peft-plan's command line writes them: "all-linear" or "a,b,c"."""
    if value is None or value == "all-linear":
        return value
    return value.split(",") if isinstance(value, str) else value


def peft_config(case):
    import peft
    method = case["method"]
    if method in ("lora", "qlora"):
        return peft.LoraConfig(r=case.get("r", 8), lora_alpha=case.get("alpha", 16), target_modules=targets(case.get("targets")),
                               use_dora=case.get("dora", False), lora_dropout=case.get("dropout", 0.0), task_type="CAUSAL_LM")
    if method == "ia3":
        return peft.IA3Config(target_modules=targets(case.get("ia3_targets")),
                              feedforward_modules=targets(case.get("ia3_feedforward")),
                              task_type="CAUSAL_LM")
    if method == "prefix":
        proj = case.get("projection", 0)
        return peft.PrefixTuningConfig(num_virtual_tokens=case.get("tokens", 20), prefix_projection=proj > 0,
                                       encoder_hidden_size=proj if proj > 0 else None, task_type="CAUSAL_LM")
    if method == "prompt":
        return peft.PromptTuningConfig(num_virtual_tokens=case.get("tokens", 20), task_type="CAUSAL_LM")
    if method == "p-tuning":
        hidden = case.get("encoder_hidden", 0)
        return peft.PromptEncoderConfig(num_virtual_tokens=case.get("tokens", 20),
                                        encoder_hidden_size=hidden if hidden > 0 else None, task_type="CAUSAL_LM")
    raise ValueError(f"unknown method {method}")


def config_of(case):
    """The case's config.json: inline ("config") or a file path ("config_path"). With
    "dequantised": true a shipped quantisation_config (gpt-oss's MXFP4, DeepSeek's FP8) is
    left out: training dequantises those weights to bf16, which is what peft-plan plans."""
    if "config_path" in case:
        with open(case["config_path"]) as f:
            config = json.load(f)
    else:
        config = dict(case["config"])
    if case.get("dequantised"):
        config.pop("quantization_config", None)
    return config


def build(config_dict, device):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config_dict, f)
        cfg = AutoConfig.from_pretrained(folder)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(cfg)


def run(case):
    import peft
    model = build(config_of(case), "meta")
    base = sum(p.numel() for p in model.parameters())
    result = {"base": base}
    if case["method"] == "full":
        result.update(trainable=base, all=base)
        return result
    pm = peft.get_peft_model(model, peft_config(case))
    trainable, total = pm.get_nb_trainable_parameters()
    result.update(trainable=trainable, all=total)
    if case.get("save"):
        pm = peft.get_peft_model(build(config_of(case), "cpu"), peft_config(case))
        with tempfile.TemporaryDirectory() as folder:
            pm.save_pretrained(folder)
            result["file_bytes"] = os.path.getsize(os.path.join(folder, "adapter_model.safetensors"))
    return result


def require(*packages):
    """Exits with one line naming what to run when a package is missing, never a traceback."""
    import importlib.util
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {', '.join(missing)} not installed for {sys.executable}: "
                 "in the peft-plan repository run `bash scripts/setup.sh --test` and use .venv/bin/python "
                 "(elsewhere: pip install torch transformers peft)")


if __name__ == "__main__":
    require("torch", "transformers", "peft")
    main()
