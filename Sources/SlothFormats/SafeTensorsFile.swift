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

/// A read-only memory map of a whole file; unmapped on deinit.
final class MappedFile: @unchecked Sendable {
    /// The mapped bytes (empty for an empty file).
    let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?

    /// Maps `url` read-only; throws `.io` naming the file.
    init(url: URL) throws {
        let path = url.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let err = String(cString: strerror(errno))
            throw SafeTensorsError(.io, file: path, message: "cannot open: \(err)",
                                   hint: "check that the path exists and is readable")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError(.io, file: path, message: "cannot stat: \(String(cString: strerror(errno)))", hint: "check the file")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError(.io, file: path, message: "is not a regular file", hint: "pass a .safetensors file or a model folder")
        }
        let size = Int(st.st_size)
        if size == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw SafeTensorsError(.io, file: path, message: "cannot memory-map \(size) bytes: \(String(cString: strerror(errno)))",
                                   hint: "check free address space and that the file system supports mmap")
        }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base { munmap(base, bytes.count) }
    }
}

/// A memory-mapped .safetensors file; validates the whole header on open.
///
/// Tensor bytes are read straight from the map (no copy until asked for Floats). The object is
/// immutable after init, so sharing it between threads is safe.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The file's location.
    public let url: URL
    private let map: MappedFile
    private let header: SafeTensorsHeader

    /// Opens and validates `url`; throws `SafeTensorsError` naming the file, tensor and field on any problem.
    public init(url: URL) throws {
        self.url = url
        self.map = try MappedFile(url: url)
        self.header = try SafeTensorsHeader.parse(map.bytes, file: url.path)
    }

    /// Tensor names, sorted (byte order).
    public var names: [String] { header.names }

    /// The header's `__metadata__` (empty when absent).
    public var metadata: [String: String] { header.metadata }

    /// The entry for `name`, or nil.
    public func entry(_ name: String) -> TensorEntry? { header.entries[name] }

    private func requireEntry(_ name: String) throws -> TensorEntry {
        guard let e = header.entries[name] else {
            throw SafeTensorsError(.missingTensor, file: url.path, tensor: name, message: "no such tensor in this file",
                                   hint: "the file has \(header.names.count) tensors, e.g. \(header.names.prefix(3).map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        return e
    }

    /// The tensor's raw little-endian bytes; valid while this object lives. Alignment is whatever the file gives.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let e = try requireEntry(name)
        return UnsafeRawBufferPointer(rebasing: map.bytes[e.byteOffset..<(e.byteOffset + e.byteCount)])
    }

    /// The tensor converted to Float (F32, F16, BF16, F64; other dtypes throw `.wrongDType`).
    public func floats(_ name: String) throws -> [Float] {
        let e = try requireEntry(name)
        try checkFloat(e)
        return [Float](unsafeUninitializedCapacity: e.count) { buf, initialized in
            if e.count > 0, let src = map.bytes.baseAddress, let dst = buf.baseAddress {
                HalfConversion.toFloat(src + e.byteOffset, dtype: e.dtype, count: e.count, into: dst)
            }
            initialized = e.count
        }
    }

    /// Converts the tensor into `into`, whose count must equal the tensor's element count.
    public func readFloats(_ name: String, into: UnsafeMutableBufferPointer<Float>) throws {
        let e = try requireEntry(name)
        try checkFloat(e)
        guard into.count == e.count else {
            throw SafeTensorsError(.countMismatch, file: url.path, tensor: name,
                                   message: "destination holds \(into.count) floats but the tensor has \(e.count) (shape \(e.shape))",
                                   hint: "the checkpoint does not match the model config; check config.json against the weights")
        }
        if e.count > 0, let src = map.bytes.baseAddress, let dst = into.baseAddress {
            HalfConversion.toFloat(src + e.byteOffset, dtype: e.dtype, count: e.count, into: dst)
        }
    }

    private func checkFloat(_ e: TensorEntry) throws {
        guard e.dtype.isFloatingPoint else {
            throw SafeTensorsError(.wrongDType, file: url.path, tensor: e.name, field: "dtype",
                                   message: "is \(e.dtype.rawValue), not a floating-point dtype (F32, F16, BF16, F64)",
                                   hint: "read it with rawBytes(_:) instead, or check that this is the tensor you meant")
        }
    }
}
