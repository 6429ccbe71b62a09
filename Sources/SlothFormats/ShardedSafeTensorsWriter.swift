import Foundation
#if canImport(SlothCore)
import SlothCore
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Streams tensors into shards of at most `maxShardBytes`, then writes `model.safetensors.index.json` (HF layout: metadata.total_size + weight_map; shard names model-00001-of-0000N.safetensors; a single shard is named model.safetensors with no index). Each file atomic. Memory bounded by one shard's tensors (or stream to a temp file: better).
///
/// Splitting follows `huggingface_hub.split_torch_state_dict_into_shards` (what `save_pretrained`
/// uses), in the order tensors are added: a tensor larger than the limit gets a shard of its own
/// (numbered before the shard being filled); otherwise a new shard starts when the tensor would push
/// the current one over the limit. Tensor bytes stream to a temp file, so memory holds one tensor at a time.
/// The index is `json.dumps(index, indent=2, sort_keys=True) + "\n"` with `total_parameters` (sum of
/// element counts, as transformers 5 writes) and `total_size` (sum of tensor bytes).
public final class ShardedSafeTensorsWriter {
    /// The output folder.
    public let directory: URL
    /// The shard size limit in tensor bytes (headers not counted, as in HF).
    public let maxShardBytes: Int
    private let metadata: [String: String]?

    /// A finished shard waiting for its final name.
    private struct Shard {
        let temp: URL
        let names: [String]
    }

    /// The shard being filled: tensor bytes in a temp data file, in add order.
    private struct Pending {
        let dataURL: URL
        let fd: Int32
        var tensors: [(PlannedTensor, Int)] = []  // tensor, offset in the data file
        var size = 0
    }

    private var shards: [Shard] = []
    private var pending: Pending?
    private var names = Set<String>()
    private var totalSize = 0
    private var totalParameters = 0
    private var finished = false

    /// Prepares to write into `directory` (created if missing); `maxShardBytes` must be positive.
    public init(directory: URL, maxShardBytes: Int, metadata: [String: String]? = nil) throws {
        guard maxShardBytes > 0 else {
            throw SafeTensorsError(.badWrite, file: directory.path, message: "maxShardBytes must be positive (got \(maxShardBytes))",
                                   hint: "pass a shard size such as 5_000_000_000")
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw SafeTensorsError(.io, file: directory.path, message: "cannot create the folder: \(error.localizedDescription)",
                                   hint: "check permissions")
        }
        self.directory = directory
        self.maxShardBytes = maxShardBytes
        self.metadata = metadata
    }

    deinit {
        // An unfinished writer leaves nothing behind.
        if let p = pending {
            close(p.fd)
            unlink(p.dataURL.path)
        }
        if !finished {
            for s in shards { unlink(s.temp.path) }
        }
    }

    /// Adds a tensor (its bytes go to disk now).
    public func add(_ t: WritableTensor) throws {
        precondition(!finished, "ShardedSafeTensorsWriter.add after finish")
        guard names.insert(t.name).inserted else {
            throw SafeTensorsError(.badWrite, file: directory.path, tensor: t.name, message: "added twice",
                                   hint: "tensor names must be unique")
        }
        let planned = PlannedTensor(name: t.name, dtype: t.dtype, shape: t.shape, byteCount: t.bytes.count)
        totalSize += t.bytes.count
        totalParameters += t.count
        if t.bytes.count > maxShardBytes {
            // Its own shard, numbered before the one being filled (as huggingface_hub does).
            let temp = AtomicFile.tempURL(for: directory.appendingPathComponent("shard.safetensors"))
            let header = try SafeTensorsWriter.header(for: [planned], metadata: metadata, file: temp.path)
            try AtomicFile.writeTemp(temp) { sink in
                try sink.write(header)
                try t.bytes.withUnsafeBytes { try sink.write($0) }
            }
            shards.append(Shard(temp: temp, names: [t.name]))
            return
        }
        if let p = pending, p.size + t.bytes.count > maxShardBytes {
            try closePending()
        }
        if pending == nil {
            let url = AtomicFile.tempURL(for: directory.appendingPathComponent("shard-data"))
            let fd = open(url.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw SafeTensorsError(.io, file: url.path, message: "cannot create a temp file: \(String(cString: strerror(errno)))",
                                       hint: "check that the folder is writable")
            }
            pending = Pending(dataURL: url, fd: fd)
        }
        guard var p = pending else { return }
        try t.bytes.withUnsafeBytes { try FileSink(fd: p.fd, path: p.dataURL.path).write($0) }
        p.tensors.append((planned, p.size))
        p.size += t.bytes.count
        pending = p
    }

