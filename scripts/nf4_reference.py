#!/usr/bin/env python3
"""bitsandbytes' own NF4 quantisation of given fp32 values, for the engine's QLoRA tests.

Runs `bitsandbytes.functional.quantize_4bit(quant_type="nf4", blocksize=64)` on the CPU,
with and without double quantisation (`compress_statistics`), and prints what it stores and
what `dequantize_4bit` gives back, so the engine's NF4 storage can be compared byte for byte.

Input (stdin): a list of {"values": [...], "double_quant": bool}.
Output (stdout): {"code": [16 NF4 values], "dynamic_map": [256 values], "versions": {...},
"results": [{"packed": [bytes], "absmax": [...] (fp32 per block of 64, or the 8-bit codes
with double quantisation), "absmax_scales": [...] (double quantisation: fp32 per block of
256), "offset": mean absmax or null, "dequantized": [...]}]}.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")


def main():
    import torch
    import bitsandbytes
    import bitsandbytes.functional as F

    jobs = json.load(sys.stdin)
    results = []
    for job in jobs:
        x = torch.tensor(job["values"], dtype=torch.float32)
        q, state = F.quantize_4bit(x, blocksize=64, quant_type="nf4", compress_statistics=job["double_quant"])
        out = {"packed": q.reshape(-1).tolist(), "dequantized": F.dequantize_4bit(q, state).reshape(-1).tolist()}
        if state.nested:
            out["absmax"] = state.absmax.reshape(-1).tolist()
            out["absmax_scales"] = state.state2.absmax.reshape(-1).tolist()
            out["offset"] = float(state.offset)
        else:
            out["absmax"] = state.absmax.reshape(-1).tolist()
            out["absmax_scales"] = []
            out["offset"] = None
        results.append(out)
    json.dump({"code": F.get_4bit_type("nf4", "cpu").tolist(), "dynamic_map": F.create_dynamic_map().tolist(),
               "versions": {"torch": torch.__version__, "bitsandbytes": bitsandbytes.__version__},
               "results": results}, sys.stdout)


if __name__ == "__main__":
    from peft_reference import require
    require("torch", "bitsandbytes")
    main()
