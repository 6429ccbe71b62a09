import Foundation

/// Writes GGUF v3 files, streaming tensor data one tensor at a time, atomically (temp file + rename).
public enum GGUFWriter {
    /// The serialized header (magic through tensor infos, unpadded) and the tensors with their data offsets filled in.
    public static func header(metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorInfo], alignment: Int = 32) -> (bytes: [UInt8], tensors: [GGUFTensorInfo]) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "GGUF alignment must be a power of two")
        var out: [UInt8] = Array("GGUF".utf8)
        appendInt(UInt32(3), &out)
        appendInt(UInt64(tensors.count), &out)
        appendInt(UInt64(metadata.count), &out)
        for (k, v) in metadata {
            appendString(k, &out)
            appendInt(v.type.rawValue, &out)
            appendValue(v, &out)
        }
        var placed: [GGUFTensorInfo] = []
        var offset = 0
        for var t in tensors {
            precondition(!t.shape.isEmpty && t.shape.count <= 4, "GGUF tensor \(t.name): 1 to 4 dimensions")
            precondition(t.shape.last! % t.type.blockSize == 0, "GGUF tensor \(t.name): row length not a multiple of \(t.type.blockSize)")
            t.offset = offset
            offset += (t.byteCount + alignment - 1) / alignment * alignment
            placed.append(t)
            appendString(t.name, &out)
            appendInt(UInt32(t.shape.count), &out)
            for d in t.shape.reversed() { appendInt(UInt64(d), &out) }
            appendInt(t.type.rawValue, &out)
            appendInt(UInt64(t.offset), &out)
        }
        return (out, placed)
    }

    /// Writes `url`: metadata (in the given order), tensor infos, then each tensor's bytes from `data(i)`
    /// (called once per tensor, in order; it must return exactly `tensors[i].byteCount` bytes).
    /// Nothing is left under `url` if any step fails.
    public static func write(to url: URL, metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorInfo], alignment: Int = 32,
                             data: (Int) throws -> [UInt8]) throws {
        var meta = metadata
        if alignment != 32, !meta.contains(where: { $0.key == "general.alignment" }) { meta.append(("general.alignment", .uint32(UInt32(alignment)))) }
        let (head, placed) = header(metadata: meta, tensors: tensors, alignment: alignment)
        try AtomicFile.write(to: url) { sink in
            try sink.write(head)
            var written = head.count
            let pad = (alignment - written % alignment) % alignment
            try sink.write([UInt8](repeating: 0, count: pad))
            written += pad
            for (i, t) in placed.enumerated() {
                let bytes = try data(i)
                guard bytes.count == t.byteCount else {
                    throw GGUFError(file: url.path, field: t.name, message: "\(bytes.count) bytes given for \(t.byteCount) expected", hint: "this is a bug in the exporter")
                }
                try sink.write(bytes)
                let p = (alignment - bytes.count % alignment) % alignment
                if p > 0 { try sink.write([UInt8](repeating: 0, count: p)) }
            }
        }
    }

    /// The size of the file `write` would produce (for disk-space checks).
    public static func fileSize(metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorInfo], alignment: Int = 32) -> Int {
        let (head, placed) = header(metadata: metadata, tensors: tensors, alignment: alignment)
        let start = (head.count + alignment - 1) / alignment * alignment
        guard let last = placed.last else { return start }
        return start + last.offset + (last.byteCount + alignment - 1) / alignment * alignment
    }

    private static func appendInt<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func appendString(_ s: String, _ out: inout [UInt8]) {
        let u = Array(s.utf8)
        appendInt(UInt64(u.count), &out)
        out.append(contentsOf: u)
    }

    private static func appendValue(_ v: GGUFValue, _ out: inout [UInt8]) {
        switch v {
        case .uint8(let x): appendInt(x, &out)
        case .int8(let x): appendInt(x, &out)
        case .uint16(let x): appendInt(x, &out)
        case .int16(let x): appendInt(x, &out)
        case .uint32(let x): appendInt(x, &out)
        case .int32(let x): appendInt(x, &out)
        case .uint64(let x): appendInt(x, &out)
        case .int64(let x): appendInt(x, &out)
        case .float32(let x): appendInt(x.bitPattern, &out)
        case .float64(let x): appendInt(x.bitPattern, &out)
        case .bool(let b): out.append(b ? 1 : 0)
        case .string(let s): appendString(s, &out)
        case .array(let t, let a):
            appendInt(t.rawValue, &out)
            appendInt(UInt64(a.count), &out)
            for e in a {
                precondition(e.type == t, "GGUF array of \(t) holds a \(e.type)")
                appendValue(e, &out)
            }
        }
    }
}
