import Foundation

/// A vision-language model's image side, beyond its modules (which are in
/// ``Architecture/modules`` with roles ``ModuleRole/visionTower`` and
/// ``ModuleRole/visionProjector``): what the plan needs to cost images.
///
/// An image becomes patches, the tower runs over them, and a merger turns each group of
/// `patchesPerToken` patches into one embedding that takes the place of an image token in
/// the language model's input (`masked_scatter` into `inputs_embeds`). The language model
/// therefore sees the image tokens as more sequence; the tower sees `patchesPerToken` times
/// as many patches.
public struct VisionTower: Sendable, Equatable {
    /// What the tower is, for notes ("Qwen2.5-VL ViT").
    public var title: String
    public var layers: Int
    public var hiddenSize: Int
    public var heads: Int
    /// Patches the tower embeds per image token the language model sees.
    public var patchesPerToken: Int
    /// How the family's processor turns an image into tokens, for the help and notes.
    public var tokensPerImage: String
    public init(_ title: String, layers: Int, hidden: Int, heads: Int, patchesPerToken: Int, tokensPerImage: String) {
        self.title = title
        self.layers = layers
        self.hiddenSize = hidden
        self.heads = heads
        self.patchesPerToken = patchesPerToken
        self.tokensPerImage = tokensPerImage
    }

    /// The name prefix of the image encoder's modules, where a model has other encoders
    /// (Gemma 4's audio encoder) beside it; nil: every image-side module.
    public var prefix: String? = nil
    /// The tower's blocks turn q and k by a rotary embedding in fp32 (Qwen-VL, Pixtral,
    /// MoonViT): two fp32 copies and the cast results; SigLIP has learned positions only.
    public var rotary = true
    /// Qwen2.5-VL attends within windows of this many patches except in `fullAttentionLayers`.
    public var windowPatches: Int? = nil
    public var fullAttentionLayers: [Int] = []
    /// What runs between the patch embedding and the blocks (Pixtral's `ln_pre`).
    public var pre: [VisionStep] = []
    /// What runs after the blocks, in order, up to the embeddings the language model takes.
    public var projector: [VisionStep] = []
}

/// One op after the tower's blocks: over the patches or over the merged tokens.
public enum VisionStep: Sendable, Equatable {
    /// A norm module (full name); RMSNorm when `rms`, else LayerNorm.
    case norm(String, rms: Bool, merged: Bool)
    /// A Linear module (full name).
    case linear(String, merged: Bool)
    /// GELU over `width` features.
    case gelu(width: Int, merged: Bool)
    /// A bare projection weight (Gemma 3's `mm_input_projection_weight`): in → out.
    case matmul(in: Int, out: Int, merged: Bool)
}

extension Architecture {
    /// Whether the model has an image side.
    public var isVisionLanguage: Bool { vision != nil }

    /// The regular expression PEFT takes as `target_modules` for every Linear of the
    /// language model and none of the image side (LLaMA-Factory's `lora_target: all` with
    /// the vision tower frozen): `model\.language_model\.(.*\.)?(q_proj|…)`; nil for a text model.
    public var languageModelTargetPattern: String? {
        guard isVisionLanguage else { return nil }
        var names: [String] = []
        for m in modules where (m.kind == .linear || m.kind == .conv1d) && m.role != .head && !m.isVision {
            let leaf = String(m.name.split(separator: ".").last ?? Substring(m.name))
            if !names.contains(leaf) { names.append(leaf) }
        }
        let prefix = layerPrefix.split(separator: ".").dropLast().joined(separator: "\\.")
        return prefix + "\\.(.*\\.)?(" + names.joined(separator: "|") + ")"
    }
}
