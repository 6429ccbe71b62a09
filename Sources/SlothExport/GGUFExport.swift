import Foundation
import SlothCore
import SlothFormats
import SlothModels
import SlothTokenizers

/// The `--quant` choices of `sloth export gguf`, as llama.cpp names its file types.
public enum GGUFQuantization: String, CaseIterable, Sendable {
    case f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k

    /// `general.file_type` (llama.cpp's `llama_ftype`).
    public var fileType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .bf16: return 32
        case .q8_0: return 7
        case .q4_0: return 2
        case .q4_k_m: return 15
        case .q5_k_m: return 17
        case .q6_k: return 18
        }
    }

    /// The type most 2-D weights get.
    public var baseType: GGMLType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_k_m: return .q4_K
        case .q5_k_m: return .q5_K
        case .q6_k: return .q6_K
        }
    }
}

/// `sloth export gguf`: a model folder (optionally with a LoRA adapter merged in) as one GGUF file that
/// llama.cpp loads: architecture metadata, tokenizer metadata, tensors under ggml's names (q/k rows permuted
/// for llama and mistral, Gemma's norms + 1), quantized per tensor as llama.cpp's quantizer chooses.
public enum GGUFExport {
    public struct Options: Sendable {
        public var quant: GGUFQuantization = .f16
        /// `general.name`; default: the model folder's name.
        public var name: String?
        public var freeBytesOverride: Int?
        public init(quant: GGUFQuantization = .f16, name: String? = nil) { self.quant = quant; self.name = name }
    }

    public struct Report: Sendable {
        public var tensors = 0, bytes = 0
        /// How many tensors got each ggml type.
        public var types: [String: Int] = [:]
        public var warnings: [String] = []
    }

    /// A tensor of the output: its GGUF name, where it comes from and how it is changed on the way.
    struct Planned {
        enum Transform { case none, permute(heads: Int), plusOne, values([Float]) }
        let name: String
        let source: String?
        let shape: [Int]       // numpy order (outermost first)
        let type: GGMLType
        let transform: Transform
    }

    /// llama.cpp's `general.architecture` for a Sloth architecture (Mistral runs as llama).
    public static func architectureName(_ a: Architecture) -> String {
        switch a {
        case .llama, .mistral: return "llama"
        case .qwen2: return "qwen2"
        case .gemma: return "gemma"
        }
    }

    /// Whether llama.cpp runs this architecture with interleaved RoPE pairs (q/k rows must be permuted).
    static func permutesQK(_ a: Architecture) -> Bool { a == .llama || a == .mistral }

