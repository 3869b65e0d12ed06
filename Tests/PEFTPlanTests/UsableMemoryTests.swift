import Foundation
import PEFTTestSupport
import Testing
@testable import PEFTPlan

/// Each GPU profile's usable memory against the public figure it cites: what PyTorch (or CUDA's
/// deviceQuery, which prints the same `cudaDeviceProp.totalGlobalMem` that
/// `torch.cuda.get_device_properties(i).total_memory` reads) printed on that card. The figures
/// here are copied by hand from the sources, as printed there; docs/usable-memory.md lists them.
@Suite("Usable GPU memory against its sources")
struct UsableMemoryTests {
    /// A figure as its source printed it.
    enum Printed: CustomStringConvertible {
        /// bytes, exactly (deviceQuery's "(N bytes)", rocminfo's KB × 1024, our own record)
        case bytes(Int)
        /// `total_memory=NMB` in `_CudaDeviceProperties` (bytes // 2^20)
        case mib(Int)
        /// "total capacity of X GiB" in an out-of-memory message (two decimals)
        case gib(String)
        var description: String {
            switch self {
            case let .bytes(n): return "\(n) bytes"
            case let .mib(n): return "\(n) MiB"
            case let .gib(s): return "\(s) GiB"
            }
        }
    }

    struct Cited: CustomTestStringConvertible, Sendable {
        let profile: String
        let printed: Printed
        let url: String
        var testDescription: String { profile }
    }

