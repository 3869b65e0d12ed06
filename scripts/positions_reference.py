#!/usr/bin/env python3
"""Which sequence lengths a learned-position model really runs with PEFT's virtual tokens.

GPT-2 and OPT learn a table of positions. Prompt tuning and P-tuning put their tokens in
front of the input, and prefix tuning starts the input's position ids after its prefix, so
the sequence and the virtual tokens share the table. This builds the model from a (small)
config on the CPU, wraps it with PEFT and runs one training forward per length; peft-plan's
tests compare the lengths that run with the ones the planner accepts.

Input (stdin): {"config": {config.json dict}, "method": "prefix"|"prompt"|"p-tuning",
"tokens": int, "seqs": [int, ...]}
Output (stdout): {"runs": {"<seq>": true|false}, "errors": {"<seq>": "<exception>"}}
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")


def main():
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, TaskType, get_peft_model

    hf_logging.set_verbosity_error()
    case = json.load(sys.stdin)
    cfg_dict = dict(case["config"])
    cfg = AutoConfig.for_model(cfg_dict.pop("model_type"), **cfg_dict)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    n = case["tokens"]
    kinds = {"prefix": PrefixTuningConfig, "prompt": PromptTuningConfig, "p-tuning": PromptEncoderConfig}
    model = get_peft_model(model, kinds[case["method"]](task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n))
    model.train()
    runs, errors = {}, {}
    for seq in case["seqs"]:
        ids = torch.zeros((1, seq), dtype=torch.long)
        try:
            model(input_ids=ids, labels=ids).loss.backward()
            runs[str(seq)] = True
        except (IndexError, RuntimeError) as exc:   # the position table is too short
            runs[str(seq)] = False
            errors[str(seq)] = f"{type(exc).__name__}: {exc}"[:200]
    json.dump({"runs": runs, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    from peft_reference import require
    require("torch", "transformers", "peft")
    main()
