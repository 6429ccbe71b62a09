import Foundation
import Testing
import SlothCore

/// f16 / bf16 conversions against goldens made by torch 2.13 (scripts/golden/safetensors/make.py).
@Suite struct HalfConversionTests {
    @Test func f16ToF32AllBitPatternsMatchTorch() throws {
        let golden = TestSupport.u32s(try TestSupport.bytes(TestSupport.fixture("f16_to_f32_all.bin")))
        #expect(golden.count == 65536)
        var mismatches = 0
        var first: String?
        for h in 0..<65536 {
            let got = HalfConversion.f16ToF32(UInt16(h)).bitPattern
            if got != golden[h] {
                mismatches += 1
                if first == nil { first = "f16 0x\(String(h, radix: 16)): got 0x\(String(got, radix: 16)), torch 0x\(String(golden[h], radix: 16))" }
            }
        }
        print("f16->f32: 65536 patterns, \(mismatches) bit mismatches vs torch\(first.map { "; first: \($0)" } ?? "")")
        #expect(mismatches == 0, "\(first ?? "")")
    }

    @Test func bf16ToF32AllBitPatternsMatchTorch() throws {
        let golden = TestSupport.u32s(try TestSupport.bytes(TestSupport.fixture("bf16_to_f32_all.bin")))
        #expect(golden.count == 65536)
        var mismatches = 0
        for h in 0..<65536 where HalfConversion.bf16ToF32(UInt16(h)).bitPattern != golden[h] { mismatches += 1 }
        print("bf16->f32: 65536 patterns, \(mismatches) bit mismatches vs torch")
        #expect(mismatches == 0)
    }

    /// Thousands of halfway cases, subnormals, overflow boundaries and NaNs converted by torch.
    @Test func f32ToHalfTrickyValuesMatchTorch() throws {
        let raw = try TestSupport.bytes(TestSupport.fixture("f32_tricky.bin"))
        #expect(raw.count % 8 == 0 && raw.count >= 8 * 4000)
        var f16Bad = 0, bf16Bad = 0
        var firstF16: String?, firstBF16: String?
        for r in stride(from: 0, to: raw.count, by: 8) {
            let x = UInt32(raw[r]) | UInt32(raw[r + 1]) << 8 | UInt32(raw[r + 2]) << 16 | UInt32(raw[r + 3]) << 24
            let h = UInt16(raw[r + 4]) | UInt16(raw[r + 5]) << 8
            let b = UInt16(raw[r + 6]) | UInt16(raw[r + 7]) << 8
            let gh = HalfConversion.f32ToF16(Float(bitPattern: x))
            let gb = HalfConversion.f32ToBF16(Float(bitPattern: x))
            if gh != h {
                f16Bad += 1
                if firstF16 == nil { firstF16 = "f32 0x\(String(x, radix: 16)): got 0x\(String(gh, radix: 16)), torch 0x\(String(h, radix: 16))" }
            }
            if gb != b {
                bf16Bad += 1
                if firstBF16 == nil { firstBF16 = "f32 0x\(String(x, radix: 16)): got 0x\(String(gb, radix: 16)), torch 0x\(String(b, radix: 16))" }
            }
        }
        print("f32->f16/bf16: \(raw.count / 8) tricky floats, \(f16Bad) f16 and \(bf16Bad) bf16 bit mismatches vs torch")
        #expect(f16Bad == 0, "\(firstF16 ?? "")")
        #expect(bf16Bad == 0, "\(firstBF16 ?? "")")
    }

    /// Hash of f32 -> half over chunk `k` (bit patterns k << 20 ..< (k + 1) << 20), as make.py computes it with torch.
    static func chunkHash(_ k: Int, _ convert: (Float) -> UInt16) -> UInt64 {
        var h: UInt64 = 0
        let base = UInt32(k) << 20
        for i in 0..<(1 << 20) {
            let w = (UInt64(i) &* 2654435761 &+ 1) | 1
            h &+= UInt64(convert(Float(bitPattern: base | UInt32(i)))) &* w
        }
        return h
    }

