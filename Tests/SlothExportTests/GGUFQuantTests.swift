import Testing
import Foundation
import SlothFormats
import SlothExport

/// Paths of the export fixtures.
enum ExportFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let export = root.appendingPathComponent("export")
    static let models = root.appendingPathComponent("models")
    static let repo = root.deletingLastPathComponent().deletingLastPathComponent()
    static func tempDir() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("sloth-export-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

/// The GGUF written by the `gguf` Python package (scripts/golden/export/make_quant_golden.py) reads back value by value.
@Test func ggufReaderReadsEveryValueType() throws {
    let f = try GGUFFile(url: ExportFixtures.export.appendingPathComponent("quant.gguf"))
    #expect(f.version == 3)
    #expect(f["general.architecture"] == .string("sloth-test"))
    #expect(f["test.u8"] == .uint8(200))
    #expect(f["test.i8"] == .int8(-100))
    #expect(f["test.u16"] == .uint16(60000))
    #expect(f["test.i16"] == .int16(-30000))
    #expect(f["test.u32"] == .uint32(4_000_000_000))
    #expect(f["test.i32"] == .int32(-2_000_000_000))
    #expect(f["test.u64"] == .uint64((1 << 40) + 3))
    #expect(f["test.i64"] == .int64(-(1 << 40) - 3))
    #expect(f["test.f32"] == .float32(0.1))
    #expect(f["test.f64"] == .float64(0.1))
    #expect(f["test.bool"] == .bool(true))
    #expect(f["test.string"] == .string("héllo ▁ world\n"))
    #expect(f["test.strings"] == .strings(["a", "", "ĠĊ", "<0x0A>"]))
    #expect(f["test.ints"] == .int32s([1, -2, 3]))
    #expect(f["test.floats"] == .floats([0.5, -1.25]))
    #expect(f.tensor("input")?.shape == [8, 512])
    #expect(f.tensor("q4_0")?.type == .q4_0)
}

/// Sloth's quantizers give the reference bytes (gguf.quants for Q8_0/Q4_0/Q5_0/Q5_1/BF16/F16, llama.cpp's ggml for
/// the K-quants) and its dequantizers give gguf.quants' floats exactly.
@Test(arguments: ["q8_0", "q4_0", "q5_0", "q5_1", "bf16", "f16", "q4_K", "q5_K", "q6_K"])
func quantizerMatchesReference(name: String) throws {
    let f = try GGUFFile(url: ExportFixtures.export.appendingPathComponent("quant.gguf"))
    guard let info = f.tensor(name) else {
        Issue.record("\(name) missing from quant.gguf: regenerate with llama-cpp-python installed")
        return
    }
    let input = try f.floats("input")
    let ref = Array(try f.rawBytes(name))
    let mine = GGMLQuant.quantize(input, as: info.type)
    let blocks = ref.count / info.type.typeSize
    var bad = 0, first: Int? = nil
    for b in 0..<blocks where ref[(b * info.type.typeSize)..<((b + 1) * info.type.typeSize)] != mine[(b * info.type.typeSize)..<((b + 1) * info.type.typeSize)] {
        bad += 1; if first == nil { first = b }
    }
    print("\(name): \(blocks - bad)/\(blocks) blocks bit-identical to the reference\(first.map { ", first mismatch in block \($0)" } ?? "")")
    #expect(bad == 0)
    let deq = GGMLQuant.dequantize(ref, as: info.type, count: info.count)
    let expected = try f.floats("deq." + name)
    var maxDiff: Float = 0
    for i in 0..<deq.count { maxDiff = max(maxDiff, abs(deq[i] - expected[i])) }
    print("\(name): dequantized max |diff| vs gguf.quants = \(maxDiff)")
    #expect(maxDiff == 0)
    // GGUFFile.floats goes through the same dequantizer.
    #expect(try f.floats(name) == deq)
}

/// Sloth's GGUF writer round-trips through its reader; the file is written atomically.
@Test func ggufWriterRoundTrips() throws {
    let dir = ExportFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("t.gguf")
    let x = (0..<(3 * 64)).map { Float(sin(Double($0))) }
    let meta: [(key: String, value: GGUFValue)] = [("general.architecture", .string("llama")), ("a.b", .array(.array, [.int32s([1]), .int32s([])])),
                                                   ("c", .uint64(7)), ("d", .bool(false))]
    let tensors = [GGUFTensorInfo(name: "w", shape: [3, 64], type: .q8_0), GGUFTensorInfo(name: "v", shape: [5], type: .f32)]
    try GGUFWriter.write(to: url, metadata: meta, tensors: tensors) { i in
        i == 0 ? GGMLQuant.quantize(x, as: .q8_0) : GGMLQuant.quantize([1, 2, 3, 4, 5], as: .f32)
    }
    let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? -1
    #expect(size == GGUFWriter.fileSize(metadata: meta, tensors: tensors))
    let f = try GGUFFile(url: url)
    #expect(f.metadata.map(\.key) == meta.map(\.key))
    #expect(f["a.b"] == meta[1].value)
    #expect(try f.floats("v") == [1, 2, 3, 4, 5])
    let back = try f.floats("w")
    var maxDiff: Float = 0
    for i in 0..<x.count { maxDiff = max(maxDiff, abs(back[i] - x[i])) }
    #expect(maxDiff < 0.01)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["t.gguf"])
    // A failing data callback leaves nothing behind.
    struct Stop: Error {}
    #expect(throws: Stop.self) { try GGUFWriter.write(to: dir.appendingPathComponent("u.gguf"), metadata: meta, tensors: tensors) { _ in throw Stop() } }
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["t.gguf"])
}

