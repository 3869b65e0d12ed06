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
    /// `u`: the fraction of the datasheet's dense 16-bit peak that matmuls reach, on data-centre
    /// GPUs and on workstation and consumer cards (whose datasheet clocks are conservative and
    /// whose peak is low beside their memory bandwidth).
    public var matmulEfficiency: Double
    public var matmulEfficiencyWorkstation: Double
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
    public static let fittedRuns = 63

    /// The range of the actual step time as a multiple of the predicted one: the 10th and 90th
    /// percentiles of measured ÷ predicted step time over the runs each fit held out.
    public var timeRatioP10: Double
    public var timeRatioP90: Double

    /// The fraction of `gpu`'s peak matmuls reach: the segment's figure, scaled on data-centre
    /// GPUs whose maximum achievable matmul rate has been measured by the ratio of that
    /// rate's efficiency to the H100 SXM's.
    public func matmulEfficiency(_ gpu: GPUProfile) -> Double {
        guard gpu.segment == "datacenter" else { return matmulEfficiencyWorkstation }
        return matmulEfficiency * (Self.achievableMatmul[gpu.name] ?? Self.achievableMatmulReference) / Self.achievableMatmulReference
    }

    /// Maximum achievable bf16 matmul TFLOPS ÷ the datasheet's dense peak, measured by a
    /// search over matmul shapes (stas00/ml-engineering, compute/accelerator/README.md,
    /// "Maximum Achievable Matmul FLOPS comparison table", commit 744d01e1, 2026-08-22).
    /// H200 is quoted there as the H100's figure.
    public static let achievableMatmul: [String: Double] = [
        "A100 40GB SXM": 0.869, "A100 80GB SXM": 0.869, "A100 40GB PCIe": 0.811, "A100 80GB PCIe": 0.811,
        "H100 SXM": 0.803, "H200 SXM": 0.803, "B200": 0.776, "MI300X": 0.514,
    ]
    /// The H100 SXM's, which `matmulEfficiency` is stated against.
    public static let achievableMatmulReference = 0.803

    /// Seconds of one micro-batch, the optimizer step, exposed communication and the whole step.
    /// `runtime` gives the host link (offload) and the network past one node.
    public func seconds(_ w: StepWork, gpu: GPUProfile, precision: Precision, matmulEfficiency u: Double, compile: Bool,
                        runtime: RuntimeProfile)
        -> (microBatch: Double, optimizer: Double, exposedCommunication: Double, step: Double) {
        let peak16 = (gpu.denseTflops[precision.tflopsKey] ?? gpu.denseTflops["fp16"] ?? gpu.denseTflops["fp32"] ?? 1) * 1e12
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
        matmulEfficiency: 0.44, matmulEfficiencyWorkstation: 0.44, fp32Efficiency: 0.44,
        activationTraffic: 0, adapterTraffic: 1 / 0.8, dequantBytesPerWeight: 2.5 / 0.8, quantisedCallSeconds: 2.5e-4,
        blockPassSeconds: 0, stepFixedSeconds: 0, bandwidthEfficiency: 0.8,
        nvlinkEfficiency: 0.8, pcieEfficiency: 0.8, networkEfficiency: 0.8, communicationOverlap: 0.9, compileFactor: 1,
        timeRatioP10: 1, timeRatioP90: 1)

    /// hf-cuda's coefficients: the fit (PEFTCalibration's `TimeFit`) on all 63 usable runs of
    /// the throughput collection (Tests/PEFTPlanTests/Fixtures/published-throughput/runs.json:
    /// 42 published runs from four sources and 21 of our own H100 bursts), reproduced by
    /// `swift test --filter TimeFitTests`, which fails when these drift from the refit. The
    /// range is the 10th–90th percentile of measured ÷ predicted step time over the runs each
    /// source's fit held out (docs/time-model.md).
    public static let fitted = TimeCoefficients(
        matmulEfficiency: 0.5046, matmulEfficiencyWorkstation: 0.6661, fp32Efficiency: 0.44,
        activationTraffic: 2.836, adapterTraffic: 0.9222, dequantBytesPerWeight: 3.018, quantisedCallSeconds: 2.584e-4,
        blockPassSeconds: 9.939e-5, stepFixedSeconds: 0.04617, bandwidthEfficiency: 0.8,
        nvlinkEfficiency: 0.8, pcieEfficiency: 0.353, networkEfficiency: 0.8, communicationOverlap: 0.7481, compileFactor: 0.6958,
        timeRatioP10: 0.768, timeRatioP90: 1.404)
}