    /// The public observations (basis "observed"): card, figure as printed, where.
    static let observed: [Cited] = [
        Cited(profile: "A10", printed: .gib("21.99"), url: "https://github.com/zai-org/CogVLM/issues/236"),
        Cited(profile: "A10G", printed: .mib(22723), url: "https://github.com/shylane/YoloV3"),
        Cited(profile: "A40", printed: .bytes(47_608_692_736),
              url: "https://github.com/thamada/nvidia-smi/blob/5f6b772848f86e938c96cb7b6ff46d11f4957cba/nvsim/A40x10_deviceQuery.py"),
        Cited(profile: "H100 NVL", printed: .bytes(99_861_594_112),
              url: "https://github.com/thamada/nvidia-smi/blob/b09ef139265ffc7e3c78006346981de8e4d70499/gls/H100NVLx2_deviceQuery.py"),
        Cited(profile: "H100 NVL", printed: .gib("93.00"), url: "https://github.com/ali-vilab/VACE/issues/56"),
        Cited(profile: "A100 40GB PCIe", printed: .bytes(42_285_268_992), url: "https://github.com/WFU-HPC/deac-docs"),
        Cited(profile: "A100 40GB SXM", printed: .bytes(42_298_834_944), url: "https://github.com/bottlerocket-os/bottlerocket/pull/3873"),
        Cited(profile: "A100 80GB PCIe", printed: .bytes(84_974_239_744), url: "https://github.com/WFU-HPC/deac-docs"),
        Cited(profile: "A100 80GB SXM", printed: .bytes(84_987_740_160), url: "https://github.com/maximilianmbeck/vlstm_cuda"),
        Cited(profile: "B200", printed: .mib(182_642), url: "https://github.com/ai-bot-pro/achatbot"),
        Cited(profile: "H200 SXM", printed: .mib(143_155), url: "https://github.com/stas00/ml-engineering"),
        Cited(profile: "L4", printed: .bytes(23_612_293_120), url: "https://github.com/kamelth/COE506_Project"),
        Cited(profile: "L40", printed: .gib("44.40"), url: "https://github.com/QwenLM/Qwen3-VL/issues/2097"),
        Cited(profile: "L40S", printed: .gib("44.42"), url: "https://github.com/stepfun-ai/Step-Video-T2V/issues/8"),
        Cited(profile: "MI300X", printed: .bytes(201_310_208 * 1024), url: "https://github.com/ROCm/vllm/issues/397"),
        Cited(profile: "MI300X", printed: .gib("191.98"), url: "https://github.com/vllm-project/vllm/issues/7951"),
        Cited(profile: "T4", printed: .gib("14.56"), url: "https://github.com/Zheng-Chong/CatVTON/issues/133"),
        Cited(profile: "V100 16GB SXM2", printed: .mib(16130), url: "https://github.com/ultralytics/yolov3/blob/0037254bf266285c122649339c898dc7f330255d/README.md"),
        Cited(profile: "V100 32GB SXM2", printed: .bytes(34_089_730_048), url: "https://github.com/infn-esc/esc21"),
        Cited(profile: "RTX 3060 12GB", printed: .gib("11.75"), url: "https://github.com/Kunhao-Liu/StyleGaussian/issues/12"),
        Cited(profile: "RTX 3090", printed: .gib("23.56"), url: "https://github.com/noonghunna/club-3090/issues/58"),
        Cited(profile: "RTX 4080", printed: .mib(16049), url: "https://github.com/brainglobe/brainglobe.github.io"),
        Cited(profile: "RTX 4090", printed: .gib("23.49"), url: "https://github.com/Sautenich/UAV-VLA/issues/7"),
        Cited(profile: "RTX 5090", printed: .gib("31.36"), url: "https://github.com/TrajectoryCrafter/TrajectoryCrafter/issues/20"),
        Cited(profile: "RTX 6000 Ada", printed: .gib("44.43"), url: "https://github.com/DINGYANB/MTVCrafter/issues/21"),
        Cited(profile: "GH200", printed: .gib("94.88"), url: "https://github.com/Lightning-AI/litgpt/issues/1892"),
        Cited(profile: "H20", printed: .mib(97285),
              url: "https://github.com/alipay/PainlessInferenceAcceleration/blob/2dc6e96a8878635305dcf40b4c7321e58bbe6877/flood/flood/ops/seg_attn.py"),
        Cited(profile: "MI355X", printed: .bytes(301_973_504 * 1024), url: "https://github.com/ROCm/ATOM/issues/1400"),
        Cited(profile: "A30", printed: .gib("23.53"), url: "https://github.com/google/RB-Modulation/issues/5"),
        Cited(profile: "RTX 4000 Ada", printed: .bytes(21_125_267_456),
              url: "https://github.com/thamada/nvidia-smi/blob/03fbe6e68c0bb4c28b72d5da786a9712a33cf408/nvsim/RTX4000Ada_deviceQuery.py"),
        Cited(profile: "RTX A4000", printed: .gib("15.61"), url: "https://github.com/DengKaiCQ/VGGT-Long/issues/6"),
        Cited(profile: "RTX PRO 6000 Blackwell", printed: .gib("94.97"), url: "https://github.com/antirez/ds4/issues/431"),
        Cited(profile: "RTX 5060 Ti 16GB", printed: .bytes(16_617_897_984),
              url: "https://github.com/Jumperkables/cuda-benchmarking/blob/76861cac2517f94d10bdf106589021991464bbda/00_deviceQuery/README.md"),
        Cited(profile: "RTX A6000", printed: .mib(48676), url: "https://github.com/pytorch/ao/blob/2a18357813a661f9db05459e15af7a4ea0488997/torchao/prototype/hqq/README.md"),
    ]

    static func profile(_ name: String) throws -> GPUProfile {
        try #require(try HardwareCatalog.bundled().first { $0.name == name }, "no profile \(name)")
    }

    static func agrees(_ bytes: Int, _ printed: Printed) -> Bool {
        switch printed {
        case let .bytes(n): return bytes == n
        case let .mib(n): return bytes >> 20 == n
        case let .gib(s): return String(format: "%.2f", Double(bytes) / Double(1 << 30)) == s
        }
    }

    @Test("the usable bytes agree with the cited public figure", arguments: observed)
    func cited(_ c: Cited) throws {
        let p = try Self.profile(c.profile)
        let u = try #require(p.usableMemory, "\(c.profile) has no usable figure")
        #expect(u.basis == .observed)
        #expect(Self.agrees(u.bytes, c.printed), "\(c.profile): profile \(u.bytes) bytes, source prints \(c.printed)")
        #expect(u.source.contains(c.url), "\(c.profile)'s source does not cite \(c.url)")
    }

    @Test func enoughProfilesCiteAnObservation() {
        #expect(Set(Self.observed.map(\.profile)).count >= 15)
    }

