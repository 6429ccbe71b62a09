import Foundation
import SlothCore
import SlothFormats
import SlothModels

/// `sloth export merged`: base + adapter written as one plain Hugging Face checkpoint (W + scale B A per
/// tensor), streaming one tensor at a time into sharded safetensors, with the base folder's config,
/// generation config and tokenizer files beside it.
public enum MergedExport {
    public struct Options: Sendable {
        /// Output dtype of floating-point tensors; nil keeps each tensor's own dtype.
        public var dtype: DType?
        /// Shard size limit in tensor bytes (HF's `max_shard_size`).
        public var maxShardBytes: Int = 5_000_000_000
        /// Delete each source shard once all of its tensors are written (the user asked for it).
        public var lowDisk = false
        /// Free bytes to assume instead of asking the file system (tests).
        public var freeBytesOverride: Int?
        /// Write the decoder's linear weights as bitsandbytes 4-bit (`sloth export bnb-4bit`); nil writes floats.
        public var quantize: QuantizeOnLoad?
        /// bnb_4bit_compute_dtype written into quantization_config (nil: the base's dtype).
        public var computeDType: String?
        public init(dtype: DType? = nil, maxShardBytes: Int = 5_000_000_000, lowDisk: Bool = false) {
            self.dtype = dtype; self.maxShardBytes = maxShardBytes; self.lowDisk = lowDisk
        }
    }

    public struct Report: Sendable {
        public var tensors = 0, merged = 0, bytes = 0
        public var files: [String] = []
    }

    /// Files of a model folder that are weights (not copied): safetensors, their index, PyTorch/adapter weights.
    static func isWeightFile(_ name: String) -> Bool {
        name.hasSuffix(".safetensors") || name == SafeTensorsCollection.indexFileName || name.hasSuffix(".bin") || name.hasSuffix(".pt")
            || name.hasSuffix(".pth") || name.hasSuffix(".gguf") || name.hasPrefix("adapter_") || name.hasPrefix(".")
    }

    /// True for the linear weights of decoder layers (`model.layers.N.self_attn.q_proj.weight`...): what bitsandbytes
    /// quantizes (transformers leaves lm_head and the embeddings in 16/32 bits).
    public static func isDecoderLinear(_ name: String) -> Bool {
        guard name.hasPrefix("model.layers."), name.hasSuffix(".weight") else { return false }
        return LinearModule.allCases.contains { name.hasSuffix(".\($0.parent).\($0.rawValue).weight") }
    }

    static func dtypeName(_ d: DType) -> String {
        switch d { case .bf16: return "bfloat16"; case .f16: return "float16"; default: return "float32" }
    }

