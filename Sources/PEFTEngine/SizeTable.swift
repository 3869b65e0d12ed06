import Foundation

/// The engine's size tables, in the manner of llm.c's `fill_in_parameter_sizes`: one
/// function per kind of allocation says how many values each tensor has. The trainer
/// allocates from these tables and the engine-cpu memory model (``EngineMemoryModel``)
/// predicts from the same ones, so the two cannot drift apart; only the order of
/// allocations and frees (the schedule) is replayed by the model.
public enum EngineSizes {
    /// One parameter tensor: its name (see ``Trainer``), element count and storage.
    public struct Parameter: Equatable, Sendable {
        public var name: String
        public var count: Int
        public var kind: ParameterStore.Kind
    }

    /// Every parameter of `c` under `method`, in the order the store lays them out.
    public static func parameters(_ c: EngineConfig, _ method: EngineMethod) -> [Parameter] {
        let base: ParameterStore.Kind = method == .full ? .trainable : .frozen
        var sizes: [Parameter] = [Parameter(name: "embed", count: c.vocab * c.dim, kind: base)]
        func add(_ name: String, _ count: Int, _ kind: ParameterStore.Kind) { sizes.append(Parameter(name: name, count: count, kind: kind)) }
        var quantised = false
        if case .qlora = method { quantised = true }
        var loraRank = 0, loraTargets: Set<BlockLinear> = []
        switch method {
        case let .lora(r, _, t), let .qlora(r, _, t, _): (loraRank, loraTargets) = (r, t)
        case .full, .adapter, .ia3, .prompt, .prefix: break
        }
        for l in 0..<c.layers {
            add("\(l).attn_norm", c.dim, base)
            add("\(l).ffn_norm", c.dim, base)
            for lin in BlockLinear.allCases {
                let (o, i) = lin.shape(c)
                add("\(l).\(lin.rawValue)", o * i, quantised ? .nf4 : base)
                if loraTargets.contains(lin) {
                    add("\(l).\(lin.rawValue).lora_A", loraRank * i, .trainable)
                    add("\(l).\(lin.rawValue).lora_B", o * loraRank, .trainable)
                }
                if case let .ia3(targets, ff) = method, targets.contains(lin) {
                    add("\(l).\(lin.rawValue).ia3", ff.contains(lin) ? i : o, .trainable)
                }
            }
            if case let .adapter(houlsby, reduction) = method {
                let m = c.dim / reduction
                for site in houlsby ? ["adapter_attn", "adapter_ffn"] : ["adapter_ffn"] {
                    add("\(l).\(site).down", m * c.dim, .trainable)
                    add("\(l).\(site).down_bias", m, .trainable)
                    add("\(l).\(site).up", c.dim * m, .trainable)
                    add("\(l).\(site).up_bias", c.dim, .trainable)
                }
            }
        }
        if case let .prompt(t) = method { add("prompt", t * c.dim, .trainable) }
        // PEFT's prefix: per virtual token, layer l's key at columns 2l·kvDim and its value at
        // (2l+1)·kvDim (the (L·2, KV, D) split of peft_model.get_prompt), learned directly or
        // as the output of the reparameterisation MLP.
        if case let .prefix(t, p) = method {
            let width = c.layers * 2 * c.kvDim
            if p > 0 {
                add("prefix", t * c.kvDim, .trainable)
                add("prefix_mlp.0", p * c.kvDim, .trainable)
                add("prefix_mlp.0_bias", p, .trainable)
                add("prefix_mlp.2", width * p, .trainable)
                add("prefix_mlp.2_bias", width, .trainable)
            } else {
                add("prefix", t * width, .trainable)
            }
        }
        add("norm", c.dim, base)
        if !c.tied { add("lm_head", c.vocab * c.dim, base) }
        return sizes
    }

    /// Entries of each RoPE table (cos, and sin alike) of a trainer built for sequences of
    /// `maxSeq` tokens: one row of head_dim/2 per position, virtual and prefix tokens included.
    public static func ropeTable(_ c: EngineConfig, maxSeq: Int, method: EngineMethod) -> Int {
        (maxSeq + method.virtualTokens + method.prefixTokens) * (c.headDim / 2)
    }

    /// What one block saves in forward besides its input, in the order it allocates them:
    /// the attention norm's output and reciprocal RMS, q, k and v (`kvSeq` rows of keys and
    /// values: the sequence plus any prefix), the attention probabilities, the attention
    /// output, the residual after attention, the FFN norm's output and reciprocal RMS, the
    /// gate, up and SwiGLU products.
    public struct BlockSaved: Equatable, Sendable {
        public var n1, r1, q, k, v, probs, att, mid, n2, r2, g, u, h: Int

        public init(_ c: EngineConfig, batch b: Int, seq s: Int, kvSeq: Int) {
            let n = b * s
            n1 = n * c.dim; r1 = n; q = n * c.dim; k = b * kvSeq * c.kvDim; v = b * kvSeq * c.kvDim
            probs = b * c.heads * s * kvSeq; att = n * c.dim; mid = n * c.dim
            n2 = n * c.dim; r2 = n; g = n * c.hidden; u = n * c.hidden; h = n * c.hidden
        }

        /// The counts in allocation order.
        public var inOrder: [Int] { [n1, r1, q, k, v, probs, att, mid, n2, r2, g, u, h] }
    }
}

extension NF4 {
    /// The buffers an ``NF4Tensor`` of `count` values allocates, in bytes: the packed
    /// 4-bit codes, and per block of 64 an fp32 absmax or, with double quantisation, a
    /// one-byte code plus an fp32 scale per 256 blocks and one fp32 offset.
    public struct Layout: Equatable, Sendable {
        public var blocks: Int
        public var packedBytes: Int
        /// Double quantisation: absmax codes, their groups' scales, the mean offset.
        public var codes: Int, groups: Int
        public var doubleQuant: Bool

        public init(count: Int, doubleQuant: Bool) {
            blocks = (count + NF4.blockSize - 1) / NF4.blockSize
            packedBytes = (count + 1) / 2
            self.doubleQuant = doubleQuant
            codes = doubleQuant ? blocks : 0
            groups = doubleQuant ? (blocks + NF4.absmaxBlockSize - 1) / NF4.absmaxBlockSize : 0
        }

        public var bytes: Int { packedBytes + (doubleQuant ? codes + 4 * groups + 4 : 4 * blocks) }
    }
}
