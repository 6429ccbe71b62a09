import Foundation
import SlothCore
import SlothFormats

// L = layers, D = hidden, H = heads, K = kv heads, E = head dim, F = intermediate, V = vocab.

/// Where weights come from: a safetensors folder, a test's dictionary... Names are HF's.
public protocol WeightSource {
    /// A description for errors (the folder or file).
    var location: String { get }
    /// The tensor's shape, or nil when absent.
    func shape(of name: String) throws -> [Int]?
    /// The tensor converted to Float32 (row-major).
    func floats(_ name: String) throws -> [Float]
    /// The bitsandbytes 4-bit tensor stored under weight `name`, or nil when it is not one.
    func fourBit(_ name: String) throws -> FourBitTensor?
}

extension WeightSource {
    public func fourBit(_ name: String) throws -> FourBitTensor? { nil }
}

/// Quantizing while loading (`--load-in-4bit`): which linears, how.
public struct QuantizeOnLoad: Sendable, Equatable {
    public var type: FourBitType = .nf4
    public var doubleQuant = true
    public init(type: FourBitType = .nf4, doubleQuant: Bool = true) { self.type = type; self.doubleQuant = doubleQuant }
}

/// An in-memory weight source (tests, and models built in code).
public struct DictionaryWeights: WeightSource {
    public var tensors: [String: (shape: [Int], values: [Float])]
    public var location: String
    public init(_ tensors: [String: (shape: [Int], values: [Float])], location: String = "<memory>") {
        self.tensors = tensors; self.location = location
    }
    public func shape(of name: String) throws -> [Int]? { tensors[name]?.shape }
    public func floats(_ name: String) throws -> [Float] {
        guard let t = tensors[name] else { throw ModelError.missingTensor(file: location, tensor: name) }
        return t.values
    }
}

/// Whole modules trained beside LoRA and saved in the adapter (PEFT's `modules_to_save`).
public enum SavedModule: String, CaseIterable, Sendable {
    case embedTokens = "embed_tokens", lmHead = "lm_head"
}

/// One decoder layer's weights.
public final class DecoderLayer: @unchecked Sendable {
    public let inputNorm: Tensor          // (D)
    public let postAttentionNorm: Tensor  // (D)
    public let q: LinearLayer             // (H*E, D)
    public let k: LinearLayer             // (K*E, D)
    public let v: LinearLayer             // (K*E, D)
    public let o: LinearLayer             // (D, H*E)
    public let gate: LinearLayer          // (F, D)
    public let up: LinearLayer            // (F, D)
    public let down: LinearLayer          // (D, F)
    /// Full fine-tuning: the norms' gradients.
    public internal(set) var inputNormGrad: Tensor?
    public internal(set) var postAttentionNormGrad: Tensor?

    init(inputNorm: Tensor, postAttentionNorm: Tensor, q: LinearLayer, k: LinearLayer, v: LinearLayer, o: LinearLayer,
         gate: LinearLayer, up: LinearLayer, down: LinearLayer) {
        self.inputNorm = inputNorm; self.postAttentionNorm = postAttentionNorm
        self.q = q; self.k = k; self.v = v; self.o = o; self.gate = gate; self.up = up; self.down = down
    }

    public func linear(_ m: LinearModule) -> LinearLayer {
        switch m { case .q: return q; case .k: return k; case .v: return v; case .o: return o; case .gate: return gate; case .up: return up; case .down: return down }
    }
}

/// A Llama-family decoder-only model in fp32: weights under HF names, LoRA pairs attached to its linears.
public final class LanguageModel: @unchecked Sendable {
    public private(set) var config: ModelConfig
    public private(set) var embedTokens: Tensor        // (V, D)
    public let layers: [DecoderLayer]
    public let finalNorm: Tensor          // (D)
    /// (V, D); the embedding itself when tied.
    public private(set) var lmHead: Tensor
    public internal(set) var lora: LoRAConfig?
    /// Modules trained in full beside LoRA (`--modules-to-save`), with their gradients. In a tied model embed_tokens and
    /// lm_head are one tensor with one gradient (both uses add into it).
    public private(set) var modulesToSave: [SavedModule] = []
    public private(set) var embedGrad: Tensor?
    public private(set) var lmHeadGrad: Tensor?
    /// Full fine-tuning (`--full`): every weight has a gradient.
    public private(set) var isFullTraining = false
    public internal(set) var finalNormGrad: Tensor?

