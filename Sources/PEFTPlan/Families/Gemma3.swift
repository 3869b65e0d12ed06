import Foundation

extension FamilySpec {
    /// Gemma 3's language model (`Gemma3TextConfig`, `modeling_gemma3.py`): Gemma 2's
    /// sandwich norms, per-head q/k norms, `head_dim` 256 by default, sliding and full layers
    /// of the same shapes; no score soft-capping, logits capped only when the config says.
    static let gemma3Text = FamilySpec(
        read: {
            try GatedReader(family: .gemma3Text, tiedByDefault: true, attentionBias: .fromConfig, norm: .rmsOnePlusWeight,
                            block: GatedBlock(headNorm: .perHead, norms: .sandwich), headDimDefault: 256,
                            logitSoftcapFromConfig: true).read($0, name: $1)
        },
        loraTargets: ["q_proj", "v_proj"],
        ia3Targets: (["q_proj", "v_proj", "down_proj"], ["down_proj"]),
        configHasKVHeads: true,
        moeConversion: nil,
        kvHeadsDefault: 4,
        // Gemma3TextConfig's defaults (Transformers 5.25): the published Gemma 3 4B's
        // text_config gives neither vocabulary nor heads
        configDefaults: ["vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                         "num_attention_heads": 8, "head_dim": 256, "max_position_embeddings": 131_072],
        liger: LigerPatch(headNorms: true))
}
