import Foundation

// MARK: - The forward pass, by block shape

extension ForwardGraph {
    /// Plays embedding, every decoder layer and the head; returns the saved bytes of the
    /// parts before, inside and after the blocks, with the per-layer part for layers ≥ 2
    /// (where the requires-grad state has settled) separated from layers 0 and 1.
    func run(layers: Int) -> (pre: ByteBill, layer0: ByteBill, layer1: ByteBill, steady: ByteBill, steadyKinds: [ByteBill], head: ByteBill, logits: ByteBill,
                              checkpointInput: Int, cache: [ByteBill], forwardFlops: [ByteBill], backwardFlops: [ByteBill],
                              recomputedFlops: [ByteBill], fp32Flops: (forward: [ByteBill], backward: [ByteBill], recomputed: [ByteBill]),
                              flashFlops: (forward: [ByteBill], backward: [ByteBill], recomputed: [ByteBill])) {
        var marks: [ByteBill] = []
        let imageRG = visionTower()
        var x = embed(imageRG: imageRG)
        if case let .gated(t) = c.arch.block, let hc = t.hyperConnections {
            // DeepSeek-V4: the embeddings expanded to the residual streams (a contiguous copy)
            x = tape.new(.q(hc.streams * c.arch.hiddenSize), x.bytes, rg: x.rg)
        }
        if case let .gated(t) = c.arch.block, let width = t.perLayerInput { perLayerInputs(x, width: width) }
        marks.append(tape.total)
        let cosSin = (tape.new(Extent(pos: c.arch.rotaryDim), c.a, rg: false), tape.new(Extent(pos: c.arch.rotaryDim), c.a, rg: false))
        // Layers 0 and 1 one by one (the requires-grad state settles over them); then each
        // kind of layer among the rest once, weighted by how many of the rest it is, so
        // that stage 3 is the average steady layer (one kind for uniform models).
        var steadyKinds: [ByteBill] = []
        for i in 0..<min(layers, 2) {
            tape.stage = i + 1
            tape.layer = i
            x = layer(x, cosSin)
            marks.append(tape.total)
        }
        if layers > 2 {
            tape.stage = 3
            for kind in c.arch.layerKinds(from: 2) {
                tape.layer = kind.layer
                tape.weight = Double(kind.count) / Double(layers - 2)
                let before = tape.total
                x = layer(x, cosSin)
                steadyKinds.append((tape.total - before) * (1 / tape.weight))
            }
            tape.weight = 1
            marks.append(tape.total)
        }
        let count = min(layers, 3)
        // the layers' input as checkpointing keeps it (DeepSeek-V4's: every residual stream)
        var hyper = false
        if case let .gated(t) = c.arch.block { hyper = t.hyperConnections != nil }
        let checkpointInput = x.bytes * (hyper ? x.extent.q : c.arch.hiddenSize)
        tape.stage = 4
        head(x)
        let end = tape.total
        let layerBills = (0..<count).map { marks[$0 + 1] - marks[$0] }
        let pre = marks[0]
        let headBill = end - marks[count] - tape.logits
        let cache = (0..<3).map { $0 < count ? tape.forwardOnly(stage: $0 + 1) : ByteBill() }
        return (pre, layerBills[0], count > 1 ? layerBills[1] : ByteBill(), count > 2 ? layerBills[2] : ByteBill(), steadyKinds,
                headBill, tape.logits, checkpointInput, cache, tape.forwardFlops, tape.backwardFlops, tape.recomputedFlops,
                (tape.fp32ForwardFlops, tape.fp32BackwardFlops, tape.fp32RecomputedFlops),
                (tape.flashForwardFlops, tape.flashBackwardFlops, tape.flashRecomputedFlops))
    }

    /// The architecture's norm (RMSNorm, Gemma's (1 + weight) RMSNorm, or LayerNorm).
    func blockNorm(_ x: Tape.T) -> Tape.T {
        switch c.arch.norm {
        case .rms: return rmsNorm(x)
        case .rmsWeightInFP32: return rmsNorm(x, weightInFP32: true)
        case .rmsOnePlusWeight: return gemmaNorm(x, width: c.arch.hiddenSize)
        case .layer: return layerNorm(x)
        case .cohereLayer: return cohereLayerNorm(x, width: c.arch.hiddenSize)
        case .gemma4: return gemma4Norm(x, groups: 1, width: c.arch.hiddenSize)
        }
    }

    func embed(imageRG: Bool = false) -> Tape.T {
        let a = c.arch
        let wrapped = wraps(.embed)
        let trainable = c.baseTrainable || wrapped
        if trainable { tape.save(.q(1), 8) }                                  // input ids
        if wrapped && c.method.spec.wrapper == .lowRank {
            // PEFT's LoRA Embedding (peft/tuners/lora/layer.py, Embedding.forward): after_A =
            // embedding(ids, lora_embedding_A.T), fp32 like the adapter, kept by the matmul
            // with lora_embedding_B for that weight's gradient
            tape.save(.q(c.options.loraR), 4)
            // after_A @ lora_embedding_B: forward, and in backward both B's gradient and
            // after_A's (A trains); the lookup through A is no matmul
            let mm = 2 * c.options.loraR * a.embedDim
            tape.flops(.q(1), forward: mm, backward: 2 * mm, fp32: true)
        }
        // With gradient checkpointing PEFT makes the input embeddings require grad
        // (`enable_input_require_grads`, also done by prepare_model_for_kbit_training).
        let inputRG = trainable || c.method.spec.quantisesBase || (c.checkpointing && !c.baseTrainable)
        var x = tape.new(.q(a.embedDim), c.stream, rg: inputRG)
        if c.imageTokens > 0 {
            // inputs_embeds.masked_scatter(image_mask, image_embeds): the boolean mask (one
            // byte per token, expanded over the width) is kept when either side needs a gradient
            if inputRG || imageRG { tape.save(.q(1), 1) }
            x = tape.new(.q(a.embedDim), c.stream, rg: inputRG || imageRG)
        }
        if c.virtualQ > 0 {
            tape.save(Extent(fixed: c.virtualQ), 8)                            // prompt indices (1, T)
            x = tape.new(.q(a.embedDim), c.stream, rg: true)                    // cat(prompt, embeds)
        }
        if c.prefix {
            tape.save(Extent(fixed: c.options.prefixTokens), 8)
            if c.options.prefixProjection > 0 {
                // the reparameterisation MLP runs once per step over the virtual tokens
                let td = ParameterAccounting.prefixTokenDim(c.arch), p = c.options.prefixProjection
                let mm = 2 * c.options.prefixTokens * p * (td + c.arch.numLayers * 2 * td)
                tape.flops(Extent(fixed: 1), forward: mm, backward: 2 * mm)
            }
        }
        if c.method.spec.promptEncoderMLP {
            let d = c.arch.hiddenSize, hdn = c.options.ptuningHidden > 0 ? c.options.ptuningHidden : d
            let mm = 2 * c.options.promptTokens * (d * hdn + hdn * hdn + hdn * d)
            tape.flops(Extent(fixed: 1), forward: mm, backward: 2 * mm)
        }
        // learned positions: the position ids are kept for the table's gradient (GPT-2, OPT)
        if a.hasLearnedPositions && c.baseTrainable { tape.save(Extent(pos: 1), 8) }
        x = dropout(x, a.embeddingDropout)
        if module(.projectIn) != nil { x = linear(x, .projectIn) }         // OPT-350m
        if module(.embedNorm) != nil { x = layerNorm(x) }                  // BLOOM
        return x
    }