    init(config: ModelConfig, embedTokens: Tensor, layers: [DecoderLayer], finalNorm: Tensor, lmHead: Tensor) {
        self.config = config; self.embedTokens = embedTokens; self.layers = layers; self.finalNorm = finalNorm; self.lmHead = lmHead
    }

    /// Loads weights for `config` from `source`, checking every name and shape.
    /// Linear weights stored as bitsandbytes 4-bit load as they are; with `quantize`, 16/32-bit linear weights are
    /// quantized one tensor at a time as they are read (the whole model never exists in fp32).
    public static func load(config c: ModelConfig, weights source: WeightSource, quantize: QuantizeOnLoad? = nil) throws -> LanguageModel {
        func checkShape(_ name: String, _ shape: [Int]) throws {
            guard let found = try source.shape(of: name) else { throw ModelError.missingTensor(file: source.location, tensor: name) }
            guard found == shape else { throw ModelError.wrongShape(file: source.location, tensor: name, expected: shape, found: found) }
        }
        func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
            try checkShape(name, shape)
            return Tensor(shape, try source.floats(name))
        }
        func optional(_ name: String, _ shape: [Int], required: Bool) throws -> Tensor? {
            if required { return try tensor(name, shape) }
            return try source.shape(of: name) == nil ? nil : try tensor(name, shape)
        }
        let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
        let embed = try tensor("model.embed_tokens.weight", [c.vocabSize, D])
        var layers: [DecoderLayer] = []
        for i in 0..<c.numHiddenLayers {
            let p = "model.layers.\(i)."
            func lin(_ m: LinearModule, _ out: Int, _ inF: Int, bias: Bool) throws -> LinearLayer {
                let base = p + m.parent + "." + m.rawValue, name = base + ".weight"
                let b = try optional(base + ".bias", [out], required: bias)
                if let q = try source.fourBit(name) {
                    guard q.shape == [out, inF] else { throw ModelError.wrongShape(file: source.location, tensor: name, expected: [out, inF], found: q.shape) }
                    return LinearLayer(fourBit: q, bias: b)
                }
                if c.quantization != nil && quantize == nil && !(c.quantization?.skipModules ?? []).contains(where: { name.contains($0) }) {
                    throw ModelError.badField(file: source.location, field: name,
                                              detail: "config.json says the checkpoint is bitsandbytes 4-bit, but this weight has no quant_state; the folder mixes checkpoints")
                }
                if let quantize {
                    try checkShape(name, [out, inF])
                    let w = try source.floats(name)
                    if let bad = w.firstIndex(where: { !$0.isFinite }) {
                        throw ModelError.badField(file: source.location, field: name, detail: "value \(bad) is \(w[bad]); 4-bit quantization needs finite weights")
                    }
                    return LinearLayer(fourBit: FourBitTensor.quantize(w, shape: [out, inF], type: quantize.type, doubleQuant: quantize.doubleQuant), bias: b)
                }
                return LinearLayer(weight: try tensor(name, [out, inF]), bias: b)
            }
            layers.append(DecoderLayer(
                inputNorm: try tensor(p + "input_layernorm.weight", [D]),
                postAttentionNorm: try tensor(p + "post_attention_layernorm.weight", [D]),
                q: try lin(.q, HE, D, bias: c.qkvBias), k: try lin(.k, KE, D, bias: c.qkvBias), v: try lin(.v, KE, D, bias: c.qkvBias),
                o: try lin(.o, D, HE, bias: c.attentionBias && c.architecture != .qwen2),
                gate: try lin(.gate, F, D, bias: c.mlpBias), up: try lin(.up, F, D, bias: c.mlpBias), down: try lin(.down, D, F, bias: c.mlpBias)))
        }
        let norm = try tensor("model.norm.weight", [D])
        let head = c.tieWordEmbeddings ? embed : try tensor("lm_head.weight", [c.vocabSize, D])
        return LanguageModel(config: c, embedTokens: embed, layers: layers, finalNorm: norm, lmHead: head)
    }

    /// Attaches fresh LoRA pairs (PEFT init: A kaiming-uniform from `seed`, B zero) to the targeted linears.
    public func addLoRA(_ lc: LoRAConfig, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for (i, layer) in layers.enumerated() {
            for (j, m) in LinearModule.allCases.enumerated() {
                let lin = layer.linear(m)
                lin.lora = lc.targets.contains(m)
                    ? LoRAPair.initialised(inFeatures: lin.inFeatures, outFeatures: lin.outFeatures, config: lc, rng: &rng,
                                           dropoutSeed: seed &+ UInt64(i * 16 + j + 1) &* 0x1000_0000_01B3)
                    : nil
            }
        }
        lora = lc
    }

    /// Attaches given LoRA pairs (e.g. loaded from a PEFT adapter): key = (layer, module).
    public func setLoRA(_ lc: LoRAConfig, pairs: [Int: [LinearModule: (a: Tensor, b: Tensor)]], seed: UInt64 = 0) {
        for (i, layer) in layers.enumerated() {
            for (j, m) in LinearModule.allCases.enumerated() {
                if let p = pairs[i]?[m] {
                    layer.linear(m).lora = LoRAPair(a: p.a, b: p.b, scale: lc.scale, dropout: Float(lc.dropout),
                                                    dropoutSeed: seed &+ UInt64(i * 16 + j + 1) &* 0x1000_0000_01B3)
                } else {
                    layer.linear(m).lora = nil
                }
            }
        }
        lora = lc
    }

    /// Every LoRA pair with its PEFT module path (`model.layers.N.self_attn.q_proj`), in a fixed order.
    public var loraPairs: [(path: String, pair: LoRAPair)] {
        var out: [(String, LoRAPair)] = []
        for (i, layer) in layers.enumerated() {
            for m in LinearModule.allCases {
                if let p = layer.linear(m).lora { out.append(("model.layers.\(i).\(m.parent).\(m.rawValue)", p)) }
            }
        }
        return out
    }

    /// The 4-bit settings of the decoder's linears when they are quantized (nil: fp32).
    public var fourBit: QuantizeOnLoad? {
        guard case .fourBit(let q)? = layers.first?.q.storage else { return nil }
        if case .plain = q.absmax { return QuantizeOnLoad(type: q.type, doubleQuant: false) }
        return QuantizeOnLoad(type: q.type, doubleQuant: true)
    }

    /// Bytes held by the weights: decoder linears, everything else, and the linears' parameter count.
    public var weightBytes: (linear: Int, other: Int, linearParameters: Int) {
        var lin = 0, params = 0, other = embedTokens.count * 4 + finalNorm.count * 4 + (lmHead === embedTokens ? 0 : lmHead.count * 4)
        for l in layers {
            other += (l.inputNorm.count + l.postAttentionNorm.count) * 4
            for m in LinearModule.allCases {
                let x = l.linear(m)
                lin += x.storage.bytes; params += x.inFeatures * x.outFeatures; other += (x.bias?.count ?? 0) * 4
            }
        }
        return (lin, other, params)
    }

    /// Number of trainable parameters: LoRA pairs and whole tensors trained in full.
    public var trainableParameterCount: Int {
        loraPairs.reduce(0) { $0 + $1.pair.a.count + $1.pair.b.count } + wholeTrainedParameterCount
    }

    /// Parameters of the whole tensors trained in full (every weight with --full, else the modules to save): the ones
    /// with a full-size gradient and optimizer state.
    public var wholeTrainedParameterCount: Int {
        (isFullTraining ? fullParameters.map(\.param) : savedModuleParameters.map(\.param)).reduce(0) { $0 + $1.count }
    }
}

