import Foundation

/// The coefficients that turn a step's work (``StepWork``) into seconds on one GPU. Each is
/// named for what it stands for; `hf-cuda`'s values and where they were fitted are in
/// ``TimeCoefficients/fitted`` and `docs/time-model.md`.
///
/// seconds(micro-batch) = k_compile · [ F₁₆ / (peak₁₆ · u) + F₃₂ / (peak₃₂ · u₃₂)
///     + (c_act · activation bytes + c_lora · adapter bytes + b_dq · dequantised weights) / bandwidth
///     + calls₄ · t_call + block passes · t_block ]
///   + parameter-offload transfer not hidden behind that compute
/// seconds(step) = micro-batches · seconds(micro-batch) + optimizer + exposed communication + t_step
public struct TimeCoefficients: Codable, Equatable, Sendable {
    /// `u`: the fraction of the GPU's measured maximum achievable matmul rate
    /// (``achievableMatmulTflops``) that training's matmuls reach, the same on every GPU; a GPU
    /// without a measurement is taken to reach the H100 SXM's fraction of its peak (data-centre
    /// and workstation cards) or the RTX 4090's (consumer cards) (``achievableFraction(_:)``).
    public var matmulEfficiency: Double
    /// A fraction of the datasheet's dense 16-bit peak that replaces `u × achievable fraction` on
    /// every GPU: `--mfu`, or a calibration profile's fit made on one GPU.
    public var peakFraction: Double?
    /// `u₃₂`: the same for matmuls run in fp32 (no autocast).
    public var fp32Efficiency: Double
    /// `c_act`: passes over the saved activations and logits the elementwise work makes, as
    /// a multiple of their bytes (forward writes them, backward reads them and writes their
    /// gradients; norms, activations, rotary, softmax and the loss are memory-bound).
    public var activationTraffic: Double
    /// `c_lora`: a multiple of LoRA's modelled extra bytes (PEFT's fp32 adapter path).
    public var adapterTraffic: Double
    /// `b_dq`: bytes moved per 4-bit weight dequantised (a perfect kernel moves ½ + 2).
    public var dequantBytesPerWeight: Double
    /// `t_call`: fixed seconds per 4-bit matmul call (bitsandbytes launches several kernels).
    public var quantisedCallSeconds: Double
    /// `t_block`: fixed seconds per transformer block per pass (kernel launches and host work
    /// the GPU waits on when the block's kernels are short).
    public var blockPassSeconds: Double
    /// `t_step`: fixed seconds per optimizer step (scheduler, logging, the loss's sync).
    public var stepFixedSeconds: Double
    /// Fraction of the memory bandwidth memory-bound work reaches (optimizer step).
    public var bandwidthEfficiency: Double
    /// Fraction of the link's one-way bandwidth a ring collective reaches, over NVLink-class
    /// links, over PCIe, and across nodes.
    public var nvlinkEfficiency: Double
    public var pcieEfficiency: Double
    public var networkEfficiency: Double
    /// Fraction of the micro-batches' compute that collectives and offload transfers overlap.
    public var communicationOverlap: Double
    /// `k_compile`: the compute time's multiple under `torch.compile`.
    public var compileFactor: Double

    /// Runs the shipped coefficients were fitted on.
    public static let fittedRuns = 68

    /// The range of the actual step time as a multiple of the predicted one: the 10th and 90th
    /// percentiles of measured ÷ predicted step time over the runs each fit held out.
    public var timeRatioP10: Double
    public var timeRatioP90: Double

    /// The fraction of `gpu`'s dense 16-bit peak matmuls reach.
    public func matmulEfficiency(_ gpu: GPUProfile) -> Double {
        peakFraction ?? matmulEfficiency * Self.achievableFraction(gpu)
    }

