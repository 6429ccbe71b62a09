import Foundation
#if canImport(SlothCore)
import SlothCore
#endif

// n = values in a row (a multiple of the type's block size), B = blocks per row.

/// ggml tensor element types (the numbers are `ggml_type` / GGUF `GGMLQuantizationType`).
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    /// Values per block (1 for plain types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return 256
        }
    }

    /// Bytes per block.
    public var typeSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q8_1: return 36
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        }
    }

    /// ggml's name (`F32`, `Q4_K`...).
    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f64: return "F64"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        }
    }

    /// Bytes for `count` values; nil when `count` is not a multiple of the block size.
    public func byteCount(values count: Int) -> Int? {
        guard count % blockSize == 0 else { return nil }
        return count / blockSize * typeSize
    }

    /// True for the types `GGMLQuant.dequantize` reads.
    public var canDequantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }

    /// True for the types `GGMLQuant.quantize` writes.
    public var canQuantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }
}

/// ggml block quantizers and dequantizers, bit-identical to ggml's reference C code
/// (`quantize_row_*_ref`, `dequantize_row_*`) and to the `gguf` Python package where it implements them.
public enum GGMLQuant {
    /// Quantizes `src` (a whole number of blocks) to `type`'s bytes.
    public static func quantize(_ src: UnsafeBufferPointer<Float>, as type: GGMLType) -> [UInt8] {
        precondition(type.canQuantize, "GGMLQuant.quantize: \(type) is not supported")
        precondition(src.count % type.blockSize == 0, "GGMLQuant.quantize: \(src.count) values is not a multiple of \(type.blockSize)")
        var out = [UInt8](repeating: 0, count: src.count / type.blockSize * type.typeSize)
        guard let s = src.baseAddress else { return out }
        out.withUnsafeMutableBytes { o in
            guard let d = o.baseAddress else { return }
            let blocks = src.count / type.blockSize
            switch type {
            case .f32:
                d.copyMemory(from: s, byteCount: src.count * 4)
            case .f16:
                let p = d.assumingMemoryBound(to: UInt16.self)
                for i in 0..<src.count { p[i] = HalfConversion.f32ToF16(s[i]).littleEndian }
            case .bf16:
                let p = d.assumingMemoryBound(to: UInt16.self)
                for i in 0..<src.count { p[i] = f32ToBF16(s[i]).littleEndian }
            case .q8_0:
                for b in 0..<blocks { quantizeQ8_0(s + b * 32, d + b * 34) }
            case .q4_0:
                for b in 0..<blocks { quantizeQ4_0(s + b * 32, d + b * 18) }
            case .q5_0:
                for b in 0..<blocks { quantizeQ5_0(s + b * 32, d + b * 22) }
            case .q5_1:
                for b in 0..<blocks { quantizeQ5_1(s + b * 32, d + b * 24) }
            case .q4_K:
                for b in 0..<blocks { KQuants.quantizeQ4_K(s + b * 256, d + b * 144) }
            case .q5_K:
                for b in 0..<blocks { KQuants.quantizeQ5_K(s + b * 256, d + b * 176) }
            case .q6_K:
                for b in 0..<blocks { KQuants.quantizeQ6_K(s + b * 256, d + b * 210) }
            default:
                break
            }
        }
        return out
    }

    /// Quantizes an array (convenience).
    public static func quantize(_ src: [Float], as type: GGMLType) -> [UInt8] {
        src.withUnsafeBufferPointer { quantize($0, as: type) }
    }

    /// Dequantizes `count` values of `type` from `src` into `dst`.
    public static func dequantize(_ src: UnsafeRawPointer, as type: GGMLType, count: Int, into dst: UnsafeMutablePointer<Float>) {
        precondition(type.canDequantize, "GGMLQuant.dequantize: \(type) is not supported")
        precondition(count % type.blockSize == 0, "GGMLQuant.dequantize: \(count) values is not a multiple of \(type.blockSize)")
        let blocks = count / type.blockSize
        switch type {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f16:
            for i in 0..<count { dst[i] = HalfConversion.f16ToF32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16:
            for i in 0..<count { dst[i] = HalfConversion.bf16ToF32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .q8_0:
            for b in 0..<blocks {
                let p = src + b * 34
                let d = half(p)
                for j in 0..<32 { dst[b * 32 + j] = Float(Int8(bitPattern: p.load(fromByteOffset: 2 + j, as: UInt8.self))) * d }
            }
        case .q4_0:
            for b in 0..<blocks {
                let p = src + b * 18
                let d = half(p)
                for j in 0..<16 {
                    let q = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                    dst[b * 32 + j] = Float(Int(q & 0x0F) - 8) * d
                    dst[b * 32 + j + 16] = Float(Int(q >> 4) - 8) * d
                }
            }
        case .q5_0, .q5_1:
            let size = type.typeSize, qhAt = type == .q5_0 ? 2 : 4
            for b in 0..<blocks {
                let p = src + b * size
                let d = half(p), m: Float = type == .q5_1 ? half(p, 2) : -16 * d
                let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: qhAt, as: UInt32.self))
                for j in 0..<16 {
                    let q = p.load(fromByteOffset: qhAt + 4 + j, as: UInt8.self)
                    let h0 = ((qh >> UInt32(j)) << 4) & 0x10, h1 = (qh >> UInt32(j + 12)) & 0x10
                    dst[b * 32 + j] = Float(UInt32(q & 0x0F) | h0) * d + m
                    dst[b * 32 + j + 16] = Float(UInt32(q >> 4) | h1) * d + m
                }
            }
        case .q4_K:
            for b in 0..<blocks { KQuants.dequantizeQ4_K(src + b * 144, dst + b * 256) }
        case .q5_K:
            for b in 0..<blocks { KQuants.dequantizeQ5_K(src + b * 176, dst + b * 256) }
        case .q6_K:
            for b in 0..<blocks { KQuants.dequantizeQ6_K(src + b * 210, dst + b * 256) }
        default:
            break
        }
    }

