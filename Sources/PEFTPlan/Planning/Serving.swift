import Foundation

/// Serving many LoRA adapters on one base model, as multi-adapter servers hold them
/// (vLLM's `enable_lora`, S-LoRA, LoRAX): one copy of the base weights, every adapter's
/// A and B matrices in the model dtype, and a KV cache for the requests in flight.
public struct ServeRequest: Sendable {
    public var arch: Architecture
    public var adapters: Int
    /// Tokens of context per request (prompt + generated).
    public var context: Int
    /// Requests served at once.
    public var concurrency: Int
    public var methodOptions: MethodOptions
    /// Base weights in 4-bit (a QLoRA-trained adapter served on the quantised base).
    public var quantisedBase: Bool
    public var gpus: [GPUProfile]
    public var runtime: RuntimeProfile

    public init(arch: Architecture, adapters: Int, context: Int, concurrency: Int, methodOptions: MethodOptions,
                quantisedBase: Bool, gpus: [GPUProfile], runtime: RuntimeProfile = .hfCUDA) {
        self.arch = arch
        self.adapters = adapters
        self.context = context
        self.concurrency = concurrency
        self.methodOptions = methodOptions
        self.quantisedBase = quantisedBase
        self.gpus = gpus
        self.runtime = runtime
    }
}

public struct ServeMemory: Equatable, Sendable {
    public var baseWeights = 0
    public var adapterWeights = 0
    public var kvCache = 0
    /// One prefill chunk's activations and the sampled tokens' logits.
    public var workspace = 0
    public var runtimeOverhead = 0
    public var total = 0
    /// KV-cache bytes of one token of one request (every layer, K and V).
    public var kvBytesPerToken = 0
}

public struct ServeVerdict: Sendable {
    public var gpu: GPUProfile
    public var fits: Bool
    /// Requests of `context` tokens that fit at once (0: not even one).
    public var maxConcurrency: Int
}

public enum Serving {
    /// Tokens one prefill step processes (vLLM's default `max_num_batched_tokens` with
    /// chunked prefill is 2048 on large GPUs).
    public static let prefillChunk = 2048

    /// Memory of a server at `concurrency` requests.
    /// - Base weights: 16-bit, or bitsandbytes 4-bit block Linears (the rest 16-bit here:
    ///   inference does not upcast).
    /// - Adapters: LoRA A and B of every targeted module, in the model dtype (servers load
    ///   adapters in the base dtype), `adapters` of them resident.
    /// - KV cache: each attention layer's keys and values, 2 bytes each, per token
    ///   (``Generation/kvBytesPerToken(_:bytes:vllm:)``: grouped-query attention caches only the
    ///   KV heads, MLA its latent), × context × concurrency.
    /// - Workspace: one prefill chunk through the widest layer (hidden states, q/k/v,
    ///   gate/up products) and fp32 logits for one sampled token per request.
    public static func memory(_ r: ServeRequest, concurrency: Int) throws -> ServeMemory {
        let a = r.arch
        var m = ServeMemory()
        let account = try ParameterAccounting.account(a, method: .lora, options: r.methodOptions)
        m.baseWeights = r.quantisedBase
            ? MemoryComponents.fourBitWeights(a, doubleQuant: r.methodOptions.doubleQuant, restBytes: 2) : a.totalParams * 2
        m.adapterWeights = account.trainableParams * 2 * r.adapters
        m.kvBytesPerToken = Generation.kvBytesPerToken(a, bytes: 2, vllm: true)
        let cache = Double(m.kvBytesPerToken) * Double(r.context) * Double(concurrency)
        let chunk = Double(min(prefillChunk, r.context * concurrency))
        let widest = Double(4 * a.hiddenSize + 2 * a.qDim + 3 * max(a.intermediateSize, a.hiddenSize)) * 2
        let work = chunk * widest + Double(concurrency) * Double(a.vocabSize) * 4
        m.kvCache = PlanContext.bytes(cache)
        m.workspace = PlanContext.bytes(work)
        m.runtimeOverhead = r.runtime.outsideAllocatorBytes
        let sum = Double(m.baseWeights) + Double(m.adapterWeights) + cache + work + Double(m.runtimeOverhead)
        m.total = PlanContext.bytes(sum)
        return m
    }

    public static func verdicts(_ r: ServeRequest) throws -> [ServeVerdict] {
        try r.gpus.map { gpu in
            let total = try memory(r, concurrency: r.concurrency).total
            let most = Planner.largest(upTo: 1 << 20) { (try? memory(r, concurrency: $0).total <= gpu.usableMemoryBytes) ?? false }
            return ServeVerdict(gpu: gpu, fits: total <= gpu.usableMemoryBytes, maxConcurrency: most)
        }
    }
}
