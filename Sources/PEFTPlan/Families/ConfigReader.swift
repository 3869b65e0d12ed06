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
            object = try JSONSerialization.jsonObject(with: nonFiniteAsNull(data), options: [])
        } catch {
            throw PlanError.malformedConfig(path: source, reason: "not valid JSON (truncated or corrupt?)")
        }
        guard let dict = object as? [String: Any] else {
            throw PlanError.malformedConfig(path: source, reason: "the top level is not a JSON object")
        }
        return try build(Fields(dict, source: source), name: modelName(given: name, source: source, dict: dict))
    }

    /// Python's json module, which reads and writes config.json for Transformers, accepts the
    /// bare tokens `NaN`, `Infinity` and `-Infinity` (Nemotron-H's `time_step_limit` is
    /// `[0.0, Infinity]`); JSON does not. Outside strings they become `null` (no field peft-plan
    /// reads may be non-finite), everything else is left byte for byte.
    static func nonFiniteAsNull(_ data: Data) -> Data {
        let bytes = [UInt8](data)
        guard bytes.contains(UInt8(ascii: "N")) || bytes.contains(UInt8(ascii: "I")) else { return data }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var inString = false, escaped = false, i = 0
        let tokens: [[UInt8]] = [Array("-Infinity".utf8), Array("Infinity".utf8), Array("NaN".utf8)]
        while i < bytes.count {
            let b = bytes[i]
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                out.append(b)
                i += 1
                continue
            }
            if b == UInt8(ascii: "\"") { inString = true; out.append(b); i += 1; continue }
            if b == UInt8(ascii: "N") || b == UInt8(ascii: "I") || b == UInt8(ascii: "-"),
               let t = tokens.first(where: { i + $0.count <= bytes.count && bytes[i..<(i + $0.count)].elementsEqual($0) }) {
                out += Array("null".utf8)
                i += t.count
                continue
            }
            out.append(b)
            i += 1
        }
        return Data(out)
    }

    /// Typed access to config fields with the aliases Transformers accepts.
    struct Fields: Sendable {
        nonisolated(unsafe) let dict: [String: Any]
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

        /// `max_position_embeddings` (nil when absent): a context length, which may pass the
        /// dimension limit (Llama 4 Scout: 10,485,760) without sizing any tensor of a rotary model;
        /// refused past 2^30.
        func contextLength(_ key: String) throws -> Int? {
            guard let (_, value) = raw([key]) else { return nil }
            if let n = value as? NSNumber, !isBoolean(n), n.doubleValue.isFinite, n.doubleValue == n.doubleValue.rounded(),
               n.doubleValue > Double(ConfigReader.dimensionLimit), n.doubleValue <= Double(1 << 30) {
                return n.intValue
            }
            return try positive(key, value)
        }

        /// An optional count that may be 0 (DeepSeek-V2's `first_k_dense_replace`), nil when absent or null.
        func optionalCount(_ key: String) throws -> Int? {
            guard let (_, value) = raw([key]) else { return nil }
            if let n = value as? NSNumber, !isBoolean(n), n.doubleValue == 0 { return 0 }
            if let n = value as? NSNumber, !isBoolean(n), n.doubleValue < 0 {
                throw PlanError.invalidDimension(field: key, value: "\(n)", reason: "must be 0 or a positive integer")
            }
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
        var fields = f
        if family.spec.nestedTextConfig, let text = f.dict["text_config"] as? [String: Any] {
            // a vision-language config: AutoModelForCausalLM builds its language model from
            // text_config; tie_word_embeddings may sit at the top level only
            var merged = text
            if merged["tie_word_embeddings"] == nil, let tie = f.dict["tie_word_embeddings"] { merged["tie_word_embeddings"] = tie }
            fields = Fields(merged, source: f.source)
        }
        var arch = try family.spec.build(fields, name)
        if let q = f.dict["quantization_config"] as? [String: Any], let method = q["quant_method"] as? String,
           !method.isEmpty, method.count <= 32, method.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) {
            arch.shippedQuantisation = method
            // DeepSeek-V4: FP8 blocks with the experts FP4-packed (`expert_dtype`, which
            // DeepseekV4Config moves into the quantization config)
            if method == "fp8", ((q["expert_dtype"] ?? f.dict["expert_dtype"]) as? String) == "fp4" { arch.shippedQuantisation = "fp8-fp4-experts" }
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

    /// Largest convolution accepted, in taps: real causal convolutions have 3 or 4, and
    /// channels × taps must stay far from overflowing.
    static let convolutionLimit = 4096

    /// The rotated width of each head: `head_dim × partial_rotary_factor` (truncated, as
    /// `int(head_dim * partial_rotary_factor)` in Transformers' rope initialisation), the factor
    /// read from `rope_parameters` or the config's top level, else the family's default.
    static func rotaryWidth(_ f: Fields, headDim: Int, default fallback: Double) throws -> Int {
        var value: Any? = (f.dict["rope_parameters"] as? [String: Any])?["partial_rotary_factor"]
        if value == nil || value is NSNull { value = f.dict["partial_rotary_factor"] }
        guard let v = value, !(v is NSNull) else { return max(2, Int(Double(headDim) * fallback)) }
        guard let n = v as? NSNumber, !isBoolean(n), n.doubleValue.isFinite, n.doubleValue > 0, n.doubleValue <= 1 else {
            throw PlanError.invalidDimension(field: "partial_rotary_factor", value: "\(v)", reason: "must be a number in (0, 1]")
        }
        return max(2, Int(Double(headDim) * n.doubleValue))
    }

    /// The attention heads as a family's configuration class reads them: `num_attention_heads`
    /// (or its default), `num_key_value_heads` (else the family's ``FamilySpec/kvHeadsDefault``,
    /// else the head count), the head width from `headDimKeys` (else `headDimDefault`, else
    /// hidden / heads), checked together.
    static func attentionHeads(_ f: Fields, family: ModelFamily, hidden h: Int, headsDefault: Int? = nil,
                               headDimKeys: [String] = ["head_dim"], headDimDefault: Int? = nil) throws -> (heads: Int, kv: Int, headDim: Int) {
        let heads = try headsDefault.map { try f.optionalDim("num_attention_heads") ?? $0 } ?? f.dim("num_attention_heads")
        let kv = try f.optionalDim("num_key_value_heads") ?? family.spec.kvHeadsDefault ?? heads
        let explicitHeadDim = try headDimKeys.lazy.compactMap { try f.optionalDim($0) }.first ?? headDimDefault
        try checkHeads(hidden: h, heads: heads, kv: kv, headDimGiven: explicitHeadDim != nil)
        return (heads, kv, explicitHeadDim ?? h / heads)
    }

    /// A list the config may leave out or null; anything else but a list is refused.
    static func optionalList(_ f: Fields, _ key: String) throws -> [Any]? {
        guard let v = f.dict[key], !(v is NSNull) else { return nil }
        guard let list = v as? [Any] else {
            throw PlanError.invalidDimension(field: key, value: "\(v)", reason: "must be a list")
        }
        return list
    }

    /// A Mamba-2 head width the config states (a number, or "auto": derived) must be the one
    /// the widths imply, as the configuration classes' validation requires.
    static func checkMambaHeadDim(_ f: Fields, _ key: String, is derived: Int) throws {
        guard let v = f.dict[key], !(v is NSNull), (v as? String) != "auto" else { return }
        let given = try f.positive(key, v)
        guard given == derived else {
            throw PlanError.invalidDimension(field: key, value: "\(given)", reason: "must be the Mamba-2 width over its heads (\(derived))")
        }
    }

    /// Mamba-2's groups must divide its heads, and B and C (2 × groups × state) must stay a
    /// width a real model has.
    static func checkMambaGroups(groups: Int, heads: Int, state: Int, groupsKey: String, stateKey: String) throws {
        guard heads % groups == 0 else {
            throw PlanError.invalidDimension(field: groupsKey, value: "\(groups)", reason: "must divide the Mamba-2 heads \(heads)")
        }
        guard state <= dimensionLimit / (2 * groups) else {
            throw PlanError.invalidDimension(field: stateKey, value: "\(state)", reason: "2 × groups × state is larger than any real model")
        }
    }

    /// A convolution's kernel size (Gated DeltaNet's, LFM2's), refused past ``convolutionLimit``.
    static func convolutionTaps(_ f: Fields, _ key: String, default fallback: Int?) throws -> Int {
        let taps = try fallback.map { try f.optionalDim(key) ?? $0 } ?? f.dim(key)
        guard taps <= convolutionLimit else {
            throw PlanError.invalidDimension(field: key, value: "\(taps)", reason: "larger than any real convolution (limit \(convolutionLimit))")
        }
        return taps
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

    /// The start of an own reader for a Llama-like layout (`model.layers`, full rotary heads):
    /// width, layers, heads, MLP width, vocabulary and context read with the family's defaults.
    static func decoder(_ f: Fields, _ name: String, _ family: ModelFamily, headDimDefault: Int? = nil, intermediateDefault: Int? = nil,
                        positions fallback: Int, tiedDefault: Bool, norm: NormKind) throws -> Architecture {
        let h = try f.dim("hidden_size")
        let layers = try f.dim("num_hidden_layers")
        let (heads, kv, hd) = try attentionHeads(f, family: family, hidden: h, headDimDefault: headDimDefault)
        let inter = try intermediateDefault.map { try f.optionalDim("intermediate_size") ?? $0 } ?? f.dim("intermediate_size")
        let vocab = try f.dim("vocab_size")
        let positions = try f.contextLength("max_position_embeddings") ?? fallback
        var a = blank(name, family, h: h, layers: layers, heads: heads, kv: kv, headDim: hd, inter: inter,
                      vocab: vocab, positions: positions, tied: try f.bool("tie_word_embeddings", default: tiedDefault))
        a.layerPrefix = "model.layers"
        a.norm = norm
        a.rotaryDim = hd
        a.attentionDropout = try f.probability("attention_dropout", default: 0)
        return a
    }

    static func blank(_ name: String, _ family: ModelFamily, h: Int, layers: Int, heads: Int, kv: Int, headDim: Int,
                      inter: Int, vocab: Int, positions: Int, tied: Bool) -> Architecture {
        Architecture(name: name, family: family, hiddenSize: h, numLayers: layers, numHeads: heads, nKVHeads: kv,
                     headDim: headDim, intermediateSize: inter, vocabSize: vocab, maxPositions: positions,
                     tiedEmbeddings: tied, numExperts: 0, expertsPerToken: 0, norm: .layer,
                     hiddenDropout: 0, attentionDropout: 0, embedDim: h, modules: [],
                     block: .sequential(bloom: false), rotaryDim: 0, embeddingDropout: 0,
                     finalLogitSoftcapping: false, supportsSDPA: true, layerPrefix: "")
    }
}