    /// Measured maximum achievable bf16 matmul TFLOPS ÷ the profile's dense bf16 (or fp16) peak;
    /// for a GPU without a measurement, the H100 SXM's on data-centre and workstation cards and
    /// the RTX 4090's on consumer cards.
    public static func achievableFraction(_ gpu: GPUProfile) -> Double {
        let peak = gpu.denseTflops["bf16"] ?? gpu.denseTflops["fp16"] ?? 0
        if let m = achievableMatmulTflops[gpu.name], peak > 0 { return m / peak }
        return gpu.segment == "consumer" ? consumerReference : datacenterReference
    }
    /// The H100 SXM's and the RTX 4090's measured rate over their datasheet peaks (989.5 and
    /// 165.2 dense bf16 TFLOPS).
    static let datacenterReference = achievableMatmulTflops["H100 SXM"]! / 989.5
    static let consumerReference = achievableMatmulTflops["RTX 4090"]! / 165.2

    /// Maximum achievable bf16 matmul TFLOPS measured by a search over matmul shapes, per GPU
    /// profile. Data-centre GPUs: stas00/ml-engineering, compute/accelerator/README.md, "Maximum
    /// Achievable Matmul FLOPS comparison table" (mean of 100 iterations at the best shape),
    /// commit 744d01e18b79512572f64a6bbd8b5f4a725203a7, 2026-08-22; H200 is stated there to be
    /// the H100's. Other cards: zzc0721/torch-performance-test-data, database.md (the best
    /// TFLOPS over square bf16 matmuls of 1024–10240, 30 iterations each, test.py), commit
    /// 9d82827637262c4351e3f9483f96b8cff57a601f, 2026-01-12: the median of the rows for that
    /// card (24 GB RTX 4090: 170.06, 173.31, 162.39, 163.09, 165.71, 164.81; RTX 3090: 76.34,
    /// 76.68, 76.58; RTX 5090 desktop: 236.03, 242.18, 221.65, 240.05; one row each for the
    /// others). Its H100 rows (797.51, 783.66) and A100 SXM4 80GB row (264.53) agree with
    /// stas00's 794.5 and 271.2 within 3%. The RTX PRO 6000 Blackwell's is the table's Workstation
    /// row (417.98; its Server Edition row 409.42); the project's issues #160 and #161 report
    /// 368.43 (Workstation) and 417.34 (Server), a spread of 12%.
    public static let achievableMatmulTflops: [String: Double] = [
        "A100 40GB SXM": 271.2, "A100 80GB SXM": 271.2, "A100 40GB PCIe": 252.9, "A100 80GB PCIe": 252.9,
        "H100 SXM": 794.5, "H200 SXM": 794.5, "GH200": 828.6, "B200": 1745.0, "B300": 1769.0,
        "MI300X": 668.4, "MI325X": 784.9, "MI355X": 1565.0,
        "H100 PCIe": 495.93, "RTX 4090": 165.26, "RTX 3090": 76.58, "RTX 5090": 238.04, "RTX A6000": 123.34,
        "RTX PRO 6000 Blackwell": 417.98, "RTX 4060 Ti 16GB": 42.65,
    ]

    /// The GPU's dense matmul peak in FLOP/s for `precision`'s 16-bit (or fp32) rate, falling back
    /// to fp16 and then fp32 where the datasheet lists no such rate.
    public static func peakFlops(_ gpu: GPUProfile, _ precision: Precision) -> Double {
        (gpu.denseTflops[precision.tflopsKey] ?? gpu.denseTflops["fp16"] ?? gpu.denseTflops["fp32"] ?? 1) * 1e12
    }

