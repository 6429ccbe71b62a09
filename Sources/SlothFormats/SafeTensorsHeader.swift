#if canImport(SlothCore)
import SlothCore
#endif

/// One tensor of a safetensors file: name, dtype, shape, and where its bytes are.
public struct TensorEntry: Sendable, Equatable {
    /// The tensor's name (HF names, e.g. `model.layers.0.self_attn.q_proj.weight`).
    public let name: String
    /// Element type.
    public let dtype: DType
    /// Dimensions, outermost first; `[]` is a scalar.
    public let shape: [Int]
    /// Offset of the first byte, absolute in the file.
    public let byteOffset: Int
    /// Number of bytes (= count * dtype.byteSize).
    public let byteCount: Int

    /// Number of elements (product of the shape; 1 for a scalar).
    public var count: Int { shape.reduce(1, *) }

    /// Creates an entry (validation is the parser's job).
    public init(name: String, dtype: DType, shape: [Int], byteOffset: Int, byteCount: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteOffset = byteOffset
        self.byteCount = byteCount
    }
}

/// The validated header of a safetensors file.
///
/// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
/// `{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}`,
/// then the data section; offsets are relative to the data section.
struct SafeTensorsHeader {
    /// The largest header accepted (the Python reader's limit).
    static let maxHeaderBytes = 100_000_000

    /// Entries by name.
    let entries: [String: TensorEntry]
    /// Tensor names in byte order.
    let names: [String]
    /// `__metadata__`, or empty.
    let metadata: [String: String]
    /// Absolute offset of the data section (8 + header length).
    let dataStart: Int

