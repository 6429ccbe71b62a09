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

/// A tensor to write: name, dtype, shape and its little-endian bytes.
public struct WritableTensor: Sendable {
    /// The tensor's name.
    public let name: String
    /// Element type of `bytes`.
    public let dtype: DType
    /// Dimensions, outermost first; `[]` is a scalar.
    public let shape: [Int]
    /// Little-endian element bytes, `count * dtype.byteSize` of them.
    public let bytes: [UInt8]

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Wraps raw bytes; `bytes.count` must equal product(shape) * dtype.byteSize (a programmer error otherwise).
    public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "WritableTensor \(name): negative dimension in \(shape)")
        precondition(bytes.count == shape.reduce(1, *) * dtype.byteSize,
                     "WritableTensor \(name): \(bytes.count) bytes for shape \(shape) x \(dtype.rawValue)")
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Converts Floats to `dtype` (F32, F16, BF16 or F64; round-to-nearest-even as torch does).
    public init(name: String, shape: [Int], floats: [Float], as dtype: DType = .f32) {
        precondition(dtype.isFloatingPoint, "WritableTensor \(name): cannot store floats as \(dtype.rawValue)")
        precondition(floats.count == shape.reduce(1, *), "WritableTensor \(name): \(floats.count) floats for shape \(shape)")
        var bytes = [UInt8](repeating: 0, count: floats.count * dtype.byteSize)
        floats.withUnsafeBufferPointer { src in
            bytes.withUnsafeMutableBytes { dst in
                if let s = src.baseAddress, let d = dst.baseAddress {
                    HalfConversion.fromFloat(s, count: floats.count, to: dtype, into: d)
                }
            }
        }
        self.init(name: name, dtype: dtype, shape: shape, bytes: bytes)
    }
}

/// Writes .safetensors files byte-identical to the Python `safetensors` package.
public enum SafeTensorsWriter {
    /// Writes a complete file atomically (temp file in the same folder + rename); header layout as the Python `safetensors` package writes it (check its ordering and 8-byte header padding, so files are byte-identical to `safetensors.torch.save_file` for the same tensors + metadata).
    ///
    /// Layout details matched: tensors ordered by dtype (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL)
    /// then by name bytes, data packed in that order; compact serde_json header, `__metadata__` first;
    /// header padded with spaces to a multiple of 8. Python orders metadata keys by a hash map, so
    /// with two or more metadata keys the files differ only in that order (Sloth sorts them).
    public static func write(_ tensors: [WritableTensor], metadata: [String: String]? = nil, to url: URL) throws {
        let layout = try Layout(tensors.map { PlannedTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, byteCount: $0.bytes.count) },
                                metadata: metadata, file: url.path)
        try AtomicFile.write(to: url) { sink in
            try sink.write(layout.header)
            let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for p in layout.order {
                guard let t = byName[p.name] else { continue }
                try t.bytes.withUnsafeBytes { try sink.write($0) }
            }
        }
    }

    /// The header bytes (8-byte length + padded JSON) for tensors laid out as `write` would.
    static func header(for tensors: [PlannedTensor], metadata: [String: String]?, file: String) throws -> [UInt8] {
        try Layout(tensors, metadata: metadata, file: file).header
    }
}

/// A tensor's description without its bytes (for layout).
struct PlannedTensor {
    let name: String
    let dtype: DType
    let shape: [Int]
    let byteCount: Int
}

/// The order and header of a safetensors file, as the Python writer lays it out.
struct Layout {
    /// Tensors in data order.
    let order: [PlannedTensor]
    /// 8-byte length + padded header JSON.
    let header: [UInt8]

    /// The Rust `Dtype` declaration order; the writer sorts by it, largest first.
    private static func rank(_ d: DType) -> Int {
        switch d {
        case .bool: return 0
        case .u8: return 1
        case .i8: return 2
        case .i16: return 3
        case .f16: return 4
        case .bf16: return 5
        case .i32: return 6
        case .f32: return 7
        case .f64: return 8
        case .i64: return 9
        }
    }