    func layer(_ input: Tape.T, _ cosSin: (Tape.T, Tape.T)) -> Tape.T {
        switch c.arch.block {
        case let .gated(traits): return gatedLayer(input, cosSin, traits)
        case let .sequential(bloom): return sequentialLayer(input, bloom: bloom)
        case .parallelResidual: return neoxLayer(input, cosSin)
        case let .opt(preNorm): return optLayer(input, preNorm: preNorm)
        case let .falcon(parallel, twoNorms): return falconLayer(input, cosSin, parallel: parallel, twoNorms: twoNorms)
        }
    }

    func head(_ x: Tape.T) {
        let a = c.arch
        var x = x
        if case let .gated(t) = a.block, let hc = t.hyperConnections { x = hyperHead(x, hc) }
        // post-LN OPT (do_layer_norm_before false: OPT-350m) has no final layer norm
        var h = module(.finalNorm) != nil ? blockNorm(x) : x
        if module(.projectOut) != nil { h = linear(h, .projectOut) }
        guard let lmHead = module(.head) else {
            tape.missing.insert(.head)
            return
        }
        // lm_head: trainable in full fine-tuning (tied or not), never for the adapters.
        let headTrainable = c.baseTrainable || wraps(.head)
        let headMM = 2 * lmHead.inFeatures * a.vocabSize
        let gradientMM = (h.rg ? headMM : 0) + (headTrainable ? headMM : 0)
        // lm_head upcast to fp32 by prepare_model_for_kbit_training (not where the stack keeps it 16-bit)
        let fp32Head = c.method.spec.quantisesBase && c.stream == 4
        switch c.loss {
        case .standard: break
        case .chunked:
            // TRL 1.16.0 trl/kernels/chunked_logprob.py, ChunkedLogProbFunction.forward:
            // save_for_backward(hidden, weight, bias, targets, log_z, entropy). hidden is
            // hidden_states[mask] (trainer/utils.py _fused_forward, on CUDA): a copy of the
            // head's input; targets labels[mask] (int64); log_z and entropy fp32 per token (the
            // SFTTrainer asks for the entropy). No logits are kept. backward recomputes every
            // tile (one more head matmul) before the gradient GEMMs. It scores the positions
            // that have a next token, `hidden_states[:, :-1]`: s − 1 per sequence.
            // Under a preference or RL trainer on CUDA only the completion's positions have
            // labels, and only they are gathered and scored.
            let scored = c.scoredPerRow.map { Extent(sample: $0) } ?? Extent(q: 1, sample: -1)
            let kept = c.scoredPerRow.map { Extent(sample: $0 * lmHead.inFeatures) } ?? Extent(q: lmHead.inFeatures, sample: -lmHead.inFeatures)
            tape.save(tape.new(kept, h.bytes, rg: false))
            tape.save(scored, 8)
            tape.save(scored, 4)
            tape.save(scored, 4)
            tape.flops(scored, forward: headMM, backward: headMM + gradientMM, fp32: fp32Head)
            return
        case .liger, .unsloth:
            // Unsloth's UnslothFusedLoss (unsloth-zoo @ce232d6c fused_losses/cross_entropy_loss.py
            // L176–446) likewise: gradients per chunk in forward, save_for_backward(grad_inputs,
            // grad_lm_head, grad_lm_head_bias) (L442), backward only rescales them.
            // Liger-Kernel @ead96b61 ops/fused_linear_cross_entropy.py: forward computes, chunk
            // by chunk, grad_input (zeros_like(_input)) and, for a trainable head, grad_weight
            // (zeros_like(weight), accum_dtype unset) and saves them (save_for_backward(
            // grad_input, grad_weight, grad_bias)); backward only scales them. The gradient
            // GEMMs run in forward.
            tape.save(tape.new(.q(lmHead.inFeatures), h.bytes, rg: false))
            if headTrainable { tape.save(Extent(fixed: lmHead.inFeatures * a.vocabSize), c.a) }
            tape.flops(.q(1), forward: headMM + gradientMM, backward: 0, fp32: fp32Head)
            return
        case .cce:
            // apple/ml-cross-entropy @d42911f9 cut_cross_entropy/cce.py: save_for_backward(e, c,
            // bias, lse, targets, valids, logit_avg): e is the head's input (flattened, the same
            // storage), lse fp32, targets and the valid positions int64 per token. backward
            // recomputes the logits block by block (one more head matmul; its gradient filter
            // skips blocks whose softmax is below bf16's precision, not counted here).
            tape.save(h)
            tape.save(.q(1), 4)
            tape.save(.q(1), 8)
            tape.save(.q(1), 8)
            tape.flops(.q(1), forward: headMM, backward: headMM + gradientMM, fp32: fp32Head)
            return
        }
        if headTrainable { tape.save(h) }
        tape.flops(.q(1), forward: headMM, backward: gradientMM, fp32: fp32Head)
        var logits = tape.new(.q(a.vocabSize), fp32Head ? 4 : c.a, rg: true, logits: true)
        if a.scaledLogits { logits = tape.new(logits.extent, logits.bytes, rg: true, logits: true) }
        if a.finalLogitSoftcapping {
            logits = tape.new(logits.extent, logits.bytes, rg: true, logits: true)
            tape.save(logits)                                                    // tanh output
            logits = tape.new(logits.extent, logits.bytes, rg: true, logits: true)
        }
        if c.fullLogits {
            // ORPO and CPO/SimPO (TRL 1.16 experimental/orpo/orpo_trainer.py L771–807,
            // experimental/cpo/cpo_trainer.py L815–852): the model's logits over chosen and
            // rejected rows are kept (selective_log_softmax's Triton kernel saves them on CUDA,
            // kernels/logprob_entropy.py; the fp32 logsumexp path likewise), and ORPO's NLL
            // term's nn.CrossEntropyLoss over the chosen half, logits[..., :-1].contiguous(),
            // keeps its log-softmax in the logits' dtype: half the rows, s − 1 positions each.
            tape.save(logits)
            if c.nllOnChosen {
                tape.save(tape.new(Extent(q: a.vocabSize, sample: -a.vocabSize), logits.bytes, rg: true, logits: true), times: 0.5)
                tape.save(Extent(q: 1, sample: -1), 8, times: 0.5)             // the NLL's targets
            }
            return
        }
        // ForCausalLMLoss: logits.float(), then cross_entropy = log_softmax + nll_loss.
        tape.save(tape.new(.q(a.vocabSize), 4, rg: true, logits: true))         // log_softmax output
        tape.save(.q(1), 8)                                                     // targets
        tape.save(Extent(fixed: 1), 4)                                          // total weight
    }