    /// Seconds of one micro-batch, the optimizer step, exposed communication and the whole step.
    /// `runtime` gives the host link (offload) and the network past one node.
    public func seconds(_ w: StepWork, gpu: GPUProfile, precision: Precision, matmulEfficiency u: Double, compile: Bool,
                        runtime: RuntimeProfile)
        -> (microBatch: Double, optimizer: Double, exposedCommunication: Double, step: Double) {
        let peak16 = Self.peakFlops(gpu, precision)
        let peak32 = (gpu.denseTflops["fp32"] ?? 1) * 1e12
        let bandwidth = gpu.memoryBandwidthBytesPerSecond
        // fp32 training runs its matmuls at the fp32 rate with the same efficiency.
        let u32 = precision == .fp32 ? u : fp32Efficiency
        var compute = w.matmul16 / (peak16 * u) + w.matmul32 / (peak32 * u32)
            + (activationTraffic * w.activationBytes + adapterTraffic * w.adapterBytes + dequantBytesPerWeight * w.dequantWeights) / bandwidth
            + w.quantisedCalls * quantisedCallSeconds + w.blockPasses * blockPassSeconds
        if compile { compute *= compileFactor }
        // Offloaded parameters are prefetched on their own stream: what exceeds the compute shows.
        let fetch = w.offloadBytesPerMicroBatch / runtime.hostLinkBytesPerSecond
        let micro = compute + max(0, fetch - communicationOverlap * compute)
            + w.exposedHostBytesPerMicroBatch / runtime.hostLinkBytesPerSecond
        let optimizer = w.hostOptimizerSeconds + w.optimizerBytes / (bandwidth * bandwidthEfficiency)
        var link = 0.0
        switch w.link {
        case .none: break
        case .nvlink: link = gpu.interconnect.bytesPerSecond / 2 * nvlinkEfficiency
        case .pcie: link = gpu.interconnect.bytesPerSecond / 2 * pcieEfficiency
        case .network: link = min(gpu.interconnect.bytesPerSecond / 2, runtime.networkBytesPerSecondPerGPU) * networkEfficiency
        }
        let comm = link > 0 ? w.collectiveBytes / link : 0
        // Communication runs on its own stream; what exceeds the compute it overlaps shows.
        let exposed = max(0, comm - w.microBatches * micro * communicationOverlap)
        let step = w.microBatches * micro + optimizer + exposed + stepFixedSeconds
        return (micro, optimizer, exposed, step)
    }

    /// The values before the fit: one H100's measured efficiencies and the physical
    /// defaults the planner used through issue 15.
    public static let unfitted = TimeCoefficients(
        matmulEfficiency: 0.44 / datacenterReference, peakFraction: nil, fp32Efficiency: 0.44,
        activationTraffic: 0, adapterTraffic: 1 / 0.8, dequantBytesPerWeight: 2.5 / 0.8, quantisedCallSeconds: 2.5e-4,
        blockPassSeconds: 0, stepFixedSeconds: 0, bandwidthEfficiency: 0.8,
        nvlinkEfficiency: 0.8, pcieEfficiency: 0.8, networkEfficiency: 0.8, communicationOverlap: 0.9, compileFactor: 1,
        timeRatioP10: 1, timeRatioP90: 1)

    /// hf-cuda's coefficients: the fit (PEFTCalibration's `TimeFit`) on all 68 usable runs of
    /// the throughput collection (Tests/PEFTPlanTests/Fixtures/published-throughput/runs.json:
    /// 47 published runs from five sources and 21 of our own H100 bursts), reproduced by
    /// `swift test --filter TimeFitTests`, which fails when these drift from the refit. The
    /// range is the 10th–90th percentile of measured ÷ predicted step time over the runs each
    /// source's fit held out (docs/time-model.md).
    public static let fitted = TimeCoefficients(
        matmulEfficiency: 0.6607, peakFraction: nil, fp32Efficiency: 0.44,
        activationTraffic: 2.973, adapterTraffic: 0.994, dequantBytesPerWeight: 3.01, quantisedCallSeconds: 2.593e-4,
        blockPassSeconds: 9.937e-5, stepFixedSeconds: 0.04703, bandwidthEfficiency: 0.8,
        nvlinkEfficiency: 0.8, pcieEfficiency: 0.5, networkEfficiency: 0.8, communicationOverlap: 0.8, compileFactor: 0.6978,
        timeRatioP10: 0.871, timeRatioP90: 1.137)
}
