import Foundation
import SlothCore
import SlothFormats

/// A decoder-only model's `config.json`, validated. Field names follow HF's keys.
public struct ModelConfig: Sendable {
    public var architecture: Architecture
    public var hiddenSize: Int               // D
    public var intermediateSize: Int         // F
    public var numHiddenLayers: Int          // L
    public var numAttentionHeads: Int        // H
    public var numKeyValueHeads: Int         // K
    public var headDim: Int                  // E
    public var vocabSize: Int                // V
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var ropeScaling: RoPEScaling
    public var partialRotaryFactor: Double
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var slidingWindow: Int?
    public var attentionBias: Bool
    public var mlpBias: Bool
    public var activation: GatedActivation
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
    public var padTokenId: Int?
    /// The dtype the weights were saved in ("float32", "bfloat16"...), informational.
    public var dtype: String?
    /// A pre-quantized bitsandbytes 4-bit checkpoint's `quantization_config`; nil for 16/32-bit weights.
    public var quantization: BNB4BitConfig? = nil

    /// Attention logits scale (1/sqrt(E)).
    public var attentionScale: Float { 1 / Float(headDim).squareRoot() }
    public var qkvBias: Bool { architecture.alwaysQKVBias || attentionBias }

    public var rope: RoPE {
        RoPE(headDim: headDim, theta: ropeTheta, scaling: ropeScaling, maxPositionEmbeddings: maxPositionEmbeddings,
             partialRotaryFactor: partialRotaryFactor)
    }

    /// Reads and validates `config.json` (a folder or the file itself).
    public static func load(from url: URL) throws -> ModelConfig {
        var isDir: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue
            ? url.appendingPathComponent("config.json") : url
        return try parse(readJSONObject(file), file: file.path)
    }

    /// Validates a decoded config.json object.
    public static func parse(_ dict: [String: Any], file: String) throws -> ModelConfig {
        let f = JSONFields(file: file, dict: dict)
        guard let type = try f.string("model_type") else {
            throw ModelError.badField(file: file, field: "model_type", detail: "required but missing; it names the architecture (llama, mistral, qwen2, gemma)")
        }
        guard let arch = Architecture(rawValue: type) else { throw ModelError.unsupportedModelType(file: file, modelType: type) }
        var quantization: BNB4BitConfig? = nil
        if let q = try f.object("quantization_config") { quantization = try BNB4BitConfig.parse(q, file: file) }
        let d = try f.requiredInt("hidden_size")
        let h = try f.requiredInt("num_attention_heads")
        let kv = try f.int("num_key_value_heads") ?? h
        guard kv >= 1, h % kv == 0 else {
            throw ModelError.badField(file: file, field: "num_key_value_heads", detail: "\(kv) must divide num_attention_heads (\(h))")
        }
        let headDim = try f.int("head_dim") ?? (d / h)
        guard headDim >= 2, headDim % 2 == 0 else { throw ModelError.badField(file: file, field: "head_dim", detail: "must be even and positive, found \(headDim)") }
        if f.has("head_dim") == false && d % h != 0 {
            throw ModelError.badField(file: file, field: "hidden_size", detail: "\(d) is not divisible by num_attention_heads (\(h)); give head_dim")
        }
        let act = try f.string("hidden_activation") ?? f.string("hidden_act") ?? arch.defaultActivation
        let activation: GatedActivation
        switch act {
        case "silu", "swish": activation = .swiglu
        case "gelu_pytorch_tanh", "gelu_tanh", "gelu": activation = .gegluTanh
        default: throw ModelError.badField(file: file, field: "hidden_act", detail: "'\(act)' is not supported (silu, gelu_pytorch_tanh)")
        }
        // RoPE: older configs have rope_theta + rope_scaling; transformers 5 writes rope_parameters.
        let ropeParams = try f.object("rope_parameters")
        let ropeScalingObj = try f.object("rope_scaling")
        var theta = try f.double("rope_theta") ?? ropeParams?.double("rope_theta") ?? 10000
        if let p = ropeParams, let t = try p.double("rope_theta") { theta = t }
        var scaling = RoPEScaling()
        if let s = ropeScalingObj ?? ropeParams {
            let kind = try s.string("rope_type") ?? s.string("type") ?? "default"
            guard let k = RoPEScaling.Kind(rawValue: kind) else {
                throw ModelError.badField(file: file, field: ropeScalingObj != nil ? "rope_scaling.rope_type" : "rope_parameters.rope_type",
                                          detail: "'\(kind)' is not supported (default, linear, dynamic, llama3, yarn)")
            }
            scaling.kind = k
            scaling.factor = try s.double("factor") ?? 1
            scaling.lowFreqFactor = try s.double("low_freq_factor") ?? 1
            scaling.highFreqFactor = try s.double("high_freq_factor") ?? 4
            scaling.originalMaxPositionEmbeddings = try s.int("original_max_position_embeddings") ?? f.int("original_max_position_embeddings")
            scaling.attentionFactor = try s.double("attention_factor")
            scaling.betaFast = try s.double("beta_fast") ?? 32
            scaling.betaSlow = try s.double("beta_slow") ?? 1
            scaling.mscale = try s.double("mscale")
            scaling.mscaleAllDim = try s.double("mscale_all_dim")
            scaling.truncate = try s.bool("truncate") ?? true
            if k == .llama3 || k == .linear || k == .dynamic, scaling.factor <= 0 {
                throw ModelError.badField(file: file, field: "rope_scaling.factor", detail: "must be positive")
            }
        }
        var window: Int? = nil
        let qwenWindow = try f.bool("use_sliding_window") ?? false
        if arch == .mistral || (arch == .qwen2 && qwenWindow) {
            window = try f.int("sliding_window")
            if let w = window, w < 1 { throw ModelError.badField(file: file, field: "sliding_window", detail: "must be positive") }
        }
        return ModelConfig(
            architecture: arch, hiddenSize: d, intermediateSize: try f.requiredInt("intermediate_size"),
            numHiddenLayers: try f.requiredInt("num_hidden_layers"), numAttentionHeads: h, numKeyValueHeads: kv,
            headDim: headDim, vocabSize: try f.requiredInt("vocab_size"),
            rmsNormEps: Float(try f.double("rms_norm_eps") ?? arch.defaultNormEps),
            ropeTheta: theta, ropeScaling: scaling,
            partialRotaryFactor: try f.double("partial_rotary_factor") ?? ropeParams?.double("partial_rotary_factor") ?? 1,
            maxPositionEmbeddings: try f.int("max_position_embeddings") ?? 2048,
            tieWordEmbeddings: try f.bool("tie_word_embeddings") ?? arch.defaultTiedEmbeddings,
            slidingWindow: window, attentionBias: try f.bool("attention_bias") ?? false, mlpBias: try f.bool("mlp_bias") ?? false,
            activation: activation, bosTokenId: try f.int("bos_token_id"), eosTokenIds: try f.ints("eos_token_id"),
            padTokenId: try f.int("pad_token_id"), dtype: try f.string("dtype") ?? f.string("torch_dtype"), quantization: quantization)
    }
}

