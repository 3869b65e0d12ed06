#!/usr/bin/env python3
"""The engine's bench configuration in PyTorch + Transformers + PEFT on the CPU, and the ratio.

Same model as `peft-plan bench --model tiny` (Llama: hidden 256, 4 layers, 4 heads, 4 KV
heads, intermediate 688, vocab 1000, untied), fp32, AdamW (lr 1e-3, weight decay 0),
micro-batch 4 × 128 random tokens, 30 timed steps after one warm-up, LoRA r=8 alpha=16 on
q_proj and v_proj, on the same number of threads as the engine's OpenBLAS. Prints PyTorch's
tokens/s, median step and peak RSS; with --engine PATH it also runs `PATH bench` for each
method and prints engine/PyTorch ratios of tokens/s and of peak memory.

Usage: bench_torch.py [--engine .build/release/peft-plan] [--methods full,lora] [--steps 30]
       [--batch 4] [--seq 128] [--threads N]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def torch_bench(method, batch, seq, steps, threads):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    cfg = LlamaConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                      intermediate_size=688, vocab_size=1000, tie_word_embeddings=False, max_position_embeddings=max(128, seq))
    model = LlamaForCausalLM(cfg).float()
    if method == "lora":
        import peft
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(42)
    times = []
    for i in range(steps + 1):
        ids = torch.randint(0, 1000, (batch, seq), generator=gen)
        targets = torch.randint(0, 1000, (batch * seq,), generator=gen)
        start = time.perf_counter()
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, 1000), targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i > 0:
            times.append((time.perf_counter() - start) * 1000)
    median = statistics.median(times)
    return {"tokens_per_second": batch * seq / (median / 1000), "step_ms_median": median,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine")
    ap.add_argument("--methods", default="full,lora")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="default: the engine's OpenBLAS thread count, else all cores")
    ap.add_argument("--in-process", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.in_process:
        # One method per process, so each peak RSS is its own.
        r = torch_bench(args.in_process, args.batch, args.seq, args.steps, args.threads)
        r["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(r))
        return
    rows = []
    for method in args.methods.split(","):
        engine = None
        if args.engine:
            out = subprocess.run([args.engine, "bench", "--method", method, "--batch", str(args.batch), "--seq", str(args.seq),
                                  "--steps", str(args.steps), "--format", "json"], capture_output=True, text=True, check=True)
            engine = json.loads(out.stdout)
        threads = args.threads or (engine["threads"] if engine else os.cpu_count())
        out = subprocess.run([sys.executable, __file__, "--in-process", method, "--batch", str(args.batch), "--seq", str(args.seq),
                              "--steps", str(args.steps), "--threads", str(threads)], capture_output=True, text=True, check=True)
        torch_r = json.loads(out.stdout)
        rows.append((method, engine, torch_r))
    for method, engine, t in rows:
        line = f"{method:5} pytorch {t['torch']} ({t['threads']} threads): {t['tokens_per_second']:.0f} tokens/s, median step {t['step_ms_median']:.1f} ms, peak RSS {t['peak_rss_bytes'] / 2**20:.0f} MiB"
        print(line)
        if engine:
            print(f"{method:5} engine (OpenBLAS {engine['blas_core']}, {engine['threads']} threads): {engine['tokens_per_second']:.0f} tokens/s, "
                  f"median step {engine['step_ms_median']:.1f} ms, ledger peak {engine['peak_bytes'] / 2**20:.0f} MiB, peak RSS {engine['peak_rss_bytes'] / 2**20:.0f} MiB")
            print(f"{method:5} engine/pytorch tokens/s ratio: {engine['tokens_per_second'] / t['tokens_per_second']:.2f}; "
                  f"peak RSS ratio: {engine['peak_rss_bytes'] / t['peak_rss_bytes']:.2f}")


if __name__ == "__main__":
    from peft_reference import require
    require("torch", "transformers", "peft")
    main()