extension LanguageModel {
    /// Trains `modules` in full (their gradients are allocated here). Tied models share one tensor and one gradient.
    public func trainModules(_ modules: [SavedModule]) {
        modulesToSave = SavedModule.allCases.filter(modules.contains)
        let tied = lmHead === embedTokens
        embedGrad = nil; lmHeadGrad = nil
        if tied {
            if !modulesToSave.isEmpty { let g = Tensor(embedTokens.shape); embedGrad = g; lmHeadGrad = g }
        } else {
            if modulesToSave.contains(.embedTokens) { embedGrad = Tensor(embedTokens.shape) }
            if modulesToSave.contains(.lmHead) { lmHeadGrad = Tensor(lmHead.shape) }
        }
    }

    /// Largest value of a row at or below this: the row was never trained (Unsloth's fix_untrained_tokens test).
    public static let untrainedRowMax: Float = 1e-16

    /// Rows of `table` (V, D) whose largest value is <= `untrainedRowMax`.
    public static func untrainedRows(_ table: Tensor) -> Set<Int> {
        let v = table.shape[0], d = table.shape[1]
        var out = Set<Int>()
        for r in 0..<v {
            var m = -Float.infinity
            for j in 0..<d { m = max(m, table[r * d + j]) }
            if m <= untrainedRowMax { out.insert(r) }
        }
        return out
    }

