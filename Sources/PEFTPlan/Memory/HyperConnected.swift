import Foundation

// MARK: - DeepSeek-V4: hyper-connected layers, compressed attention

extension ForwardGraph {
    /// DeepSeek-V4's layer (`DeepseekV4DecoderLayer.forward`, Transformers 5.25): the residual
    /// is `streams` copies of the hidden state; `attn_hc` collapses them into attention's input,
    /// attention's output is expanded back and added to the mixed streams; `ffn_hc` does the
    /// same around the experts. Checked against the saved-tensor trace of a small V4 on the
    /// meta device (`trace-cases.json`), which runs the same eager ops as CUDA.
    func hyperConnectedLayer(_ x0: Tape.T, _ t: GatedBlock, _ hc: HyperConnections) -> Tape.T {
        guard let attention = t.compressed else { return x0 }
        let (post1, comb1, attentionIn) = hyperConnection(x0, hc, role: .attentionHyperConnection)
        let o = compressedAttention(blockNorm(attentionIn), attention)
        let x1 = hyperExpand(x0, post: post1, comb: comb1, out: o, hc)
        let (post2, comb2, expertsIn) = hyperConnection(x1, hc, role: .feedForwardHyperConnection)
        var d = v4Experts(blockNorm(expertsIn))
        if c.method.spec.insertsBottleneck { d = bottleneck(d) }
        return hyperExpand(x1, post: post2, comb: comb2, out: d, hc)
    }

    /// `DeepseekV4HyperConnection.forward`: the pre, post and comb weights (``hyperMixes``),
    /// sigmoid, sigmoid and softmax (each keeps its output), the Sinkhorn-Knopp normalisation of comb (every division keeps both
    /// operands: once, then twice per further iteration), and the streams collapsed by pre
    /// (the product keeps both). The fp32 parameters are never a PEFT target.
    func hyperConnection(_ x: Tape.T, _ hc: HyperConnections, role: ModuleRole) -> (post: Tape.T, comb: Tape.T, collapsed: Tape.T) {
        let n = hc.streams, h = c.arch.hiddenSize
        let rg = hyperMixes(x, hc, outputs: (2 + n) * n, role: role).rg
        if rg {
            tape.save(.q(n), 4)                 // sigmoid(pre)
            tape.save(.q(n), 4)                 // sigmoid(post)
            tape.save(.q(n * n), 4)             // softmax(comb)
            for _ in 0..<(1 + 2 * (hc.sinkhornIterations - 1)) {
                tape.save(.q(n * n), 4)         // comb
                tape.save(.q(n), 4)             // its row or column sums
            }
        }
        let pre = tape.new(.q(n), 4, rg: rg)
        if pre.rg { tape.save(x) }
        if x.rg { tape.save(pre) }
        return (tape.new(.q(n), 4, rg: rg), tape.new(.q(n * n), 4, rg: rg), tape.new(.q(h), x.bytes, rg: pre.rg || x.rg))
    }

    /// The mixing weights of a hyper-connection or the head: the streams flattened to fp32, the
    /// weightless RMSNorm (square and product keep the fp32 copy, the product the reciprocal),
    /// one fp32 projection to `outputs` weights (keeps its input where it trains), scaled by a
    /// parameter (whose gradient keeps the projection's output).
    func hyperMixes(_ x: Tape.T, _ hc: HyperConnections, outputs w: Int, role: ModuleRole) -> Tape.T {
        let n = hc.streams, h = c.arch.hiddenSize
        if module(role) == nil { tape.missing.insert(role) }
        let trains = c.baseTrainable
        let flat = x.bytes == 4 ? x : tape.new(.q(n * h), 4, rg: x.rg)
        if flat.rg { tape.save(flat); tape.save(.q(1), 4) }
        let normed = tape.new(.q(n * h), 4, rg: flat.rg)
        if trains { tape.save(normed) }
        let mm = 2 * n * h * w
        tape.flops(.q(1), forward: mm, backward: (normed.rg ? mm : 0) + (trains ? mm : 0), fp32: true)
        let mixes = tape.new(.q(w), 4, rg: normed.rg || trains)
        if trains { tape.save(mixes) }
        return mixes
    }

    /// post.to(dtype) · output (keeps both) + matmul(comb.to(dtype)ᵀ, streams) (keeps both).
    func hyperExpand(_ x: Tape.T, post: Tape.T, comb: Tape.T, out: Tape.T, _ hc: HyperConnections) -> Tape.T {
        let n = hc.streams, h = c.arch.hiddenSize
        let post16 = tape.new(.q(n), x.bytes, rg: post.rg)
        if out.rg { tape.save(post16) }
        if post16.rg { tape.save(out) }
        let comb16 = tape.new(.q(n * n), x.bytes, rg: comb.rg)
        if x.rg { tape.save(comb16) }
        if comb16.rg { tape.save(x) }
        let mm = 2 * n * n * h
        tape.flops(.q(1), forward: mm, backward: (comb16.rg ? mm : 0) + (x.rg ? mm : 0))
        return tape.new(.q(n * h), x.bytes, rg: x.rg || out.rg || post.rg || comb.rg)
    }