    /// The Llama-style block (`LlamaDecoderLayer` and the layers written from it), with the
    /// family's variations as traits; the layer being played decides dense or experts.
    func gatedLayer(_ x0: Tape.T, _ cosSin: (Tape.T, Tape.T), _ t: GatedBlock) -> Tape.T {
        if t.singleMixer { return mixerLayer(x0, t) }
        if let hc = t.hyperConnections { return hyperConnectedLayer(x0, t, hc) }
        let a = c.arch
        var x = x0
        // post-norm blocks (OLMo 2) feed the sub-blocks the residual stream itself
        let h1 = t.norms == .post ? x : blockNorm(x)
        var o: Tape.T
        if t.parallelStateSpace, let s = t.stateSpace {
            // Falcon-H1: Mamba-2 and attention side by side, each on a scaled copy of the
            // normed input (a product by a number: a new tensor, nothing kept)
            let ssmOut = mamba2(tape.new(h1.extent, c.a, rg: h1.rg), s)
            let attentionOut = selfAttention(tape.new(h1.extent, c.a, rg: h1.rg), cosSin, t)
            o = tape.new(.q(a.hiddenSize), c.a, rg: ssmOut.rg || attentionOut.rg)
        } else if let s = t.stateSpace, [ModuleRole.ssmIn, .ssmConv, .ssmParams, .ssmNorm, .ssmOut].contains(where: { module($0) != nil }) {
            o = mamba2(h1, s)                           // Granite 4.0's Mamba-2 layers
        } else if let kernel = t.shortConvolution, module(.shortConv) != nil {
            o = shortConvolution(h1, kernel: kernel)
        } else if let widths = t.linearAttention, module(.linearParams) != nil {
            o = gatedDeltaNet(h1, widths)
        } else if let latent = t.latent {
            o = latentAttention(h1, cosSin, latent)
        } else {
            o = selfAttention(h1, cosSin, t)
        }
        o = dropout(o, a.hiddenDropout)                 // StarCoder2's, Phi's residual dropout
        if t.normsOutputs { o = blockNorm(o) }
        let h2: Tape.T
        if t.norms == .parallel {
            h2 = h1                                     // Phi: the MLP reads the same normed input
        } else {
            x = Tape.T(id: tape.new(x.extent, c.stream, rg: false).id, extent: x.extent, bytes: c.stream, rg: x.rg || o.rg)
            h2 = t.norms == .post ? x : blockNorm(x)
        }
        var d: Tape.T
        if t.expertsBesideMLP {
            d = denseAndExperts(h2, residual: x)
        } else if module(.experts) != nil {
            d = t.denseExpertDispatch ? denseDispatchExperts(h2) : moe(h2)
            if let shared = t.sharedExpert {
                // the shared experts run on every token beside the routed ones
                let sd: Tape.T
                if shared == .fusedGateUp {
                    // Granite's shared_mlp: input_linear, chunk into gate and up (views), act(gate) * up
                    let gu = linear(h2, .sharedGateUp)
                    let width = gu.extent.q / 2
                    sd = linear(mul(act(gu, width: width), gu, out: .q(width)), .sharedDown)
                } else {
                    let g = linear(h2, .sharedGate)
                    let u = linear(h2, .sharedUp)
                    sd = linear(mul(act(g, width: g.extent.q), u), .sharedDown)
                }
                var sharedOut = sd
                if shared == .gated {
                    // sigmoid(shared_expert_gate(x)) * shared_expert(x): sigmoid keeps its output
                    let gate = linear(h2, .sharedExpertGate)
                    let sig = tape.new(gate.extent, c.a, rg: gate.rg)
                    if gate.rg { tape.save(sig) }
                    sharedOut = mul(sig, sd, out: .q(a.hiddenSize))
                }
                d = tape.new(.q(a.hiddenSize), c.a, rg: d.rg || sharedOut.rg)
            }
        } else if t.fusedProjections || t.fusedGateUp {
            let gu = linear(h2, .gateUp)
            let width = gu.extent.q / 2
            if c.patch.gatedMLP {
                // LigerPhi3SwiGLUMLP (Liger-Kernel @ead96b61 transformers/swiglu.py): gate_up_proj,
                // chunk, LigerSiLUMulFunction — whose ensure_contiguous copies each chunk, and
                // it keeps the two copies (ops/swiglu.py L262)
                if gu.rg { tape.save(.q(width), gu.bytes); tape.save(.q(width), gu.bytes) }
                d = linear(tape.new(.q(width), c.a, rg: gu.rg), .down)
            } else {
                let g = act(gu, width: width)           // saves the gate_up storage
                let p = mul(g, gu, out: .q(width))
                d = linear(p, .down)
            }
        } else if t.plainMLP {
            let f = linear(h2, .up)
            d = linear(t.tanhGELUChain ? geluNew(f, width: f.extent.q) : act(f, width: f.extent.q), .down)
        } else if c.unslothFuses([.gate, .up, .down], layer: tape.layer) {
            // Unsloth's LoRA_MLP (unsloth @015bdef0 kernels/fast_lora.py L28–229): one autograd
            // function for gate, up, the SwiGLU (GeGLU on Gemma) and down, which keeps X (the
            // normed input itself), e = gate(X) and g = up(X) (save_for_backward L110) and
            // recomputes the activation, h and each X·A in backward. CUDA (Triton): not traced.
            tape.save(h2)
            let e = unslothLinear(h2, .gate)
            let g = unslothLinear(h2, .up)
            tape.save(e)
            tape.save(g)
            d = unslothLinear(tape.new(e.extent, c.a, rg: true), .down)
        } else {
            let g = linear(h2, .gate)
            let u = linear(h2, .up)
            if c.patch.gatedMLP {
                // LigerSwiGLUMLP / LigerGEGLUMLP (Liger-Kernel @ead96b61 transformers/swiglu.py,
                // geglu.py): down_proj(LigerSiLUMulFunction(gate_proj(x), up_proj(x))), which
                // keeps its two inputs and recomputes the activation in backward
                // (ops/swiglu.py L262, ops/geglu.py L138); Transformers' act(gate) * up keeps
                // the activation's output as well. CUDA (Triton): not traced.
                if g.rg || u.rg { tape.save(g); tape.save(u) }
                d = linear(tape.new(g.extent, c.a, rg: g.rg || u.rg), .down)
            } else {
                let p = mul(act(g, width: g.extent.q), u)
                d = linear(p, .down)
            }
        }
        d = dropout(d, a.hiddenDropout)
        if t.normsOutputs { d = blockNorm(d) }
        if c.method.spec.insertsBottleneck { d = bottleneck(d) }
        let out = tape.new(x.extent, c.stream, rg: x.rg || d.rg || (t.norms == .parallel && o.rg))
        return t.perLayerInput != nil ? perLayerInput(out) : out
    }