    /// Merges `adapter` (nil: none, a plain re-save/convert) into the model at `model`, writing `output`.
    /// A bitsandbytes 4-bit base is dequantized tensor by tensor (to its quant_state dtype unless --dtype);
    /// with `options.quantize` the decoder's linear weights are written 4-bit in bitsandbytes' layout.
    /// Checks free disk before writing anything; writes into a hidden sibling folder renamed at the end
    /// when `output` does not exist yet, so an interrupted export leaves nothing under the final name.
    public static func run(model: URL, adapter: URL?, output: URL, options: Options = Options(),
                           progress: (String) -> Void = { _ in }) throws -> Report {
        let config = try ModelConfig.load(from: model)   // a folder Sloth understands (model_type, shapes)
        let base = try SafeTensorsCollection(path: model)
        var deltas = try adapter.map { try AdapterDeltas(folder: $0) }
        try deltas?.foldTiedHead(baseHasHead: try base.entry("lm_head.weight") != nil)
        // 4-bit weights of a bitsandbytes base: their quant_state up front (shape, dtype), their codes when each is
        // written (memory stays near one tensor); their companions are not copied.
        var fourBit: [String: BNBCheckpoint.QuantState] = [:]
        var companions = Set<String>()
        if config.quantization != nil {
            for n in base.names where n.contains(".quant_state.bitsandbytes__") {
                let w = String(n[..<n.range(of: ".quant_state.bitsandbytes__")!.lowerBound])
                if let q = try BNBCheckpoint.quantState(w, from: base) { fourBit[w] = q; companions.formUnion(BNBCheckpoint.companionKeys(w)) }
            }
        }
        var entries: [String: TensorEntry] = [:]
        var shapes: [String: [Int]] = [:]
        for n in base.names { entries[n] = try base.entry(n); shapes[n] = fourBit[n]?.shape ?? entries[n]!.shape }
        try deltas?.validate(against: shapes, baseLocation: model.path)
        // Tokens added in training (--add-tokens): the saved embed_tokens / lm_head have more rows than the base.
        var grownVocab: Int? = nil
        for (name, r) in deltas?.replacements ?? [:] where r.shape.count == 2 && shapes[name] != nil && r.shape[0] > shapes[name]![0] {
            shapes[name] = r.shape
            grownVocab = max(grownVocab ?? 0, r.shape[0])
        }
        let names = base.names.filter { !companions.contains($0) }

        // Source order: by shard file, then by position in the file (what save_pretrained wrote).
        let byFile = Dictionary(grouping: names) { base.fileURL(of: $0)?.path ?? "" }
        let files = byFile.keys.sorted()
        let order = files.map { f in byFile[f]!.sorted { entries[$0]!.byteOffset < entries[$1]!.byteOffset } }

        /// The dtype a tensor is written in (floats), and the bytes it takes in the output.
        func outDType(_ name: String) -> DType {
            if let q = fourBit[name] { return options.dtype ?? ["bfloat16": .bf16, "float16": .f16][q.dtype] ?? .f32 }
            let e = entries[name]!
            return e.dtype.isFloatingPoint ? (options.dtype ?? e.dtype) : e.dtype
        }
        func outSize(_ name: String) -> Int {
            let n = shapes[name]!.reduce(1, *)
            // 4-bit: codes and absmax, plus the 16-value quant_map and the quant_state JSON.
            if let q = options.quantize, isDecoderLinear(name) { return FourBitTensor.storageBytes(count: n, doubleQuant: q.doubleQuant) + 64 + 512 }
            return n * outDType(name).byteSize
        }
        let outBytes = order.map { $0.reduce(0) { $0 + outSize($1) } }
        let largest = names.map(outSize).max() ?? 0
        // With new tokens, the adapter's tokenizer.json (which holds them) replaces the base's.
        var others = try copiedFiles(model)
        if grownVocab != nil, let adapter, FileManager.default.fileExists(atPath: adapter.appendingPathComponent("tokenizer.json").path) {
            let t = adapter.appendingPathComponent("tokenizer.json")
            others = others.filter { $0.url.lastPathComponent != "tokenizer.json" }
                + [(t, (try? FileManager.default.attributesOfItem(atPath: t.path)[.size] as? Int) ?? 0)]
        }
        let otherBytes = others.reduce(0) { $0 + $1.size }
        // The writer holds one shard's bytes twice while it closes the shard (temp data + shard file).
        let shardSlack = min(max(options.maxShardBytes, largest), outBytes.reduce(0, +))
        let headerSlack = 1 << 20 + base.names.count * 256 * (options.quantize != nil ? 6 : 1)
        let sourceBytes = files.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }
        var need = 0
        if options.lowDisk {
            var written = 0, freed = 0
            for (i, b) in outBytes.enumerated() { written += b; need = max(need, written - freed); freed += sourceBytes[i] }
        } else {
            need = outBytes.reduce(0, +)
        }
        need += shardSlack + headerSlack + otherBytes
        let free = try options.freeBytesOverride ?? freeBytes(near: output)
        guard free >= need else {
            throw ExportError.notEnoughDisk(path: output.path, need: need, free: free,
                                            hint: options.lowDisk ? "Free disk space or write to another disk (--output)."
                                                : "Free disk space, write to another disk (--output), or pass --low-disk to delete each source shard once it is merged.")
        }