/// Truncated or corrupted GGUF files give a GGUFError, never a crash.
@Test func ggufReaderRejectsDamage() throws {
    let good = try Data(contentsOf: ExportFixtures.export.appendingPathComponent("quant.gguf"))
    let dir = ExportFixtures.tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    var rng = SystemRandomNumberGenerator()
    var errors = 0, opened = 0
    for trial in 0..<300 {
        var d = good
        if trial < 100 {
            d = d.prefix(trial * d.count / 100)
        } else {
            // Corrupt a few header bytes (the header is the first ~1.5 KB).
            for _ in 0..<(1 + trial % 4) { d[Int.random(in: 0..<2000, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
        }
        let url = dir.appendingPathComponent("bad\(trial).gguf")
        try d.write(to: url)
        do {
            let f = try GGUFFile(url: url)
            for t in f.tensors where t.type.canDequantize { _ = try f.floats(t.name) }
            opened += 1
        } catch let e as GGUFError {
            errors += 1
            #expect(!e.description.isEmpty)
        }
        try? FileManager.default.removeItem(at: url)
    }
    print("damaged GGUF files: \(errors) rejected with GGUFError, \(opened) still valid")
    #expect(errors >= 100)
}

/// llama.cpp's `use_more_bits` layer sets (checked against llama-quant.cpp for these layer counts).
@Test func useMoreBitsLayers() {
    func set(_ n: Int) -> [Int] { (0..<n).filter { GGUFExport.useMoreBits($0, n) } }
    #expect(set(16) == [0, 1, 4, 7, 10, 13, 14, 15])
    #expect(set(32) == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31])
}

/// The per-tensor types of the `_M` mixes and the fallbacks for rows that are not whole blocks.
@Test func ggufTensorTypes() throws {
    func t(_ name: String, _ shape: [Int], _ q: GGUFQuantization, layer: Int? = nil, hasOutput: Bool = true) throws -> GGMLType {
        try GGUFExport.tensorType(name: name, shape: shape, quant: q, layer: layer, layers: 32, hasOutput: hasOutput)
    }
    #expect(try t("blk.0.attn_norm.weight", [4096], .q4_k_m) == .f32)
    #expect(try t("blk.0.attn_q.bias", [4096], .q4_k_m) == .f32)
    #expect(try t("blk.3.attn_q.weight", [4096, 4096], .q4_k_m, layer: 3) == .q4_K)
    #expect(try t("blk.3.attn_v.weight", [1024, 4096], .q4_k_m, layer: 3) == .q6_K)
    #expect(try t("blk.4.attn_v.weight", [1024, 4096], .q4_k_m, layer: 4) == .q4_K)
    #expect(try t("blk.6.ffn_down.weight", [4096, 14336], .q5_k_m, layer: 6) == .q6_K)
    #expect(try t("blk.7.ffn_down.weight", [4096, 14336], .q5_k_m, layer: 7) == .q5_K)
    #expect(try t("output.weight", [32000, 4096], .q4_k_m) == .q6_K)
    #expect(try t("token_embd.weight", [32000, 4096], .q4_k_m) == .q4_K)
    #expect(try t("token_embd.weight", [32000, 4096], .q4_k_m, hasOutput: false) == .q6_K)
    #expect(try t("output.weight", [32000, 4096], .q8_0) == .q8_0)
    #expect(try t("token_embd.weight", [32000, 4096], .f16) == .f16)
    // Rows of 896 (Qwen2-0.5B): Q4_K -> Q5_0, Q6_K -> Q8_0; tied embeddings -> Q8_0.
    #expect(try t("blk.5.attn_q.weight", [896, 896], .q4_k_m, layer: 5) == .q5_0)
    #expect(try t("blk.5.attn_q.weight", [896, 896], .q5_k_m, layer: 5) == .q5_1)
    #expect(try t("blk.0.ffn_down.weight", [896, 4864], .q4_k_m, layer: 0) == .q6_K)
    #expect(try t("token_embd.weight", [151936, 896], .q4_k_m, hasOutput: false) == .q8_0)
    #expect(throws: ExportError.self) { try t("blk.0.attn_q.weight", [8, 40], .q4_0, layer: 0) }
}