    /// `DeepseekV4HyperHead.forward`: the final collapse of the streams, as a hyper-connection's
    /// pre weight alone (``hyperMixes``; sigmoid keeps its output).
    func hyperHead(_ x: Tape.T, _ hc: HyperConnections) -> Tape.T {
        let n = hc.streams, h = c.arch.hiddenSize
        let mixes = hyperMixes(x, hc, outputs: n, role: .hyperHead)
        if mixes.rg { tape.save(.q(n), 4) }     // sigmoid's output
        let pre = tape.new(.q(n), 4, rg: mixes.rg)
        if pre.rg { tape.save(x) }
        if x.rg { tape.save(pre) }
        return tape.new(.q(h), x.bytes, rg: pre.rg || x.rg)
    }

    /// V4's interleaved rotary on the last `rope` channels (`apply_rotary_pos_emb`): cos and
    /// sin are repeated to the rotary width on every call (a new pair each time), kept by the
    /// products when x needs a gradient. At the token positions they are one row per position,
    /// broadcast over the batch; `entries`: at the compressed entries' positions (1/rate per
    /// token), which are expanded per sample.
    func v4Rope(_ x: Tape.T, rope: Int, entries rate: Int? = nil) -> Tape.T {
        if x.rg {
            for _ in 0..<2 {
                if let rate { tape.save(.q(rope), c.stream, times: 1 / Double(rate)) } else { tape.save(Extent(pos: rope), c.stream) }
            }
        }
        return tape.new(x.extent, x.bytes, rg: x.rg)
    }

    /// A compressor (`DeepseekV4CSACompressor`, `DeepseekV4HCACompressor`, the indexer's own):
    /// the gate plus the fp32 position bias (an fp32 sum; compressed sparse attention lays its
    /// two series over 2 × rate slots per window, new tensors); softmax over each window in
    /// fp32 keeps its output, its cast is kept by the product with the key-values (heavily
    /// compressed: a view of kv_proj's output; sparse: the new layout), summed per window;
    /// the norm and the rotary over the 1/rate entries. Returns the entries (1/rate per token).
    func compressor(kv: Tape.T, gate: Tape.T, series: Int, width: Int, rate: Int, rope: Int, norm: ModuleRole) -> Tape.T {
        let per = 1 / Double(rate)
        let gateRG = gate.rg || c.baseTrainable
        if gateRG { tape.save(.q(series * width), 4) }
        if kv.rg { tape.save(.q(series * width), kv.bytes) }
        if gateRG { if series == 1 { tape.save(kv) } else { tape.save(.q(series * width), kv.bytes) } }
        let rg = kv.rg || gateRG
        if module(norm) == nil { tape.missing.insert(norm) }
        // the fp32-weight RMSNorm over the entries: the fp32 copy and reciprocal, the fp32
        // normalised entries where the weight trains
        if rg {
            tape.save(.q(width), 4, times: per)
            tape.save(.q(1), 4, times: per)
        }
        if c.baseTrainable { tape.save(.q(width), 4, times: per) }
        let entries = tape.new(.q(width), c.a, rg: rg || c.baseTrainable)
        return v4Rope(entries, rope: rope, entries: rate)
    }