    /// llama.cpp's layer choice for extra bits in the `_M` mixes.
    public static func useMoreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }

    /// The ggml type a tensor gets, following llama.cpp: the converter's rules for f32/f16/bf16/q8_0 files and
    /// llama-quantize's (`llama_tensor_get_type` and its fallbacks for rows that are not whole blocks) for the rest.
    /// `shape` is numpy order (the row length is the last dimension); `layer`/`layers` index the blocks.
    public static func tensorType(name: String, shape: [Int], quant: GGUFQuantization, layer: Int?, layers: Int, hasOutput: Bool) throws -> GGMLType {
        let ne0 = shape.last ?? 1
        if shape.count < 2 || !name.hasSuffix(".weight") || name.hasSuffix("_norm.weight") || name == "rope_freqs.weight" { return .f32 }
        switch quant {
        case .f32, .f16, .bf16: return quant.baseType
        case .q8_0: return ne0 % 32 == 0 ? .q8_0 : .f16
        default: break
        }
        let base = quant.baseType
        var t = base
        let isOutput = name == "output.weight" || (!hasOutput && name == "token_embd.weight")
        if isOutput {
            if ne0 % base.blockSize != 0 { t = .q8_0 } else if t != .q8_0 { t = .q6_K }
        } else if name.hasSuffix("attn_v.weight"), quant == .q4_k_m || quant == .q5_k_m, let l = layer, useMoreBits(l, layers) {
            t = .q6_K
        } else if name.hasSuffix("ffn_down.weight"), quant == .q4_k_m || quant == .q5_k_m, let l = layer, useMoreBits(l, layers) {
            t = .q6_K
        }
        if ne0 % t.blockSize != 0 {
            switch t {
            case .q4_K: t = .q5_0
            case .q5_K: t = .q5_1
            case .q6_K: t = .q8_0
            default:
                throw ExportError.unsupported(what: "tensor \(name) with rows of \(ne0) values in \(quant.rawValue)",
                                              hint: "llama.cpp needs rows that are whole \(t) blocks of \(t.blockSize); use --quant f16, q8_0 or a K-quant.")
            }
            if ne0 % t.blockSize != 0 { t = .f16 }
        }
        return t
    }

    /// Maps an HF tensor name to its GGUF name and layer; nil for tensors GGUF leaves out (rotary caches).
    static func ggufName(_ hf: String) throws -> (name: String, layer: Int?)? {
        if hf.hasSuffix("rotary_emb.inv_freq") { return nil }
        switch hf {
        case "model.embed_tokens.weight": return ("token_embd.weight", nil)
        case "model.norm.weight": return ("output_norm.weight", nil)
        case "lm_head.weight": return ("output.weight", nil)
        default: break
        }
        let parts = hf.split(separator: ".").map(String.init)
        if parts.count >= 5, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]) {
            let rest = parts[3...].joined(separator: ".")
            let map: [String: String] = [
                "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
                "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.bias": "attn_output.bias",
                "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
            ]
            if let m = map[rest] { return ("blk.\(l).\(m)", l) }
        }
        throw ExportError.unsupported(what: "tensor '\(hf)' in a GGUF export", hint: "Sloth maps the Llama-family tensors only (embeddings, norms, attention, MLP, lm_head).")
    }

    /// llama3 RoPE scaling as llama.cpp's `rope_freqs.weight`: the divisor of each rotation frequency.
    /// (llama.cpp's converter reads the original context from the top level of config.json, default 8192; Sloth
    /// uses `rope_scaling.original_max_position_embeddings`, which is what transformers uses.)
    static func llama3RopeFactors(_ c: ModelConfig) -> [Float] {
        let s = c.ropeScaling, dim = c.rope.rotaryDim
        let factor = s.factor, lo = s.lowFreqFactor, hi = s.highFreqFactor
        let orig = Double(s.originalMaxPositionEmbeddings ?? 8192)
        let lowWave = orig / lo, highWave = orig / hi
        return (0..<(dim / 2)).map { i in
            let freq = 1 / pow(c.ropeTheta, Double(2 * i) / Double(dim))
            let wave = 2 * Double.pi / freq
            if wave < highWave { return 1 }
            if wave > lowWave { return Float(factor) }
            let smooth = (orig / wave - lo) / (hi - lo)
            return Float(1 / ((1 - smooth) / factor + smooth))
        }
    }

    /// The architecture keys (`{arch}.*`) of a config.
    static func architectureMetadata(_ c: ModelConfig, arch: String, vocabSize: Int) throws -> [(key: String, value: GGUFValue)] {
        var m: [(String, GGUFValue)] = [
            ("\(arch).context_length", .uint32(UInt32(c.maxPositionEmbeddings))),
            ("\(arch).embedding_length", .uint32(UInt32(c.hiddenSize))),
            ("\(arch).block_count", .uint32(UInt32(c.numHiddenLayers))),
            ("\(arch).feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            ("\(arch).attention.head_count", .uint32(UInt32(c.numAttentionHeads))),
            ("\(arch).attention.head_count_kv", .uint32(UInt32(c.numKeyValueHeads))),
            ("\(arch).rope.freq_base", .float32(Float(c.ropeTheta))),
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)),
            ("\(arch).attention.key_length", .uint32(UInt32(c.headDim))),
            ("\(arch).attention.value_length", .uint32(UInt32(c.headDim))),
        ]
        if let w = c.slidingWindow {
            // llama.cpp's llama/qwen2 architectures ignore it; Sloth reads it back, so the file stays the model it was.
            m.append(("\(arch).attention.sliding_window", .uint32(UInt32(w))))
        }
        if arch == "llama" {
            m.append(("\(arch).vocab_size", .uint32(UInt32(vocabSize))))
            m.append(("\(arch).rope.dimension_count", .uint32(UInt32(c.rope.rotaryDim))))
        }
        switch c.ropeScaling.kind {
        case .default, .llama3: break
        case .linear:
            m.append(("\(arch).rope.scaling.type", .string("linear")))
            m.append(("\(arch).rope.scaling.factor", .float32(Float(c.ropeScaling.factor))))
        case .yarn:
            m.append(("\(arch).rope.scaling.type", .string("yarn")))
            m.append(("\(arch).rope.scaling.factor", .float32(Float(c.ropeScaling.factor))))
            m.append(("\(arch).rope.scaling.original_context_length", .uint32(UInt32(c.ropeScaling.originalMaxPositionEmbeddings ?? c.maxPositionEmbeddings))))
        case .dynamic:
            throw ExportError.unsupported(what: "dynamic NTK RoPE scaling in GGUF", hint: "llama.cpp has no dynamic NTK scaling; export a model without rope_scaling type 'dynamic'.")
        }
        return m
    }

    /// The tokenizer keys (`tokenizer.*`) of a model folder, or nil (with a warning) when it has no tokenizer.
    static func tokenizerMetadata(folder: URL, config c: ModelConfig, warnings: inout [String]) throws -> [(key: String, value: GGUFValue)] {
        let tok: Tokenizer
        do { tok = try Tokenizer.load(from: folder) } catch let e as TokenizerError {
            if case .noTokenizerFiles = e {
                throw ExportError.unsupported(what: "a GGUF without a tokenizer", hint: "llama.cpp needs the vocabulary: put tokenizer.json or tokenizer.model in \(folder.path).")
            }
            throw e
        }
        let spURL = folder.appendingPathComponent("tokenizer.model")
        let sp = FileManager.default.fileExists(atPath: spURL.path) ? try SentencePieceModel(file: spURL) : nil
        let v = try tok.ggufVocabulary(vocabSize: c.vocabSize, sentencePiece: sp)
        if let w = v.warning { warnings.append(w) }
        var m: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string(v.model)),
            ("tokenizer.ggml.pre", .string(v.pre)),
            ("tokenizer.ggml.tokens", .strings(v.tokens)),
        ]
        if let s = v.scores { m.append(("tokenizer.ggml.scores", .floats(s))) }
        m.append(("tokenizer.ggml.token_type", .int32s(v.types)))
        if let merges = v.merges { m.append(("tokenizer.ggml.merges", .strings(merges))) }
        func id(_ key: String, _ value: Int?) { if let value, value >= 0, value < v.tokens.count { m.append((key, .uint32(UInt32(value)))) } }
        id("tokenizer.ggml.bos_token_id", tok.bosTokenId ?? c.bosTokenId)
        id("tokenizer.ggml.eos_token_id", tok.eosTokenId ?? c.eosTokenIds.first)
        id("tokenizer.ggml.unknown_token_id", tok.unkTokenId)
        id("tokenizer.ggml.padding_token_id", tok.padTokenId ?? c.padTokenId)
        // add_bos/add_eos: what the tokenizer's post-processor does (tokenizer_config.json's flags are applied to it).
        let plain = tok.encode("a", addSpecialTokens: false), special = tok.encode("a", addSpecialTokens: true)
        if special.count > plain.count, let first = special.first {
            m.append(("tokenizer.ggml.add_bos_token", .bool(first == tok.bosTokenId && plain.first != first)))
            m.append(("tokenizer.ggml.add_eos_token", .bool(special.last == tok.eosTokenId && plain.last != special.last)))
        } else {
            m.append(("tokenizer.ggml.add_bos_token", .bool(false)))
            m.append(("tokenizer.ggml.add_eos_token", .bool(false)))
        }
        if c.architecture == .gemma { m.append(("tokenizer.ggml.add_space_prefix", .bool(false))) }
        if let t = tok.chatTemplate { m.append(("tokenizer.chat_template", .string(t))) }
        return m
    }

    /// Plans the output tensors of a model folder.
    static func plan(config c: ModelConfig, weights: SafeTensorsCollection, quant: GGUFQuantization) throws -> [Planned] {
        var out: [Planned] = []
        let hasOutput = weights.names.contains("lm_head.weight") && c.architecture != .gemma && !c.tieWordEmbeddings
        if c.ropeScaling.kind == .llama3 {
            let f = llama3RopeFactors(c)
            out.append(Planned(name: "rope_freqs.weight", source: nil, shape: [f.count], type: .f32, transform: .values(f)))
        }
        var named: [(Int, String, Planned)] = []   // (sort key, name) for llama.cpp's order: globals, then by layer
        for hf in weights.names {
            guard let e = try weights.entry(hf), e.dtype.isFloatingPoint else {
                throw ExportError.unsupported(what: "tensor '\(hf)' of a non-float dtype", hint: "GGUF export reads F32/F16/BF16 checkpoints (dequantize other formats first).")
            }
            guard let (name, layer) = try ggufName(hf) else { continue }
            if name == "output.weight" && !hasOutput { continue }
            var transform = Planned.Transform.none
            if permutesQK(c.architecture) {
                if hf.hasSuffix("self_attn.q_proj.weight") || hf.hasSuffix("self_attn.q_proj.bias") { transform = .permute(heads: c.numAttentionHeads) }
                if hf.hasSuffix("self_attn.k_proj.weight") || hf.hasSuffix("self_attn.k_proj.bias") { transform = .permute(heads: c.numKeyValueHeads) }
            }
            if c.architecture == .gemma && hf.hasSuffix("norm.weight") { transform = .plusOne }
            let type = try tensorType(name: name, shape: e.shape, quant: quant, layer: layer, layers: c.numHiddenLayers, hasOutput: hasOutput)
            named.append((layer ?? -1, name, Planned(name: name, source: hf, shape: e.shape, type: type, transform: transform)))
        }
        named.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        return out + named.map(\.2)
    }

    /// HF "rotate half" rows to ggml's interleaved pairs.
    static func permuteRows(_ w: [Float], rows: Int, heads: Int) -> [Float] {
        QKPermutation.apply(w, rows: rows, heads: heads, toGGML: true)
    }

    /// Writes `output` (atomically; free disk checked first).
    public static func run(model: URL, adapter: URL?, output: URL, options: Options = Options(),
                           progress: (String) -> Void = { _ in }) throws -> Report {
        let c = try ModelConfig.load(from: model)
        let weights = try SafeTensorsCollection(path: model)
        var deltas = try adapter.map { try AdapterDeltas(folder: $0) }
        try deltas?.foldTiedHead(baseHasHead: try weights.entry("lm_head.weight") != nil)
        try deltas?.validate(against: weights, baseLocation: model.path)
        var report = Report()
        let arch = architectureName(c.architecture)
        let embedRows = try weights.entry("model.embed_tokens.weight")?.shape.first ?? c.vocabSize
        var meta: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(arch)),
            ("general.type", .string("model")),
            ("general.name", .string(options.name ?? model.standardizedFileURL.lastPathComponent)),
        ]
        meta += try architectureMetadata(c, arch: arch, vocabSize: embedRows)
        meta.append(("general.file_type", .uint32(options.quant.fileType)))
        meta += try tokenizerMetadata(folder: model, config: c, warnings: &report.warnings)
        meta.append(("general.quantization_version", .uint32(2)))
        if let w = c.slidingWindow, w < c.maxPositionEmbeddings {
            report.warnings.append("config.json has sliding_window \(w); llama.cpp's \(arch) architecture attends to every earlier token, so its outputs past \(w) tokens differ from transformers'")
        }
        let planned = try plan(config: c, weights: weights, quant: options.quant)
        let infos = planned.map { GGUFTensorInfo(name: $0.name, shape: $0.shape, type: $0.type) }
        let size = GGUFWriter.fileSize(metadata: meta, tensors: infos)
        let free = try options.freeBytesOverride ?? MergedExport.freeBytes(near: output)
        guard free >= size + (1 << 20) else {
            throw ExportError.notEnoughDisk(path: output.path, need: size, free: free, hint: "Free disk space, write to another disk, or pick a smaller --quant.")
        }
        try GGUFWriter.write(to: output, metadata: meta, tensors: infos) { i in
            let p = planned[i]
            var values: [Float]
            switch p.transform {
            case let .values(v): values = v
            default:
                values = try weights.floats(p.source!)
                deltas?.apply(to: p.source!, values: &values, shape: p.shape)
                if case let .permute(heads) = p.transform { values = permuteRows(values, rows: p.shape[0], heads: heads) }
                if case .plusOne = p.transform { for k in values.indices { values[k] += 1 } }
            }
            report.tensors += 1
            report.types[p.type.description, default: 0] += 1
            if report.tensors % 8 == 0 || report.tensors == planned.count { progress("\(report.tensors)/\(planned.count) tensors") }
            let bytes = GGMLQuant.quantize(values, as: p.type)
            report.bytes += bytes.count
            return bytes
        }
        return report
    }
}