    /// The attention sub-block of the gated layer: q, k, v (separate or fused), head norms,
    /// rotary embeddings, attention (gated, with sinks, soft-capped as the traits say), o.
    func selfAttention(_ h1: Tape.T, _ cosSin: (Tape.T, Tape.T), _ t: GatedBlock) -> Tape.T {
        if t.layerHeadDims { return layerWidthAttention(h1, cosSin, t) }
        let a = c.arch
        var q: Tape.T, k: Tape.T, v: Tape.T
        if t.fusedProjections {
            let qkv = linear(h1, .qkv)
            q = qkv; k = qkv; v = qkv                  // views of one storage
        } else if c.unslothFuses([.q, .k, .v], layer: tape.layer) {
            // Unsloth's LoRA_QKV (unsloth @015bdef0 kernels/fast_lora.py L335–540): keeps X
            // (the normed input itself, save_for_backward L418–426), not q, k or v; each X·A
            // recomputed in backward
            tape.save(h1)
            q = unslothLinear(h1, .q)
            k = unslothLinear(h1, .k)
            v = unslothLinear(h1, .v)
        } else {
            q = linear(h1, .q)
            k = linear(h1, .k)
            v = linear(h1, .v)
        }
        // Qwen3-Next/3.5: q_proj yields the queries and a gate (torch.chunk: views)
        let gate = t.attentionOutputGate ? Tape.T(id: q.id, extent: .q(a.qDim), bytes: q.bytes, rg: q.rg) : nil
        if t.attentionOutputGate { q = Tape.T(id: q.id, extent: .q(a.qDim), bytes: q.bytes, rg: q.rg) }
        switch t.headNorm {
        case .none: break
        case .perHead where a.norm == .layer:
            // Phi's qk_layernorm: nn.LayerNorm(head_dim) keeps its input, mean and rstd per head
            q = layerNorm(q, groups: a.numHeads)
            k = layerNorm(k, groups: a.nKVHeads)
        case .perHead:
            q = rmsNorm(q, heads: a.numHeads, weightInFP32: a.norm == .rmsWeightInFP32, headNorm: true)
            k = rmsNorm(k, heads: a.nKVHeads, weightInFP32: a.norm == .rmsWeightInFP32, headNorm: true)
        case .fullWidth:
            q = rmsNorm(q, weightInFP32: a.norm == .rmsWeightInFP32, headNorm: true)
            k = rmsNorm(k, weightInFP32: a.norm == .rmsWeightInFP32, headNorm: true)
        case .weightless:
            // Llama4TextWeightlessRMSNorm in the rotary layers: x.float() * rsqrt(mean(x²) + eps)
            // keeps the fp32 copy and the reciprocal per head; type_as back to the model dtype.
            // Transformers applies it after the rotary embedding, which keeps no q or k of its
            // own (the complex product keeps only freqs_cis): the order leaves the bytes as they are
            if module(.qNorm) != nil {
                q = weightlessNorm(q, heads: a.numHeads)
                k = weightlessNorm(k, heads: a.nKVHeads)
            }
        }
        if t.headNorm != .none {
            q = Tape.T(id: q.id, extent: q.extent, bytes: c.a, rg: q.rg)
            k = Tape.T(id: k.id, extent: k.extent, bytes: c.a, rg: k.rg)
        }
        if t.fusedProjections {
            let qkv = q
            q = rope(Tape.T(id: qkv.id, extent: .q(a.qDim), bytes: c.a, rg: qkv.rg), cosSin)
            k = rope(Tape.T(id: qkv.id, extent: .q(a.kvDim), bytes: c.a, rg: qkv.rg), cosSin)
            v = qkv   // a view: saving it keeps the whole qkv storage
        } else {
            q = rope(q, cosSin)
            k = rope(k, cosSin)
        }
        let kk = kvSide(k)
        let vv = t.fusedProjections && !c.prefix ? cachedView(v) : kvSide(v)
        let sinks = t.sinks && module(.sinks) != nil
        var attn = attention(q: q, k: kk, v: vv, dropoutP: a.attentionDropout, softcap: t.scoreSoftcap,
                             softmaxFP32: !t.maxSubtractedSoftmax, vWidth: t.valueHeadDim.map { a.numHeads * $0 },
                             sinks: sinks, maxSubtracted: t.maxSubtractedSoftmax)
        if let gate {
            // attn_output * sigmoid(gate): sigmoid keeps its output, the product both operands
            let sig = tape.new(.q(a.qDim), c.a, rg: gate.rg)
            if gate.rg { tape.save(sig) }
            attn = mul(attn, sig)
        }
        if c.unslothFuses([.o], layer: tape.layer) {
            // Unsloth's LoRA_W for o_proj (fast_lora.py L574–650): keeps its input X (the
            // attention output, reshaped: a view) and recomputes X·A in backward
            tape.save(attn)
            return unslothLinear(attn, .o)
        }
        return linear(attn, .o)
    }

    /// One projection inside an Unsloth fused LoRA function (`matmul_lora`, unsloth @015bdef0
    /// kernels/utils.py L1128–1170): the base matmul (a 4-bit weight dequantised into one
    /// reused buffer, never kept) plus X·A·B with the fp32 adapters cast to the input's dtype
    /// per call; nothing saved here (the function keeps its inputs, above). Backward runs the
    /// input's and both adapters' gradients and computes X·A again (L173–189).
    func unslothLinear(_ x: Tape.T, _ role: ModuleRole) -> Tape.T {
        guard let m = module(role) else {
            tape.missing.insert(role)
            return x
        }
        let mm = 2 * m.inFeatures * m.outFeatures
        let r = c.options.loraR
        let a = 2 * m.inFeatures * r, b = 2 * r * m.outFeatures
        tape.flops(.q(1), forward: mm + a + b, backward: (x.rg ? mm : 0) + a + 2 * b + (x.rg ? a : 0) + a)
        return tape.new(.q(m.outFeatures), c.a, rg: true)
    }

    /// Nemotron-H's layer (`NemotronHBlock`): the norm, then the layer's one mixer — Mamba-2,
    /// attention without rotary embeddings, a ReLU² MLP, or ReLU² experts behind the latent
    /// projections beside a shared expert — and the residual.
    func mixerLayer(_ x0: Tape.T, _ t: GatedBlock) -> Tape.T {
        let a = c.arch
        let h = blockNorm(x0)
        var o: Tape.T
        // the layer's mixer is the one any of whose modules the layer holds
        func holds(_ roles: [ModuleRole]) -> Bool { roles.contains { module($0) != nil } }
        if let s = t.stateSpace, holds([.ssmIn, .ssmConv, .ssmParams, .ssmNorm, .ssmOut]) {
            o = mamba2(h, s)
        } else if holds([.q, .k, .v, .o]) {
            let q = linear(h, .q), k = linear(h, .k), v = linear(h, .v)
            o = linear(attention(q: q, k: kvSide(k), v: kvSide(v), dropoutP: a.attentionDropout), .o)
        } else if holds([.experts, .router, .sharedUp, .sharedDown, .latentIn, .latentOut]) {
            let latent = module(.latentIn) != nil ? linear(h, .latentIn) : nil
            var routed = moe(h, expertsInput: latent)
            if latent != nil { routed = linear(routed, .latentOut) }
            let u = linear(h, .sharedUp)
            let shared = linear(act(u, width: u.extent.q), .sharedDown)      // ReLU² keeps the ReLU output
            o = tape.new(.q(a.hiddenSize), c.a, rg: routed.rg || shared.rg)
        } else {
            let u = linear(h, .up)
            o = linear(act(u, width: u.extent.q), .down)
        }
        // a bottleneck adapter per layer, as the accounting counts one per layer
        if c.method.spec.insertsBottleneck { o = bottleneck(o) }
        return tape.new(x0.extent, c.stream, rg: x0.rg || o.rg)
    }

    /// Mamba-2 as Transformers runs it in training on CUDA with mamba-ssm's kernels
    /// (`NemotronHMamba2Mixer.forward` → `mamba_split_conv1d_scan_combined`; mamba-ssm's
    /// `MambaSplitConv1dScanCombinedFn`, state-spaces/mamba d757aef, ssd_combined.py): `in_proj`,
    /// then one autograd function for the convolution, the chunked scan, the gated RMSNorm and
    /// `out_proj`, which keeps the in_proj output (z, x, B, C, dt), the scan's output before the
    /// norm and the norm's reciprocal per group, and recomputes the rest in backward. The
    /// weight of `out_proj` is passed into it as a tensor, so a LoRA adapter on `out_proj` is
    /// not applied there. Not checked against a trace: on the CPU and the meta device
    /// Transformers runs its PyTorch path (`torch_forward`), which keeps far more; the CUDA
    /// kernels need a GPU to measure. The scan's own arithmetic is a Triton kernel, outside the
    /// FLOP count (PyTorch's counter cannot see it either); the projections and the
    /// convolution are counted.
    func mamba2(_ h: Tape.T, _ s: StateSpace) -> Tape.T {
        let a = c.arch
        let zxbcdt = linear(h, .ssmIn)
        for role in [ModuleRole.ssmConv, .ssmParams] + (s.norm ? [.ssmNorm] : []) where module(role) == nil { tape.missing.insert(role) }
        guard let out = module(.ssmOut) else {
            tape.missing.insert(.ssmOut)
            return h
        }
        let rg = zxbcdt.rg || c.baseTrainable
        if rg {
            tape.save(zxbcdt)
            tape.save(.q(s.width), c.a)             // out_x
            if s.norm { tape.save(.q(s.groups), 4) } // rstd (without the norm the scan gates by z itself)
        }
        // the convolution forward, and again in backward (recomputed), with its gradients
        let conv = 2 * s.convDim * s.kernel
        tape.flops(.q(1), forward: conv, backward: rg ? 3 * conv : 0)
        // out_proj inside the function: forward, the input's gradient, the weight's where it trains
        let mm = 2 * out.inFeatures * out.outFeatures
        tape.flops(.q(1), forward: mm, backward: (rg ? mm : 0) + (c.baseTrainable ? mm : 0))
        return tape.new(.q(a.hiddenSize), c.a, rg: rg)
    }

