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

    /// Merges `adapter` (nil: none, a plain re-save/convert) into the model at `model`, writing `output`.
    /// Checks free disk before writing anything; writes into a hidden sibling folder renamed at the end
    /// when `output` does not exist yet, so an interrupted export leaves nothing under the final name.
    public static func run(model: URL, adapter: URL?, output: URL, options: Options = Options(),
                           progress: (String) -> Void = { _ in }) throws -> Report {
        _ = try ModelConfig.load(from: model)   // a folder Sloth understands (model_type, shapes)
        let base = try SafeTensorsCollection(path: model)
        let deltas = try adapter.map { try AdapterDeltas(folder: $0) }
        var entries: [String: TensorEntry] = [:]
        for n in base.names { entries[n] = try base.entry(n) }
        try deltas?.validate(against: base, baseLocation: model.path)

        // Source order: by shard file, then by position in the file (what save_pretrained wrote).
        let byFile = Dictionary(grouping: base.names) { base.fileURL(of: $0)?.path ?? "" }
        let files = byFile.keys.sorted()
        let order = files.map { f in byFile[f]!.sorted { entries[$0]!.byteOffset < entries[$1]!.byteOffset } }

        func outDType(_ e: TensorEntry) -> DType { e.dtype.isFloatingPoint ? (options.dtype ?? e.dtype) : e.dtype }
        let outBytes = order.map { $0.reduce(0) { $0 + entries[$1]!.count * outDType(entries[$1]!).byteSize } }
        let largest = entries.values.map { $0.count * outDType($0).byteSize }.max() ?? 0
        let others = try copiedFiles(model)
        let otherBytes = others.reduce(0) { $0 + $1.size }
        // The writer holds one shard's bytes twice while it closes the shard (temp data + shard file).
        let shardSlack = min(max(options.maxShardBytes, largest), outBytes.reduce(0, +))
        let headerSlack = 1 << 20 + base.names.count * 256
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
        let total = base.names.count
        for (f, names) in order.enumerated() {
            for name in names {
                let e = entries[name]!
                let dt = outDType(e)
                let t: WritableTensor
                if e.dtype.isFloatingPoint {
                    var w = try base.floats(name)
                    if deltas?.apply(to: name, values: &w, shape: e.shape) == true { report.merged += 1 }
                    t = WritableTensor(name: name, shape: e.shape, floats: w, as: dt)
                } else {
                    t = WritableTensor(name: name, dtype: e.dtype, shape: e.shape, bytes: Array(try base.rawBytes(name)))
                }
                try writer.add(t)
                report.tensors += 1; report.bytes += t.bytes.count
                if report.tensors % 16 == 0 || report.tensors == total { progress("\(report.tensors)/\(total) tensors (\(report.merged) merged)") }
            }
            if options.lowDisk {
                try fm.removeItem(atPath: files[f])
                progress("--low-disk: deleted \(files[f])")
            }
        }
        try writer.finish()
        for o in others {
            var data = try Data(contentsOf: o.url)
            if o.url.lastPathComponent == "config.json", let dt = options.dtype { data = try configWithDType(data, dt, file: o.url.path) }
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
    static func copiedFiles(_ folder: URL) throws -> [(url: URL, size: Int)] {
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

    /// config.json with `torch_dtype` (transformers 4) and `dtype` (transformers 5) naming the output dtype.
    static func configWithDType(_ data: Data, _ dt: DType, file: String) throws -> Data {
        guard var dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ExportError.io(path: file, detail: "config.json is not a JSON object")
        }
        let name: String
        switch dt {
        case .bf16: name = "bfloat16"
        case .f16: name = "float16"
        default: name = "float32"
        }
        dict["torch_dtype"] = name
        dict["dtype"] = name
        return try JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys]) + Data("\n".utf8)
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
