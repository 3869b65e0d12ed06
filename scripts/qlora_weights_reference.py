#!/usr/bin/env python3
"""What QLoRA's base model really holds, from real bitsandbytes on the CPU, for peft-plan's tests.

For each case it builds the model from the given config.json with random bf16 weights, saves
it, loads it back with BitsAndBytesConfig(load_in_4bit=True, nf4) as a QLoRA run does, applies
PEFT's prepare_model_for_kbit_training, and reports how many weight elements bitsandbytes
quantised (Params4bit, by their original shape) and the bytes of every other parameter (which
prepare_model_for_kbit_training has upcast to fp32), and the bytes of those parameters as loaded,
before that call (what a stack that skips it trains beside the 4-bit weights, such as TRL 1.16's
SFTTrainer). Configs must be small: weights are real.

Input (stdin): JSON list of {"id", "config": {...}}. Output (stdout): JSON {id: {"quantised_elements",
"other_bytes", "other_dtypes", "loaded_other_bytes", "loaded_other_dtypes"} or {"error"}} and "_versions".
"""
import json
import os
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")


def main():
    # Libraries log to stdout as they load (DeepSpeed's accelerator warning): send the process's
    # stdout to stderr while working and write only the JSON to the real one.
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import bitsandbytes
    import peft
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    out = {"_versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                         "bitsandbytes": bitsandbytes.__version__}}

    def weights(case):
        d = dict(case["config"])
        cfg = AutoConfig.for_model(d.pop("model_type"), **d)
        with tempfile.TemporaryDirectory() as folder:
            AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(folder)
            q = AutoModelForCausalLM.from_pretrained(
                folder, device_map="cpu", dtype=torch.bfloat16,
                quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_compute_dtype=torch.bfloat16))
        loaded, loaded_dtypes = 0, set()
        for p in q.parameters():
            if type(p).__name__ != "Params4bit":
                loaded += p.numel() * p.element_size()
                loaded_dtypes.add(str(p.dtype))
        q = peft.prepare_model_for_kbit_training(q)
        quantised, other, dtypes = 0, 0, set()
        for p in q.parameters():
            if type(p).__name__ == "Params4bit":
                quantised += p.quant_state.shape.numel()
            else:
                other += p.numel() * p.element_size()
                dtypes.add(str(p.dtype))
        return {"quantised_elements": quantised, "other_bytes": other, "other_dtypes": sorted(dtypes),
                "loaded_other_bytes": loaded, "loaded_other_dtypes": sorted(loaded_dtypes)}

    from peft_reference import run_cases
    run_cases(json.load(sys.stdin), weights, out)
    sys.stdout.flush()
    json.dump(out, real_stdout, indent=1, sort_keys=True)
    real_stdout.flush()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from peft_reference import require
    require("torch", "transformers", "peft", "bitsandbytes")
    main()