    /// LFM2's short convolution (`Lfm2ShortConv.forward`, the PyTorch path): in_proj to B, C
    /// and x (views of one storage), B·x (keeps both), the depthwise convolution (keeps its
    /// input where the weight trains), C times its output (keeps both), out_proj.
    func shortConvolution(_ h: Tape.T, kernel: Int) -> Tape.T {
        let a = c.arch
        let bcx = linear(h, .shortConvIn)
        if bcx.rg { tape.save(bcx) }                       // B, C and x are views of it
        let bx = tape.new(.q(a.hiddenSize), c.a, rg: bcx.rg)
        let convTrainable = c.baseTrainable
        if convTrainable { tape.save(bx) }
        let flops = 2 * a.hiddenSize * kernel
        tape.flops(.q(1), forward: flops, backward: (bx.rg ? flops : 0) + (convTrainable ? flops : 0))
        let convOut = tape.new(.q(a.hiddenSize), c.a, rg: bx.rg || convTrainable)
        if bcx.rg { tape.save(convOut) }
        let y = tape.new(.q(a.hiddenSize), c.a, rg: convOut.rg || bcx.rg)
        return linear(y, .shortConvOut)
    }

    /// Gated DeltaNet (`Qwen3_5GatedDeltaNet.forward`, Transformers 5.25) as it runs on CUDA:
    /// the input projections; the depthwise causal convolution with SiLU fused
    /// (causal-conv1d's kernel keeps its input); beta = sigmoid(b) (keeps its output);
    /// g = −exp(A_log) · softplus(a + dt_bias) in fp32; the chunked gated delta rule
    /// (flash-linear-attention's Triton kernel, modelled as keeping its inputs q, k, v, g and
    /// beta and recomputing the rest in backward); the gated RMSNorm over each value head
    /// (fp32, times silu(z)); out_proj. Not yet checked against a trace: on the CPU and the meta
    /// device Transformers runs a PyTorch fallback (`torch_chunk_gated_delta_rule`) that keeps
    /// far more, and the CUDA kernel's own saved tensors need a GPU to measure (issue 15).
    /// The kernel's own arithmetic is not in the FLOP count (PyTorch's counter cannot see
    /// Triton kernels either); the projections and the convolution are.
    func gatedDeltaNet(_ h: Tape.T, _ w: LinearAttention) -> Tape.T {
        let conv = 2 * w.qk + w.v
        var qkv: Tape.T, z: Tape.T, b: Tape.T, ga: Tape.T
        if w.fused {
            let qkvz = linear(h, .linearQKV)
            let ba = linear(h, .linearBA)
            qkv = Tape.T(id: qkvz.id, extent: .q(conv), bytes: qkvz.bytes, rg: qkvz.rg)
            z = Tape.T(id: qkvz.id, extent: .q(w.v), bytes: qkvz.bytes, rg: qkvz.rg)
            b = Tape.T(id: ba.id, extent: .q(w.valueHeads), bytes: ba.bytes, rg: ba.rg)
            ga = b
        } else {
            qkv = linear(h, .linearQKV)
            z = linear(h, .linearZ)
            b = linear(h, .linearB)
            ga = linear(h, .linearA)
        }
        guard let convolution = module(.linearConv) else {
            tape.missing.insert(.linearConv)
            return h
        }
        if module(.linearNorm) == nil { tape.missing.insert(.linearNorm) }
        // depthwise convolution: 2 · channels · kernel per token; backward the input's
        // gradient and, where the weight trains, the weight's
        let convFlops = 2 * convolution.ownParams
        let convTrainable = c.baseTrainable
        tape.flops(.q(1), forward: convFlops, backward: (qkv.rg ? convFlops : 0) + (convTrainable ? convFlops : 0))
        if qkv.rg || convTrainable { tape.save(qkv) }
        let mixed = tape.new(.q(conv), c.a, rg: qkv.rg || convTrainable)
        // beta = b.sigmoid()
        let beta = tape.new(.q(w.valueHeads), c.a, rg: b.rg)
        if b.rg { tape.save(beta) }
        // g = -A_log.float().exp() * softplus(a.float() + dt_bias)
        let paramsTrain = c.baseTrainable
        let aIn = tape.new(.q(w.valueHeads), 4, rg: ga.rg || paramsTrain)
        if aIn.rg { tape.save(aIn) }                                  // softplus keeps its input
        let soft = tape.new(.q(w.valueHeads), 4, rg: aIn.rg)
        if paramsTrain { tape.save(soft) }                           // the product's other operand
        let g = tape.new(.q(w.valueHeads), 4, rg: soft.rg || paramsTrain)
        // the chunked delta rule keeps its inputs: q, k, v (views of the convolution's output), g, beta
        let coreRG = mixed.rg || g.rg || beta.rg
        if coreRG { tape.save(mixed); tape.save(g); tape.save(beta) }
        let core = tape.new(.q(w.v), c.a, rg: coreRG)
        // Qwen3_5RMSNormGated: fp32 norm over each value head, weight, times silu(z.float())
        let x32 = tape.new(.q(w.v), 4, rg: core.rg)
        if core.rg { tape.save(x32); tape.save(.q(w.valueHeads), 4) }
        let normed = tape.new(.q(w.v), c.a, rg: core.rg)
        if c.baseTrainable { tape.save(normed) }
        let weighted = tape.new(.q(w.v), c.a, rg: core.rg || c.baseTrainable)
        let z32 = tape.new(.q(w.v), 4, rg: z.rg)
        if z.rg { tape.save(z32) }
        let siluZ = tape.new(.q(w.v), 4, rg: z.rg)
        if weighted.rg { tape.save(siluZ) }
        if z.rg { tape.save(weighted) }
        let gated = tape.new(.q(w.v), c.a, rg: weighted.rg || z.rg)
        return linear(gated, .linearOut)
    }

