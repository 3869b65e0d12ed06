import Foundation

extension FamilySpec {
    /// Phi-3 (`Phi3Config`, `modeling_phi3.py`): fused `qkv_proj` and `gate_up_proj`. PEFT has
    /// no default targets for it and asks for explicit `target_modules`.
    static let phi3 = FamilySpec(
        read: { try GatedReader(family: .phi3, block: GatedBlock(fusedProjections: true)).read($0, name: $1) },
        loraTargets: nil,
        ia3Targets: nil,
        configHasKVHeads: true,
        liger: LigerPatch())
}
