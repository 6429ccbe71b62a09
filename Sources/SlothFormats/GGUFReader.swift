import Foundation

/// A memory-mapped GGUF file (v2 or v3): metadata in file order, tensor infos, tensor bytes and dequantized floats.
///
/// Every count, length, type, dimension and offset is checked against the file before use, so a
/// damaged or hostile file gives a `GGUFError` naming the field, never a crash.
public final class GGUFFile: @unchecked Sendable {
    public let url: URL
    public let version: UInt32
    /// Metadata keys and values in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment` (32 when absent).
    public let alignment: Int
    /// Where tensor data starts in the file.
    public let dataOffset: Int
    private let map: MappedFile
    private let byName: [String: Int]
    private let keyIndex: [String: Int]

    /// Opens and validates `url`.
    public init(url: URL) throws {
        self.url = url
        do { map = try MappedFile(url: url) } catch let e as SafeTensorsError {
            throw GGUFError(file: url.path, message: e.message, hint: e.hint)
        }
        var r = Cursor(bytes: map.bytes, file: url.path)
        guard map.bytes.count >= 4, try r.bytes(4).elementsEqual(Array("GGUF".utf8)) else {
            throw GGUFError(file: url.path, message: "not a GGUF file (the first 4 bytes are not \"GGUF\")", hint: "pass a .gguf file")
        }
        version = try r.u32("version")
        guard version == 2 || version == 3 else {
            throw GGUFError(file: url.path, field: "version", message: "unsupported GGUF version \(version)", hint: "only GGUF v2 and v3 are read")
        }
        let nTensors = try r.count("tensor_count", minBytesEach: 24)
        let nKV = try r.count("metadata_kv_count", minBytesEach: 12)
        var kvs: [(key: String, value: GGUFValue)] = []
        var keyIndex: [String: Int] = [:]
        for _ in 0..<nKV {
            let key = try r.string("metadata key")
            let tag = try r.u32(key)
            guard let t = GGUFValueType(rawValue: tag) else {
                throw GGUFError(file: url.path, field: key, message: "unknown value type \(tag)", hint: "the file is damaged or from a newer GGUF version")
            }
            let v = try r.value(t, key: key, depth: 0)
            guard keyIndex[key] == nil else {
                throw GGUFError(file: url.path, field: key, message: "key appears twice", hint: "the file is damaged")
            }
            keyIndex[key] = kvs.count
            kvs.append((key, v))
        }
        metadata = kvs
        self.keyIndex = keyIndex
        var align = 32
        if let i = keyIndex["general.alignment"] {
            guard let a = kvs[i].value.int, a > 0, a & (a - 1) == 0, a <= 1 << 20 else {
                throw GGUFError(file: url.path, field: "general.alignment", message: "must be a power of two (found \(kvs[i].value))", hint: "the file is damaged")
            }
            align = a
        }
        alignment = align
        var infos: [GGUFTensorInfo] = []
        var byName: [String: Int] = [:]
        for _ in 0..<nTensors {
            let name = try r.string("tensor name")
            let nd = Int(try r.u32(name))
            guard nd >= 1, nd <= 4 else {
                throw GGUFError(file: url.path, field: name, message: "\(nd) dimensions (1 to 4 allowed)", hint: "the file is damaged")
            }
            var dims: [Int] = []
            var count = 1
            for _ in 0..<nd {
                let d = try r.u64(name)
                guard d <= UInt64(Int32.max) else { throw GGUFError(file: url.path, field: name, message: "dimension \(d) is too large", hint: "the file is damaged") }
                dims.append(Int(d))
                let (c, o) = count.multipliedReportingOverflow(by: Int(d))
                guard !o, c <= 1 << 40 else { throw GGUFError(file: url.path, field: name, message: "element count overflows", hint: "the file is damaged") }
                count = c
            }
            let tag = try r.u32(name)
            guard let type = GGMLType(rawValue: tag) else {
                throw GGUFError(file: url.path, field: name, message: "unknown ggml type \(tag)", hint: "the file uses a tensor type Sloth does not know")
            }
            guard dims[0] % type.blockSize == 0 else {
                throw GGUFError(file: url.path, field: name, message: "row length \(dims[0]) is not a multiple of \(type)'s block size \(type.blockSize)", hint: "the file is damaged")
            }
            let off = try r.u64(name)
            guard off <= UInt64(map.bytes.count), Int(off) % align == 0 else {
                throw GGUFError(file: url.path, field: name, message: "data offset \(off) is out of range or not aligned to \(align)", hint: "the file is damaged")
            }
            guard byName[name] == nil else { throw GGUFError(file: url.path, field: name, message: "tensor name appears twice", hint: "the file is damaged") }
            byName[name] = infos.count
            infos.append(GGUFTensorInfo(name: name, shape: dims.reversed(), type: type, offset: Int(off)))
        }
        let start = (r.at + align - 1) / align * align
        dataOffset = start
        for t in infos {
            let (end, o) = (start + t.offset).addingReportingOverflow(t.byteCount)
            guard !o, end <= map.bytes.count else {
                throw GGUFError(file: url.path, field: t.name, message: "data (\(t.byteCount) bytes at \(start + t.offset)) runs past the end of the file (\(map.bytes.count) bytes)",
                                hint: "the file is truncated; export it again")
            }
        }
        tensors = infos
        self.byName = byName
    }