    /// Dequantizes bytes to an array (convenience).
    public static func dequantize(_ bytes: [UInt8], as type: GGMLType, count: Int) -> [Float] {
        precondition(bytes.count >= count / type.blockSize * type.typeSize, "GGMLQuant.dequantize: too few bytes")
        var out = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { b in
            out.withUnsafeMutableBufferPointer { o in
                if let s = b.baseAddress, let d = o.baseAddress { dequantize(s, as: type, count: count, into: d) }
            }
        }
        return out
    }

    /// ggml's f32 -> bf16 (`ggml_compute_fp32_to_bf16`): NaN made quiet keeping the sign and top bits, else round to nearest even.
    public static func f32ToBF16(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if u & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16((u >> 16) | 64) }
        return UInt16(truncatingIfNeeded: (UInt64(u) + UInt64(0x7FFF + ((u >> 16) & 1))) >> 16)
    }

    static func half(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
        HalfConversion.f16ToF32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    static func storeHalf(_ x: Float, _ p: UnsafeMutableRawPointer, _ offset: Int = 0) {
        p.storeBytes(of: HalfConversion.f32ToF16(x).littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    /// Truncates toward zero like a C cast, saturating out-of-range values and mapping NaN to 0 (never traps).
    @inline(__always) static func saturatingInt(_ x: Float) -> Int {
        guard x == x else { return 0 }
        if x >= 2147483648 { return 2147483647 }
        if x <= -2147483648 { return -2147483648 }
        return Int(x)
    }

    /// C `roundf`: halves away from zero.
    @inline(__always) static func roundf(_ x: Float) -> Float { x.rounded(.toNearestOrAwayFromZero) }

    /// Q8_0: d = amax / 127 (f16), q = roundf(x / d) as i8.
    private static func quantizeQ8_0(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, out)
        for j in 0..<32 { out.storeBytes(of: Int8(clamping: saturatingInt(roundf(x[j] * id))), toByteOffset: 2 + j, as: Int8.self) }
    }

    /// Q4_0: d = (signed value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5)); value j low nibble, j+16 high.
    private static func quantizeQ4_0(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var amax: Float = 0, mx: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]); mx = x[j] }
        let d = mx / -8
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, out)
        for j in 0..<16 {
            let a = UInt8(clamping: min(15, max(0, saturatingInt(x[j] * id + 8.5))))
            let b = UInt8(clamping: min(15, max(0, saturatingInt(x[j + 16] * id + 8.5))))
            out.storeBytes(of: a | (b << 4), toByteOffset: 2 + j, as: UInt8.self)
        }
    }

    /// Q5_0: d = (signed value of largest magnitude) / -16, q = min(31, trunc(x / d + 16.5)); the low four bits as in
    /// Q4_0, the fifth bits of values j and j+16 in bits j and j+16 of a u32 `qh` (f16 d, qh, 16 bytes).
    private static func quantizeQ5_0(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var amax: Float = 0, mx: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]); mx = x[j] }
        let d = mx / -16
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, out)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let a = UInt32(clamping: min(31, max(0, saturatingInt(x[j] * id + 16.5))))
            let b = UInt32(clamping: min(31, max(0, saturatingInt(x[j + 16] * id + 16.5))))
            out.storeBytes(of: UInt8((a & 0x0F) | ((b & 0x0F) << 4)), toByteOffset: 6 + j, as: UInt8.self)
            qh |= ((a & 0x10) >> 4) << UInt32(j)
            qh |= ((b & 0x10) >> 4) << UInt32(j + 16)
        }
        out.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
    }

    /// Q5_1: d = (max - min) / 31, m = min, q = trunc((x - min) / d + 0.5) (f16 d, f16 m, qh, 16 bytes).
    private static func quantizeQ5_1(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 { lo = min(lo, x[j]); hi = max(hi, x[j]) }
        let d = (hi - lo) / 31
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, out)
        storeHalf(lo, out, 2)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let a = UInt32(truncatingIfNeeded: UInt8(truncatingIfNeeded: saturatingInt((x[j] - lo) * id + 0.5)))
            let b = UInt32(truncatingIfNeeded: UInt8(truncatingIfNeeded: saturatingInt((x[j + 16] - lo) * id + 0.5)))
            out.storeBytes(of: UInt8((a & 0x0F) | ((b & 0x0F) << 4)), toByteOffset: 8 + j, as: UInt8.self)
            qh |= ((a & 0x10) >> 4) << UInt32(j)
            qh |= ((b & 0x10) >> 4) << UInt32(j + 16)
        }
        out.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
    }
}