    /// Multi-head latent attention (`DeepseekV3Attention.forward`, Transformers v5): the
    /// query through its latent (or one `q_proj`), keys and values from one compressed latent
    /// plus a rotary key shared by the heads; no-rope and rope parts concatenated per head.
    func latentAttention(_ h: Tape.T, _ cosSin: (Tape.T, Tape.T), _ l: LatentAttention) -> Tape.T {
        let a = c.arch
        let heads = a.numHeads, qk = l.nope + l.rope
        let qLatent = l.qRank > 0 ? rmsNorm(linear(h, .qA)) : h
        let q = l.qRank > 0 ? linear(qLatent, .qB) : linear(h, .q)
        if l.indexer {
            // DeepSeek-V3.2's lightning indexer: queries from the query latent, one
            // LayerNorm'd key head, per-head weights; ReLU(q·k)·w scores every (query, key)
            // pair and a top-k picks the keys attention reads. It is trained by its own loss
            // in DeepSeek's recipe; in Transformers' forward nothing of it is differentiated
            // (PyTorch's counter sees no backward for it): forward matmuls only, nothing saved.
            for role in [ModuleRole.indexerQ, .indexerK, .indexerWeights, .indexerKNorm] where module(role) == nil {
                tape.missing.insert(role)
            }
            let iq = module(.indexerQ)?.outFeatures ?? 0
            let ik = module(.indexerK)?.outFeatures ?? 0
            let iw = module(.indexerWeights)?.outFeatures ?? 0
            let width = l.qRank > 0 ? l.qRank : a.hiddenSize
            tape.flops(.q(1), forward: 2 * (width * iq + a.hiddenSize * ik + a.hiddenSize * iw), backward: 0)
            tape.flops(.pair(1), forward: 2 * iq, backward: 0)
        }
        let ckv = linear(h, .kvA)
        // k_pass is a view of the latent; its norm upcasts it (a new fp32 tensor)
        let kPass = linear(rmsNorm(Tape.T(id: ckv.id, extent: .q(l.kvRank), bytes: ckv.bytes, rg: ckv.rg)), .kvB)
        let qRot = rope(Tape.T(id: q.id, extent: .q(heads * l.rope), bytes: q.bytes, rg: q.rg), cosSin)
        let kRot = rope(Tape.T(id: ckv.id, extent: .q(l.rope), bytes: ckv.bytes, rg: ckv.rg), cosSin)
        // torch.cat of the no-rope and rope parts: new tensors, nothing saved
        let qs = tape.new(.q(heads * qk), c.a, rg: q.rg || qRot.rg)
        let ks = tape.new(.q(heads * qk), c.a, rg: kPass.rg || kRot.rg)
        let vs = Tape.T(id: kPass.id, extent: .q(heads * l.v), bytes: kPass.bytes, rg: kPass.rg)
        let attn = attention(q: qs, k: kvSide(ks), v: kvSide(vs), dropoutP: a.attentionDropout, qkWidth: heads * qk, vWidth: heads * l.v)
        return linear(attn, .o)
    }

    /// Transformers v5 MoE (`integrations/moe.py`): router softmax and top-k, tokens
    /// sorted by expert, grouped matmuls over the fused expert weights, weighted sum.
    func moe(_ h: Tape.T, expertsInput: Tape.T? = nil) -> Tape.T {
        let a = c.arch
        let nonGated: Bool
        if case let .gated(t) = a.block { nonGated = t.nonGatedExperts } else { nonGated = false }
        // Nemotron 3: the experts read the latent projection of the input, the router the input
        let xIn = expertsInput ?? h
        let inWidth = expertsInput?.extent.q ?? a.hiddenSize
        if module(.router) == nil { tape.missing.insert(.router) }
        guard let experts = module(.experts) else {
            tape.missing.insert(.experts)
            return h
        }
        let k = a.expertsPerToken, e = a.numExperts, inter = experts.outFeatures
        // under QLoRA the experts stay unquantised, in the rest's dtype (fp32 after
        // prepare_model_for_kbit_training; see MemoryComponents.frozenWeights), as is the
        // residual stream: their matmuls and tensors are in that dtype
        let eb = c.method.spec.quantisesBase ? c.stream : c.a
        let routerTrainable = c.baseTrainable || wraps(.router)
        let fp32Router: Bool
        if case let .gated(t) = a.block { fp32Router = t.fp32Router } else { fp32Router = false }
        // a Linear router wrapped by a LoRA layer trains its adapter, not its weight; a router
        // wrapped through target_parameters (PEFT's ParamWrapper) gets its weight's gradient
        let linearLoRA = wraps(.router) && c.method.spec.wrapper == .lowRank && module(.router)?.kind == .linear
        let routerWeightGrad = linearLoRA ? c.baseTrainable : routerTrainable
        if routerWeightGrad { fp32Router ? tape.save(h.extent, 4) : tape.save(h) }
        if linearLoRA, let rm = module(.router) {
            // a LoRA-wrapped Linear router (all-linear picks it): the adapter's fp32 input and
            // rank-r output are kept, its matmuls run in fp32 (as for every wrapped Linear)
            let r = c.options.loraR, la = 2 * rm.inFeatures * r, lb = 2 * r * rm.outFeatures
            tape.flops(.q(1), forward: la + lb, backward: la + 2 * lb + (h.rg ? la : 0), fp32: true)
            tape.save(h.bytes == 4 ? h : tape.new(h.extent, 4, rg: h.rg))
            tape.save(.q(r), 4)
        }
        let logitsRG = h.rg || routerTrainable
        var plainClamp = false
        if case let .gated(t) = a.block { plainClamp = t.clampedPlainSwiGLU }
        if logitsRG && plainClamp {
            // DeepSeek-V4 (`DeepseekV4TopKRouter`, `DeepseekV4HashRouter`): sqrt(softplus(logits))
            // in the model dtype keeps the logits and the root; gather keeps the indices; the
            // renormalisation keeps the picked scores and their sum
            tape.save(.q(e), c.a)
            tape.save(.q(e), c.a)
            tape.save(.q(k), 8)
            tape.save(.q(1), c.a)
            tape.save(.q(k), c.a)
        } else if logitsRG {
            tape.save(.q(e), 4)          // softmax output
            tape.save(.q(k), 8)          // top-k indices
            tape.save(.q(1), 4)          // sum for renormalisation
            tape.save(.q(k), 4)          // renormalised weights
        }
        let expertsTrainable = c.baseTrainable || wraps(.experts)
        if xIn.rg { tape.save(.q(k), 8) }                      // gather indices
        if logitsRG { tape.save(.q(k), 8) }                    // weight permutation
        // router h → E, then per visited expert gate_up (in → 2I, or up in → I) and down (I → out)
        let router = 2 * a.hiddenSize * e, expert = 2 * k * (nonGated ? 2 : 3) * inWidth * inter
        tape.flops(.q(1), forward: router + expert,
                   backward: (h.rg ? router : 0) + (routerWeightGrad ? router : 0) + expert + (expertsTrainable ? expert : 0),
                   fp32: c.method.spec.quantisesBase && eb == 4)
        let gathered = tape.new(.q(k * inWidth), eb, rg: xIn.rg)
        if expertsTrainable { tape.save(gathered) }
        let gu = tape.new(.q(k * (nonGated ? 1 : 2) * inter), eb, rg: xIn.rg || expertsTrainable)
        let p: Tape.T
        if nonGated {
            // ReLU²: relu keeps its output, square keeps its input (the same tensor)
            if gu.rg { tape.save(.q(k * inter), eb) }
            p = tape.new(.q(k * inter), eb, rg: gu.rg)
        } else if plainClamp {
            // DeepSeek-V4 (`DeepseekV4Experts._apply_gate`): gate and up are views of gate_up,
            // each clamped (clamp keeps its input: the gate_up storage); SiLU keeps the clamped
            // gate; the product keeps SiLU's output and the clamped up
            if gu.rg {
                tape.save(gu)
                for _ in 0..<3 { tape.save(.q(k * inter), eb) }
            }
            p = tape.new(.q(k * inter), eb, rg: gu.rg)
        } else if case let .gated(t) = a.block, t.clampedSwiGLU {
            // gpt-oss (`GptOssExperts._apply_gate`): gate and up are strided views of
            // gate_up, each clamped (clamp keeps its input: the gate_up storage), then
            // glu = gate · sigmoid(gate · α) keeps the clamped gate and the sigmoid output,
            // and (up + 1) · glu keeps both of its operands
            if gu.rg {
                tape.save(gu)
                for _ in 0..<4 { tape.save(.q(k * inter), eb) }
            }
            p = tape.new(.q(k * inter), eb, rg: gu.rg)
        } else {
            // SiLU keeps its input (gate_up's storage); the product keeps both operands
            if gu.rg { tape.save(gu) }
            let g = tape.new(.q(k * inter), eb, rg: gu.rg)
            if gu.rg { tape.save(g) }
            p = tape.new(.q(k * inter), eb, rg: gu.rg)
        }
        if expertsTrainable { tape.save(p) }
        let proj = tape.new(.q(k * inWidth), eb, rg: p.rg || expertsTrainable)
        let weights = tape.new(.q(k), plainClamp ? c.a : 4, rg: logitsRG)
        _ = mul(proj, weights, out: .q(k * inWidth))
        if proj.rg || weights.rg { tape.save(.q(k), 8) }       // inverse permutation
        return tape.new(.q(inWidth), c.a, rg: proj.rg || weights.rg)
    }