    /// The value of a metadata key.
    public subscript(key: String) -> GGUFValue? { keyIndex[key].map { metadata[$0].value } }

    /// The info of a tensor.
    public func tensor(_ name: String) -> GGUFTensorInfo? { byName[name].map { tensors[$0] } }

    /// A tensor's raw bytes (valid while this object lives).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let t = tensor(name) else { throw GGUFError(file: url.path, field: name, message: "no such tensor", hint: "") }
        return UnsafeRawBufferPointer(rebasing: map.bytes[(dataOffset + t.offset)..<(dataOffset + t.offset + t.byteCount)])
    }

    /// A tensor's values as Float32 (dequantized).
    public func floats(_ name: String) throws -> [Float] {
        guard let t = tensor(name) else { throw GGUFError(file: url.path, field: name, message: "no such tensor", hint: "") }
        guard t.type.canDequantize else {
            throw GGUFError(file: url.path, field: name, message: "tensor type \(t.type) cannot be read as floats",
                            hint: "Sloth reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K")
        }
        let raw = try rawBytes(name)
        var out = [Float](repeating: 0, count: t.count)
        out.withUnsafeMutableBufferPointer { o in
            if let s = raw.baseAddress, let d = o.baseAddress { GGMLQuant.dequantize(s, as: t.type, count: t.count, into: d) }
        }
        return out
    }
}

/// A bounds-checked little-endian reader over the mapped bytes.
private struct Cursor {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var at = 0

    init(bytes: UnsafeRawBufferPointer, file: String) { self.bytes = bytes; self.file = file }

    mutating func need(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= bytes.count - at else {
            throw GGUFError(file: file, field: what, message: "the file ends early (at byte \(at), \(n) more bytes needed)", hint: "the file is truncated or damaged")
        }
    }

    mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer {
        try need(n, "header")
        defer { at += n }
        return UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)])
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        try need(MemoryLayout<T>.size, what)
        defer { at += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: T.self))
    }

    mutating func u32(_ what: String) throws -> UInt32 { try load(UInt32.self, what) }
    mutating func u64(_ what: String) throws -> UInt64 { try load(UInt64.self, what) }

    /// A u64 count whose items take at least `minBytesEach` bytes, checked against what is left.
    mutating func count(_ what: String, minBytesEach: Int) throws -> Int {
        let n = try u64(what)
        guard n <= UInt64((bytes.count - at) / max(1, minBytesEach)) else {
            throw GGUFError(file: file, field: what, message: "count \(n) is larger than the file can hold", hint: "the file is damaged")
        }
        return Int(n)
    }

    mutating func string(_ what: String) throws -> String {
        let n = try count(what, minBytesEach: 1)
        let b = try bytes(n)
        return String(decoding: b, as: UTF8.self)
    }

    mutating func value(_ t: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        switch t {
        case .uint8: return .uint8(try load(UInt8.self, key))
        case .int8: return .int8(try load(Int8.self, key))
        case .uint16: return .uint16(try load(UInt16.self, key))
        case .int16: return .int16(try load(Int16.self, key))
        case .uint32: return .uint32(try load(UInt32.self, key))
        case .int32: return .int32(try load(Int32.self, key))
        case .uint64: return .uint64(try load(UInt64.self, key))
        case .int64: return .int64(try load(Int64.self, key))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, key)))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, key)))
        case .bool:
            let b = try load(UInt8.self, key)
            guard b <= 1 else { throw GGUFError(file: file, field: key, message: "bool value \(b) is not 0 or 1", hint: "the file is damaged") }
            return .bool(b == 1)
        case .string: return .string(try string(key))
        case .array:
            guard depth < 4 else { throw GGUFError(file: file, field: key, message: "arrays nested too deeply", hint: "the file is damaged") }
            let tag = try u32(key)
            guard let et = GGUFValueType(rawValue: tag) else {
                throw GGUFError(file: file, field: key, message: "unknown array element type \(tag)", hint: "the file is damaged")
            }
            let n = try count(key, minBytesEach: 1)
            var out: [GGUFValue] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try value(et, key: key, depth: depth + 1)) }
            return .array(et, out)
        }
    }
}
