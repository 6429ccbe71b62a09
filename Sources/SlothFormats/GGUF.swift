import Foundation

// GGUF v3 (ggml docs/gguf.md): "GGUF", u32 version, u64 tensor count, u64 KV count, KVs, tensor infos
// (name, u32 n_dims, u64 dims fastest-first, u32 ggml type, u64 offset), padding to `general.alignment`
// (default 32), tensor data (each tensor's offset aligned). All little-endian.

/// The type tags of GGUF metadata values.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8, array = 9
    case uint64 = 10, int64 = 11, float64 = 12
}

/// A GGUF metadata value.
public indirect enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), float32(Float), bool(Bool)
    case string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// An array: element type and elements (all of that type; nested arrays allowed).
    case array(GGUFValueType, [GGUFValue])

    /// The value's type tag.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .array: return .array
        }
    }

    /// An integer value of any integer type, else nil.
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// A float value (f32 or f64), else nil.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return nil
        }
    }

    /// The string, else nil.
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    /// The bool, else nil.
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// The array's elements, else nil.
    public var array: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }

    /// An array of strings.
    public static func strings(_ a: [String]) -> GGUFValue { .array(.string, a.map { .string($0) }) }
    /// An array of f32.
    public static func floats(_ a: [Float]) -> GGUFValue { .array(.float32, a.map { .float32($0) }) }
    /// An array of i32.
    public static func int32s(_ a: [Int32]) -> GGUFValue { .array(.int32, a.map { .int32($0) }) }

    public var description: String {
        switch self {
        case .string(let s): return s.count > 60 ? "\"\(s.prefix(57))...\"" : "\"\(s)\""
        case .array(let t, let a): return "[\(t) x \(a.count)]"
        case .bool(let b): return "\(b)"
        case .float32(let f): return "\(f)"
        case .float64(let f): return "\(f)"
        default: return int.map(String.init) ?? "?"
        }
    }
}

/// A tensor's description in a GGUF file. `shape` is outermost first (numpy / HF order); GGUF stores it reversed.
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    /// Dimensions, outermost first (row-major), e.g. (out, in) for a weight.
    public var shape: [Int]
    public var type: GGMLType
    /// Offset of the data from the start of the data section.
    public var offset: Int
    public var count: Int { shape.reduce(1, *) }
    /// Bytes of data.
    public var byteCount: Int { count / type.blockSize * type.typeSize }

    public init(name: String, shape: [Int], type: GGMLType, offset: Int = 0) {
        self.name = name; self.shape = shape; self.type = type; self.offset = offset
    }
}

/// A GGUF read or write error, naming the file and what to do.
public struct GGUFError: Error, CustomStringConvertible, Sendable, Equatable {
    public let file: String
    /// The key or tensor involved, if any.
    public let field: String?
    public let message: String
    public let hint: String

    public init(file: String, field: String? = nil, message: String, hint: String) {
        self.file = file; self.field = field; self.message = message; self.hint = hint
    }

    public var description: String {
        "\(file)\(field.map { ": \($0)" } ?? ""): \(message)" + (hint.isEmpty ? "" : "\n---> HINT: \(hint)")
    }
}
