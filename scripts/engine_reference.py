#!/usr/bin/env python3
"""A small random Llama in real PyTorch + Transformers (+ PEFT), for the engine's tests.

Builds `LlamaForCausalLM` in fp32 on the CPU from the given sizes with seeded random
weights, applies LoRA with PEFT when asked (lora_B made non-zero so every gradient is
informative), runs one forward and backward on the given tokens and targets, and prints the
weights (under the engine's names) and the loss and gradients PyTorch computed. The engine
loads the same weights and must reproduce the loss and every gradient.

Input (stdin): {"dim", "layers", "heads", "kv_heads", "hidden", "vocab", "tied", "seed",
"batch", "seq", "tokens": [...], "targets": [...] (-1 ignored), "lora": null or
{"r", "alpha", "targets": ["wq", ...]}, "ia3": null or {"targets": [...], "feedforward": [...]},
"prompt": null or {"tokens": T}, "prefix": null or {"tokens": T, "projection": P (0: none)},
"qlora": null or {"r", "alpha", "targets", "double_quant"}, "adapter": null or {"houlsby": bool,
"reduction": R}}. IA³ vectors are drawn in [0.5, 1.5) and prompt embeddings are PEFT's own
(random) so every gradient is informative.

QLoRA: every block Linear becomes a bitsandbytes `Linear4bit` (NF4, blocks of 64, fp32
compute) holding the model's fp32 weight, with PEFT's LoRA on top; the weights printed are the
fp32 ones before quantisation (the engine quantises them itself).
Bottleneck adapters: the AdapterHub placement written out in PyTorch (no AdapterHub release
installs beside Transformers 5): on each block's feed-forward output (and, for Houlsby, the
attention output) before the residual addition, h + up(relu(down(h))), down and up with
bias, everything else frozen; weights drawn so every gradient is informative.
Output (stdout): {"loss", "weights": {name: [...]}, "grads": {name: [...]}, "versions"}.
A list of such inputs gives {"results": [one output per input]} (one Python start for all).
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

HF = {"wq": "self_attn.q_proj", "wk": "self_attn.k_proj", "wv": "self_attn.v_proj", "wo": "self_attn.o_proj",
      "w1": "mlp.gate_proj", "w3": "mlp.up_proj", "w2": "mlp.down_proj",
      "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def engine_name(hf_name):
    """Maps a Hugging Face / PEFT parameter name to the engine's."""
    n = hf_name.replace(".default", "").replace(".base_layer", "")
    # LoRA/IA³ wrap the model twice (base_model.model.model.…), prompt tuning once
    # (base_model.model.… for the decoder, base_model.lm_head): back to Transformers' names.
    for prefix in ("base_model.model.", "base_model."):
        if n.startswith(prefix):
            n = n[len(prefix):]
            break
    if n.startswith(("layers.", "embed_tokens.", "norm.")):
        n = "model." + n
    if n == "prompt_encoder.embedding.weight":
        return "prompt"
    if n.startswith("prompt_encoder.transform."):  # the prefix reparameterisation MLP
        _, _, index, kind = n.split(".")
        return f"prefix_mlp.{index}" + ("_bias" if kind == "bias" else "")
    if n in ("model.embed_tokens.weight", "word_embeddings.weight"):  # PEFT's prompt tuning names it both
        return "embed"
    if n == "model.norm.weight":
        return "norm"
    if n == "lm_head.weight":
        return "lm_head"
    parts = n.split(".")  # model.layers.L.<module...>.weight
    layer = parts[2]
    rest = ".".join(parts[3:])
    for ours, theirs in HF.items():
        if rest == theirs + ".weight":
            return f"{layer}.{ours}"
        for ab in ("lora_A", "lora_B"):
            if rest == f"{theirs}.{ab}.weight":
                return f"{layer}.{ours}.{ab}"
        if rest == f"{theirs}.ia3_l":
            return f"{layer}.{ours}.ia3"
    for site in ("adapter_attn", "adapter_ffn"):
        for proj in ("down", "up"):
            if rest == f"{site}.{proj}.weight":
                return f"{layer}.{site}.{proj}"
            if rest == f"{site}.{proj}.bias":
                return f"{layer}.{site}.{proj}_bias"
    raise ValueError(f"unmapped parameter {hf_name}")


