import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// The family registry and the typed module roles the symbolic forward looks modules up by.
@Suite("Family descriptors and module roles")
struct FamilyRegistryTests {
    /// Every preset, then the class-default configs of families with no published config.
    static var everyModel: [(name: String, arch: Architecture)] {
        Presets.all.compactMap { e in (try? Presets.resolve(e.name)).map { (e.name, $0) } }
            + PublishedConfig.classDefaults.compactMap { c in (try? ConfigReader.read(path: c.url.path)).map { (c.hfID, $0) } }
    }

    /// One model per family: its first preset, else its first class-default config.
    static var onePerFamily: [Architecture] {
        var seen = Set<ModelFamily>()
        return everyModel.compactMap { m in
            guard !seen.contains(m.arch.family) else { return nil }
            seen.insert(m.arch.family)
            return m.arch
        }
    }

    @Test("every family in the registry has a preset or a class-default config, so the tests below reach it")
    func everyFamilyCovered() throws {
        #expect(Set(Self.onePerFamily.map(\.family)) == Set(ModelFamily.allCases))
    }

    @Test("no two modules of a layer share a role, so a lookup by role is never ambiguous")
    func rolesAreUnique() throws {
        for (name, a) in Self.everyModel {
            for layer in Set([0, 1, a.numLayers - 1] + a.layerKinds(from: 0).map(\.layer)) {
                // the image side's modules share two roles and are found by name (VisionForward.swift)
                let roles = a.modules.filter { !$0.isVision && (!$0.perLayer || a.has($0, layer: layer)) }.map(\.role)
                #expect(Set(roles).count == roles.count, "\(name) layer \(layer): \(roles.map(\.rawValue))")
            }
        }
    }

    /// Before roles, a block asked for modules by name and a name it did not find cost
    /// nothing. Now taking any projection out of any family's module list must refuse to plan.
    @Test("a block that misses any of its projections is refused, naming the role")
    func missingModuleIsAnError() throws {
        for arch in Self.onePerFamily {
            var t = TrainingOptions()
            t.seq = 64
            _ = try PlanContext(arch: arch, method: .lora, methodOptions: lora(arch), training: t)
            for m in arch.modules where m.perLayer && (m.kind == .linear || m.kind == .conv1d) {
                var cut = arch
                cut.modules.removeAll { $0.name == m.name }
                var o = MethodOptions()
                o.loraTargets = .allLinear
                #expect(throws: PlanError.incompleteArchitecture(model: arch.name, role: m.role), "\(arch.name) without \(m.name)") {
                    _ = try PlanContext(arch: cut, method: .full, methodOptions: o, training: t)
                }
            }
            var headless = arch
            headless.modules.removeAll { $0.role == .head }
            #expect(throws: PlanError.incompleteArchitecture(model: arch.name, role: .head)) {
                _ = try PlanContext(arch: headless, method: .full, methodOptions: MethodOptions(), training: t)
            }
        }
    }

    func lora(_ a: Architecture) -> MethodOptions {
        var o = MethodOptions()
        if a.family.spec.loraTargets == nil { o.loraTargets = .allLinear }
        // PEFT fails on these routers (TupleRouterTests): attention only
        // and PEFT refuses LoRA on Mamba's out_proj for some types (all-linear picks it)
        if a.family.spec.loraRefusedModules != nil { o.loraTargets = .list(["q_proj", "k_proj", "v_proj", "o_proj"]) }
        // and LoRA fails on routers returning a tuple and DeepSeek-V4's grouped o_a_proj: every other Linear
        let failing = a.family.spec.loraFailingModules
        if !failing.isEmpty { o.loraTargets = .list(a.blockLinearNames(excluding: Set(failing.keys))) }
        return o
    }
}
