/// Element types of tensors as they appear in safetensors headers (`"F32"`, `"BF16"`, ...).
///
/// The raw value is the safetensors dtype string, so `DType(rawValue: "BF16")` parses a header field.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// True for F64, F32, F16 and BF16.
    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return true
        default: return false
        }
    }
}

/// Half-precision conversions, bit-exact with torch (round-to-nearest-even, NaN/Inf/subnormals handled).
///
/// NaN handling follows torch's CPU tensor conversions (`tensor.to(dtype)`, vectorized path):
/// - f32 -> f16: sign kept, quiet bit set, top 10 payload bits kept (what x86 F16C `vcvtps2ph` does).
/// - f16 -> f32: sign kept, quiet bit set, payload kept (F16C `vcvtph2ps`). torch's scalar tail
///   loop (the last `count % 8` elements) returns 0x7FFFFFFF instead; both are NaN.
/// - f32 -> bf16: every NaN becomes 0xFFFF (torch's AVX2/AVX-512 path; the scalar
///   `c10::BFloat16` constructor gives 0x7FC0 instead; both are NaN).
/// - bf16 -> f32: exact (bits << 16).
///
/// Checked against torch 2.13 for every f16 and bf16 bit pattern and, through chunk hashes, every one
/// of the 2^32 floats in both f32 -> f16 and f32 -> bf16 (Tests/SlothFormatsTests/HalfConversionTests.swift).
public enum HalfConversion {
    /// Converts IEEE binary16 bits to Float (exact).
    ///
    /// Branch-free (selects only) so loops over it vectorize.
    @inlinable
    public static func f16ToF32(_ bits: UInt16) -> Float {
        let h = UInt32(bits)
        let sign = (h & 0x8000) << 16
        let em = h & 0x7FFF
        // Normal: rebias the exponent (127 - 15 = 112).
        let normal = (em << 13) &+ 0x3800_0000
        // Inf / NaN: all-ones exponent, payload kept, NaN quieted.
        let infNaN = (em << 13) | 0x7F80_0000 | (em > 0x7C00 ? 0x0040_0000 : 0)
        // Zero / subnormal: em * 2^-24, exact in Float.
        let subnormal = (Float(em) * 0x1p-24).bitPattern
        let magnitude = em >= 0x7C00 ? infNaN : (em < 0x0400 ? subnormal : normal)
        return Float(bitPattern: sign | magnitude)
    }

    /// Converts Float to IEEE binary16 bits, rounding to nearest even; overflow gives Inf.
    ///
    /// Branch-free (selects only) so loops over it vectorize: normals round with an integer bias,
    /// subnormals round through one Float addition (the FPU's round-to-nearest-even).
    @inlinable
    public static func f32ToF16(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        let sign = UInt16(truncatingIfNeeded: (b >> 16) & 0x8000)
        let a = b & 0x7FFF_FFFF
        // Normal: rebias (-112 << 23 == 0xC800_0000 mod 2^32), add 0xFFF + the kept LSB (ties to even), drop 13 bits.
        let normal = UInt16(truncatingIfNeeded: (a &+ 0xC800_0FFF &+ ((a >> 13) & 1)) >> 13)
        // Below 2^-14: add 0.5 (whose ulp is 2^-24, the f16 subnormal step) and read the low bits.
        let magic: UInt32 = 126 << 23
        let subnormal = UInt16(truncatingIfNeeded: (Float(bitPattern: a) + Float(bitPattern: magic)).bitPattern &- magic)
        // >= 65536 (exponent 143): Inf, or NaN with the quiet bit and the top payload bits.
        let infNaN: UInt16 = a > 0x7F80_0000 ? 0x7E00 | UInt16(truncatingIfNeeded: (a >> 13) & 0x3FF) : 0x7C00
        let magnitude = a >= 0x4780_0000 ? infNaN : (a < 0x3880_0000 ? subnormal : normal)
        return sign | magnitude
    }

    /// Converts bfloat16 bits to Float (exact).
    @inlinable
    public static func bf16ToF32(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Converts Float to bfloat16 bits, rounding to nearest even; every NaN becomes 0xFFFF as in torch.
    @inlinable
    public static func f32ToBF16(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if (b & 0x7FFF_FFFF) > 0x7F80_0000 { return 0xFFFF }
        let rounded = b &+ 0x7FFF &+ ((b >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// Converts `count` elements of `dtype` (F32, F16, BF16, F64, and the integer types) at `src` (little-endian, any alignment) to Float.
    ///
    /// Integers convert with Float's rounding; BOOL gives 0 or 1 (any non-zero byte is 1).
    public static func toFloat(_ src: UnsafeRawPointer, dtype: DType, count: Int, into dst: UnsafeMutablePointer<Float>) {
        precondition(count >= 0, "HalfConversion.toFloat: negative count")
        switch dtype {
        case .f32:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16:
            for i in 0..<count {
                dst[i] = f16ToF32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            for i in 0..<count {
                dst[i] = bf16ToF32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .f64:
            for i in 0..<count {
                dst[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        case .i64:
            for i in 0..<count {
                dst[i] = Float(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
            }
        case .i32:
            for i in 0..<count {
                dst[i] = Float(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
            }
        case .i16:
            for i in 0..<count {
                dst[i] = Float(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
            }
        case .i8:
            for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .u8:
            for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool:
            for i in 0..<count { dst[i] = src.load(fromByteOffset: i, as: UInt8.self) == 0 ? 0 : 1 }
        }
    }

    /// Converts Floats to F32/F16/BF16 bytes (little-endian).
    ///
    /// Other dtypes are a programmer error (precondition); convert integers yourself.
    public static func fromFloat(_ src: UnsafePointer<Float>, count: Int, to dtype: DType, into dst: UnsafeMutableRawPointer) {
        precondition(count >= 0, "HalfConversion.fromFloat: negative count")
        switch dtype {
        case .f32:
            for i in 0..<count {
                dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
            }
        case .f16:
            for i in 0..<count {
                dst.storeBytes(of: f32ToF16(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        case .bf16:
            for i in 0..<count {
                dst.storeBytes(of: f32ToBF16(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        case .f64:
            for i in 0..<count {
                dst.storeBytes(of: Double(src[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
            }
        default:
            preconditionFailure("HalfConversion.fromFloat: \(dtype.rawValue) is not a floating-point dtype")
        }
    }
}