    /// Parses and validates the header of the complete file `bytes`; every byte range is checked against the file size.
    static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> SafeTensorsHeader {
        let notSafetensors = "check that this is a .safetensors file and that it was copied or downloaded completely"
        guard bytes.count >= 8 else {
            throw SafeTensorsError(.fileTooShort, file: file,
                                   message: "file is \(bytes.count) bytes, shorter than the 8-byte header length",
                                   hint: notSafetensors)
        }
        let n64 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard n64 <= UInt64(maxHeaderBytes) else {
            throw SafeTensorsError(.badHeaderLength, file: file,
                                   message: "header length \(n64) is absurd (limit \(maxHeaderBytes) bytes)",
                                   hint: notSafetensors)
        }
        let n = Int(n64)
        guard n <= bytes.count - 8 else {
            throw SafeTensorsError(.badHeaderLength, file: file,
                                   message: "header length \(n) is larger than the rest of the file (\(bytes.count - 8) bytes)",
                                   hint: "the file is truncated; " + notSafetensors)
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + n)])
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw SafeTensorsError(.badHeaderJSON, file: file, message: "header is not valid UTF-8", hint: notSafetensors)
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(headerBytes, duplicateKeysRejectedUpToDepth: 1)
        } catch let e as JSONParseError {
            throw SafeTensorsError(.badHeaderJSON, file: file,
                                   message: "header is not valid JSON: \(e.message) at header byte \(e.offset)",
                                   hint: notSafetensors)
        }
        guard case .object(let root) = json else {
            throw SafeTensorsError(.badHeaderJSON, file: file,
                                   message: "header is \(json.kindName), expected a JSON object", hint: notSafetensors)
        }

        let dataStart = 8 + n
        let dataSize = bytes.count - dataStart
        let rewrite = "the writer of this file is broken; re-save the tensors with safetensors (save_file / save_pretrained)"
        var metadata: [String: String] = [:]
        var entries: [String: TensorEntry] = [:]
        entries.reserveCapacity(root.count)
        for (name, value) in root {
            if name == "__metadata__" {
                guard case .object(let dict) = value else {
                    throw SafeTensorsError(.badMetadata, file: file, field: "__metadata__",
                                           message: "is \(value.kindName), expected an object of strings", hint: rewrite)
                }
                for (k, v) in dict {
                    guard case .string(let s) = v else {
                        throw SafeTensorsError(.badMetadata, file: file, field: "__metadata__",
                                               message: "value of key \"\(k)\" is \(v.kindName), expected a string", hint: rewrite)
                    }
                    metadata[k] = s
                }
                continue
            }
            entries[name] = try parseEntry(name: name, value: value, dataStart: dataStart, dataSize: dataSize, file: file, hint: rewrite)
        }

        // Overlap check: sort non-empty ranges by start.
        let ranges = entries.values.filter { $0.byteCount > 0 }.sorted {
            $0.byteOffset != $1.byteOffset ? $0.byteOffset < $1.byteOffset : JSONWriter.byteOrder($0.name, $1.name)
        }
        if ranges.count > 1 {
            for i in 1..<ranges.count {
                let prev = ranges[i - 1], cur = ranges[i]
                if cur.byteOffset < prev.byteOffset + prev.byteCount {
                    throw SafeTensorsError(.overlap, file: file, tensor: cur.name, field: "data_offsets",
                                           message: "bytes [\(cur.byteOffset - dataStart), \(cur.byteOffset - dataStart + cur.byteCount)) overlap tensor \"\(prev.name)\" at [\(prev.byteOffset - dataStart), \(prev.byteOffset - dataStart + prev.byteCount))",
                                           hint: rewrite)
                }
            }
        }
        let names = entries.keys.sorted(by: JSONWriter.byteOrder)
        return SafeTensorsHeader(entries: entries, names: names, metadata: metadata, dataStart: dataStart)
    }

    private static func parseEntry(name: String, value: JSONValue, dataStart: Int, dataSize: Int,
                                   file: String, hint: String) throws -> TensorEntry {
        func bad(_ field: String?, _ message: String, _ kind: SafeTensorsError.Kind = .badEntry) -> SafeTensorsError {
            SafeTensorsError(kind, file: file, tensor: name, field: field, message: message, hint: hint)
        }
        guard case .object(let obj) = value else { throw bad(nil, "entry is \(value.kindName), expected an object with dtype, shape, data_offsets") }

        guard let dtypeValue = obj["dtype"] else { throw bad("dtype", "missing") }
        guard case .string(let dtypeString) = dtypeValue else { throw bad("dtype", "is \(dtypeValue.kindName), expected a string") }
        guard let dtype = DType(rawValue: dtypeString) else {
            throw SafeTensorsError(.unknownDType, file: file, tensor: name, field: "dtype",
                                   message: "unsupported dtype \"\(dtypeString)\" (Sloth reads \(DType.allCases.map(\.rawValue).joined(separator: ", ")))",
                                   hint: "convert the checkpoint to F32, F16 or BF16 (e.g. model.to(torch.bfloat16).save_pretrained(...))")
        }

        guard let shapeValue = obj["shape"] else { throw bad("shape", "missing") }
        guard case .array(let dims) = shapeValue else { throw bad("shape", "is \(shapeValue.kindName), expected an array of integers") }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        var count = 1
        var overflow = false
        for (i, d) in dims.enumerated() {
            guard case .int(let v) = d else { throw bad("shape", "dimension \(i) is \(d.kindName == "a number" ? "not an integer" : d.kindName), expected a non-negative integer") }
            guard v >= 0 else { throw bad("shape", "dimension \(i) is negative (\(v))") }
            shape.append(v)
            let (p, o) = count.multipliedReportingOverflow(by: v)
            count = p
            overflow = overflow || o
        }
        // A zero dimension makes any overflow in the running product irrelevant.
        if shape.contains(0) { count = 0; overflow = false }
        let (expectedBytes, o2) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, !o2 else { throw bad("shape", "\(shape) has more elements than can be addressed") }

        guard let offValue = obj["data_offsets"] else { throw bad("data_offsets", "missing") }
        guard case .array(let offs) = offValue, offs.count == 2,
              case .int(let begin) = offs[0], case .int(let end) = offs[1] else {
            throw bad("data_offsets", "expected [begin, end] (two integers)")
        }
        guard begin >= 0, begin <= end else {
            throw bad("data_offsets", "[\(begin), \(end)] is not a valid range (need 0 <= begin <= end)", .badOffsets)
        }
        guard end - begin == expectedBytes else {
            throw bad("data_offsets", "[\(begin), \(end)] holds \(end - begin) bytes but shape \(shape) x \(dtype.rawValue) (\(dtype.byteSize) bytes) needs \(expectedBytes)", .badOffsets)
        }
        guard end <= dataSize else {
            throw SafeTensorsError(.badOffsets, file: file, tensor: name, field: "data_offsets",
                                   message: "[\(begin), \(end)] runs past the end of the data section (\(dataSize) bytes): the file is truncated",
                                   hint: "re-download or re-save the file; it was cut short")
        }
        return TensorEntry(name: name, dtype: dtype, shape: shape, byteOffset: dataStart + begin, byteCount: end - begin)
    }
}
