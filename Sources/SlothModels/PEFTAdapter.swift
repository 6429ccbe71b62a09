import Foundation
import SlothCore
import SlothFormats

/// A LoRA adapter in PEFT's layout: `adapter_config.json` + `adapter_model.safetensors` with keys
/// `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight` (R, I) and `...lora_B.weight` (O, R).
public enum PEFTAdapter {
    static let prefix = "base_model.model."

    /// Reads adapter_config.json's LoRA settings.
    public static func readConfig(_ dir: URL) throws -> LoRAConfig {
        let file = dir.appendingPathComponent("adapter_config.json")
        let f = JSONFields(file: file.path, dict: try readJSONObject(file))
        if let t = try f.string("peft_type"), t != "LORA" {
            throw ModelError.unsupported(file: file.path, what: "peft_type '\(t)'", hint: "Only LoRA adapters are supported.")
        }
        if try f.bool("use_dora") == true {
            throw ModelError.unsupported(file: file.path, what: "DoRA (use_dora: true)", hint: "Train a plain LoRA adapter.")
        }
        if try f.bool("fan_in_fan_out") == true {
            throw ModelError.unsupported(file: file.path, what: "fan_in_fan_out: true", hint: "Llama-family models use fan_in_fan_out false.")
        }
        if let bias = try f.string("bias"), bias != "none" {
            throw ModelError.unsupported(file: file.path, what: "bias '\(bias)'", hint: "Only bias 'none' is supported.")
        }
        if let rp = try f.object("rank_pattern"), !rp.dict.isEmpty {
            throw ModelError.unsupported(file: file.path, what: "rank_pattern", hint: "Per-module ranks are not supported yet.")
        }
        if let ap = try f.object("alpha_pattern"), !ap.dict.isEmpty {
            throw ModelError.unsupported(file: file.path, what: "alpha_pattern", hint: "Per-module alphas are not supported yet.")
        }
        let r = try f.requiredInt("r")
        let alpha = try f.double("lora_alpha") ?? Double(r)
        let names = try f.strings("target_modules") ?? []
        if names == ["all-linear"] {
            return LoRAConfig(rank: r, alpha: alpha, dropout: try f.double("lora_dropout") ?? 0, useRSLoRA: try f.bool("use_rslora") ?? false)
        }
        var targets: [LinearModule] = []
        for n in names {
            guard let m = LinearModule(rawValue: n) else {
                throw ModelError.badField(file: file.path, field: "target_modules", detail: "'\(n)' is not one of \(LinearModule.allCases.map(\.rawValue))")
            }
            targets.append(m)
        }
        guard !targets.isEmpty else { throw ModelError.badField(file: file.path, field: "target_modules", detail: "is empty") }
        return LoRAConfig(rank: r, alpha: alpha, dropout: try f.double("lora_dropout") ?? 0, useRSLoRA: try f.bool("use_rslora") ?? false,
                          targets: LinearModule.allCases.filter(targets.contains))
    }