    /// Llama 4's experts as Transformers 5.25 runs them (`Llama4TextMoe`, `Llama4Router`,
    /// `Llama4TextExperts`): the router Linear; top-k of its logits (keeps the indices); the
    /// top values scattered into a −inf row (scatter keeps the indices) and the sigmoid of
    /// that in fp32 (keeps its output), cast back; the input repeated once per expert, times
    /// the expert's score (the product keeps both); per expert a bmm to gate_up (keeps its
    /// input where the experts train), SiLU of the gate (keeps the gate_up storage), gate ·
    /// up (keeps both), a bmm to h (keeps its input where the experts train); summed over
    /// experts. Every expert sees every token.
    func denseDispatchExperts(_ h: Tape.T) -> Tape.T {
        let a = c.arch
        guard let experts = module(.experts) else {
            tape.missing.insert(.experts)
            return h
        }
        let k = a.expertsPerToken, e = a.numExperts, inter = experts.outFeatures
        let eb = c.method.spec.quantisesBase ? c.stream : c.a    // QLoRA's experts in the rest's dtype, as in moe()
        let logits = linear(h, .router)
        if logits.rg {
            tape.save(.q(k), 8)                                  // topk indices
            tape.save(.q(k), 8)                                  // scatter_'s index
            tape.save(.q(e), 4)                                  // sigmoid output
        }
        let scores = tape.new(.q(e), c.a, rg: logits.rg)
        let repeated = tape.new(.q(e * a.hiddenSize), eb, rg: h.rg)
        let scaled = mul(repeated, tape.new(.q(e), eb, rg: scores.rg), out: .q(e * a.hiddenSize))
        let expertsTrainable = c.baseTrainable || wraps(.experts)
        if expertsTrainable { tape.save(scaled) }
        let expert = 2 * e * 3 * a.hiddenSize * inter
        tape.flops(.q(1), forward: expert, backward: (scaled.rg ? expert : 0) + (expertsTrainable ? expert : 0),
                   fp32: c.method.spec.quantisesBase && eb == 4)
        let gu = tape.new(.q(e * 2 * inter), eb, rg: scaled.rg || expertsTrainable)
        if gu.rg { tape.save(gu) }                               // SiLU's input, the product's up: one storage
        let g = tape.new(.q(e * inter), eb, rg: gu.rg)
        if gu.rg { tape.save(g) }
        let p = tape.new(.q(e * inter), eb, rg: gu.rg)
        if expertsTrainable { tape.save(p) }
        return tape.new(.q(a.hiddenSize), c.a, rg: p.rg || expertsTrainable)
    }

    /// GPT-2 and BLOOM blocks: layer norm, fused qkv (q, k and v are views of one
    /// storage), attention, dense, dropout, residual; layer norm, MLP, dropout, residual.
    /// BLOOM's eager attention copies q, k, v per head and keeps an fp32 softmax; GPT-2's
    /// GELU is written in Python ops (four saved tensors).
    func sequentialLayer(_ x0: Tape.T, bloom: Bool) -> Tape.T {
        let a = c.arch
        let qkv = linear(layerNorm(x0), .qkv)
        let view = Tape.T(id: qkv.id, extent: .q(3 * a.hiddenSize), bytes: qkv.bytes, rg: qkv.rg)
        let kv = c.prefix ? kvSide(tape.new(.q(a.hiddenSize), c.a, rg: true)) : cachedView(view)
        let attn = attention(q: view, k: kv, v: kv, dropoutP: a.attentionDropout, softmaxFP32: bloom, bloomStyle: bloom)
        let o = dropout(linear(attn, .o), a.hiddenDropout)
        let x1 = tape.new(x0.extent, c.a, rg: x0.rg || o.rg)
        let f = linear(layerNorm(x1), .up)
        var d = linear(bloom ? act(f, width: a.intermediateSize) : geluNew(f, width: a.intermediateSize), .down)
        d = dropout(d, a.hiddenDropout)
        if c.method.spec.insertsBottleneck { d = bottleneck(d) }
        return tape.new(x0.extent, c.a, rg: x1.rg || d.rg)
    }

    func neoxLayer(_ x0: Tape.T, _ cosSin: (Tape.T, Tape.T)) -> Tape.T {
        let a = c.arch
        let h1 = layerNorm(x0)
        let qkv = linear(h1, .qkv)
        let q = rope(Tape.T(id: qkv.id, extent: .q(a.qDim), bytes: c.a, rg: qkv.rg), cosSin)
        let k = kvSide(rope(Tape.T(id: qkv.id, extent: .q(a.qDim), bytes: c.a, rg: qkv.rg), cosSin))
        let v = c.prefix ? kvSide(qkv) : cachedView(Tape.T(id: qkv.id, extent: .kv(3 * a.hiddenSize), bytes: c.a, rg: qkv.rg))
        let attn = attention(q: q, k: k, v: v, dropoutP: a.attentionDropout)
        var o = linear(attn, .o)
        o = dropout(o, a.hiddenDropout)
        // use_parallel_residual: the MLP reads the same block input through its own norm.
        let h2 = layerNorm(x0)
        let f = linear(h2, .up)
        var d = linear(act(f, width: a.intermediateSize), .down)
        d = dropout(d, a.hiddenDropout)
        if c.method.spec.insertsBottleneck { d = bottleneck(d) }
        return tape.new(x0.extent, c.a, rg: x0.rg || o.rg || d.rg)
    }

    func optLayer(_ x0: Tape.T, preNorm before: Bool) -> Tape.T {
        let a = c.arch
        let h1 = before ? layerNorm(x0) : x0
        let q = linear(h1, .q)
        let k = kvSide(linear(h1, .k))
        let v = kvSide(linear(h1, .v))
        let attn = attention(q: q, k: k, v: v, dropoutP: a.attentionDropout)
        var o = linear(attn, .o)
        o = dropout(o, a.hiddenDropout)
        var x1 = tape.new(x0.extent, c.a, rg: x0.rg || o.rg)
        if !before { x1 = layerNorm(x1) }
        let h2 = before ? layerNorm(x1) : x1
        let f = linear(h2, .up)
        var d = linear(relu(f, width: a.intermediateSize), .down)
        d = dropout(d, a.hiddenDropout)
        if c.method.spec.insertsBottleneck { d = bottleneck(d) }
        var x2 = tape.new(x0.extent, c.a, rg: x1.rg || d.rg)
        if !before { x2 = layerNorm(x2) }
        return x2
    }

