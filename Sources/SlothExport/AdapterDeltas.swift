import Foundation
import SlothCore
import SlothFormats
import SlothModels

// O = out features, I = in features, R = LoRA rank.

/// A PEFT adapter read as what it changes in the base checkpoint, keyed by the base tensor's HF name:
/// LoRA pairs (`model.layers.3.self_attn.q_proj.weight` += scale * B A) and whole replacements
/// (`modules_to_save`, e.g. `lm_head.weight`).
public struct AdapterDeltas {
    public struct Pair {
        public let a: [Float]   // (R, I)
        public let b: [Float]   // (O, R)
        public let rank: Int
    }
    public let folder: URL
    public let config: LoRAConfig
    /// scale = alpha / r (rsLoRA: alpha / sqrt(r)).
    public var scale: Float { config.scale }
    public private(set) var pairs: [String: Pair] = [:]
    public private(set) var replacements: [String: (shape: [Int], values: [Float])] = [:]
    private let file: SafeTensorsFile

    /// Reads `adapter_config.json` and `adapter_model.safetensors`; every key must be a LoRA A/B of a base
    /// linear (`base_model.model.<name>.lora_A.weight`) or a saved module (`base_model.model.<name>.weight`).
    public init(folder: URL) throws {
        self.folder = folder
        config = try PEFTAdapter.readConfig(folder)
        let url = folder.appendingPathComponent("adapter_model.safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ModelError.fileMissing(path: url.path, hint: "A PEFT adapter folder holds adapter_config.json and adapter_model.safetensors.")
        }
        file = try SafeTensorsFile(url: url)
        let prefix = "base_model.model."
        var halves: [String: (a: String?, b: String?)] = [:]
        for name in file.names {
            guard name.hasPrefix(prefix) else {
                throw ModelError.unsupported(file: url.path, what: "tensor '\(name)' (no '\(prefix)' prefix)", hint: "This is not a PEFT LoRA adapter for a causal LM.")
            }
            let key = String(name.dropFirst(prefix.count))
            if key.hasSuffix(".lora_A.weight") {
                halves[String(key.dropLast(".lora_A.weight".count)) + ".weight", default: (nil, nil)].a = name
            } else if key.hasSuffix(".lora_B.weight") {
                halves[String(key.dropLast(".lora_B.weight".count)) + ".weight", default: (nil, nil)].b = name
            } else if key.contains(".lora_") || key.contains("lora_magnitude") {
                throw ModelError.unsupported(file: url.path, what: "tensor '\(name)'", hint: "Only plain LoRA A/B pairs and modules_to_save can be merged.")
            } else {
                guard let e = file.entry(name) else { continue }
                replacements[key] = (e.shape, try file.floats(name))
            }
        }
        for (target, h) in halves {
            guard let an = h.a, let bn = h.b else {
                throw ModelError.missingTensor(file: url.path, tensor: prefix + String(target.dropLast(".weight".count)) + (h.a == nil ? ".lora_A.weight" : ".lora_B.weight"))
            }
            let ea = file.entry(an)!, eb = file.entry(bn)!
            guard ea.shape.count == 2, eb.shape.count == 2, ea.shape[0] == eb.shape[1] else {
                throw ModelError.wrongShape(file: url.path, tensor: bn, expected: [eb.shape.first ?? 0, ea.shape.first ?? 0], found: eb.shape)
            }
            pairs[target] = Pair(a: try file.floats(an), b: try file.floats(bn), rank: ea.shape[0])
        }
    }

    /// Checks the adapter against a base checkpoint's tensors (names and shapes).
    public func validate(against base: SafeTensorsCollection, baseLocation: String) throws {
        var shapes: [String: [Int]] = [:]
        for n in base.names { shapes[n] = try base.entry(n)?.shape }
        try validate(against: shapes, baseLocation: baseLocation)
    }

    /// A tied base has no lm_head.weight: an lm_head saved beside an equal embed_tokens (what Sloth writes for a tied
    /// model, so that PEFT's untied copies agree) is the same tensor and is dropped; a different one cannot be merged.
    public mutating func foldTiedHead(baseHasHead: Bool) throws {
        guard !baseHasHead, let head = replacements["lm_head.weight"] else { return }
        guard let embed = replacements["model.embed_tokens.weight"], embed.values == head.values else {
            throw ModelError.unsupported(file: folder.appendingPathComponent("adapter_model.safetensors").path,
                                         what: "merging a trained lm_head that differs from embed_tokens into a model with tied embeddings",
                                         hint: "The merged checkpoint would have one tensor for both; set tie_word_embeddings false in a copy of the base's config.json and re-save it with an lm_head.weight.")
        }
        replacements["lm_head.weight"] = nil
    }

    /// Checks that every pair and replacement names a base tensor of a matching shape.
    public func validate(against shapes: [String: [Int]], baseLocation: String) throws {
        let adapterFile = folder.appendingPathComponent("adapter_model.safetensors").path
        for (name, p) in pairs.sorted(by: { $0.key < $1.key }) {
            guard let s = shapes[name] else {
                throw ModelError.unsupported(file: adapterFile, what: "a LoRA pair for '\(name)', which \(baseLocation) does not have",
                                             hint: "Merge the adapter into the base model it was trained on.")
            }
            guard s.count == 2, p.a.count == p.rank * s[1], p.b.count == s[0] * p.rank else {
                throw ModelError.badField(file: adapterFile, field: name,
                                          detail: "its LoRA pair makes a \([p.b.count / max(p.rank, 1), p.a.count / max(p.rank, 1)]) update, but that weight in \(baseLocation) has shape \(s): the adapter belongs to another model")
            }
        }
        for (name, r) in replacements.sorted(by: { $0.key < $1.key }) {
            guard let s = shapes[name] else {
                throw ModelError.unsupported(file: adapterFile, what: "saved module '\(name)', which \(baseLocation) does not have", hint: "Merge the adapter into the base model it was trained on.")
            }
            // embed_tokens / lm_head with more rows: tokens were added (the merge grows the vocabulary).
            let grown = (name == "model.embed_tokens.weight" || name == "lm_head.weight") && s.count == 2 && r.shape.count == 2 && r.shape[1] == s[1] && r.shape[0] > s[0]
            guard s == r.shape || grown else {
                throw ModelError.badField(file: adapterFile, field: name, detail: "saved module has shape \(r.shape), but that weight in \(baseLocation) has shape \(s): the adapter belongs to another model")
            }
        }
    }

    /// Applies the adapter to one base tensor in place: W (O, I) += scale * B (O, R) A (R, I), in fp32;
    /// a saved module replaces it. Returns true when the tensor changed.
    @discardableResult
    public func apply(to name: String, values w: inout [Float], shape: [Int]) -> Bool {
        if let r = replacements[name] { w = r.values; return true }
        guard let p = pairs[name] else { return false }
        let o = shape[0], i = shape[1]
        p.b.withUnsafeBufferPointer { b in
            p.a.withUnsafeBufferPointer { a in
                w.withUnsafeMutableBufferPointer { c in
                    BLAS.sgemm(transA: false, transB: false, m: o, n: i, k: p.rank, alpha: scale,
                               a: b.baseAddress!, b: a.baseAddress!, beta: 1, c: c.baseAddress!)
                }
            }
        }
        return true
    }
}
