"""Does LoRA on all-linear (or another PEFT method) train, or fail in the forward? One step
of the real PEFT on a tiny model of each model type, on the CPU.

stdin: a JSON list of {"id", "model_type", "config": {overrides}, "method" (optional:
"lora-all-linear" (default), "prefix", "prompt" or "p-tuning", four virtual tokens)}.
stdout: {id: {"config": the full config dict Transformers built, "trains": bool,
                "error": "Type: message" when it did not}}.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")


def main() -> int:
    cases = json.load(sys.stdin)
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # libraries print; only our JSON goes to stdout
    import torch
    from peft import LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.manual_seed(0)
    out = {}
    for case in cases:
        config = AutoConfig.for_model(case["model_type"], **case["config"])
        result = {"config": config.to_dict()}
        try:
            model = AutoModelForCausalLM.from_config(config)
            method = case.get("method", "lora-all-linear")
            if method == "lora-all-linear":
                peft_config = LoraConfig(target_modules="all-linear", r=4, lora_alpha=8)
            elif method == "prefix":
                peft_config = PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")
            elif method == "prompt":
                peft_config = PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")
            elif method == "p-tuning":
                peft_config = PromptEncoderConfig(num_virtual_tokens=4, encoder_hidden_size=32, task_type="CAUSAL_LM")
            else:
                raise SystemExit(f"unknown method {method}")
            model = get_peft_model(model, peft_config)
            ids = torch.randint(0, config.vocab_size, (1, 8))
            model(input_ids=ids, labels=ids).loss.backward()
            result["trains"] = True
        except Exception as exc:  # the outcome under test, reported, never hidden
            result["trains"] = False
            result["error"] = f"{type(exc).__name__}: {exc}"[:300]
        out[case["id"]] = result
    sys.stdout = real_stdout
    json.dump(out, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
