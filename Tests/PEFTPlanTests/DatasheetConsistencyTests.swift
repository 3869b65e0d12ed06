import Foundation
import Testing
@testable import PEFTPlan

/// Each GPU profile's datasheet figures against what the card itself reports (issue 16): the
/// dense 16-bit peak must follow from the card's SM (or CU) count, the dense FLOPs one SM of
/// its architecture does per clock, and a clock no higher than the card's own maximum; the
/// memory bandwidth from its memory clock and bus width. A sparse figure taken for a dense
/// one, GeForce's FP16-accumulate rate taken for its FP32-accumulate one, or a bandwidth in
/// the wrong unit fails. The device figures are copied by hand from the cited prints
/// (CUDA's deviceQuery, rocminfo, OpenCL, PyTorch's device properties).
@Suite("Hardware profiles against their datasheets and device reports")
struct DatasheetConsistencyTests {
    /// What a card printed about itself.
    struct DeviceReport: CustomTestStringConvertible, Sendable {
        let profile: String
        /// SMs (NVIDIA) or compute units (AMD)
        let units: Int
        /// maximum SM / engine clock, MHz
        let maxClockMHz: Double?
        /// memory clock as deviceQuery prints it, MHz (two transfers per clock)
        let memoryClockMHz: Double?
        let busBits: Int?
        let source: String
        var testDescription: String { profile }
    }

    static let thamada = "https://github.com/thamada/nvidia-smi/blob/c4c8a463a61e4ac67e3d7956da104b302760a498/"
    static let gls = "https://github.com/thamada/gls/blob/e20f22d0eec076b6eeed628fdb1312d84a6fb663/"

    static let reports: [DeviceReport] = [
        DeviceReport(profile: "A10", units: 72, maxClockMHz: 1695, memoryClockMHz: 6251, busBits: 384, source: gls + "gls/A10_deviceQuery.py"),
        DeviceReport(profile: "A40", units: 84, maxClockMHz: 1740, memoryClockMHz: 7251, busBits: 384, source: thamada + "gls/A40x10_deviceQuery.py"),
        DeviceReport(profile: "A100 40GB PCIe", units: 108, maxClockMHz: 1410, memoryClockMHz: 1215, busBits: 5120,
                     source: "https://github.com/isalva2/parallel-processing/blob/d28906c8e72e1291262dc19b7f68542441c977c5/CUDA/README.md"),
        DeviceReport(profile: "A100 40GB SXM", units: 108, maxClockMHz: 1410, memoryClockMHz: 1215, busBits: 5120,
                     source: "https://github.com/bottlerocket-os/bottlerocket/pull/3873"),
        DeviceReport(profile: "A100 80GB SXM", units: 108, maxClockMHz: 1410, memoryClockMHz: 1593, busBits: 5120, source: thamada + "gls/A100SXMx4_deviceQuery.py"),
        DeviceReport(profile: "H100 SXM", units: 132, maxClockMHz: 1980, memoryClockMHz: 2619, busBits: 5120, source: thamada + "gls/H100SXMx8_deviceQuery.py"),
        DeviceReport(profile: "H100 NVL", units: 132, maxClockMHz: 1785, memoryClockMHz: 2619, busBits: 6144, source: thamada + "gls/H100NVLx2_deviceQuery.py"),
        DeviceReport(profile: "H200 SXM", units: 132, maxClockMHz: 1980, memoryClockMHz: 3201, busBits: 6144, source: gls + "gls/H200_deviceQuery.py"),
        DeviceReport(profile: "GH200", units: 132, maxClockMHz: 1980, memoryClockMHz: nil, busBits: nil,
                     source: "https://github.com/mredenti/PowerCapping/blob/f57c11cb406bf98084e6f92e7a0e1193d55462e3/configuration/OpenCL_benchmark.md"),
        DeviceReport(profile: "L4", units: 58, maxClockMHz: 2040, memoryClockMHz: 6251, busBits: 192, source: thamada + "gls/L4_deviceQuery.py"),
        DeviceReport(profile: "L40S", units: 142, maxClockMHz: 2520, memoryClockMHz: 9001, busBits: 384, source: thamada + "gls/L40S_deviceQuery.py"),
        DeviceReport(profile: "MI300X", units: 304, maxClockMHz: 2100, memoryClockMHz: nil, busBits: 8192, source: thamada + "gls/MI300X_deviceQuery.py"),
        DeviceReport(profile: "MI355X", units: 256, maxClockMHz: 2400, memoryClockMHz: nil, busBits: nil, source: "https://github.com/ROCm/ATOM/issues/1400"),
        DeviceReport(profile: "RTX 3090", units: 82, maxClockMHz: 1695, memoryClockMHz: 9751, busBits: 384, source: thamada + "gls/RTX3090_deviceQuery.py"),
        DeviceReport(profile: "RTX 4060 Ti 16GB", units: 34, maxClockMHz: 2610, memoryClockMHz: 9001, busBits: 128, source: thamada + "gls/RTX4060Ti_deviceQuery.py"),
        DeviceReport(profile: "RTX 4090", units: 128, maxClockMHz: 2520, memoryClockMHz: 10501, busBits: 384, source: thamada + "gls/RTX4090_deviceQuery.py"),
        DeviceReport(profile: "RTX 5090", units: 170, maxClockMHz: 2407, memoryClockMHz: 14001, busBits: 512, source: gls + "gls/RTX5090_deviceQuery.py"),
        DeviceReport(profile: "RTX 6000 Ada", units: 142, maxClockMHz: 2505, memoryClockMHz: 10001, busBits: 384, source: thamada + "gls/RTX6000Ada_x8_deviceQuery.py"),
        DeviceReport(profile: "RTX A6000", units: 84, maxClockMHz: 1800, memoryClockMHz: 8001, busBits: 384, source: gls + "gls/RTX_A6000_x9_deviceQuery.py"),
        DeviceReport(profile: "RTX 4000 Ada", units: 48, maxClockMHz: 2175, memoryClockMHz: 9001, busBits: 160,
                     source: "https://github.com/thamada/nvidia-smi/blob/03fbe6e68c0bb4c28b72d5da786a9712a33cf408/nvsim/RTX4000Ada_deviceQuery.py"),
        DeviceReport(profile: "RTX 5060 Ti 16GB", units: 36, maxClockMHz: nil, memoryClockMHz: nil, busBits: 128,
                     source: "https://github.com/Jumperkables/cuda-benchmarking/blob/76861cac2517f94d10bdf106589021991464bbda/00_deviceQuery/README.md"),
        DeviceReport(profile: "V100 16GB SXM2", units: 80, maxClockMHz: 1530, memoryClockMHz: 877, busBits: 4096, source: gls + "gls/V100_x8_deviceQuery.py"),
        DeviceReport(profile: "V100 32GB SXM2", units: 80, maxClockMHz: 1530, memoryClockMHz: 877, busBits: 4096,
                     source: "https://github.com/felicepantaleo/gpu_training/blob/1f7db1db4900cb50139af30f2264cacb54b1f98b/README.md"),
    ]

