import Foundation

/// Named models people fine-tune, each a Hugging Face `config.json` bundled with the
/// library (`Resources/models/NAME.json`, the public config of the named checkpoint), so
/// that a preset and the same file given with `--model path` are read by the same code.
public enum Presets {
    public struct Entry: Sendable {
        public let name: String
        public let aliases: [String]
        /// The Hugging Face repository whose config.json the file reproduces.
        public let source: String
    }

    /// Every preset; short aliases are documented in the README and `peft-plan models`.
    public static let all: [Entry] = [
        Entry(name: "llama-2-7b", aliases: ["7b", "llama2-7b"], source: "meta-llama/Llama-2-7b-hf"),
        Entry(name: "llama-2-13b", aliases: ["13b", "llama2-13b"], source: "meta-llama/Llama-2-13b-hf"),
        Entry(name: "llama-2-70b", aliases: ["llama2-70b"], source: "meta-llama/Llama-2-70b-hf"),
        Entry(name: "llama-65b", aliases: ["65b", "llama-1-65b"], source: "huggyllama/llama-65b (the original LLaMA 65B, as the QLoRA paper fine-tuned it)"),
        Entry(name: "llama-3.2-1b", aliases: ["1b", "llama3-1b"], source: "meta-llama/Llama-3.2-1B"),
        Entry(name: "llama-3.2-3b", aliases: ["3b", "llama3-3b"], source: "meta-llama/Llama-3.2-3B"),
        Entry(name: "llama-3.1-8b", aliases: ["8b", "llama3-8b", "llama-3-8b"], source: "meta-llama/Llama-3.1-8B"),
        Entry(name: "llama-3.1-70b", aliases: ["70b", "llama3-70b", "llama-3-70b", "llama-3.3-70b"], source: "meta-llama/Llama-3.1-70B"),
        Entry(name: "llama-3.1-405b", aliases: ["405b", "llama3-405b"], source: "meta-llama/Llama-3.1-405B"),
        Entry(name: "mistral-7b", aliases: ["mistral"], source: "mistralai/Mistral-7B-v0.1"),
        Entry(name: "mixtral-8x7b", aliases: ["mixtral"], source: "mistralai/Mixtral-8x7B-v0.1"),
        Entry(name: "qwen2.5-0.5b", aliases: [], source: "Qwen/Qwen2.5-0.5B"),
        Entry(name: "qwen2.5-1.5b", aliases: [], source: "Qwen/Qwen2.5-1.5B"),
        Entry(name: "qwen2.5-3b", aliases: [], source: "Qwen/Qwen2.5-3B"),
        Entry(name: "qwen2.5-7b", aliases: ["qwen-7b"], source: "Qwen/Qwen2.5-7B"),
        Entry(name: "qwen2.5-14b", aliases: [], source: "Qwen/Qwen2.5-14B"),
        Entry(name: "qwen2.5-32b", aliases: [], source: "Qwen/Qwen2.5-32B"),
        Entry(name: "qwen2.5-72b", aliases: [], source: "Qwen/Qwen2.5-72B"),
        Entry(name: "qwen3-8b", aliases: [], source: "Qwen/Qwen3-8B"),
        Entry(name: "gemma-7b", aliases: [], source: "google/gemma-7b"),
        Entry(name: "gemma-2-2b", aliases: ["gemma2-2b"], source: "google/gemma-2-2b"),
        Entry(name: "gemma-2-9b", aliases: ["gemma2-9b"], source: "google/gemma-2-9b"),
        Entry(name: "gemma-2-27b", aliases: ["gemma2-27b"], source: "google/gemma-2-27b"),
        Entry(name: "phi-3-mini", aliases: ["phi3-mini"], source: "microsoft/Phi-3-mini-4k-instruct"),
        Entry(name: "phi-3-medium", aliases: ["phi3-medium"], source: "microsoft/Phi-3-medium-4k-instruct"),
        Entry(name: "gpt2", aliases: ["gpt-2"], source: "openai-community/gpt2"),
        Entry(name: "gpt2-xl", aliases: [], source: "openai-community/gpt2-xl"),
        Entry(name: "gpt3-175b", aliases: ["gpt-3"], source: "Brown et al. 2020, Table 2.1: GPT-3 175B (96 layers, d_model 12288, 96 heads, 2048 context, GPT-2's 50257-token vocabulary) as a GPT-2-type config; its alternating sparse attention layers are not modelled"),
        Entry(name: "pythia-1.4b", aliases: [], source: "EleutherAI/pythia-1.4b"),
        Entry(name: "opt-1.3b", aliases: [], source: "facebook/opt-1.3b"),
        Entry(name: "opt-350m", aliases: [], source: "facebook/opt-350m"),
        Entry(name: "falcon-7b", aliases: [], source: "tiiuae/falcon-7b"),
        Entry(name: "falcon-40b", aliases: [], source: "tiiuae/falcon-40b"),
        Entry(name: "bloom-560m", aliases: ["bloomz-560m"], source: "bigscience/bloom-560m"),
        Entry(name: "bloom-7b1", aliases: [], source: "bigscience/bloom-7b1"),
        Entry(name: "qwen3-0.6b", aliases: [], source: "Qwen/Qwen3-0.6B"),
        Entry(name: "qwen3-1.7b", aliases: [], source: "Qwen/Qwen3-1.7B"),
        Entry(name: "qwen3-14b", aliases: [], source: "Qwen/Qwen3-14B"),
        Entry(name: "qwen3-32b", aliases: [], source: "Qwen/Qwen3-32B"),
        Entry(name: "qwen3-30b-a3b", aliases: ["qwen3-moe"], source: "Qwen/Qwen3-30B-A3B"),
        Entry(name: "qwen3-235b-a22b", aliases: [], source: "Qwen/Qwen3-235B-A22B"),
        Entry(name: "qwen3-coder-480b-a35b", aliases: ["qwen3-coder-480b"], source: "Qwen/Qwen3-Coder-480B-A35B-Instruct"),
        Entry(name: "qwen3.5-9b", aliases: ["qwen3.5"], source: "Qwen/Qwen3.5-9B (language model)"),
        Entry(name: "qwen3.5-27b", aliases: [], source: "Qwen/Qwen3.5-27B (language model)"),
        Entry(name: "qwen3.5-35b-a3b", aliases: [], source: "Qwen/Qwen3.5-35B-A3B (language model)"),
        Entry(name: "qwen3.5-122b-a10b", aliases: [], source: "Qwen/Qwen3.5-122B-A10B (language model)"),
        Entry(name: "qwen3.5-397b-a17b", aliases: [], source: "Qwen/Qwen3.5-397B-A17B (language model)"),
        Entry(name: "qwen3-next-80b-a3b", aliases: ["qwen3-next"], source: "Qwen/Qwen3-Next-80B-A3B-Thinking"),
        Entry(name: "qwen1.5-moe-a2.7b", aliases: ["qwen2-moe"], source: "Qwen/Qwen1.5-MoE-A2.7B-Chat"),
        Entry(name: "minimax-m2.7", aliases: ["minimax-m2"], source: "MiniMaxAI/MiniMax-M2.7"),
        Entry(name: "gpt-oss-20b", aliases: ["gpt-oss"], source: "openai/gpt-oss-20b"),
        Entry(name: "gpt-oss-120b", aliases: [], source: "openai/gpt-oss-120b"),
        Entry(name: "deepseek-v3", aliases: ["deepseek"], source: "deepseek-ai/DeepSeek-V3"),
        Entry(name: "deepseek-r1", aliases: [], source: "deepseek-ai/DeepSeek-R1"),
        Entry(name: "deepseek-v3.2", aliases: [], source: "deepseek-ai/DeepSeek-V3.2"),
        Entry(name: "deepseek-v4-flash", aliases: ["deepseek-v4"], source: "deepseek-ai/DeepSeek-V4-Flash"),
        Entry(name: "deepseek-v4-pro", aliases: [], source: "deepseek-ai/DeepSeek-V4-Pro"),
        Entry(name: "glm-5", aliases: [], source: "zai-org/GLM-5"),
        Entry(name: "smollm3-3b", aliases: ["smollm3"], source: "HuggingFaceTB/SmolLM3-3B"),
        Entry(name: "olmo-2-13b", aliases: ["olmo2-13b"], source: "allenai/OLMo-2-1124-13B"),
        Entry(name: "exaone-4.0-1.2b", aliases: ["exaone4-1.2b"], source: "LGAI-EXAONE/EXAONE-4.0-1.2B"),
        Entry(name: "starcoder2-7b", aliases: [], source: "bigcode/starcoder2-7b"),
        Entry(name: "gemma-3-1b", aliases: ["gemma3-1b"], source: "google/gemma-3-1b-it"),
        Entry(name: "lfm2-1.2b", aliases: ["lfm2"], source: "LiquidAI/LFM2-1.2B"),
        Entry(name: "lfm2-350m", aliases: [], source: "LiquidAI/LFM2-350M"),
        Entry(name: "phi-4-mini", aliases: [], source: "microsoft/Phi-4-mini-instruct"),
        Entry(name: "phi-2", aliases: [], source: "microsoft/phi-2"),
        Entry(name: "nemotron-3-nano-30b-a3b", aliases: ["nemotron-3-nano"], source: "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"),
        Entry(name: "qwen2.5-vl-3b", aliases: [], source: "Qwen/Qwen2.5-VL-3B-Instruct"),
        Entry(name: "qwen2.5-vl-7b", aliases: [], source: "Qwen/Qwen2.5-VL-7B-Instruct"),
        Entry(name: "qwen3-vl-8b", aliases: [], source: "Qwen/Qwen3-VL-8B-Instruct"),
        Entry(name: "qwen3-vl-30b-a3b", aliases: [], source: "Qwen/Qwen3-VL-30B-A3B-Instruct"),
        Entry(name: "gemma-3-4b", aliases: ["gemma3-4b", "gemma-3-4b-it"], source: "google/gemma-3-4b-it"),
        Entry(name: "gemma-3-27b", aliases: ["gemma3-27b", "gemma-3-27b-it"], source: "google/gemma-3-27b-it"),
        Entry(name: "devstral-small-2", aliases: ["devstral-small-2-24b"], source: "mistralai/Devstral-Small-2-24B-Instruct-2512"),
        Entry(name: "lfm2.5-vl-1.6b", aliases: [], source: "LiquidAI/LFM2.5-VL-1.6B"),
        Entry(name: "kimi-k2.5", aliases: [], source: "moonshotai/Kimi-K2.5"),
        Entry(name: "gemma-4-e2b", aliases: ["gemma4-e2b", "gemma-4-e2b-it"], source: "google/gemma-4-E2B-it"),
        Entry(name: "gemma-4-31b", aliases: ["gemma4-31b", "gemma-4-31b-it"], source: "google/gemma-4-31B-it"),
        Entry(name: "gemma-4-26b-a4b", aliases: ["gemma4-26b-a4b"], source: "google/gemma-4-26B-A4B"),
        Entry(name: "nemotron-h-56b", aliases: [], source: "nvidia/Nemotron-H-56B-Base-8K"),
        Entry(name: "mimo-v2-flash", aliases: [], source: "XiaomiMiMo/MiMo-V2-Flash (shipped in FP8; planned dequantised to bf16)"),
        Entry(name: "llama-4-scout", aliases: ["llama4-scout"],
              source: "meta-llama/Llama-4-Scout-17B-16E-Instruct (a copy with text_config cut to 25 keys; the language model only)"),
        Entry(name: "llama-4-maverick", aliases: ["llama4-maverick"],
              source: "meta-llama/Llama-4-Maverick-17B-128E-Instruct (a copy with text_config cut to 25 keys; the language model only)"),
        Entry(name: "phi-3.5-mini", aliases: [], source: "microsoft/Phi-3.5-mini-instruct"),
        Entry(name: "tiny", aliases: [], source: "peft-plan's engine-sized Llama (hidden 256, 4 layers, 4 heads, 4 KV heads, intermediate 688, vocab 1000, untied)"),
    ]