    /// Our own H100 SXM bursts recorded the device total torch reported (scripts/torch_bursts.py).
    @Test func measuredH100() throws {
        let p = try Self.profile("H100 SXM")
        let u = try #require(p.usableMemory)
        #expect(u.basis == .measured)
        for file in ["cuda-llama-3.1-8b.json", "cuda-llama-3.2-1b.json"] {
            let url = repoRoot.appendingPathComponent("reports/calibration/\(file)")
            let j = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            let env = try #require(j["environment"] as? [String: Any])
            #expect(env["gpu"] as? String == "NVIDIA H100 80GB HBM3")
            #expect((env["gpu_memory_bytes"] as? NSNumber)?.intValue == u.bytes, "\(file)")
        }
        #expect(u.source.contains("reports/calibration/"))
    }

    @Test func everyBundledProfileSaysWhatIsUsable() throws {
        for p in try HardwareCatalog.bundled() {
            let u = try #require(p.usableMemory, "\(p.name) has no usableMemory")
            #expect(u.bytes > p.memoryBytes / 2 && u.bytes <= p.memoryBytes, "\(p.name): \(u.bytes) of \(p.memoryBytes)")
            #expect(u.source.count >= 40, "\(p.name): say where the figure comes from")
            if u.basis == .derived { #expect(u.source.contains("https://") || u.source.contains("measured"), "\(p.name): a derived figure names what it is derived from") }
        }
    }

    /// A plan between the usable and the nominal size does not fit: verdicts, headroom and
    /// the searched limits all use the usable figure.
    @Test func verdictsUseTheUsableFigure() throws {
        let gpu = try Self.profile("RTX 4090")
        let usable = try #require(gpu.usableMemory?.bytes)
        let ctx = try PlanContext(arch: Presets.resolve("llama-3.2-1b"), method: .full, methodOptions: MethodOptions(), training: TrainingOptions())
        // the longest sequence at micro-batch 1 that fits the nominal 24 GiB
        let nominalSeq = Planner.largest(upTo: 1 << 20) { ctx.deviceTotal(batch: 1, seq: $0) <= gpu.memoryBytes }
        let m = ctx.memory(batch: 1, seq: nominalSeq)
        try #require(m.deviceTotal > usable, "no sequence lands between the usable and the nominal size")
        let v = Planner.verdict(ctx, memory: m, gpu: gpu)
        #expect(!v.fits)
        #expect(v.shortfallBytes == m.deviceTotal - usable)
        #expect(v.maxSeq < nominalSeq)
        #expect(ctx.deviceTotal(batch: 1, seq: v.maxSeq) <= usable && ctx.deviceTotal(batch: 1, seq: v.maxSeq + 1) > usable)
    }

    @Test func gpusJSONGivesUsableBytesAndSource() throws {
        let r = try CLI.run(["gpus", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        let bundled = try HardwareCatalog.bundled()
        #expect(rows.count == bundled.count)
        for row in rows {
            let name = try #require(row["name"] as? String)
            let p = try #require(bundled.first { $0.name == name })
            #expect((row["usable_memory_bytes"] as? NSNumber)?.intValue == p.usableMemory?.bytes, "\(name)")
            #expect(row["usable_memory_source"] as? String == p.usableMemory?.source, "\(name)")
            #expect(row["usable_memory_basis"] as? String == p.usableMemory?.basis.rawValue, "\(name)")
        }
    }

    @Test func tableStatesTheUsableFigure() throws {
        let r = try CLI.run(["--model", "7b", "--gpu", "RTX 4090", "--method", "qlora"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("RTX 4090 (24 GB card, 23.49 GiB usable)"), "\(r.stdout)")
    }

    /// A hand-written profile without a usable figure plans against its nominal size and says so.
    @Test func profileWithoutUsableFigure() throws {
        let src = try HardwareCatalog.directory.appendingPathComponent("l4.json")
        var j = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: src)) as? [String: Any])
        j.removeValue(forKey: "usableMemory")
        j["name"] = "Old L4"
        let file = writeConfig(String(decoding: try JSONSerialization.data(withJSONObject: j), as: UTF8.self), name: "old-l4.json")
        let p = try HardwareCatalog.load(path: file)
        #expect(p.usableMemoryBytes == p.memoryBytes)
        let r = try CLI.run(["--model", "7b", "--gpu", file, "--method", "qlora"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("no usable memory figure in the profile of Old L4"))
    }
}
