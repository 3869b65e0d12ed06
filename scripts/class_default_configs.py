"""Writes Tests/PEFTPlanTests/Fixtures/class-default-configs: for model types with no
published config.json we could cite, the configuration class's own defaults in the pinned
Transformers (`AutoConfig.for_model(model_type, **overrides).to_dict()`), with the few
overrides a family needs to be built at all or to reach a trait its defaults leave off.

These are not any checkpoint's config (a class's docstring names one, but its defaults
need not equal it): they check that peft-plan builds what Transformers builds from the same
fields, trait by trait; the published configs check real checkpoints. The overrides are
listed in sources.json beside each file. Run from the repository root with the
project venv:  .venv/bin/python scripts/class_default_configs.py
"""
import json
import os
import sys

import transformers
from transformers import AutoConfig

OUT = os.path.join("Tests", "PEFTPlanTests", "Fixtures", "class-default-configs")

# file stem: (model_type, overrides, why)
CASES = {
    "olmo3": ("olmo3", {}, "Olmo3Config defaults"),
    "olmoe": ("olmoe", {}, "OlmoeConfig defaults"),
    "ministral": ("ministral", {"head_dim": 128}, "MinistralConfig defaults; head_dim given (its default None fails in MinistralAttention)"),
    "ministral3": ("ministral3", {}, "Ministral3Config defaults"),
    "granite": ("granite", {}, "GraniteConfig defaults"),
    "granite-biases": ("granite", {"attention_bias": True, "mlp_bias": True}, "GraniteConfig with attention and MLP biases"),
    "granitemoe": ("granitemoe", {}, "GraniteMoeConfig defaults"),
    "granitemoeshared": ("granitemoeshared", {"shared_intermediate_size": 1024}, "GraniteMoeSharedConfig with a shared MLP (its default 0 builds none)"),
    "glm4": ("glm4", {}, "Glm4Config defaults"),
    "glm4_moe": ("glm4_moe", {"head_dim": 128}, "Glm4MoeConfig defaults with GLM-4.5's head_dim 128"),
    "glm4_moe-qk-norm": ("glm4_moe", {"head_dim": 128, "use_qk_norm": True, "attention_bias": True}, "Glm4MoeConfig with q/k norms and q/k/v biases (GLM-4.5's)"),
    "phimoe": ("phimoe", {}, "PhimoeConfig defaults"),
    "phimoe-head-bias": ("phimoe", {"lm_head_bias": True, "attention_bias": True}, "PhimoeConfig with lm_head and attention biases"),
    "deepseek_v2": ("deepseek_v2", {"num_experts_per_tok": 6}, "DeepseekV2Config defaults with top-6 routing (its default None)"),
    "deepseek_v2-lite": ("deepseek_v2", {"num_experts_per_tok": 6, "q_lora_rank": None, "first_k_dense_replace": 1, "moe_intermediate_size": 1408,
                                         "attention_bias": True, "mlp_bias": True},
                         "DeepseekV2Config as V2-Lite: no query latent, one dense layer, experts 1408 wide (PyTorch's grouped matmul "
                         "needs 16-byte strides: the default 1407 fails in the forward); with attention and MLP biases"),
    "phi-qk-layernorm": ("phi", {"qk_layernorm": True}, "PhiConfig with per-head q/k LayerNorms"),
    "cohere2": ("cohere2", {}, "Cohere2Config defaults"),
    "llama4_text": ("llama4_text", {}, "Llama4TextConfig defaults"),
    "llama4_text-interleaved": ("llama4_text", {"interleave_moe_layer_step": 2, "use_qk_norm": False},
                                "Llama4TextConfig with experts in every second layer (dense MLPs between) and no q/k norm"),
    "nemotron_h": ("nemotron_h", {}, "NemotronHConfig defaults (one Mamba-2, MoE, attention and MLP layer)"),
    "nemotron_h-no-mamba": ("nemotron_h", {"layers_block_type": ["full_attention", "moe", "mlp", "moe"], "moe_latent_size": 1024},
                            "NemotronHConfig without Mamba-2 layers (their CUDA kernels cannot be traced on the CPU), "
                            "with Nemotron 3 Super's latent projections around the experts"),
    "granitemoehybrid": ("granitemoehybrid", {}, "GraniteMoeHybridConfig defaults (every layer Mamba-2, experts and the shared MLP)"),
    "granitemoehybrid-mixed": ("granitemoehybrid", {"num_hidden_layers": 8, "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 2,
                                                    "position_embedding_type": "rope", "num_key_value_heads": 8, "attention_bias": True,
                                                    "tie_word_embeddings": True},
                               "GraniteMoeHybridConfig with an attention layer after every three Mamba-2 layers, rotary, GQA, biases, tied"),
    "granitemoehybrid-dense": ("granitemoehybrid", {"num_hidden_layers": 8, "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 2,
                                                    "num_local_experts": 0, "shared_intermediate_size": 8192, "mamba_proj_bias": True,
                                                    "mamba_n_groups": 2},
                               "GraniteMoeHybridConfig without experts (the shared MLP alone, as Granite 4.0 Micro), Mamba biases, two groups"),
    "granitemoehybrid-attention": ("granitemoehybrid", {"num_hidden_layers": 4, "layer_types": ["full_attention"] * 4, "num_key_value_heads": 8},
                                   "GraniteMoeHybridConfig with attention layers only (no rotary: position_embedding_type None), "
                                   "to trace the attention, experts and shared MLP on the CPU"),
    "falcon_h1": ("falcon_h1", {}, "FalconH1Config defaults (Mamba-2 without its norm, µP multipliers at 1)"),
    "falcon_h1-norm-biases": ("falcon_h1", {"mamba_rms_norm": True, "mamba_d_ssm": None, "mamba_n_heads": 64, "mamba_d_head": 128,
                                            "projectors_bias": True, "mamba_proj_bias": True, "attention_bias": True, "mlp_bias": True,
                                            "tie_word_embeddings": True},
                              "FalconH1Config with the Mamba norm, the width from mamba_expand, biases everywhere, tied"),
    "cohere2-untied": ("cohere2", {"tie_word_embeddings": False, "attention_bias": True}, "Cohere2Config untied, with attention biases"),
    "qwen2_5_vl": ("qwen2_5_vl", {}, "Qwen2_5_VLConfig defaults (its text and vision sub-configs' defaults)"),
    "qwen3_vl": ("qwen3_vl", {}, "Qwen3VLConfig defaults"),
    "qwen3_vl_moe": ("qwen3_vl_moe", {}, "Qwen3VLMoeConfig defaults"),
    "gemma3": ("gemma3", {}, "Gemma3Config defaults (a SigLIP tower with its attention-pooling head)"),
    "lfm2_vl": ("lfm2_vl", {}, "Lfm2VlConfig defaults"),
    "lfm2_vl-no-norm": ("lfm2_vl", {"projector_use_layernorm": False, "projector_bias": False},
                        "Lfm2VlConfig without the projector's LayerNorm and biases"),
    "mistral3": ("mistral3", {}, "Mistral3Config defaults"),
    "mistral3-two-feature-layers": ("mistral3", {"vision_feature_layer": [-1, -2], "multimodal_projector_bias": True},
                                    "Mistral3Config projecting two vision feature layers, with projector biases"),
    "kimi_k25": ("kimi_k25", {}, "Kimi_K25Config defaults (a DeepSeek-V3 language model and MoonViT)"),
    "gemma4_text": ("gemma4_text", {}, "Gemma4TextConfig defaults (per-layer inputs, sliding and full layers)"),
    "gemma4_text-moe-shared-kv": ("gemma4_text", {"num_hidden_layers": 12, "num_kv_shared_layers": 6, "use_double_wide_mlp": True,
                                                  "attention_k_eq_v": True, "num_global_key_value_heads": 2, "enable_moe_block": True,
                                                  "num_experts": 16, "top_k_experts": 4, "moe_intermediate_size": 512,
                                                  "hidden_size_per_layer_input": 0},
                                  "Gemma4TextConfig with KV-sharing layers (double-wide MLPs), K = V full layers with their own KV "
                                  "heads, and experts beside the dense MLP"),
    "gemma4_text-tiny": ("gemma4_text", {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4,
                                         "num_key_value_heads": 2, "head_dim": 16, "global_head_dim": 32, "vocab_size": 256,
                                         "vocab_size_per_layer_input": 256, "hidden_size_per_layer_input": 8,
                                         "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                                         "num_kv_shared_layers": 2, "use_double_wide_mlp": True, "attention_k_eq_v": True,
                                         "num_global_key_value_heads": 1, "enable_moe_block": True, "num_experts": 4,
                                         "top_k_experts": 2, "moe_intermediate_size": 32, "sliding_window": 16},
                         "Gemma4TextConfig shrunk for the saved-tensor trace: every Gemma 4 trait in four layers"),
    "gemma4": ("gemma4", {}, "Gemma4Config defaults (its text and vision sub-configs; no audio encoder)"),
    "qwen2_5_vl-tiny": ("qwen2_5_vl", {"text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                                       "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320,
                                                       "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                                                           "mrope_section": [2, 3, 3]}, "bos_token_id": 0, "eos_token_id": 1},
                                        "vision_config": {"depth": 2, "hidden_size": 64, "intermediate_size": 96, "num_heads": 4,
                                                          "out_hidden_size": 64, "fullatt_block_indexes": [1]},
                                        "image_token_id": 300, "video_token_id": 301, "vision_start_token_id": 302,
                                        "vision_end_token_id": 303},
                        "Qwen2_5_VLConfig shrunk to run on the CPU with images (two text and two vision layers, one of "
                        "them windowed): the saved-tensor trace of the vision tower"),
    "deepseek_v4": ("deepseek_v4", {}, "DeepseekV4Config defaults (V4-Flash's widths with V4-Pro's attention schedule)"),
    "deepseek_v4-tiny": ("deepseek_v4", {"vocab_size": 512, "hidden_size": 64, "moe_intermediate_size": 32, "num_hidden_layers": 5,
                                         "num_attention_heads": 4, "head_dim": 32, "q_lora_rank": 48, "partial_rotary_factor": 0.25,
                                         "num_experts_per_tok": 2, "n_routed_experts": 8, "o_groups": 2, "o_lora_rank": 24,
                                         "index_n_heads": 4, "index_head_dim": 16, "index_topk": 8, "sliding_window": 16,
                                         "compress_rates": {"compressed_sparse_attention": 4, "heavily_compressed_attention": 16},
                                         "layer_types": ["sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention",
                                                         "compressed_sparse_attention", "sliding_attention"],
                                         "mlp_layer_types": ["hash_moe", "moe", "moe", "moe", "moe"], "max_position_embeddings": 4096},
                         "DeepseekV4Config shrunk for the saved-tensor trace: sliding, compressed sparse (with the indexer) and "
                         "heavily compressed layers (rate 16 so that 128 tokens fill windows), hash and learned routing, "
                         "four hyper-connection streams"),
}


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    sources = []
    for stem, (model_type, overrides, why) in CASES.items():
        config = AutoConfig.for_model(model_type, **overrides)
        with open(os.path.join(OUT, stem + ".json"), "w") as f:
            json.dump(config.to_dict(), f, indent=1, sort_keys=True)
            f.write("\n")
        sources.append({"file": stem + ".json", "model_type": model_type, "class": type(config).__name__,
                        "transformers": transformers.__version__, "overrides": overrides, "note": why})
    with open(os.path.join(OUT, "sources.json"), "w") as f:
        json.dump(sources, f, indent=1)
        f.write("\n")
    print(f"wrote {len(sources)} configs to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
