import Foundation

extension FamilySpec {
    /// Command R7B, Command A (`Cohere2Config`, `modeling_cohere2.py`): one norm feeds
    /// attention and the gated MLP side by side, whose outputs join the residual together;
    /// sliding-window layers (rotary, in fp32) between full ones (no rotary); tied embeddings by
    /// default; the logits multiplied by `logit_scale`; Cohere's LayerNorm (weight, no bias,
    /// fp32 throughout: ``NormKind/cohereLayer``).
    static let cohere2 = FamilySpec(
        read: {
            var a = try GatedReader(family: .cohere2, tiedByDefault: true, attentionBias: .fromConfig, norm: .cohereLayer,
                                    block: GatedBlock(norms: .parallel)).read($0, name: $1)
            a.scaledLogits = true
            return a
        },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        moeConversion: nil)
}