    /// Dense 16-bit matrix FLOPs one SM (CU) does per clock, with the accumulate the profile
    /// states: tensor cores per SM × FMAs per tensor core per clock × 2. Volta and Turing: 8 × 64
    /// (NVIDIA Volta and Turing architecture whitepapers); GA100: 4 × 256, Hopper: 4 × 512, CDNA 3:
    /// 4 matrix cores × 256, CDNA 4: 4 × 512 (stas00/ml-engineering compute/accelerator/README.md
    /// @744d01e18b79512572f64a6bbd8b5f4a725203a7, "How to calculate theoretical TFLOPS"); GA10x
    /// and Ada: 4 × 128 with FP32 accumulate on professional and data-centre parts, half that
    /// on GeForce (NVIDIA Ampere GA102 and Ada Lovelace whitepapers' FP16-with-FP32-accumulate
    /// rows); Blackwell B200/B300: 4 × 1024; consumer and workstation Blackwell as Ada.
    static func flopsPerClock(_ p: GPUProfile) -> Double? {
        let geforce = p.segment == "consumer"
        switch p.architecture {
        case "Volta", "Turing": return 1024
        case "Ampere": return p.name.hasPrefix("A100") || p.name == "A30" ? 2048 : (geforce ? 512 : 1024)
        case "Ada Lovelace": return geforce ? 512 : 1024
        case "Hopper": return 4096
        case "Blackwell", "Blackwell Ultra": return p.segment == "datacenter" ? 8192 : (geforce ? 512 : 1024)
        case "CDNA 3": return 2048
        case "CDNA 4": return 4096
        default: return nil
        }
    }

    /// Profiles whose peak is not SM count × clock × the architecture's rate, and why.
    static let capped: [String: String] = [
        "H20": "its tensor throughput is capped in firmware far below what 78 Hopper SMs run (148 of about 630 TFLOPS)",
    ]

    /// Profiles whose peak was itself worked out from the report below (SMs × clock), so the
    /// peak check would be circular: they are checked for bandwidth only.
    static let derivedFromTheReport: Set<String> = ["RTX 4000 Ada", "RTX 5060 Ti 16GB"]