    /// Loads an adapter folder onto `model` (replacing any LoRA it had). Checks names and shapes.
    @discardableResult
    public static func load(_ dir: URL, into model: LanguageModel, seed: UInt64 = 0) throws -> LoRAConfig {
        let lc = try readConfig(dir)
        let file = dir.appendingPathComponent("adapter_model.safetensors")
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw ModelError.fileMissing(path: file.path, hint: "A PEFT adapter folder holds adapter_config.json and adapter_model.safetensors.")
        }
        let st = try SafeTensorsFile(url: file)
        var pairs: [Int: [LinearModule: (a: Tensor, b: Tensor)]] = [:]
        var used = Set<String>()
        for (i, layer) in model.layers.enumerated() {
            for m in lc.targets {
                let lin = layer.linear(m)
                let base = prefix + "model.layers.\(i).\(m.parent).\(m.rawValue)"
                func read(_ name: String, _ shape: [Int]) throws -> Tensor {
                    guard let e = st.entry(name) else { throw ModelError.missingTensor(file: file.path, tensor: name) }
                    guard e.shape == shape else { throw ModelError.wrongShape(file: file.path, tensor: name, expected: shape, found: e.shape) }
                    used.insert(name)
                    return Tensor(shape, try st.floats(name))
                }
                let a = try read(base + ".lora_A.weight", [lc.rank, lin.inFeatures])
                let b = try read(base + ".lora_B.weight", [lin.outFeatures, lc.rank])
                pairs[i, default: [:]][m] = (a, b)
            }
        }
        // modules_to_save: whole embed_tokens / lm_head replacing the base's (copied in place; tied models share one).
        var saved: [SavedModule] = []
        // New tokens: saved modules with more rows than the base grow it first (PEFT users call resize_token_embeddings).
        if let rows = SavedModule.allCases.compactMap({ st.entry(prefix + ($0 == .embedTokens ? "model.embed_tokens.weight" : "lm_head.weight"))?.shape.first }).max(),
           rows > model.config.vocabSize {
            model.resizeVocabulary(to: rows)
        }
        for m in SavedModule.allCases {
            let name = prefix + (m == .embedTokens ? "model.embed_tokens.weight" : "lm_head.weight")
            guard let e = st.entry(name) else { continue }
            let target = m == .embedTokens ? model.embedTokens : model.lmHead
            guard e.shape == target.shape else { throw ModelError.wrongShape(file: file.path, tensor: name, expected: target.shape, found: e.shape) }
            try st.readFloats(name, into: target.buffer)
            used.insert(name); saved.append(m)
        }
        let extra = st.names.filter { !used.contains($0) }
        if let first = extra.first {
            throw ModelError.unsupported(file: file.path, what: "tensor '\(first)'\(extra.count > 1 ? " and \(extra.count - 1) more" : "")",
                                         hint: "The adapter holds weights Sloth does not apply (modules_to_save, DoRA, other layers); it would be applied partially.")
        }
        model.setLoRA(lc, pairs: pairs, seed: seed)
        model.trainModules(saved)
        return lc
    }

    /// Writes the model's LoRA pairs as a PEFT adapter (atomic per file).
    public static func save(_ model: LanguageModel, to dir: URL, baseModel: String) throws {
        guard let lc = model.lora else { throw ModelError.unsupported(file: dir.path, what: "saving an adapter without LoRA layers", hint: "") }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var tensors: [WritableTensor] = []
        for (path, pair) in model.loraPairs {
            tensors.append(WritableTensor(name: prefix + path + ".lora_A.weight", shape: pair.a.shape, floats: pair.a.array))
            tensors.append(WritableTensor(name: prefix + path + ".lora_B.weight", shape: pair.b.shape, floats: pair.b.array))
        }
        for m in model.modulesToSave {
            let t = m == .embedTokens ? model.embedTokens : model.lmHead
            tensors.append(WritableTensor(name: prefix + (m == .embedTokens ? "model.embed_tokens.weight" : "lm_head.weight"), shape: t.shape, floats: t.array))
        }
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent("adapter_model.safetensors"))
        let config: [String: Any] = [
            "alpha_pattern": [String: Any](), "auto_mapping": NSNull(), "base_model_name_or_path": baseModel, "bias": "none",
            "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "layers_pattern": NSNull(),
            "layers_to_transform": NSNull(), "lora_alpha": lc.alpha == lc.alpha.rounded() ? Int(lc.alpha) as Any : lc.alpha as Any,
            "lora_dropout": lc.dropout, "modules_to_save": model.modulesToSave.isEmpty ? NSNull() as Any : model.modulesToSave.map(\.rawValue) as Any, "peft_type": "LORA", "r": lc.rank, "rank_pattern": [String: Any](),
            "revision": NSNull(), "target_modules": lc.targets.map(\.rawValue).sorted(), "task_type": "CAUSAL_LM",
            "use_dora": false, "use_rslora": lc.useRSLoRA,
        ]
        let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(json, to: dir.appendingPathComponent("adapter_config.json"))
    }
}

/// Writes data to a temporary file in the same folder, then renames it over `url`.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    try data.write(to: tmp)
    guard Foundation.rename(tmp.path, url.path) == 0 else {
        let err = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: tmp)
        throw ModelError.unsupported(file: url.path, what: "writing the file (\(err))", hint: "Check the folder is writable and the disk has room.")
    }
}
