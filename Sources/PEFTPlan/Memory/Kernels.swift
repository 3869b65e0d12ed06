import Foundation

/// What Liger-Kernel's instance patch replaces in one model type
/// (`_apply_liger_kernel_to_instance`, Liger-Kernel @ead96b61
/// src/liger_kernel/transformers/monkey_patch.py, with the defaults TRL's `use_liger_kernel`
/// passes: rope, rms_norm and swiglu/geglu on; the loss left to TRL's chunked head).
public struct LigerPatch: Sendable {
    /// The block norms and the final norm become `LigerRMSNorm`.
    public var norms = true
    /// The attention's q and k norms become `LigerRMSNorm` too.
    public var headNorms = false
    /// The dense gated MLP becomes `LigerSwiGLUMLP` (`LigerGEGLUMLP` on Gemma); experts keep
    /// Transformers' code.
    public var mlp = true
    /// Liger replaces the family's experts with its fused MoE function (`LigerExperts`,
    /// ops/fused_moe.py), which the planner does not model yet: planning refuses the stack.
    public var fusedMoE = false

    public init(norms: Bool = true, headNorms: Bool = false, mlp: Bool = true, fusedMoE: Bool = false) {
        self.norms = norms
        self.headNorms = headNorms
        self.mlp = mlp
        self.fusedMoE = fusedMoE
    }
}

/// What a kernel stack replaces in the family being planned: the symbolic forward reads this.
struct KernelPatch: Sendable {
    var norms = false, headNorms = false, gatedMLP = false
    /// Unsloth's fused LoRA functions for q/k/v, o and the MLP (where LoRA wraps them all).
    var unslothLoRA = false

    /// The projections Unsloth's fused LoRA functions run together: `LoRA_QKV`, `LoRA_W` (o_proj)
    /// and `LoRA_MLP` (unsloth @015bdef0 models/llama.py `patch_peft_model` L3695–3767).
    static let unslothGroups: [[ModuleRole]] = [[.q, .k, .v], [.o], [.gate, .up, .down]]

    /// Whether Unsloth's fused function for `roles` runs in `layer`: each of them wrapped by LoRA
    /// (`isWrapped`), without a base bias, and no DoRA (LoRA dropout 0 is checked when planning
    /// starts).
    func unslothFuses(_ roles: [ModuleRole], layer: Int, arch: Architecture, method: Method, options: MethodOptions,
                      isWrapped: (ModuleSpec) -> Bool) -> Bool {
        guard unslothLoRA, method.spec.wrapper == .lowRank, !options.dora else { return false }
        return roles.allSatisfy { r in arch.module(r, layer: layer).map { isWrapped($0) && !$0.bias } ?? false }
    }

    init(_ spec: FamilySpec, kernels: KernelStack) {
        switch kernels {
        case .none: break
        case .liger:
            if let l = spec.liger { (norms, headNorms, gatedMLP) = (l.norms, l.headNorms, l.mlp) }
        case .unsloth:
            if spec.unslothKernels { (norms, headNorms, unslothLoRA) = (true, true, true) }
        }
    }
}

extension FamilySpec {
    /// Whether a plan under Liger's kernels can be made for this family.
    public var plansLiger: Bool { liger.map { !$0.fusedMoE } ?? false }
}
