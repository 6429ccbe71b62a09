import Foundation
import SlothCore
import SlothFormats

extension LanguageModel {
    /// Loads a GGUF file written for llama.cpp (by `sloth export gguf` or llama.cpp's converter) back into HF
    /// layout: names translated, q/k rows of the llama architecture un-permuted, Gemma's norms `w - 1`, every
    /// quantized tensor dequantized to fp32, llama3 `rope_freqs` as frequency divisors.
    public static func load(gguf url: URL) throws -> LanguageModel {
        let file = try GGUFFile(url: url)
        let config = try ModelConfig(gguf: file)
        let permute = file["general.architecture"]?.string == "llama"
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for t in file.tensors {
            guard let hf = hfName(t.name) else { continue }
            guard t.type.canDequantize else {
                throw GGUFError(file: url.path, field: t.name, message: "tensor type \(t.type) cannot be read by Sloth",
                                hint: "re-export with --quant f16, q8_0, q4_0, q4_k_m, q5_k_m or q6_k")
            }
            var v = try file.floats(t.name)
            if permute && (t.name.hasSuffix("attn_q.weight") || t.name.hasSuffix("attn_q.bias")) {
                v = unpermuteRows(v, rows: t.shape[0], heads: config.numAttentionHeads)
            }
            if permute && (t.name.hasSuffix("attn_k.weight") || t.name.hasSuffix("attn_k.bias")) {
                v = unpermuteRows(v, rows: t.shape[0], heads: config.numKeyValueHeads)
            }
            if config.architecture == .gemma && t.name.hasSuffix("norm.weight") { for i in v.indices { v[i] -= 1 } }
            tensors[hf] = (t.shape, v)
        }
        return try load(config: config, weights: DictionaryWeights(tensors, location: url.path))
    }

    /// ggml's interleaved RoPE rows back to HF's halves (the inverse of `QKPermutation.toGGML`).
    static func unpermuteRows(_ w: [Float], rows: Int, heads: Int) -> [Float] {
        QKPermutation.apply(w, rows: rows, heads: heads, toGGML: false)
    }

    /// The HF name of a GGUF tensor; nil for tensors that are not weights (rope_freqs).
    static func hfName(_ g: String) -> String? {
        switch g {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        case "rope_freqs.weight": return nil
        default: break
        }
        let p = g.split(separator: ".", maxSplits: 2).map(String.init)
        guard p.count == 3, p[0] == "blk", let l = Int(p[1]) else { return g }
        let map = ["attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
                   "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
                   "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
                   "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
                   "attn_v.bias": "self_attn.v_proj.bias", "attn_output.bias": "self_attn.o_proj.bias",
                   "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight"]
        return map[p[2]].map { "model.layers.\(l).\($0)" } ?? g
    }
}

extension ModelConfig {
    /// The configuration a GGUF file's `{arch}.*` keys describe.
    public init(gguf f: GGUFFile) throws {
        let file = f.url.path
        guard let arch = f["general.architecture"]?.string else {
            throw GGUFError(file: file, field: "general.architecture", message: "missing", hint: "this GGUF does not describe a model")
        }
        guard ["llama", "qwen2", "gemma"].contains(arch) else {
            throw GGUFError(file: file, field: "general.architecture", message: "'\(arch)' is not supported", hint: "Sloth reads llama (also Mistral), qwen2 and gemma GGUF files")
        }
        if f["general.type"]?.string == "adapter" {
            throw GGUFError(file: file, field: "general.type", message: "this is a LoRA adapter, not a model", hint: "pass the base model's GGUF")
        }
        func int(_ k: String, _ fallback: Int? = nil) throws -> Int {
            if let v = f["\(arch).\(k)"]?.int { return v }
            if let fallback { return fallback }
            throw GGUFError(file: file, field: "\(arch).\(k)", message: "missing", hint: "the file is incomplete or not a model")
        }
        let d = try int("embedding_length"), h = try int("attention.head_count")
        let embed = f.tensor("token_embd.weight")
        var dict: [String: Any] = [
            "model_type": arch, "hidden_size": d, "intermediate_size": try int("feed_forward_length"),
            "num_hidden_layers": try int("block_count"), "num_attention_heads": h,
            "num_key_value_heads": try int("attention.head_count_kv", h), "head_dim": try int("attention.key_length", d / h),
            "vocab_size": embed?.shape.first ?? (f["tokenizer.ggml.tokens"]?.array?.count ?? 0),
            "rms_norm_eps": f["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-6,
            "rope_theta": f["\(arch).rope.freq_base"]?.double ?? 10000,
            "max_position_embeddings": try int("context_length", 2048),
            "tie_word_embeddings": f.tensor("output.weight") == nil,
            "attention_bias": f.tensor("blk.0.attn_q.bias") != nil,
        ]
        if let w = f["\(arch).attention.sliding_window"]?.int {
            dict["sliding_window"] = w
            if arch == "qwen2" { dict["use_sliding_window"] = true }
            if arch == "llama" { dict["model_type"] = "mistral" }   // Mistral is llama with a window
        }
        if let type = f["\(arch).rope.scaling.type"]?.string, type != "none" {
            guard type == "linear" || type == "yarn" else {
                throw GGUFError(file: file, field: "\(arch).rope.scaling.type", message: "'\(type)' is not supported", hint: "Sloth reads linear and yarn RoPE scaling")
            }
            var s: [String: Any] = ["rope_type": type, "factor": f["\(arch).rope.scaling.factor"]?.double ?? 1]
            if let o = f["\(arch).rope.scaling.original_context_length"]?.int { s["original_max_position_embeddings"] = o }
            dict["rope_scaling"] = s
        }
        // Through JSON, so the values have exactly the types a config.json gives.
        let json = try JSONSerialization.data(withJSONObject: dict)
        guard let parsed = try JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw GGUFError(file: file, message: "could not build a configuration from the metadata", hint: "")
        }
        self = try ModelConfig.parse(parsed, file: file)
        if f.tensor("rope_freqs.weight") != nil {
            ropeScaling.frequencyDivisors = try f.floats("rope_freqs.weight").map(Double.init)
        }
    }
}

/// The q/k row permutation between HF's "rotate half" RoPE layout and ggml's interleaved pairs (llama.cpp's
/// llama architecture): within each head of E rows, ggml row 2i + j is HF row j*E/2 + i.
public enum QKPermutation {
    /// Rows of `w` (rows x cols, row-major) permuted HF -> ggml (`toGGML`) or back.
    public static func apply(_ w: [Float], rows: Int, heads: Int, toGGML: Bool) -> [Float] {
        let cols = w.count / rows, per = rows / heads, half = per / 2
        var out = [Float](repeating: 0, count: w.count)
        w.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                for h in 0..<heads {
                    for i in 0..<half {
                        for j in 0..<2 {
                            let hf = (h * per + j * half + i) * cols, ggml = (h * per + 2 * i + j) * cols
                            let (from, to) = toGGML ? (hf, ggml) : (ggml, hf)
                            for k in 0..<cols { d[to + k] = s[from + k] }
                        }
                    }
                }
            }
        }
        return out
    }
}
