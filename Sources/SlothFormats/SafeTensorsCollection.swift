import Foundation
#if canImport(SlothCore)
import SlothCore
#endif

/// A model folder's weights: `model.safetensors.index.json` (weight_map, shards opened lazily) or a single `model.safetensors`
/// (or, failing both, every `*.safetensors` in the folder); also accepts a path to one .safetensors file.
///
/// Thread-safe: shards are opened under a lock on first use and kept open.
public final class SafeTensorsCollection: @unchecked Sendable {
    /// The folder or file this collection was opened from.
    public let path: URL
    /// Where each tensor lives (shard file name relative to the folder).
    private let shardOf: [String: String]
    private let folder: URL
    /// The index file, when the collection came from one (for error messages).
    private let indexFile: String?
    private let sortedNames: [String]
    private let lock = NSLock()
    private var open: [String: SafeTensorsFile] = [:]

    /// The name of the HF shard index.
    public static let indexFileName = "model.safetensors.index.json"

    /// Opens a folder (index, `model.safetensors`, or all `*.safetensors`) or a single .safetensors file.
    ///
    /// With an index, the index is validated and every shard it names must exist; shard headers are
    /// validated when first used. Otherwise every file is opened and validated now.
    public init(path: URL) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isDir) else {
            throw SafeTensorsError(.io, file: path.path, message: "does not exist",
                                   hint: "pass a model folder (with model.safetensors or model.safetensors.index.json) or a .safetensors file")
        }
        if !isDir.boolValue {
            let f = try SafeTensorsFile(url: path)
            folder = path.deletingLastPathComponent()
            let key = path.lastPathComponent
            open = [key: f]
            shardOf = Dictionary(uniqueKeysWithValues: f.names.map { ($0, key) })
            sortedNames = f.names
            indexFile = nil
            return
        }
        folder = path
        let indexURL = path.appendingPathComponent(Self.indexFileName)
        if FileManager.default.fileExists(atPath: indexURL.path) {
            shardOf = try Self.readIndex(indexURL, folder: path)
            sortedNames = shardOf.keys.sorted(by: JSONWriter.byteOrder)
            indexFile = indexURL.path
            return
        }
        indexFile = nil
        let single = path.appendingPathComponent("model.safetensors")
        var files: [String]
        if FileManager.default.fileExists(atPath: single.path) {
            files = ["model.safetensors"]
        } else {
            let listing: [String]
            do {
                listing = try FileManager.default.contentsOfDirectory(atPath: path.path)
            } catch {
                throw SafeTensorsError(.io, file: path.path, message: "cannot list the folder: \(error.localizedDescription)", hint: "check permissions")
            }
            files = listing.filter { $0.hasSuffix(".safetensors") }.sorted(by: JSONWriter.byteOrder)
        }
        guard !files.isEmpty else {
            throw SafeTensorsError(.noWeights, file: path.path,
                                   message: "no model.safetensors.index.json, model.safetensors, or *.safetensors file in this folder",
                                   hint: "save the model with save_pretrained(..., safe_serialization=True), or point at the folder that holds the weights")
        }
        var map: [String: String] = [:]
        for name in files {
            let f = try SafeTensorsFile(url: path.appendingPathComponent(name))
            open[name] = f
            for t in f.names {
                if let other = map[t] {
                    throw SafeTensorsError(.badIndex, file: f.url.path, tensor: t,
                                           message: "tensor also appears in \(other)",
                                           hint: "remove the stray .safetensors file from the folder, or add a model.safetensors.index.json")
                }
                map[t] = name
            }
        }
        shardOf = map
        sortedNames = map.keys.sorted(by: JSONWriter.byteOrder)
    }

    /// Reads and validates an HF index: `{"metadata": {...}, "weight_map": {tensor: shard file}}`.
    private static func readIndex(_ url: URL, folder: URL) throws -> [String: String] {
        let file = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw SafeTensorsError(.io, file: file, message: "cannot read: \(error.localizedDescription)", hint: "check permissions")
        }
        let parsed = try data.withUnsafeBytes { try parseIndex($0, file: file) }
        var checked: Set<String> = []
        for (tensor, shard) in parsed.sorted(by: { JSONWriter.byteOrder($0.key, $1.key) }) where !checked.contains(shard) {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder.appendingPathComponent(shard).path, isDirectory: &isDir), !isDir.boolValue else {
                throw SafeTensorsError(.badIndex, file: file, tensor: tensor, field: "weight_map",
                                       message: "names shard file \"\(shard)\", which is missing from \(folder.path)",
                                       hint: "the download is incomplete: fetch every model-*.safetensors file the index lists")
            }
            checked.insert(shard)
        }
        return parsed
    }

    /// Parses and validates the text of an HF index: `{"metadata": {...}, "weight_map": {tensor: shard file}}`
    /// (shard names must be plain file names); does not touch the file system.
    static func parseIndex(_ bytes: UnsafeRawBufferPointer, file: String) throws -> [String: String] {
        let hint = "re-save the model with save_pretrained, or delete the index if the folder holds a single model.safetensors"
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch let e as JSONParseError {
            throw SafeTensorsError(.badIndex, file: file, message: "not valid JSON: \(e.message) at byte \(e.offset)", hint: hint)
        }
        guard case .object(let root) = json else {
            throw SafeTensorsError(.badIndex, file: file, message: "is \(json.kindName), expected a JSON object", hint: hint)
        }
        guard let wm = root["weight_map"] else {
            throw SafeTensorsError(.badIndex, file: file, field: "weight_map", message: "missing", hint: hint)
        }
        guard case .object(let entries) = wm else {
            throw SafeTensorsError(.badIndex, file: file, field: "weight_map", message: "is \(wm.kindName), expected an object {tensor: shard file}", hint: hint)
        }
        var map: [String: String] = [:]
        for (tensor, v) in entries {
            guard case .string(let shard) = v else {
                throw SafeTensorsError(.badIndex, file: file, tensor: tensor, field: "weight_map",
                                       message: "shard is \(v.kindName), expected a file name", hint: hint)
            }
            guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), shard != ".", shard != "..",
                  !shard.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                throw SafeTensorsError(.badIndex, file: file, tensor: tensor, field: "weight_map",
                                       message: "shard \"\(shard)\" is not a plain file name in the model folder", hint: hint)
            }
            map[tensor] = shard
        }
        return map
    }

    /// Tensor names, sorted (byte order).
    public var names: [String] { sortedNames }

    /// The opened shard holding `name` and its entry; nil when the collection does not list `name`.
    private func locate(_ name: String) throws -> (SafeTensorsFile, TensorEntry)? {
        guard let shard = shardOf[name] else { return nil }
        lock.lock()
        defer { lock.unlock() }
        let f: SafeTensorsFile
        if let existing = open[shard] {
            f = existing
        } else {
            f = try SafeTensorsFile(url: folder.appendingPathComponent(shard))
            open[shard] = f
        }
        guard let e = f.entry(name) else {
            throw SafeTensorsError(.badIndex, file: indexFile ?? f.url.path, tensor: name, field: "weight_map",
                                   message: "listed in shard \"\(shard)\", but that shard does not contain it",
                                   hint: "the index and the shards come from different saves; re-download or re-save the model")
        }
        return (f, e)
    }

    private func require(_ name: String) throws -> SafeTensorsFile {
        guard let (f, _) = try locate(name) else {
            throw SafeTensorsError(.missingTensor, file: path.path, tensor: name, message: "no such tensor in these weights",
                                   hint: "check the model type / config against the checkpoint (\(sortedNames.count) tensors, e.g. \(sortedNames.prefix(3).map { "\"\($0)\"" }.joined(separator: ", ")))")
        }
        return f
    }

    /// The entry for `name` (byteOffset is within its shard file); nil when absent.
    public func entry(_ name: String) throws -> TensorEntry? {
        try locate(name)?.1
    }

    /// The shard file that holds `name`, or nil.
    public func fileURL(of name: String) -> URL? {
        shardOf[name].map { folder.appendingPathComponent($0) }
    }

    /// The tensor converted to Float (F32, F16, BF16, F64).
    public func floats(_ name: String) throws -> [Float] {
        try require(name).floats(name)
    }

    /// Converts the tensor into `into`, whose count must equal the tensor's element count.
    public func readFloats(_ name: String, into: UnsafeMutableBufferPointer<Float>) throws {
        try require(name).readFloats(name, into: into)
    }

    /// The tensor's raw bytes; valid while this collection lives.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        try require(name).rawBytes(name)
    }
}
