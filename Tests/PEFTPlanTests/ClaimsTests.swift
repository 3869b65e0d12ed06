import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// `peft-plan claims` (the published headline claims, each with its source): the figures behind the
/// verdicts against numbers from outside the code — PEFT's printed counts, the papers' tables,
/// arithmetic on the published architectures — and the verdicts where a real run settles them.
@Suite("Published claims")
struct ClaimsTests {
    static func claims() throws -> [String: Claim] {
        Dictionary(uniqueKeysWithValues: try Claims.check().map { ($0.id, $0) })
    }

    static func figure(_ c: Claim?, _ name: String) -> Double? { c?.figures.first { $0.0 == name }?.1 }

    @Test func parameterFiguresMatchOutsideSources() throws {
        let c = try Self.claims()
        // PEFT prints 4,194,304 trainable of 6,742,609,920 for Llama-2-7b, LoRA r8 q_proj,v_proj (print_trainable_parameters())
        #expect(Self.figure(c["lora-7b-4m-params"], "trainable_params") == 4_194_304)
        #expect(Self.figure(c["lora-7b-4m-params"], "total_params") == 6_742_609_920)
        #expect(abs((Self.figure(c["lora-7b-percent"], "percent_q_proj_v_proj") ?? 0) - 100.0 * 4_194_304 / 6_742_609_920) < 1e-9)
        // IA³ on k, v (4096 each) and down_proj's input (11008) in 32 layers; prefix: 2 × 32 layers × 4096 × 20 tokens
        #expect(Self.figure(c["ia3-percent"], "trainable_params") == Double(32 * (4096 + 4096 + 11008)))
        #expect(Self.figure(c["prefix-percent"], "trainable_params") == Double(2 * 32 * 4096 * 20))
        // LoRA r=4 on GPT-3's c_attn (12288 → 3 × 12288) in 96 layers
        #expect(Self.figure(c["gpt3-checkpoint"], "lora_params") == Double(96 * 4 * (12288 + 3 * 12288)))
        // GPT-3 175B: "175.0B" parameters (Brown et al. 2020, Table 2.1); its fp16 checkpoint ≈ 350 GB
        let full = try #require(Self.figure(c["gpt3-checkpoint"], "full_bytes"))
        #expect(abs(full / 2 / 175.0e9 - 1) < 0.01, "\(full / 2) parameters")
        // LLaMA 65B: 65.2B parameters (Touvron et al. 2023, Table 2)
        #expect(abs(Double(try Presets.resolve("llama-65b").totalParams) / 65.2e9 - 1) < 0.005)
    }

    /// The QLoRA paper fine-tuned LLaMA 65B on one 48 GB GPU with paged optimizers, and 7B
    /// QLoRA runs on 16 GB cards are routine: the model must not call either impossible.
    @Test func claimsSettledByRealRunsAreNotRefuted() throws {
        let c = try Self.claims()
        #expect(c["qlora-65b-48gb"]?.verdict != .doesNotHold, "\(c["qlora-65b-48gb"]?.computed ?? "")")
        #expect(c["qlora-7b-16gb"]?.verdict == .holds, "\(c["qlora-7b-16gb"]?.computed ?? "")")
        // 16 bytes per parameter of fp32 master weights, gradients and AdamW states alone exceed 100 GB for 6.74 B
        #expect(c["full-7b-over-100gb"]?.verdict != .doesNotHold)
        #expect((Self.figure(c["full-7b-over-100gb"], "mixed_bf16_bytes") ?? 0) > 16 * 6_738_415_616)
    }

    @Test func commandPrintsEveryClaimInEachFormat() throws {
        let json = try CLI.run(["claims", "--format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let list = try #require((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["claims"] as? [[String: Any]])
        #expect(list.count == 11)
        for c in list {
            #expect(["holds", "holds only if", "does not hold"].contains(c["verdict"] as? String ?? ""), "\(c)")
            if c["verdict"] as? String == "holds only if" { #expect(c["condition"] is String, "a conditional verdict names its condition: \(c)") }
            for (k, v) in c["figures"] as? [String: Any] ?? [:] {
                let x = (v as? Double) ?? -1
                #expect(x.isFinite && x >= 0, "\(c["id"]!) \(k) = \(v)")
            }
        }
        let table = try CLI.run(["claims"])
        #expect(table.status == 0 && table.stdout.contains("Conventions:") && table.stdout.components(separatedBy: "   verdict:").count == 12)
        let md = try CLI.run(["claims", "--format", "markdown"])
        #expect(md.status == 0 && md.stdout.split(separator: "\n").count == 13)
    }
}
