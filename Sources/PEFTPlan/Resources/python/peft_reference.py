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
    json.dump(run_cases(cases, run, out), sys.stdout, indent=1, sort_keys=True)


def run_cases(cases, run, out):
    """Each case's result under its id in `out`: a case that fails is reported with its error,
    never hidden, and the others still run (the convention of every reference script here)."""
    for case in cases:
        try:
            out[case["id"]] = run(case)
        except Exception as exc:  # reported per case, never hidden
            out[case["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def targets(value):
    """Targets as peft-plan's command line writes them: "all-linear" or "a,b,c"."""
    if value is None or value == "all-linear":
        return value
    return value.split(",") if isinstance(value, str) else value


def language_model_pattern(model):
    """"language-model" targets: every nn.Linear of a vision-language model's language model
    (model.model.language_model) and none of its vision tower or projector, as the regular
    expression PEFT matches whole module names with (re.fullmatch)."""
    import re
    import torch
    names = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("model.language_model."):
            leaf = name.split(".")[-1]
            if leaf not in names:
                names.append(leaf)
    return r"model\.language_model\.(.*\.)?(" + "|".join(re.escape(n) for n in names) + ")"


def peft_config(case, model=None):
    import peft
    method = case["method"]
    if method in ("lora", "qlora"):
        target_modules = targets(case.get("targets"))
        if target_modules == ["language-model"]:
            target_modules = language_model_pattern(model)
        return peft.LoraConfig(r=case.get("r", 8), lora_alpha=case.get("alpha", 16), target_modules=target_modules,
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
    # Transformers builds these model types itself; a published config's auto_map (LFM2-VL,
    # Kimi K2.5 point at the authors' remote code) is not what peft-plan plans
    config.pop("auto_map", None)
    return config


def build(config_dict, device):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config_dict, f)
        cfg = AutoConfig.from_pretrained(folder)
    # vision-language types with no causal-LM mapping are built as image-text-to-text models
    auto = AutoModelForCausalLM if cfg.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES else AutoModelForImageTextToText
    with torch.device(device):
        return auto.from_config(cfg)


def full_trainable(model):
    """Full fine-tuning's trainable parameters: all of them, except that a vision-language
    model trains its language model and lm_head only (the vision tower and projector frozen,
    LLaMA-Factory's default: freeze_vision_tower, freeze_multi_modal_projector)."""
    keep = full_trainable_ids(model)
    return sum(p.numel() for p in model.parameters() if keep is None or id(p) in keep)


def full_trainable_ids(model):
    """The ids of the parameters full fine-tuning trains, or None for all of them."""
    inner = getattr(model, "model", None)
    language = getattr(inner, "language_model", None)
    if language is None or language is inner:
        return None
    keep = {id(p) for p in language.parameters()}
    keep |= {id(p) for p in model.get_output_embeddings().parameters()}
    return keep


def run(case):
    import peft
    model = build(config_of(case), "meta")
    base = sum(p.numel() for p in model.parameters())
    result = {"base": base}
    if case["method"] == "full":
        result.update(trainable=full_trainable(model), all=base)
        return result
    pm = peft.get_peft_model(model, peft_config(case, model))
    trainable, total = pm.get_nb_trainable_parameters()
    result.update(trainable=trainable, all=total)
    if case.get("save"):
        cpu_model = build(config_of(case), "cpu")
        # "adapter_dtype": "model": a bf16 model whose LoRA adapters PEFT does not upcast
        model_dtype = case.get("adapter_dtype") == "model"
        if model_dtype:
            import torch
            cpu_model = cpu_model.to(torch.bfloat16)
        pm = peft.get_peft_model(cpu_model, peft_config(case, cpu_model), autocast_adapter_dtype=not model_dtype)
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