    /// All 2^32 floats converted by torch, checked as 4096 chunk hashes. By default a subset of chunks around
    /// the interesting ranges (zero, f16 subnormals, overflow, Inf/NaN, both signs); SLOTH_EXHAUSTIVE_HALF=1 checks all.
    @Test func f32ToHalfChunkHashesMatchTorch() throws {
        let raw = try TestSupport.bytes(TestSupport.fixture("f32_to_half_chunk_hashes.bin"))
        #expect(raw.count == 4096 * 16)
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(raw[at + $1]) << (8 * $1) } }
        let all = ProcessInfo.processInfo.environment["SLOTH_EXHAUSTIVE_HALF"] == "1"
        let subset = [0x000, 0x330, 0x380, 0x387, 0x388, 0x3F8, 0x477, 0x478, 0x7F8, 0x7FF,
                      0x800, 0xB87, 0xB88, 0xC77, 0xFF8, 0xFFF]
        let chunks = all ? Array(0..<4096) : subset
        var bad: [String] = []
        for k in chunks {
            if Self.chunkHash(k, HalfConversion.f32ToF16) != u64(16 * k) { bad.append("f16 chunk 0x\(String(k, radix: 16))") }
            if Self.chunkHash(k, HalfConversion.f32ToBF16) != u64(16 * k + 8) { bad.append("bf16 chunk 0x\(String(k, radix: 16))") }
        }
        print("f32->f16/bf16 vs torch: \(chunks.count) chunks x 2^20 floats, \(bad.count) mismatching chunks")
        #expect(bad.isEmpty, "\(bad)")
    }

    /// Every finite f16 survives f16 -> f32 -> f16; same for bf16 (checks both directions agree).
    @Test func halfRoundTripsThroughFloat() {
        for h in 0..<65536 {
            let bits = UInt16(h)
            let f = HalfConversion.f16ToF32(bits)
            if !f.isNaN { #expect(HalfConversion.f32ToF16(f) == bits) }
            let g = HalfConversion.bf16ToF32(bits)
            if !g.isNaN { #expect(HalfConversion.f32ToBF16(g) == bits) }
        }
    }

    /// toFloat reads every dtype from an unaligned, little-endian source.
    @Test(arguments: DType.allCases)
    func toFloatReadsUnalignedLittleEndian(dtype: DType) {
        let values: [Float] = [0, 1, -2, 3, 100, -7, 1, 0]
        var bytes = [UInt8](repeating: 0, count: 1 + values.count * dtype.byteSize)  // 1-byte offset: unaligned
        for (i, v) in values.enumerated() {
            let at = 1 + i * dtype.byteSize
            let le: [UInt8]
            switch dtype {
            case .f64: le = withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { Array($0) }
            case .f32: le = withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) }
            case .f16: le = withUnsafeBytes(of: HalfConversion.f32ToF16(v).littleEndian) { Array($0) }
            case .bf16: le = withUnsafeBytes(of: HalfConversion.f32ToBF16(v).littleEndian) { Array($0) }
            case .i64: le = withUnsafeBytes(of: Int64(v).littleEndian) { Array($0) }
            case .i32: le = withUnsafeBytes(of: Int32(v).littleEndian) { Array($0) }
            case .i16: le = withUnsafeBytes(of: Int16(v).littleEndian) { Array($0) }
            case .i8: le = [UInt8(bitPattern: Int8(v))]
            case .u8: le = [UInt8(max(0, v))]
            case .bool: le = [v == 0 ? 0 : 1]
            }
            bytes.replaceSubrange(at..<(at + le.count), with: le)
        }
        var out = [Float](repeating: .nan, count: values.count)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                HalfConversion.toFloat(src.baseAddress! + 1, dtype: dtype, count: values.count, into: dst.baseAddress!)
            }
        }
        let expected = values.map { v -> Float in
            switch dtype {
            case .u8: return max(0, v)
            case .bool: return v == 0 ? 0 : 1
            default: return v
            }
        }
        #expect(out == expected)
    }

    /// fromFloat writes the same bits as the scalar conversions, little-endian.
    @Test(arguments: [DType.f32, .f16, .bf16, .f64])
    func fromFloatMatchesScalarConversions(dtype: DType) {
        let values: [Float] = [0, -0.0, 1.5, -65504, 65520, 1e-8, .infinity, 3.14159265, 1e30]
        var bytes = [UInt8](repeating: 0, count: values.count * dtype.byteSize + 1)
        values.withUnsafeBufferPointer { src in
            bytes.withUnsafeMutableBytes { dst in
                HalfConversion.fromFloat(src.baseAddress!, count: values.count, to: dtype, into: dst.baseAddress! + 1)
            }
        }
        for (i, v) in values.enumerated() {
            let at = 1 + i * dtype.byteSize
            let got = bytes[at..<(at + dtype.byteSize)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let want: UInt64
            switch dtype {
            case .f16: want = UInt64(HalfConversion.f32ToF16(v))
            case .bf16: want = UInt64(HalfConversion.f32ToBF16(v))
            case .f64: want = Double(v).bitPattern
            default: want = UInt64(v.bitPattern)
            }
            #expect(got == want, "element \(i) (\(v)) as \(dtype)")
        }
    }
}