    /// The mean of the trained rows of `table` (V, D), summed in fp64 (zeros when no row is trained).
    public static func trainedRowMean(_ table: Tensor) -> [Float] {
        let v = table.shape[0], d = table.shape[1], untrained = untrainedRows(table)
        var mean = [Double](repeating: 0, count: d), n = 0
        for r in 0..<v where !untrained.contains(r) { n += 1; for j in 0..<d { mean[j] += Double(table[r * d + j]) } }
        return mean.map { Float($0 / Double(max(n, 1))) }
    }

    /// Grows the vocabulary to `size` rows (new tokens): embed_tokens and lm_head get new rows set to the mean of their
    /// trained rows (`trainedRowMean`), as Unsloth's add_new_tokens. Call before
    /// trainModules / enableFullTraining. Shrinking is refused (returns false).
    @discardableResult
    public func resizeVocabulary(to size: Int) -> Bool {
        let v = config.vocabSize, d = config.hiddenSize
        guard size >= v else { return false }
        if size == v { return true }
        func grown(_ t: Tensor) -> Tensor {
            let g = Tensor([size, d])
            (g.data).update(from: t.data, count: v * d)
            let mean = LanguageModel.trainedRowMean(t)
            for r in v..<size { (g.data + r * d).update(from: mean, count: d) }
            return g
        }
        let tied = lmHead === embedTokens
        embedTokens = grown(embedTokens)
        lmHead = tied ? embedTokens : grown(lmHead)
        config.vocabSize = size
        if isFullTraining || !modulesToSave.isEmpty { trainModules(isFullTraining ? SavedModule.allCases : modulesToSave) }
        return true
    }

    /// Full fine-tuning: allocates a gradient for every weight (linears must be fp32, not 4-bit).
    public func enableFullTraining() throws {
        for (i, l) in layers.enumerated() {
            for m in LinearModule.allCases {
                let x = l.linear(m)
                guard case .dense(let w) = x.storage else {
                    throw ModelError.unsupported(file: "model.layers.\(i).\(m.parent).\(m.rawValue)", what: "full fine-tuning of 4-bit weights",
                                                 hint: "Use a 16/32-bit model without --load-in-4bit for --full, or train LoRA on the 4-bit model.")
                }
                x.gradWeight = Tensor(w.shape)
                x.gradBias = x.bias.map { Tensor($0.shape) }
            }
            l.inputNormGrad = Tensor(l.inputNorm.shape); l.postAttentionNormGrad = Tensor(l.postAttentionNorm.shape)
        }
        finalNormGrad = Tensor(finalNorm.shape)
        trainModules(SavedModule.allCases)
        isFullTraining = true
    }

    /// Every trained weight of a full fine-tune with its HF name and gradient, in the order of PyTorch's
    /// `named_parameters` (embed_tokens, each layer's linears and norms, final norm, lm_head unless tied).
    public var fullParameters: [(name: String, param: Tensor, grad: Tensor)] {
        guard isFullTraining else { return [] }
        var out: [(String, Tensor, Tensor)] = [("model.embed_tokens.weight", embedTokens, embedGrad!)]
        for (i, l) in layers.enumerated() {
            let p = "model.layers.\(i)."
            for m in LinearModule.allCases {
                let x = l.linear(m)
                out.append((p + m.parent + "." + m.rawValue + ".weight", x.weight, x.gradWeight!))
                if let b = x.bias { out.append((p + m.parent + "." + m.rawValue + ".bias", b, x.gradBias!)) }
            }
            out.append((p + "input_layernorm.weight", l.inputNorm, l.inputNormGrad!))
            out.append((p + "post_attention_layernorm.weight", l.postAttentionNorm, l.postAttentionNormGrad!))
        }
        out.append(("model.norm.weight", finalNorm, finalNormGrad!))
        if !(lmHead === embedTokens) { out.append(("lm_head.weight", lmHead, lmHeadGrad!)) }
        return out
    }

    /// The distinct trained module tensors and their gradients, in a fixed order (embed_tokens, then lm_head unless tied).
    public var savedModuleParameters: [(module: SavedModule, param: Tensor, grad: Tensor)] {
        var out: [(SavedModule, Tensor, Tensor)] = []
        if let g = embedGrad { out.append((.embedTokens, embedTokens, g)) }
        if let g = lmHeadGrad, !(lmHeadGrad === embedGrad) { out.append((.lmHead, lmHead, g)) }
        return out
    }

    /// Changes the LoRA dropout probability of every pair (e.g. to override an adapter's setting).
    public func setDropout(_ p: Double) {
        for (_, pair) in loraPairs { pair.dropout = Float(p) }
        lora?.dropout = p
    }
}