/// `sloth export gguf-lora`: a PEFT adapter in llama.cpp's LoRA GGUF layout (`general.type = adapter`), applied by
/// llama.cpp on top of the base model's GGUF (`--lora`). Tensors `<gguf name>.lora_a` (R, I) and `.lora_b` (O, R),
/// F32 as llama.cpp's converter writes them; lora_b rows of q/k permuted like the base weights.
public enum GGUFLoRAExport {
    public struct Report: Sendable { public var pairs = 0, bytes = 0 }

    public static func run(adapter: URL, model: URL, output: URL) throws -> Report {
        let c = try ModelConfig.load(from: model)
        let weights = try SafeTensorsCollection(path: model)
        let deltas = try AdapterDeltas(folder: adapter)
        try deltas.validate(against: weights, baseLocation: model.path)
        if let first = deltas.replacements.keys.sorted().first {
            throw ExportError.unsupported(what: "saved module '\(first)' in a GGUF LoRA adapter",
                                          hint: "llama.cpp adapters hold LoRA pairs only; use sloth export gguf --adapter to merge the whole adapter instead.")
        }
        // llama.cpp scales by alpha / r; rsLoRA's alpha / sqrt(r) is written as the equivalent alpha * sqrt(r).
        let rank = deltas.pairs.values.first?.rank ?? deltas.config.rank
        let alpha = deltas.config.useRSLoRA ? deltas.config.alpha * Double(rank).squareRoot() : deltas.config.alpha
        let meta: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(GGUFExport.architectureName(c.architecture))),
            ("general.type", .string("adapter")),
            ("general.name", .string(adapter.standardizedFileURL.lastPathComponent)),
            ("adapter.type", .string("lora")),
            ("adapter.lora.alpha", .float32(Float(alpha))),
            ("general.quantization_version", .uint32(2)),
        ]
        var tensors: [(info: GGUFTensorInfo, values: () -> [Float])] = []
        let sorted = try deltas.pairs.keys.compactMap { hf -> (Int, String, String)? in
            guard let (name, layer) = try GGUFExport.ggufName(hf) else { return nil }
            return (layer ?? -1, name, hf)
        }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        for (_, name, hf) in sorted {
            let p = deltas.pairs[hf]!, s = try weights.entry(hf)!.shape
            var heads: Int? = nil
            if GGUFExport.permutesQK(c.architecture) {
                if hf.hasSuffix("q_proj.weight") { heads = c.numAttentionHeads }
                if hf.hasSuffix("k_proj.weight") { heads = c.numKeyValueHeads }
            }
            tensors.append((GGUFTensorInfo(name: name + ".lora_a", shape: [p.rank, s[1]], type: .f32), { p.a }))
            tensors.append((GGUFTensorInfo(name: name + ".lora_b", shape: [s[0], p.rank], type: .f32), {
                heads.map { GGUFExport.permuteRows(p.b, rows: s[0], heads: $0) } ?? p.b
            }))
        }
        var report = Report()
        try GGUFWriter.write(to: output, metadata: meta, tensors: tensors.map(\.info)) { i in
            let bytes = GGMLQuant.quantize(tensors[i].values(), as: .f32)
            report.bytes += bytes.count
            return bytes
        }
        report.pairs = tensors.count / 2
        return report
    }
}
