import Foundation

/// Reads a Hugging Face `config.json` into an ``Architecture``.
///
/// Field names and defaults follow the Transformers configuration classes (v5): where a
/// key is missing the class default applies (for instance `tie_word_embeddings` is true
/// for Gemma, GPT-2, OPT, Falcon and BLOOM and false for the others); the dimensions
/// themselves must be present.
public enum ConfigReader {
    /// Largest accepted value of any dimension: far above any real model, far below
    /// where products of dimensions could overflow 64-bit integers.
    static let dimensionLimit = 1 << 22

    /// Reads `path`, which may be a config.json file or a folder that holds one.
    public static func read(path: String) throws -> Architecture {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw PlanError.unreadableConfig(path: path, reason: "no such file or folder")
        }
        let file = isDir.boolValue ? (path as NSString).appendingPathComponent("config.json") : path
        let data: Data
        do {
            data = try smallFile(file)
        } catch let PlanError.unreadableConfig(_, reason) {
            throw PlanError.unreadableConfig(path: path, reason: isDir.boolValue ? "the folder holds no readable config.json (\(reason))" : reason)
        }
        return try parse(data: data, name: isDir.boolValue ? (path as NSString).lastPathComponent : "", source: path)
    }

    /// The name of a model read from a config: the folder the user named; else the file's
    /// own name (`configs/gpt2.json` → gpt2); for a file called config.json, the checkpoint
    /// the config names (`_name_or_path`, last part), else "config". Never the parent folder
    /// of a named file (in Hugging Face's cache that is a commit hash).
    static func modelName(given: String, source: String, dict: [String: Any]) -> String {
        // a name fit for a one-line message: printable, not a path step, at most 128 characters
        func usable(_ s: String) -> String? {
            let t = s.trimmingCharacters(in: .whitespaces)
            guard !t.isEmpty, t.count <= 128, t != ".", t != "..",
                  !t.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) else { return nil }
            return t
        }
        if let g = usable(given) { return g }
        let stem = ((source as NSString).lastPathComponent as NSString).deletingPathExtension
        if stem.lowercased() != "config", let s = usable(stem) { return s }
        if let named = dict["_name_or_path"] as? String ?? dict["name_or_path"] as? String,
           let last = usable((named.trimmingCharacters(in: CharacterSet(charactersIn: "/ ")) as NSString).lastPathComponent) {
            return last
        }
        return "config"
    }

    /// Largest file read as a config or a profile (real config.json files are a few KiB).
    static let fileSizeLimit = 16 << 20

    /// Reads a regular file of at most ``fileSizeLimit`` bytes: a device, a pipe or a huge
    /// file would otherwise be read without end.
    static func smallFile(_ path: String) throws -> Data {
        let url = URL(fileURLWithPath: path).resolvingSymlinksInPath()
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
              attributes[.type] as? FileAttributeType == .typeRegular else {
            throw PlanError.unreadableConfig(path: path, reason: "not a regular file")
        }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        guard size <= fileSizeLimit else {
            throw PlanError.unreadableConfig(path: path, reason: "\(size) bytes, more than any config.json (limit \(fileSizeLimit >> 20) MiB)")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PlanError.unreadableConfig(path: path, reason: "the file cannot be read")
        }
        return data
    }

    /// Parses config.json bytes; `source` names the file in errors.
    public static func parse(data: Data, name: String, source: String = "config.json") throws -> Architecture {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw PlanError.malformedConfig(path: source, reason: "not valid JSON (truncated or corrupt?)")
        }
        guard let dict = object as? [String: Any] else {
            throw PlanError.malformedConfig(path: source, reason: "the top level is not a JSON object")
        }
        return try build(Fields(dict, source: source), name: modelName(given: name, source: source, dict: dict))
    }

    /// Typed access to config fields with the aliases Transformers accepts.
    struct Fields {
        let dict: [String: Any]
        let source: String
        init(_ dict: [String: Any], source: String) { self.dict = dict; self.source = source }

        func raw(_ keys: [String]) -> (String, Any)? {
            for k in keys { if let v = dict[k], !(v is NSNull) { return (k, v) } }
            return nil
        }

        /// A required positive dimension.
        func dim(_ keys: String...) throws -> Int {
            guard let (key, value) = raw(keys) else {
                throw PlanError.invalidDimension(field: keys[0], value: "missing", reason: "the config must give it")
            }
            return try positive(key, value)
        }

        /// An optional positive dimension (nil when absent or null).
        func optionalDim(_ keys: String...) throws -> Int? {
            guard let (key, value) = raw(keys) else { return nil }
            return try positive(key, value)
        }

        func isBoolean(_ n: NSNumber) -> Bool { ConfigReader.isBoolean(n) }

        func positive(_ key: String, _ value: Any) throws -> Int {
            guard let n = value as? NSNumber, !isBoolean(n) else {
                throw PlanError.invalidDimension(field: key, value: "\(value)", reason: "must be a positive integer")
            }
            let d = n.doubleValue
            guard d.isFinite, d == d.rounded() else {
                throw PlanError.invalidDimension(field: key, value: "\(n)", reason: "must be a positive integer")
            }
            guard d >= 1 else {
                throw PlanError.invalidDimension(field: key, value: "\(n)", reason: "must be at least 1")
            }
            guard d <= Double(ConfigReader.dimensionLimit) else {
                throw PlanError.invalidDimension(field: key, value: "\(n)", reason: "larger than any real model (limit \(ConfigReader.dimensionLimit))")
            }
            return Int(d)
        }

        func bool(_ key: String, default fallback: Bool) throws -> Bool {
            guard let (_, value) = raw([key]) else { return fallback }
            if let n = value as? NSNumber, isBoolean(n) { return n.boolValue }
            throw PlanError.invalidDimension(field: key, value: "\(value)", reason: "must be true or false")
        }

        func probability(_ keys: String..., default fallback: Double) throws -> Double {
            guard let (key, value) = raw(keys) else { return fallback }
            guard let n = value as? NSNumber, !isBoolean(n),
                  n.doubleValue.isFinite, n.doubleValue >= 0, n.doubleValue < 1 else {
                throw PlanError.invalidDimension(field: key, value: "\(value)", reason: "must be a probability in [0, 1)")
            }
            return n.doubleValue
        }

        func string(_ key: String) -> String? { dict[key] as? String }
        func has(_ key: String) -> Bool { if let v = dict[key] { return !(v is NSNull) } else { return false } }
    }

    static func build(_ f: Fields, name: String) throws -> Architecture {
        guard let typeValue = f.dict["model_type"] else {
            throw PlanError.invalidDimension(field: "model_type", value: "missing", reason: "the config must say which architecture it is")
        }
        guard let type = typeValue as? String else {
            throw PlanError.invalidDimension(field: "model_type", value: "\(typeValue)", reason: "must be a string")
        }
        guard let family = ModelFamily(rawValue: type) else {
            throw PlanError.unsupportedModelType(type, supported: ModelFamily.allCases.map(\.rawValue))
        }
        let arch: Architecture
        switch family {
        case .llama, .mistral, .mixtral, .qwen2, .qwen3, .gemma, .gemma2, .phi3:
            arch = try llamaStyle(f, family: family, name: name)
        case .gpt2: arch = try gpt2(f, name: name)
        case .gptNeoX: arch = try gptNeoX(f, name: name)
        case .opt: arch = try opt(f, name: name)
        case .falcon: arch = try falcon(f, name: name)
        case .bloom: arch = try bloom(f, name: name)
        }
        guard arch.numLayers <= layerLimit else {
            throw PlanError.invalidDimension(field: "num_hidden_layers", value: "\(arch.numLayers)",
                                             reason: "more than \(layerLimit) layers, far beyond any real model")
        }
        guard arch.checkedTotalParams(limit: parameterLimit) != nil else {
            throw PlanError.invalidDimension(field: "model", value: "\(arch.numLayers) layers × hidden \(arch.hiddenSize)",
                                             reason: "over 10^15 parameters, far beyond any real model")
        }
        return arch
    }

    /// Largest layer count accepted (the deepest released models have about 130).
    static let layerLimit = 10_000

    /// Largest total parameter count accepted (a thousand times the largest real model).
    static let parameterLimit = 1_000_000_000_000_000

    /// JSON's true/false arrive as NSNumber; on Linux only the ObjC type code tells them
    /// from numbers ("c" or "B" for a boolean; JSON integers come as "q", reals as "d").
    static func isBoolean(_ n: NSNumber) -> Bool {
        let code = String(cString: n.objCType)
        return code == "c" || code == "B"
    }

    static func checkHeads(hidden: Int, heads: Int, kv: Int, headDimGiven: Bool) throws {
        if !headDimGiven && hidden % heads != 0 {
            throw PlanError.invalidDimension(field: "num_attention_heads", value: "\(heads)",
                                             reason: "does not divide hidden_size \(hidden)")
        }
        if heads % kv != 0 {
            throw PlanError.invalidDimension(field: "num_key_value_heads", value: "\(kv)",
                                             reason: "does not divide num_attention_heads \(heads)")
        }
    }

    static func blank(_ name: String, _ family: ModelFamily, h: Int, layers: Int, heads: Int, kv: Int, headDim: Int,
                      inter: Int, vocab: Int, positions: Int, tied: Bool) -> Architecture {
        Architecture(name: name, family: family, hiddenSize: h, numLayers: layers, numHeads: heads, nKVHeads: kv,
                     headDim: headDim, intermediateSize: inter, vocabSize: vocab, maxPositions: positions,
                     tiedEmbeddings: tied, numExperts: 0, expertsPerToken: 0, feedForward: .plain, norm: .layer,
                     hiddenDropout: 0, attentionDropout: 0, embedDim: h, modules: [],
                     finalLogitSoftcapping: false, supportsSDPA: true, layerPrefix: "")
    }

    // MARK: - Llama-style families

    static func llamaStyle(_ f: Fields, family: ModelFamily, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let heads = try f.dim("num_attention_heads")
        let kv = try f.optionalDim("num_key_value_heads") ?? heads
        let explicitHeadDim = try f.optionalDim("head_dim")
        try checkHeads(hidden: h, heads: heads, kv: kv, headDimGiven: explicitHeadDim != nil)
        let hd = explicitHeadDim ?? h / heads
        let inter = try f.dim("intermediate_size")
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("max_position_embeddings") ?? 2048
        let tiedDefault = family == .gemma || family == .gemma2
        var a = blank(name, family, h: h, layers: layers, heads: heads, kv: kv, headDim: hd, inter: inter,
                      vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: tiedDefault))
        a.feedForward = .gated
        a.norm = .rms
        a.layerPrefix = "model.layers"
        a.attentionDropout = try f.probability("attention_dropout", default: 0)

        let qkvBias: Bool
        let oBias: Bool
        switch family {
        case .qwen2: qkvBias = true; oBias = false       // Qwen2Attention hard-codes bias on q, k, v
        case .llama, .qwen3, .gemma, .gemma2:
            qkvBias = try f.bool("attention_bias", default: false); oBias = qkvBias
        case .mistral, .mixtral, .phi3: qkvBias = false; oBias = false
        case .gpt2, .gptNeoX, .opt, .falcon, .bloom: qkvBias = false; oBias = false   // not read here (own readers)
        }
        let mlpBias = family == .llama ? try f.bool("mlp_bias", default: false) : false
        var m: [ModuleSpec] = [ModuleSpec("model.embed_tokens", .embedding, in: vocab, out: h, perLayer: false)]
        if family == .phi3 {
            m += [ModuleSpec("self_attn.o_proj", .linear, in: a.qDim, out: h),
                  ModuleSpec("self_attn.qkv_proj", .linear, in: h, out: a.qDim + 2 * a.kvDim),
                  ModuleSpec("mlp.gate_up_proj", .linear, in: h, out: 2 * inter),
                  ModuleSpec("mlp.down_proj", .linear, in: inter, out: h)]
        } else {
            m += [ModuleSpec("self_attn.q_proj", .linear, in: h, out: a.qDim, bias: qkvBias),
                  ModuleSpec("self_attn.k_proj", .linear, in: h, out: a.kvDim, bias: qkvBias),
                  ModuleSpec("self_attn.v_proj", .linear, in: h, out: a.kvDim, bias: qkvBias),
                  ModuleSpec("self_attn.o_proj", .linear, in: a.qDim, out: h, bias: oBias)]
            if family == .qwen3 {
                m += [ModuleSpec("self_attn.q_norm", .norm, ownParams: hd),
                      ModuleSpec("self_attn.k_norm", .norm, ownParams: hd)]
            }
            if family == .mixtral {
                let experts = try f.dim("num_local_experts")
                let perToken = try f.dim("num_experts_per_tok")
                guard perToken <= experts else {
                    throw PlanError.invalidDimension(field: "num_experts_per_tok", value: "\(perToken)",
                                                     reason: "exceeds num_local_experts \(experts)")
                }
                a.numExperts = experts
                a.expertsPerToken = perToken
                let perExpertRow = experts.multipliedReportingOverflow(by: 3 * h)
                guard !perExpertRow.overflow, !perExpertRow.partialValue.multipliedReportingOverflow(by: inter).overflow else {
                    throw PlanError.invalidDimension(field: "num_local_experts", value: "\(experts)", reason: "the experts are too large to count")
                }
                // Transformers v5 fuses the experts into 3-D tensors (gate_up_proj, down_proj):
                // they are parameters, not Linear modules, so LoRA's module targets miss them.
                m += [ModuleSpec("mlp.gate", .router, in: h, out: experts, ownParams: experts * h),
                      ModuleSpec("mlp.experts", .experts, in: h, out: inter, ownParams: experts * 3 * h * inter)]
            } else {
                m += [ModuleSpec("mlp.gate_proj", .linear, in: h, out: inter, bias: mlpBias),
                      ModuleSpec("mlp.up_proj", .linear, in: h, out: inter, bias: mlpBias),
                      ModuleSpec("mlp.down_proj", .linear, in: inter, out: h, bias: mlpBias)]
            }
        }
        m += [ModuleSpec("input_layernorm", .norm, ownParams: h),
              ModuleSpec("post_attention_layernorm", .norm, ownParams: h)]
        if family == .gemma2 {
            m += [ModuleSpec("pre_feedforward_layernorm", .norm, ownParams: h),
                  ModuleSpec("post_feedforward_layernorm", .norm, ownParams: h)]
            // Gemma2Config's default is 30.0; only an explicit null turns it off.
            if let v = f.dict["final_logit_softcapping"], !(v is NSNull) {
                guard let n = v as? NSNumber, !isBoolean(n), n.doubleValue.isFinite, n.doubleValue > 0 else {
                    throw PlanError.invalidDimension(field: "final_logit_softcapping", value: "\(v)", reason: "must be a positive number or null")
                }
            }
            a.finalLogitSoftcapping = !(f.dict["final_logit_softcapping"] is NSNull)
            a.supportsSDPA = false   // Gemma2ForCausalLM refuses sdpa in Transformers v5 (soft-capping)
        }
        m += [ModuleSpec("model.norm", .norm, ownParams: h, perLayer: false),
              ModuleSpec("lm_head", .linear, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.modules = m
        return a
    }

    // MARK: - GPT-2

    static func gpt2(_ f: Fields, name: String) throws -> Architecture {
        let h = try f.dim("n_embd", "hidden_size")
        let layers = try f.dim("n_layer", "num_hidden_layers")
        let heads = try f.dim("n_head", "num_attention_heads")
        try checkHeads(hidden: h, heads: heads, kv: heads, headDimGiven: false)
        let inter = try f.optionalDim("n_inner") ?? 4 * h
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("n_positions", "max_position_embeddings") ?? 1024
        var a = blank(name, .gpt2, h: h, layers: layers, heads: heads, kv: heads, headDim: h / heads, inter: inter,
                      vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: true))
        a.layerPrefix = "transformer.h"
        a.hiddenDropout = try f.probability("resid_pdrop", default: 0.1)
        a.attentionDropout = try f.probability("attn_pdrop", default: 0.1)
        let embdDropout = try f.probability("embd_pdrop", default: 0.1)
        a.hiddenDropout = max(a.hiddenDropout, embdDropout)
        a.modules = [
            ModuleSpec("transformer.wte", .embedding, in: vocab, out: h, perLayer: false),
            ModuleSpec("transformer.wpe", .positionEmbedding, in: positions, out: h, perLayer: false),
            ModuleSpec("ln_1", .norm, ownParams: 2 * h),
            ModuleSpec("attn.c_attn", .conv1d, in: h, out: 3 * h, bias: true),
            ModuleSpec("attn.c_proj", .conv1d, in: h, out: h, bias: true),
            ModuleSpec("ln_2", .norm, ownParams: 2 * h),
            ModuleSpec("mlp.c_fc", .conv1d, in: h, out: inter, bias: true),
            ModuleSpec("mlp.c_proj", .conv1d, in: inter, out: h, bias: true),
            ModuleSpec("transformer.ln_f", .norm, ownParams: 2 * h, perLayer: false),
            ModuleSpec("lm_head", .linear, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings),
        ]
        return a
    }

    // MARK: - GPT-NeoX

    static func gptNeoX(_ f: Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let heads = try f.dim("num_attention_heads")
        try checkHeads(hidden: h, heads: heads, kv: heads, headDimGiven: false)
        let inter = try f.dim("intermediate_size")
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("max_position_embeddings") ?? 2048
        var a = blank(name, .gptNeoX, h: h, layers: layers, heads: heads, kv: heads, headDim: h / heads, inter: inter,
                      vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: false))
        a.layerPrefix = "gpt_neox.layers"
        a.hiddenDropout = try f.probability("hidden_dropout", default: 0)
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        let bias = try f.bool("attention_bias", default: true)
        a.modules = [
            ModuleSpec("gpt_neox.embed_in", .embedding, in: vocab, out: h, perLayer: false),
            ModuleSpec("input_layernorm", .norm, ownParams: 2 * h),
            ModuleSpec("post_attention_layernorm", .norm, ownParams: 2 * h),
            ModuleSpec("attention.query_key_value", .linear, in: h, out: 3 * h, bias: bias),
            ModuleSpec("attention.dense", .linear, in: h, out: h, bias: bias),
            ModuleSpec("mlp.dense_h_to_4h", .linear, in: h, out: inter, bias: true),
            ModuleSpec("mlp.dense_4h_to_h", .linear, in: inter, out: h, bias: true),
            ModuleSpec("gpt_neox.final_layer_norm", .norm, ownParams: 2 * h, perLayer: false),
            ModuleSpec("lm_head", .linear, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings),
        ]
        return a
    }

    // MARK: - OPT

    static func opt(_ f: Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let heads = try f.dim("num_attention_heads")
        try checkHeads(hidden: h, heads: heads, kv: heads, headDimGiven: false)
        let ffn = try f.dim("ffn_dim")
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("max_position_embeddings") ?? 2048
        let proj = try f.optionalDim("word_embed_proj_dim") ?? h
        var a = blank(name, .opt, h: h, layers: layers, heads: heads, kv: heads, headDim: h / heads, inter: ffn,
                      vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: true))
        a.layerPrefix = "model.decoder.layers"
        a.embedDim = proj
        a.hiddenDropout = try f.probability("dropout", default: 0.1)
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        let bias = try f.bool("enable_bias", default: true)
        let affine = try f.bool("layer_norm_elementwise_affine", default: true)
        let normParams = affine ? 2 * h : 0
        let before = try f.bool("do_layer_norm_before", default: true)
        let removeFinal = try f.bool("_remove_final_layer_norm", default: false)
        // OPT's learned positions carry an offset of 2 (OPTLearnedPositionalEmbedding).
        var m = [ModuleSpec("model.decoder.embed_tokens", .embedding, in: vocab, out: proj, perLayer: false),
                 ModuleSpec("model.decoder.embed_positions", .positionEmbedding, in: positions + 2, out: h, perLayer: false)]
        if proj != h {
            m += [ModuleSpec("model.decoder.project_out", .linear, in: h, out: proj, perLayer: false),
                  ModuleSpec("model.decoder.project_in", .linear, in: proj, out: h, perLayer: false)]
        }
        if before && !removeFinal {
            m.append(ModuleSpec("model.decoder.final_layer_norm", .norm, ownParams: normParams, perLayer: false))
        }
        m += [ModuleSpec("self_attn.k_proj", .linear, in: h, out: h, bias: bias),
              ModuleSpec("self_attn.v_proj", .linear, in: h, out: h, bias: bias),
              ModuleSpec("self_attn.q_proj", .linear, in: h, out: h, bias: bias),
              ModuleSpec("self_attn.out_proj", .linear, in: h, out: h, bias: bias),
              ModuleSpec("self_attn_layer_norm", .norm, ownParams: normParams),
              ModuleSpec("fc1", .linear, in: h, out: ffn, bias: bias),
              ModuleSpec("fc2", .linear, in: ffn, out: h, bias: bias),
              ModuleSpec("final_layer_norm", .norm, ownParams: normParams),
              ModuleSpec("lm_head", .linear, in: proj, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.modules = m
        return a
    }

    // MARK: - Falcon

    static func falcon(_ f: Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers", "n_layer")
        let heads = try f.dim("num_attention_heads", "n_head")
        try checkHeads(hidden: h, heads: heads, kv: 1, headDimGiven: false)
        let hd = h / heads
        let vocab = try f.dim("vocab_size")
        let positions = try f.optionalDim("max_position_embeddings") ?? 2048
        let newArch = try f.bool("new_decoder_architecture", default: false)
        let multiQuery = try f.bool("multi_query", default: true)
        let parallel = try f.bool("parallel_attn", default: true)
        let bias = try f.bool("bias", default: false)
        let kv: Int
        if newArch { kv = try f.optionalDim("num_kv_heads") ?? heads } else { kv = multiQuery ? 1 : heads }
        guard heads % kv == 0 else {
            throw PlanError.invalidDimension(field: "num_kv_heads", value: "\(kv)", reason: "does not divide num_attention_heads \(heads)")
        }
        let ffn = try f.optionalDim("ffn_hidden_size") ?? 4 * h
        var a = blank(name, .falcon, h: h, layers: layers, heads: heads, kv: kv, headDim: hd, inter: ffn,
                      vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: true))
        a.layerPrefix = "transformer.h"
        a.hiddenDropout = try f.probability("hidden_dropout", default: 0)
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        let qkvOut = newArch ? (2 * kv + heads) * hd : (multiQuery ? h + 2 * hd : 3 * h)
        var m = [ModuleSpec("transformer.word_embeddings", .embedding, in: vocab, out: h, perLayer: false),
                 ModuleSpec("self_attention.query_key_value", .linear, in: h, out: qkvOut, bias: bias),
                 ModuleSpec("self_attention.dense", .linear, in: h, out: h, bias: bias),
                 ModuleSpec("mlp.dense_h_to_4h", .linear, in: h, out: ffn, bias: bias),
                 ModuleSpec("mlp.dense_4h_to_h", .linear, in: ffn, out: h, bias: bias)]
        let lnInParallel = try f.optionalDim("num_ln_in_parallel_attn") ?? 2
        if newArch && lnInParallel == 2 {
            m += [ModuleSpec("ln_attn", .norm, ownParams: 2 * h), ModuleSpec("ln_mlp", .norm, ownParams: 2 * h)]
        } else {
            m.append(ModuleSpec("input_layernorm", .norm, ownParams: 2 * h))
            if !parallel { m.append(ModuleSpec("post_attention_layernorm", .norm, ownParams: 2 * h)) }
        }
        m += [ModuleSpec("transformer.ln_f", .norm, ownParams: 2 * h, perLayer: false),
              ModuleSpec("lm_head", .linear, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings)]
        a.modules = m
        return a
    }

    // MARK: - BLOOM

    static func bloom(_ f: Fields, name: String) throws -> Architecture {
        let h = try f.dim("hidden_size", "n_embed")
        let layers = try f.dim("n_layer", "num_hidden_layers")
        let heads = try f.dim("n_head", "num_attention_heads")
        try checkHeads(hidden: h, heads: heads, kv: heads, headDimGiven: false)
        let vocab = try f.dim("vocab_size")
        var a = blank(name, .bloom, h: h, layers: layers, heads: heads, kv: heads, headDim: h / heads, inter: 4 * h,
                      vocab: vocab, positions: 0, tied: try f.bool("tie_word_embeddings", default: true))
        a.layerPrefix = "transformer.h"
        a.hiddenDropout = try f.probability("hidden_dropout", default: 0)
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        a.supportsSDPA = false   // BloomForCausalLM refuses sdpa in Transformers v5 (ALiBi)
        a.modules = [
            ModuleSpec("transformer.word_embeddings", .embedding, in: vocab, out: h, perLayer: false),
            ModuleSpec("transformer.word_embeddings_layernorm", .norm, ownParams: 2 * h, perLayer: false),
            ModuleSpec("input_layernorm", .norm, ownParams: 2 * h),
            ModuleSpec("self_attention.query_key_value", .linear, in: h, out: 3 * h, bias: true),
            ModuleSpec("self_attention.dense", .linear, in: h, out: h, bias: true),
            ModuleSpec("post_attention_layernorm", .norm, ownParams: 2 * h),
            ModuleSpec("mlp.dense_h_to_4h", .linear, in: h, out: 4 * h, bias: true),
            ModuleSpec("mlp.dense_4h_to_h", .linear, in: 4 * h, out: h, bias: true),
            ModuleSpec("transformer.ln_f", .norm, ownParams: 2 * h, perLayer: false),
            ModuleSpec("lm_head", .linear, in: h, out: vocab, perLayer: false, tied: a.tiedEmbeddings),
        ]
        return a
    }
}