def with_lora(model, spec, versions):
    """PEFT's LoRA on the named targets, lora_B drawn non-zero so every gradient is informative."""
    import peft
    import torch
    versions["peft"] = peft.__version__
    targets = sorted({HF[t].split(".")[-1] for t in spec["targets"]})
    model = peft.get_peft_model(model, peft.LoraConfig(r=spec["r"], lora_alpha=spec["alpha"], target_modules=targets, lora_dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.uniform_(-0.3, 0.3)
    return model


def main():
    jobs = json.load(sys.stdin)
    if isinstance(jobs, list):
        json.dump({"results": [run(job) for job in jobs]}, sys.stdout)
    else:
        json.dump(run(jobs), sys.stdout)


def run(job):
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(job.get("seed", 0))
    cfg = LlamaConfig(hidden_size=job["dim"], num_hidden_layers=job["layers"], num_attention_heads=job["heads"],
                      num_key_value_heads=job["kv_heads"], intermediate_size=job["hidden"], vocab_size=job["vocab"],
                      tie_word_embeddings=job["tied"], rms_norm_eps=1e-5, rope_theta=10000.0,
                      max_position_embeddings=max(64, job["seq"]), attention_bias=False, mlp_bias=False)
    model = LlamaForCausalLM(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)  # not all ones, so the norm weights' gradients matter
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    fp32_weights = {}
    qlora = job.get("qlora")
    if qlora:
        import bitsandbytes as bnb
        versions["bitsandbytes"] = bnb.__version__
        for li, layer in enumerate(model.model.layers):
            for parent in (layer.self_attn, layer.mlp):
                for name, child in list(parent.named_children()):
                    if not isinstance(child, torch.nn.Linear):
                        continue
                    ours = next(k for k, v in HF.items() if v.endswith("." + name))
                    fp32_weights[f"{li}.{ours}"] = child.weight.detach().reshape(-1).tolist()
                    q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=False, compute_dtype=torch.float32,
                                          compress_statistics=qlora["double_quant"], quant_type="nf4")
                    q.weight = bnb.nn.Params4bit(child.weight.data.clone(), requires_grad=False, quant_type="nf4",
                                                 compress_statistics=qlora["double_quant"], blocksize=64)
                    setattr(parent, name, q.to("cpu"))  # quantised on the move to a device
        model = with_lora(model, qlora, versions)
    adapter = job.get("adapter")
    if adapter:
        for p in model.parameters():
            p.requires_grad_(False)
        width = job["dim"] // adapter["reduction"]

        class Bottleneck(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.down = torch.nn.Linear(job["dim"], width)
                self.up = torch.nn.Linear(width, job["dim"])
                for p in self.parameters():
                    torch.nn.init.uniform_(p, -0.3, 0.3)

            def forward(self, h):
                return h + self.up(torch.relu(self.down(h)))

        for layer in model.model.layers:
            layer.adapter_ffn = Bottleneck()
            layer.mlp.register_forward_hook(lambda m, i, out, a=layer.adapter_ffn: a(out))
            if adapter["houlsby"]:
                layer.adapter_attn = Bottleneck()
                layer.self_attn.register_forward_hook(lambda m, i, out, a=layer.adapter_attn: (a(out[0]),) + tuple(out[1:]))
    lora = job.get("lora")
    if lora:
        model = with_lora(model, lora, versions)
    ia3 = job.get("ia3")
    if ia3:
        import peft
        versions["peft"] = peft.__version__
        names = lambda ts: sorted({HF[t].split(".")[-1] for t in ts})
        model = peft.get_peft_model(model, peft.IA3Config(target_modules=names(ia3["targets"]),
                                                          feedforward_modules=names(ia3["feedforward"])))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "ia3_l" in name:
                    p.uniform_(0.5, 1.5)
    prompt = job.get("prompt")
    if prompt:
        import peft
        versions["peft"] = peft.__version__
        model = peft.get_peft_model(model, peft.PromptTuningConfig(num_virtual_tokens=prompt["tokens"], task_type="CAUSAL_LM"))
    prefix = job.get("prefix")
    if prefix:
        import peft
        versions["peft"] = peft.__version__
        projection = prefix.get("projection", 0)
        model = peft.get_peft_model(model, peft.PrefixTuningConfig(num_virtual_tokens=prefix["tokens"], task_type="CAUSAL_LM",
                                                                   prefix_projection=projection > 0,
                                                                   encoder_hidden_size=projection or job["dim"]))
    model.train()
    b, s = job["batch"], job["seq"]
    ids = torch.tensor(job["tokens"], dtype=torch.long).view(b, s)
    targets = torch.tensor(job["targets"], dtype=torch.long).view(b, s)
    if prompt:  # the virtual tokens predict nothing
        targets = torch.cat([torch.full((b, prompt["tokens"]), -1, dtype=torch.long), targets], dim=1)
    targets = targets.reshape(-1)
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets, ignore_index=-1)
    loss.backward()
    weights, grads = {}, {}
    seen = set()
    for name, p in model.named_parameters():
        if p.data_ptr() in seen:  # tied lm_head: the embedding once
            continue
        seen.add(p.data_ptr())
        ours = engine_name(name)
        if ours in fp32_weights:  # a 4-bit weight: the fp32 values it was quantised from
            weights[ours] = fp32_weights[ours]
            continue
        if prefix and ours == "prompt":  # PEFT keeps the prefix encoder under prompt_encoder too
            ours = "prefix"
        weights[ours] = p.detach().reshape(-1).tolist()
        if p.grad is not None:
            grads[ours] = p.grad.reshape(-1).tolist()
    return {"loss": loss.item(), "weights": weights, "grads": grads, "versions": versions}


if __name__ == "__main__":
    from peft_reference import require
    require("torch", "transformers", "peft")
    main()