    /// Writes the pending shard's final temp file (header + data in layout order) and drops its data file.
    private func closePending() throws {
        guard let p = pending else { return }
        pending = nil
        defer {
            close(p.fd)
            unlink(p.dataURL.path)
        }
        let temp = AtomicFile.tempURL(for: directory.appendingPathComponent("shard.safetensors"))
        let layout = try Layout(p.tensors.map(\.0), metadata: metadata, file: temp.path)
        let offsets = Dictionary(p.tensors.map { ($0.0.name, $0.1) }, uniquingKeysWith: { a, _ in a })
        let chunk = 1 << 22
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        try AtomicFile.writeTemp(temp) { sink in
            try sink.write(layout.header)
            for t in layout.order {
                var at = offsets[t.name] ?? 0
                var left = t.byteCount
                while left > 0 {
                    let n = POSIX.pread(p.fd, buffer.baseAddress!, min(left, chunk), at)
                    if n < 0, errno == EINTR { continue }
                    guard n > 0 else {
                        throw SafeTensorsError(.io, file: p.dataURL.path, tensor: t.name,
                                               message: "cannot read back the temp data: \(n < 0 ? String(cString: strerror(errno)) : "unexpected end")",
                                               hint: "check the disk")
                    }
                    try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                    at += n
                    left -= n
                }
            }
        }
        shards.append(Shard(temp: temp, names: layout.order.map(\.name)))
    }

    /// Finishes the last shard, moves every shard to its final name, and writes the index (when there are two or more shards).
    public func finish() throws {
        precondition(!finished, "ShardedSafeTensorsWriter.finish called twice")
        try closePending()
        if shards.isEmpty {
            // No tensors: an empty model.safetensors, as save_file({}) writes.
            let temp = AtomicFile.tempURL(for: directory.appendingPathComponent("shard.safetensors"))
            let header = try SafeTensorsWriter.header(for: [], metadata: metadata, file: temp.path)
            try AtomicFile.writeTemp(temp) { try $0.write(header) }
            shards.append(Shard(temp: temp, names: []))
        }
        let indexURL = directory.appendingPathComponent(SafeTensorsCollection.indexFileName)
        if shards.count == 1 {
            try AtomicFile.rename(shards[0].temp, to: directory.appendingPathComponent("model.safetensors"))
            finished = true
            // A stale index from an earlier save would shadow the new single file.
            unlink(indexURL.path)
            removeStaleShards(keeping: [])
            return
        }
        let n = shards.count
        var weightMap: [String: String] = [:]
        for (i, s) in shards.enumerated() {
            let name = "model-\(Self.pad5(i + 1))-of-\(Self.pad5(n)).safetensors"
            try AtomicFile.rename(s.temp, to: directory.appendingPathComponent(name))
            for t in s.names { weightMap[t] = name }
        }
        finished = true
        try AtomicFile.write(to: indexURL) { try $0.write(self.indexJSON(weightMap)) }
        removeStaleShards(keeping: Set(weightMap.values))
    }

    /// Deletes `model-NNNNN-of-NNNNN.safetensors` files an earlier save left in the folder (as save_pretrained does).
    private func removeStaleShards(keeping: Set<String>) {
        guard let listing = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in listing where Self.isShardName(name) && !keeping.contains(name) {
            unlink(directory.appendingPathComponent(name).path)
        }
    }

    /// True for `model-00001-of-00002.safetensors`-style names.
    static func isShardName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        let prefix = Array("model-".utf8), suffix = Array(".safetensors".utf8), of = Array("-of-".utf8)
        guard u.count == prefix.count + 5 + of.count + 5 + suffix.count,
              u.starts(with: prefix), u.suffix(suffix.count).elementsEqual(suffix) else { return false }
        let digits1 = u[prefix.count..<(prefix.count + 5)]
        let middle = u[(prefix.count + 5)..<(prefix.count + 5 + of.count)]
        let digits2 = u[(prefix.count + 5 + of.count)..<(prefix.count + 10 + of.count)]
        let isDigit: (UInt8) -> Bool = { $0 >= 0x30 && $0 <= 0x39 }
        return digits1.allSatisfy(isDigit) && middle.elementsEqual(of) && digits2.allSatisfy(isDigit)
    }

    private static func pad5(_ i: Int) -> String {
        let s = String(i)
        return s.count >= 5 ? s : String(repeating: "0", count: 5 - s.count) + s
    }

    /// `json.dumps({"metadata": {...}, "weight_map": {...}}, indent=2, sort_keys=True) + "\n"`.
    private func indexJSON(_ weightMap: [String: String]) -> [UInt8] {
        var out = Array("{\n  \"metadata\": {\n    \"total_parameters\": \(totalParameters),\n    \"total_size\": \(totalSize)\n  },\n  \"weight_map\": {".utf8)
        for (i, k) in weightMap.keys.sorted(by: JSONWriter.byteOrder).enumerated() {
            out.append(contentsOf: Array((i == 0 ? "\n    " : ",\n    ").utf8))
            JSONWriter.appendPythonString(k, to: &out)
            out.append(contentsOf: Array(": ".utf8))
            JSONWriter.appendPythonString(weightMap[k] ?? "", to: &out)
        }
        out.append(contentsOf: Array((weightMap.isEmpty ? "}\n}\n" : "\n  }\n}\n").utf8))
        return out
    }
}