    func falconLayer(_ x0: Tape.T, _ cosSin: (Tape.T, Tape.T), parallel: Bool, twoNorms: Bool) -> Tape.T {
        let a = c.arch
        let h1 = layerNorm(x0)
        let qkv = linear(h1, .qkv)
        let q = rope(Tape.T(id: qkv.id, extent: .q(a.qDim), bytes: c.a, rg: qkv.rg), cosSin)
        let k = kvSide(rope(Tape.T(id: qkv.id, extent: .q(a.kvDim), bytes: c.a, rg: qkv.rg), cosSin))
        let v = c.prefix ? kvSide(qkv) : cachedView(Tape.T(id: qkv.id, extent: .kv(a.qDim + 2 * a.kvDim), bytes: c.a, rg: qkv.rg))
        let attn = attention(q: q, k: k, v: v, dropoutP: a.attentionDropout)
        let o = linear(attn, .o)
        var mlpIn = h1
        var x1 = x0
        if twoNorms { mlpIn = layerNorm(x0) }        // ln_mlp reads the same block input
        if !parallel {
            x1 = tape.new(x0.extent, c.a, rg: x0.rg || o.rg)
            mlpIn = layerNorm(x1)
        }
        let f = linear(mlpIn, .up)
        var d = linear(act(f, width: a.intermediateSize), .down)
        if c.method.spec.insertsBottleneck { d = bottleneck(d) }
        return tape.new(x0.extent, c.a, rg: x1.rg || o.rg || d.rg)
    }
}

// MARK: - Gemma 4

extension ForwardGraph {
    /// Gemma 4's attention (`Gemma4TextAttention`, modeling_gemma4.py, 5.25): widths from the
    /// layer's own q_proj (sliding and full layers differ), q and k normed per head, the
    /// values by a weightless RMSNorm, rotary on q and k. A layer without k_proj reuses the
    /// keys and values of the last layer of its width that made them; one without v_proj
    /// takes its keys, before their norm and rotary, as values (K = V).
    func layerWidthAttention(_ h1: Tape.T, _ cosSin: (Tape.T, Tape.T), _ t: GatedBlock) -> Tape.T {
        let a = c.arch
        guard let qm = module(.q) else {
            tape.missing.insert(.q)
            return h1
        }
        let width = qm.outFeatures
        var q = linear(h1, .q)
        q = gemma4Norm(q, groups: a.numHeads, width: width / max(1, a.numHeads))
        q = rope(Tape.T(id: q.id, extent: q.extent, bytes: c.a, rg: q.rg), cosSin)
        let kv: (k: Tape.T, v: Tape.T)
        let sharing = t.kvSharingLayers.contains(tape.layer)
        if !sharing, let km = module(.k) {
            let heads = max(1, km.outFeatures * a.numHeads / max(1, width))
            let raw = linear(h1, .k)
            let vRaw = t.keyAsValueLayers.contains(tape.layer) ? raw : linear(h1, .v)
            var k = gemma4Norm(raw, groups: heads, width: width / max(1, a.numHeads))
            k = rope(Tape.T(id: k.id, extent: k.extent, bytes: c.a, rg: k.rg), cosSin)
            let v = t.valueNorm ? gemma4Norm(vRaw, groups: heads, width: 0, weighted: false) : vRaw
            kv = (kvSide(k), kvSide(v))
            tape.sharedKV[qm.key] = kv
        } else if sharing, let stored = tape.sharedKV[qm.key] {
            kv = stored
        } else {
            tape.missing.insert(.k)
            return h1
        }
        let attn = attention(q: q, k: kv.k, v: kv.v, dropoutP: a.attentionDropout, qkWidth: width, vWidth: width)
        return linear(attn, .o)
    }

    /// Gemma 4's dense MLP and routed experts side by side (`Gemma4TextDecoderLayer` with
    /// `enable_moe_block`): the MLP's output normed; the router reading the residual through a
    /// weightless RMSNorm, the experts reading it through their own norm, their output normed;
    /// the two added.
    func denseAndExperts(_ h2: Tape.T, residual x: Tape.T) -> Tape.T {
        let a = c.arch
        let g = linear(h2, .gate)
        let u = linear(h2, .up)
        let dense = gemma4Norm(linear(mul(act(g, width: g.extent.q), u), .down), groups: 1, width: a.hiddenSize)
        // the router's weightless norm, then × scale (a parameter: kept when it trains)
        var routerInput = gemma4Norm(x, groups: 1, width: 0, weighted: false)
        if c.baseTrainable { tape.save(routerInput) }
        routerInput = tape.new(routerInput.extent, c.a, rg: routerInput.rg || c.baseTrainable)
        let expertsInput = gemma4Norm(x, groups: 1, width: a.hiddenSize)
        let routed = gemma4Norm(moe(routerInput, expertsInput: expertsInput), groups: 1, width: a.hiddenSize)
        return tape.new(.q(a.hiddenSize), c.a, rg: dense.rg || routed.rg)
    }

    /// `Gemma4RMSNorm` over `groups` slices of `width` each (one for the hidden state, one per
    /// head for q, k and v, one per layer for the per-layer inputs): x.float() kept by pow(2)
    /// and the product, the mean kept by pow(−0.5), its result by the product; the fp32
    /// weight kept when the input needs a gradient, the normed fp32 tensor when the weight
    /// trains; `weighted: false` for the scale-free norms (values, the router's input).
    func gemma4Norm(_ x: Tape.T, groups: Int, width: Int, weighted: Bool = true) -> Tape.T {
        let x32 = x.bytes == 4 ? x : tape.new(x.extent, 4, rg: x.rg)
        if x.rg {
            tape.save(x32)
            tape.save(.q(groups), 4)
            tape.save(.q(groups), 4)
        }
        var rg = x.rg
        if weighted {
            if x.rg { tape.save(Extent(fixed: width), 4) }
            if c.baseTrainable { tape.save(tape.new(x.extent, 4, rg: true)) }
            rg = rg || c.baseTrainable
        }
        return tape.new(x.extent, c.stream, rg: rg)
    }

    /// The per-layer inputs (`get_per_layer_inputs`, `project_per_layer_inputs`): the packed
    /// per-layer embedding of the tokens plus the embeddings' projection to every layer's
    /// inputs (normed per layer), kept for the layers to read.
    func perLayerInputs(_ x: Tape.T, width: Int) {
        let a = c.arch
        let layers = a.numLayers
        let trainable = c.baseTrainable || wraps(.perLayerEmbed)
        let projected = module(.perLayerModelProjection) != nil ? linear(x, .perLayerModelProjection) : x
        let normed = gemma4Norm(projected, groups: layers, width: width)
        tape.perLayerInputs = tape.new(.q(layers * width), c.a, rg: normed.rg || trainable)
    }

    /// The layer's per-layer input (`Gemma4TextDecoderLayer.forward`): gate the output to the
    /// per-layer width, GELU, multiply by the layer's slice of the per-layer inputs (a view of
    /// their one storage), project back, norm, add.
    func perLayerInput(_ x: Tape.T) -> Tape.T {
        let a = c.arch
        let g = linear(x, .perLayerGate)
        let gelu = act(g, width: g.extent.q)
        let slice = tape.perLayerInputs ?? tape.new(g.extent, c.a, rg: false)
        let p = mul(gelu, slice, out: g.extent)
        let back = gemma4Norm(linear(p, .perLayerProjection), groups: 1, width: a.hiddenSize)
        return tape.new(x.extent, c.stream, rg: x.rg || back.rg)
    }
}