    /// `DeepseekV4Attention.forward` (see ``CompressedAttention``), eager: every query head reads
    /// the one key head as a view; q·kᵀ keeps q and the keys, the fp32 sinks join the scores as
    /// one more column (fp32), the row max keeps its indices, softmax keeps its fp32 output, its
    /// cast to the model dtype is kept by the product with the values (the keys again).
    func compressedAttention(_ h1: Tape.T, _ l: CompressedAttention) -> Tape.T {
        let a = c.arch, heads = a.numHeads, d = a.headDim
        let qLatent = rmsNorm(linear(h1, .qA), weightInFP32: true)
        let q = linear(qLatent, .qB)
        // q_b_norm, weightless per head: x · rsqrt(x.float().square().mean(-1) + eps).to(x.dtype)
        if q.rg {
            tape.save(.q(heads * d), 4)
            tape.save(.q(heads), 4)
            tape.save(.q(heads), q.bytes)
            tape.save(q)
        }
        let qRot = v4Rope(tape.new(.q(heads * d), q.bytes, rg: q.rg), rope: l.rope)
        let kv = v4Rope(rmsNorm(linear(h1, .sharedKV), weightInFP32: true), rope: l.rope)
        // the cache Transformers fills in training (unless checkpointing) keeps the window's keys
        if c.useCache { tape.keepAlive(Tape.T(id: kv.id, extent: .kv(d), bytes: kv.bytes, rg: kv.rg)) }
        if module(.sinks) == nil { tape.missing.insert(.sinks) }
        var keys = kv
        var perToken = 1.0                               // keys per query token: 1 + 1/rate
        let sparse = l.csaLayers.contains(tape.layer)
        if sparse || l.hcaLayers.contains(tape.layer) {
            let rate = sparse ? l.csaRate : l.hcaRate
            if module(.compressorBias) == nil { tape.missing.insert(.compressorBias) }
            let entries = compressor(kv: linear(h1, .compressorKV), gate: linear(h1, .compressorGate),
                                     series: sparse ? 2 : 1, width: d, rate: rate, rope: l.rope, norm: .compressorNorm)
            if sparse { lightningIndexer(h1, qLatent: qLatent, l) }
            perToken += 1 / Double(rate)
            // torch.cat of the window's keys and the compressed entries: a new tensor
            keys = tape.new(.q(d), c.a, rg: kv.rg || entries.rg)
        }
        let scoresRG = qRot.rg || keys.rg
        if keys.rg { tape.save(qRot) }
        if qRot.rg {
            tape.save(keys, times: perToken)
            // above batch 1 the matmuls copy the key head for every query head, and the values
            // again (at batch 1 both are views of the one head)
            tape.save(Extent(kvMulti: (2 * heads - 1) * d), c.a, times: perToken)
        }
        let pair = 2 * heads * d
        tape.flops(.pair(1), forward: 2 * pair,
                   backward: (qRot.rg ? pair : 0) + (keys.rg ? 2 * pair : 0) + (scoresRG ? pair : 0), times: perToken)
        if scoresRG {
            tape.save(.q(heads), 8)                              // the row max's indices
            tape.save(.pair(heads), 4, times: perToken)          // softmax over the keys…
            tape.save(.q(heads), 4)                              // …and the sink column
        }
        let probs = tape.new(.pair(heads), c.a, rg: scoresRG)
        if keys.rg { tape.save(probs, times: perToken) }
        // the output: rotary undone (cos and −sin kept), transposed back and regrouped (a copy)
        let out = v4Rope(tape.new(.q(heads * d), c.a, rg: scoresRG || keys.rg), rope: l.rope)
        let grouped = tape.new(.q(heads * d), c.a, rg: out.rg)
        return linear(linear(grouped, .groupedO), .groupedOMix)
    }

    /// The lightning indexer (`DeepseekV4Indexer`): its own compressor at `indexerDim` (rate
    /// `csaRate`), queries from the query latent, scores ReLU(q · kᵀ) weighted per head, future
    /// entries masked, top-k. Its output is the top-k's indices, which carry no gradient and
    /// whose values are dropped: autograd frees the scoring branch, and what it saved, as the
    /// forward leaves the indexer, and runs none of the indexer's backward (only its forward
    /// FLOPs count). Where Transformers fills its cache in training (`use_cache`, unless
    /// checkpointing), the cache holds the indexer's compressed entries and with them the
    /// compressor's graph, whose saved tensors then stay. (Under `saved_tensors_hooks` a node
    /// that saves its own output — ReLU's — holds it in a reference cycle and the scoring
    /// branch outlives the forward; the trace script packs detached aliases so that it sees
    /// what training keeps.)
    func lightningIndexer(_ h1: Tape.T, qLatent: Tape.T, _ l: CompressedAttention) {
        let per = 1 / Double(l.csaRate), nI = l.indexerHeads, ih = l.indexerDim
        for role in [ModuleRole.indexerBias, .indexerNorm] where module(role) == nil { tape.missing.insert(role) }
        let kept: Branch = c.useCache ? .kept : .dropped
        let kv = linear(h1, .indexerKV, branch: kept), gate = linear(h1, .indexerGate, branch: kept)
        if c.useCache {
            _ = compressor(kv: kv, gate: gate, series: 2, width: ih, rate: l.csaRate, rope: l.rope, norm: .indexerNorm)
        }
        _ = linear(qLatent, .indexerQ, branch: .dropped)
        _ = linear(h1, .indexerWeights, branch: .dropped)
        tape.flops(.pair(1), forward: 2 * nI * ih, backward: 0, times: per)
    }

    /// The experts and the shared expert (`DeepseekV4SparseMoeBlock`); the shared expert's
    /// clamps keep gate_proj's and up_proj's outputs, SiLU the clamped gate, the product both.
    func v4Experts(_ h2: Tape.T) -> Tape.T {
        let routed = moe(h2)
        let g = linear(h2, .sharedGate), u = linear(h2, .sharedUp)
        if g.rg { tape.save(g) }
        if u.rg { tape.save(u) }
        let gated = act(tape.new(g.extent, c.a, rg: g.rg), width: g.extent.q)
        let shared = linear(mul(gated, tape.new(u.extent, c.a, rg: u.rg)), .sharedDown)
        return tape.new(.q(c.arch.hiddenSize), c.a, rg: routed.rg || shared.rg)
    }
}