    @Test("the dense 16-bit peak follows from the card's SMs and a clock it reaches", arguments: reports.filter { !derivedFromTheReport.contains($0.profile) })
    func peakFromUnits(_ r: DeviceReport) throws {
        let p = try #require(try HardwareCatalog.bundled().first { $0.name == r.profile }, "no profile \(r.profile)")
        let peak = try #require(p.denseTflops["bf16"] ?? p.denseTflops["fp16"])
        let rate = try #require(Self.flopsPerClock(p), "\(p.name): architecture \(p.architecture) has no rate")
        // the clock the datasheet's peak implies
        let implied = peak * 1e12 / (Double(r.units) * rate) / 1e6
        if let top = r.maxClockMHz {
            #expect(implied <= top * 1.02, "\(p.name): \(peak) TFLOPS needs \(Int(implied)) MHz, the card reports at most \(Int(top)) (\(r.source))")
            #expect(implied >= top * 0.6, "\(p.name): \(peak) TFLOPS implies only \(Int(implied)) MHz of \(Int(top))")
        } else {
            // no clock printed: the implied clock must be one such cards run at
            #expect((1000...3200).contains(implied), "\(p.name): \(peak) TFLOPS implies \(Int(implied)) MHz")
        }
    }

    @Test("the memory bandwidth follows from the card's memory clock and bus width", arguments: reports.filter { $0.memoryClockMHz != nil && $0.busBits != nil })
    func bandwidthFromBus(_ r: DeviceReport) throws {
        let p = try #require(try HardwareCatalog.bundled().first { $0.name == r.profile })
        let printed = r.memoryClockMHz! * 1e6 * 2 * Double(r.busBits!) / 8
        // datasheets round and some quote a lower memory clock than the card runs: within 5%
        #expect(abs(p.memoryBandwidthBytesPerSecond / printed - 1) < 0.05,
                "\(p.name): profile \(p.memoryBandwidthBytesPerSecond / 1e9) GB/s, card \(printed / 1e9) GB/s (\(r.source))")
    }

    @Test("every profile's formats keep the vendor's ratios")
    func ratios() throws {
        for p in try HardwareCatalog.bundled() {
            let t = p.denseTflops
            guard let half = t["bf16"] ?? t["fp16"] else { Issue.record("\(p.name): no 16-bit figure"); continue }
            if let a = t["bf16"], let b = t["fp16"] { #expect(a == b, "\(p.name): bf16 \(a) ≠ fp16 \(b)") }
            // within 3%: the L40S datasheet prints FP8 733 dense beside BF16 362.05
            if let f8 = t["fp8"] { #expect(abs(f8 / half - 2) < 0.06, "\(p.name): fp8 \(f8) is not twice the 16-bit \(half)") }
            if let tf = t["tf32"], p.vendor == "NVIDIA", p.segment != "consumer", !["Volta", "Turing"].contains(p.architecture) {
                #expect(abs(tf / half - 0.5) < 0.03, "\(p.name): tf32 \(tf) is not half the 16-bit \(half)")
            }
            if let i8 = t["int8"] {
                let k = i8 / half
                #expect(abs(k - 2) < 0.06 || abs(k - 4) < 0.12, "\(p.name): int8 \(i8) is neither 2× nor 4× the 16-bit \(half)")
            }
            if let f32 = t["fp32"] { #expect(f32 < half, "\(p.name): fp32 \(f32) above the 16-bit \(half)") }
        }
    }

    @Test("the device reports cover the profiles issue 16 added, and name their source")
    func coverage() throws {
        let bundled = Set(try HardwareCatalog.bundled().map(\.name))
        for r in Self.reports {
            #expect(bundled.contains(r.profile), "\(r.profile) is not a profile")
            #expect(r.source.hasPrefix("https://github.com/"), "\(r.profile): cite the print")
        }
        let reported = Set(Self.reports.map(\.profile))
        #expect(reported.count >= 22)
        for name in ["A40", "H100 NVL", "GH200", "MI355X", "RTX 4000 Ada", "RTX 5060 Ti 16GB"] { #expect(reported.contains(name)) }
        #expect(Self.derivedFromTheReport.isSubset(of: reported))
        for (name, why) in Self.capped { #expect(bundled.contains(name) && !reported.contains(name) && why.count > 20) }
    }

    /// Every GPU the time model has a measured matmul rate for is a profile, and the rate is
    /// below twice and above a third of its datasheet peak (a measurement, not a peak, and of
    /// the right card).
    @Test func measuredMatmulRatesNameProfiles() throws {
        let bundled = try HardwareCatalog.bundled()
        for (name, tflops) in TimeCoefficients.achievableMatmulTflops {
            let p = try #require(bundled.first { $0.name == name }, "\(name) is not a profile")
            let peak = try #require(p.denseTflops["bf16"] ?? p.denseTflops["fp16"])
            #expect(tflops < 2 * peak && tflops > peak / 3, "\(name): \(tflops) of \(peak)")
        }
    }
}