        let fm = FileManager.default
        let fresh = !fm.fileExists(atPath: output.path)
        let target = fresh ? output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).partial-\(getpid())") : output
        if fresh { try? fm.removeItem(at: target) }
        var done = false
        defer { if fresh && !done { try? fm.removeItem(at: target) } }
        let writer = try ShardedSafeTensorsWriter(directory: target, maxShardBytes: options.maxShardBytes, metadata: ["format": "pt"])
        var report = Report()
        let total = names.count
        var quantized = 0
        for (f, names) in order.enumerated() {
            for name in names {
                let e = entries[name]!, shape = shapes[name]!
                let dt = outDType(name)
                var out: [WritableTensor]
                if e.dtype.isFloatingPoint || fourBit[name] != nil {
                    var w: [Float]
                    if fourBit[name] != nil {
                        guard let q = try BNBCheckpoint.read(name, from: base) else { throw ExportError.io(path: model.path, detail: "tensor \(name): its quant_state disappeared while exporting") }
                        w = q.dequantized()
                    } else {
                        w = try base.floats(name)
                    }
                    if deltas?.apply(to: name, values: &w, shape: shape) == true { report.merged += 1 }
                    if let qo = options.quantize, isDecoderLinear(name) {
                        if let bad = w.firstIndex(where: { !$0.isFinite }) {
                            throw ExportError.io(path: model.path, detail: "tensor \(name): value \(bad) is \(w[bad]); 4-bit quantization needs finite weights")
                        }
                        out = BNBCheckpoint.tensors(name, FourBitTensor.quantize(w, shape: shape, type: qo.type, doubleQuant: qo.doubleQuant,
                                                                                 dtype: dtypeName(dt)))
                        quantized += 1
                    } else {
                        out = [WritableTensor(name: name, shape: shape, floats: w, as: dt)]
                    }
                } else {
                    out = [WritableTensor(name: name, dtype: e.dtype, shape: e.shape, bytes: Array(try base.rawBytes(name)))]
                }
                for t in out { try writer.add(t); report.bytes += t.bytes.count }
                report.tensors += 1
                if report.tensors % 16 == 0 || report.tensors == total {
                    progress("\(report.tensors)/\(total) tensors (\(report.merged) merged\(options.quantize != nil ? ", \(quantized) quantized" : ""))")
                }
            }
            if options.lowDisk {
                try fm.removeItem(atPath: files[f])
                progress("--low-disk: deleted \(files[f])")
            }
        }
        try writer.finish()
        for o in others {
            var data = try Data(contentsOf: o.url)
            if o.url.lastPathComponent == "config.json" && (options.dtype != nil || !fourBit.isEmpty || options.quantize != nil || grownVocab != nil) {
                let sourceDType = fourBit.values.first.map(\.dtype) ?? config.dtype ?? "float32"
                let dt = options.dtype.map(dtypeName) ?? (["bfloat16", "float16", "float32"].contains(sourceDType) ? sourceDType : "float32")
                data = try configFor(data, dtype: options.dtype != nil || !fourBit.isEmpty ? dt : nil,
                                     quantization: options.quantize.map { ($0, options.computeDType ?? dt) }, file: o.url.path, vocabSize: grownVocab)
            }
            try writeAtomically(data, to: target.appendingPathComponent(o.url.lastPathComponent))
        }
        if fresh {
            guard Foundation.rename(target.path, output.path) == 0 else {
                throw ExportError.io(path: output.path, detail: "cannot rename \(target.path) to it: \(String(cString: strerror(errno)))")
            }
        }
        done = true
        report.files = ((try? fm.contentsOfDirectory(atPath: output.path)) ?? []).sorted()
        return report
    }

    /// The plain files of a model folder that go along with the weights (config, tokenizer, chat template...).
    public static func copiedFiles(_ folder: URL) throws -> [(url: URL, size: Int)] {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
        var out: [(URL, Int)] = []
        for n in names.sorted() where !isWeightFile(n) {
            let u = folder.appendingPathComponent(n)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: u.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            out.append((u, (try? fm.attributesOfItem(atPath: u.path)[.size] as? Int) ?? 0))
        }
        return out
    }

    /// config.json with `torch_dtype` (transformers 4) and `dtype` (transformers 5) naming the output dtype (when
    /// given), and `quantization_config` as transformers' BitsAndBytesConfig writes it (or removed when not quantized).
    public static func configFor(_ data: Data, dtype: String?, quantization: (QuantizeOnLoad, String)?, file: String, vocabSize: Int? = nil) throws -> Data {
        guard var dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ExportError.io(path: file, detail: "config.json is not a JSON object")
        }
        if let vocabSize { dict["vocab_size"] = vocabSize }
        if let dtype { dict["torch_dtype"] = dtype; dict["dtype"] = dtype }
        if let (q, compute) = quantization {
            dict["quantization_config"] = [
                "_load_in_4bit": true, "_load_in_8bit": false, "bnb_4bit_compute_dtype": compute, "bnb_4bit_quant_storage": "uint8",
                "bnb_4bit_quant_type": q.type.rawValue, "bnb_4bit_use_double_quant": q.doubleQuant,
                "llm_int8_enable_fp32_cpu_offload": false, "llm_int8_has_fp16_weight": false, "llm_int8_skip_modules": NSNull(),
                "llm_int8_threshold": "\u{0}float:6.0", "load_in_4bit": true, "load_in_8bit": false, "quant_method": "bitsandbytes",
            ] as [String: Any]
        } else {
            dict["quantization_config"] = nil
        }
        var text = String(decoding: try JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
        // JSONSerialization writes 6.0 as 6; transformers insists llm_int8_threshold is a float.
        text = text.replacingOccurrences(of: "\"\\u0000float:6.0\"", with: "6.0")
        return Data((text + "\n").utf8)
    }

    /// Free bytes on the file system that will hold `url` (its nearest existing ancestor).
    public static func freeBytes(near url: URL) throws -> Int {
        var dir = url
        while !FileManager.default.fileExists(atPath: dir.path) && dir.path != "/" { dir = dir.deletingLastPathComponent() }
        var s = statvfs()
        guard statvfs(dir.path, &s) == 0 else { throw ExportError.io(path: dir.path, detail: "statvfs failed: \(String(cString: strerror(errno)))") }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }
}

/// Export errors: each names the file and what to do.
public enum ExportError: Error, CustomStringConvertible, Equatable {
    case notEnoughDisk(path: String, need: Int, free: Int, hint: String)
    case io(path: String, detail: String)
    case unsupported(what: String, hint: String)

    public var description: String {
        func gb(_ b: Int) -> String { ByteCount.format(b) }
        switch self {
        case let .notEnoughDisk(path, need, free, hint):
            return "\(path): the export needs \(gb(need)) of free disk but \(gb(free)) is free; nothing was written. \(hint)"
        case let .io(path, detail): return "\(path): \(detail)"
        case let .unsupported(what, hint): return "\(what) is not supported. \(hint)"
        }
    }
}