    init(_ tensors: [PlannedTensor], metadata: [String: String]?, file: String) throws {
        var seen = Set<String>()
        for t in tensors {
            guard t.name != "__metadata__" else {
                throw SafeTensorsError(.badWrite, file: file, tensor: t.name, message: "\"__metadata__\" is reserved for the header metadata",
                                       hint: "rename the tensor")
            }
            guard seen.insert(t.name).inserted else {
                throw SafeTensorsError(.badWrite, file: file, tensor: t.name, message: "two tensors have this name",
                                       hint: "tensor names in one file must be unique")
            }
        }
        order = tensors.sorted {
            let a = Self.rank($0.dtype), b = Self.rank($1.dtype)
            return a != b ? a > b : JSONWriter.byteOrder($0.name, $1.name)
        }
        var json: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        if let metadata {
            json.append(contentsOf: Array("\"__metadata__\":{".utf8))
            for (i, k) in metadata.keys.sorted(by: JSONWriter.byteOrder).enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                JSONWriter.appendSerdeString(k, to: &json)
                json.append(UInt8(ascii: ":"))
                JSONWriter.appendSerdeString(metadata[k] ?? "", to: &json)
            }
            json.append(UInt8(ascii: "}"))
            first = false
        }
        var offset = 0
        for t in order {
            if !first { json.append(UInt8(ascii: ",")) }
            first = false
            JSONWriter.appendSerdeString(t.name, to: &json)
            let shape = t.shape.map(String.init).joined(separator: ",")
            json.append(contentsOf: Array(":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.byteCount)]}".utf8))
            offset += t.byteCount
        }
        json.append(UInt8(ascii: "}"))
        let pad = (8 - json.count % 8) % 8
        json.append(contentsOf: [UInt8](repeating: 0x20, count: pad))
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        header = out
    }
}

/// A file descriptor being written, with full-write and error handling.
final class FileSink {
    let fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Writes all of `bytes`, retrying partial writes and EINTR.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = POSIX.write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError(.io, file: path, message: "write failed: \(String(cString: strerror(errno)))",
                                       hint: "check free disk space and permissions")
            }
            p += n
            left -= n
        }
    }

    /// Writes all of `bytes`.
    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

/// Atomic file creation: write a temp file in the destination folder, fsync, rename over the destination.
enum AtomicFile {
    /// A temp path next to `url` that no other writer uses.
    static func tempURL(for url: URL) -> URL {
        let dir = url.deletingLastPathComponent()
        return dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    /// Creates `url` with the bytes `body` writes; on any error the temp file is removed and `url` is untouched.
    static func write(to url: URL, _ body: (FileSink) throws -> Void) throws {
        let tmp = tempURL(for: url)
        try writeTemp(tmp, body)
        try rename(tmp, to: url)
    }

    /// Writes and fsyncs `tmp` (removed on error).
    static func writeTemp(_ tmp: URL, _ body: (FileSink) throws -> Void) throws {
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SafeTensorsError(.io, file: tmp.path, message: "cannot create: \(String(cString: strerror(errno)))",
                                   hint: "check that the folder exists and is writable")
        }
        let sink = FileSink(fd: fd, path: tmp.path)
        do {
            try body(sink)
            guard fsync(fd) == 0 else {
                throw SafeTensorsError(.io, file: tmp.path, message: "fsync failed: \(String(cString: strerror(errno)))", hint: "check the disk")
            }
        } catch {
            close(fd)
            unlink(tmp.path)
            throw error
        }
        guard close(fd) == 0 else {
            unlink(tmp.path)
            throw SafeTensorsError(.io, file: tmp.path, message: "close failed: \(String(cString: strerror(errno)))", hint: "check the disk")
        }
    }

    /// Renames `tmp` over `url` (removes `tmp` on failure).
    static func rename(_ tmp: URL, to url: URL) throws {
        guard POSIX.rename(tmp.path, url.path) == 0 else {
            let err = String(cString: strerror(errno))
            unlink(tmp.path)
            throw SafeTensorsError(.io, file: url.path, message: "cannot rename the temp file into place: \(err)",
                                   hint: "check that the folder is writable")
        }
    }
}
