import Foundation
import Testing
@testable import SlothFormats
import SlothCore

/// 4-bit quantization against bitsandbytes 0.50.2's own output (Tests/Fixtures/quant/blockwise.safetensors,
/// made by scripts/golden/quant/make_nf4.py): packed codes, absmax and double quantization byte for byte,
/// dequantization bit for bit.
@Suite struct FourBitTests {
    static let quant = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/quant")
    static let cases = ["gauss", "heavy", "odd", "zeros", "bf16", "ties"]

    static func bytes(_ f: SafeTensorsFile, _ name: String) throws -> [UInt8] { Array(try f.rawBytes(name)) }

    @Test(arguments: cases)
    func quantizeMatchesBitsandbytes(_ name: String) throws {
        let f = try SafeTensorsFile(url: Self.quant.appendingPathComponent("blockwise.safetensors"))
        let x = try f.floats("\(name).input")
        let shape = f.entry("\(name).input")!.shape
        for (tag, type, dq) in [("nf4dq", FourBitType.nf4, true), ("nf4", .nf4, false), ("fp4dq", .fp4, true)] {
            let p = "\(name).\(tag)."
            let dtype = f.entry("\(name).input")!.dtype == .bf16 ? "bfloat16" : "float32"
            let q = FourBitTensor.quantize(x, shape: shape, type: type, doubleQuant: dq, dtype: dtype)
            #expect(try f.floats(p + "quant_map") == type.codebook, "\(p)quant_map")
            let want = try Self.bytes(f, p + "packed")
            let diff = zip(q.packed, want).filter { $0 != $1 }.count
            print("\(p)packed: \(diff) of \(want.count) bytes differ")
            #expect(q.packed == want, "\(p)packed")
            switch q.absmax {
            case .plain(let a):
                #expect(!dq)
                #expect(a == (try f.floats(p + "absmax")), "\(p)absmax")
            case .nested(let codes, let na, let map, let offset, _):
                #expect(dq)
                let wantOffset = try f.floats(p + "offset")[0]
                #expect(offset == wantOffset, "\(p)offset: \(offset) vs \(wantOffset)")
                #expect(map == (try f.floats(p + "nested_quant_map")), "\(p)nested_quant_map")
                #expect(na == (try f.floats(p + "nested_absmax")), "\(p)nested_absmax")
                let wantCodes = try Self.bytes(f, p + "absmax")
                print("\(p)absmax codes: \(zip(codes, wantCodes).filter { $0 != $1 }.count) of \(wantCodes.count) differ")
                #expect(codes == wantCodes, "\(p)absmax codes")
            }
            // Dequantizing bitsandbytes' own bytes gives bitsandbytes' dequantize_4bit exactly.
            let theirs = FourBitTensor(type: type, shape: shape, blocksize: 64, packed: want,
                                       absmax: dq ? .nested(codes: try Self.bytes(f, p + "absmax"), nestedAbsmax: try f.floats(p + "nested_absmax"),
                                                            nestedMap: try f.floats(p + "nested_quant_map"), offset: try f.floats(p + "offset")[0], nestedBlocksize: 256)
                                          : .plain(try f.floats(p + "absmax")), dtype: dtype)
            // F.dequantize_4bit returns the quant_state dtype: round to it as it does.
            var deq = theirs.dequantized()
            if dtype == "bfloat16" { deq = deq.map { HalfConversion.bf16ToF32(HalfConversion.f32ToBF16($0)) } }
            let wantDeq = try f.floats(p + "dequant")
            let bad = zip(deq, wantDeq).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
            let maxDiff = zip(deq, wantDeq).map { abs($0 - $1) }.max() ?? 0
            print("\(p)dequant: \(bad.count) of \(wantDeq.count) differ, max |diff| \(maxDiff)")
            #expect(bad.isEmpty, "\(p)dequant: first differing \(bad.first.map { "[\($0.offset)] \($0.element.0) vs \($0.element.1)" } ?? "")")
        }
    }

    @Test func torchSumOrder() throws {
        // The double-quant offsets above check TorchSum on real absmax vectors; this checks lengths around its branches.
        for n in [1, 7, 8, 31, 32, 33, 255, 256, 257, 4097] {
            let x = (0..<n).map { Float($0 % 17) * 0.125 }
            #expect(x.withUnsafeBufferPointer { TorchSum.sum($0) } == x.reduce(0, +), "n=\(n)")  // exact in binary
        }
    }
}