/// `quantization_config` of a bitsandbytes 4-bit checkpoint (transformers' BitsAndBytesConfig), validated.
public struct BNB4BitConfig: Sendable, Equatable {
    public var type: FourBitType
    public var doubleQuant: Bool
    /// bnb_4bit_compute_dtype as written ("float32", "bfloat16"...); Sloth computes in fp32 whatever it says.
    public var computeDtype: String?
    /// llm_int8_skip_modules: modules left unquantized (transformers always skips lm_head).
    public var skipModules: [String]?

    public init(type: FourBitType = .nf4, doubleQuant: Bool = true, computeDtype: String? = "float32", skipModules: [String]? = nil) {
        self.type = type; self.doubleQuant = doubleQuant; self.computeDtype = computeDtype; self.skipModules = skipModules
    }

    static func parse(_ q: JSONFields, file: String) throws -> BNB4BitConfig {
        let method = try q.string("quant_method") ?? "unknown"
        guard method == "bitsandbytes" else {
            throw ModelError.unsupported(file: file, what: "quantization_config.quant_method '\(method)'",
                                         hint: "Sloth reads bitsandbytes 4-bit checkpoints (nf4/fp4). Use the model's 16-bit weights, with --load-in-4bit for QLoRA.")
        }
        let in4 = try q.bool("load_in_4bit") ?? q.bool("_load_in_4bit") ?? false
        let in8 = try q.bool("load_in_8bit") ?? q.bool("_load_in_8bit") ?? false
        guard in4, !in8 else {
            throw ModelError.unsupported(file: file, what: in8 ? "bitsandbytes 8-bit (LLM.int8) quantization" : "quantization_config without load_in_4bit",
                                         hint: "Use a 4-bit (bnb-4bit) checkpoint, or the 16-bit model with --load-in-4bit.")
        }
        let typeName = try q.string("bnb_4bit_quant_type") ?? "fp4"
        guard let type = FourBitType(rawValue: typeName) else {
            throw ModelError.badField(file: file, field: "quantization_config.bnb_4bit_quant_type", detail: "'\(typeName)' is not nf4 or fp4")
        }
        if let storage = try q.string("bnb_4bit_quant_storage"), storage != "uint8" {
            throw ModelError.unsupported(file: file, what: "bnb_4bit_quant_storage '\(storage)'",
                                         hint: "Only uint8 storage (transformers' default) is read; re-save the model without bnb_4bit_quant_storage.")
        }
        var skip: [String]? = nil
        if q.has("llm_int8_skip_modules") {
            guard let list = q.dict["llm_int8_skip_modules"] as? [Any], list.allSatisfy({ $0 is String }) else {
                throw ModelError.badField(file: file, field: "quantization_config.llm_int8_skip_modules", detail: "expected a list of module names")
            }
            skip = list as? [String]
        }
        return BNB4BitConfig(type: type, doubleQuant: try q.bool("bnb_4bit_use_double_quant") ?? false,
                             computeDtype: try q.string("bnb_4bit_compute_dtype"), skipModules: skip)
    }
}