    /// Folder holding the bundled config.json files.
    public static var directory: URL {
        get throws { try BundledFiles.folder("models") }
    }

    public static func entry(named name: String) -> Entry? {
        let key = name.lowercased()
        return all.first { $0.name == key || $0.aliases.contains(key) }
    }

    /// The architecture of a preset, or nil when `name` is no preset.
    public static func architecture(named name: String) throws -> Architecture? {
        guard let e = entry(named: name) else { return nil }
        let url = try directory.appendingPathComponent("\(e.name).json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PlanError.unreadableConfig(path: url.path, reason: "the bundled preset file is missing (reinstall)")
        }
        return try ConfigReader.parse(data: data, name: e.name, source: url.path)
    }

    /// The config.json bytes behind `--model` (a preset's bundled file, or the user's file or
    /// folder), for tools that hand the same model to another program.
    public static func configData(_ model: String) throws -> Data {
        _ = try resolve(model)   // the same validation and messages as planning
        var url: URL
        if let e = entry(named: model) { url = try directory.appendingPathComponent("\(e.name).json") } else { url = URL(fileURLWithPath: model) }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            url = url.appendingPathComponent("config.json")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PlanError.unreadableConfig(path: url.path, reason: "cannot be read")
        }
        return data
    }

    /// Resolves `--model`: a preset name or alias, else a config.json file or folder.
    public static func resolve(_ model: String) throws -> Architecture {
        if let a = try architecture(named: model) { return a }
        if FileManager.default.fileExists(atPath: model) { return try ConfigReader.read(path: model) }
        let names = all.flatMap { [$0.name] + $0.aliases }
        throw PlanError.unknownModel(model, suggestion: closest(to: model, among: names))
    }
}
