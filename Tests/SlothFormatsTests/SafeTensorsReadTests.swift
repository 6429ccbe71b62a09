import Foundation
import Testing
@testable import SlothFormats
import SlothCore

/// Reading files written by Python `safetensors` 0.8.0 and `transformers` 5.24 save_pretrained.
@Suite struct SafeTensorsReadTests {
    /// values.json written by make.py.
    static func values() throws -> [String: Any] {
        let data = try Data(contentsOf: TestSupport.fixture("values.json"))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    /// The ramp make.py stores: (i % 97 - 48) * 0.25, exact in every float dtype.
    static func ramp(_ n: Int) -> [Float] { (0..<n).map { Float($0 % 97 - 48) * 0.25 } }

    @Test(arguments: [("f32", DType.f32), ("f16", .f16), ("bf16", .bf16), ("f64", .f64)])
    func readsFloatFilesFromPython(file: String, dtype: DType) throws {
        let f = try SafeTensorsFile(url: TestSupport.fixture("\(file).safetensors"))
        #expect(f.names == ["b", "w"])
        #expect(f.metadata.isEmpty)
        let w = try #require(f.entry("w"))
        #expect(w.dtype == dtype && w.shape == [3, 5, 7] && w.count == 105 && w.byteCount == 105 * dtype.byteSize)
        let got = try f.floats("w")
        let want = Self.ramp(105)
        let maxDiff = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
        print("\(file).safetensors w: max |diff| = \(maxDiff)")
        #expect(got == want)
        var into = [Float](repeating: .nan, count: 7)
        try into.withUnsafeMutableBufferPointer { try f.readFloats("b", into: $0) }
        #expect(into == Self.ramp(7))
        #expect(try f.rawBytes("w").count == 105 * dtype.byteSize)
    }

    @Test func readsIntegersBoolsAndMetadata() throws {
        let f = try SafeTensorsFile(url: TestSupport.fixture("i64_meta.safetensors"))
        #expect(f.metadata == ["format": "pt"])
        #expect(f.names == ["ids", "mask", "small"])
        let ids = try #require(f.entry("ids"))
        #expect(ids.dtype == .i64 && ids.shape == [3, 4])
        let raw = try f.rawBytes("ids")
        let got = (0..<12).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        let want = (try Self.values()["i64"] as? [NSNumber] ?? []).map(\.int64Value)
        #expect(want.count == 12)
        #expect(got == want)
        #expect(Array(try f.rawBytes("mask")) == [1, 0, 1])
        #expect(Array(try f.rawBytes("small")).map { Int8(bitPattern: $0) } == [-128, 0, 127])
        #expect(f.entry("mask")?.dtype == .bool)
        #expect(f.entry("small")?.dtype == .i8)
    }

    /// Every dtype, odd names (escapes, non-ASCII, control characters), an empty tensor and a scalar.
    @Test func readsMixedFileValuesFromPython() throws {
        let f = try SafeTensorsFile(url: TestSupport.fixture("mixed.safetensors"))
        let expected = try #require(try Self.values()["mixed"] as? [String: [String: Any]])
        #expect(Set(f.names) == Set(expected.keys))
        #expect(f.names.contains("quote\"back\\slash\nnl\ttab\u{01}ctl\u{e9}\u{4e2d}/\u{7f}"))
        var maxDiff: Float = 0
        for (name, info) in expected {
            let e = try #require(f.entry(name), "\(name)")
            let shape = (info["shape"] as? [NSNumber] ?? []).map(\.intValue)
            #expect(e.shape == shape, "\(name)")
            let want = (info["values"] as? [NSNumber] ?? []).map { Float($0.doubleValue) }
            let got: [Float]
            if e.dtype.isFloatingPoint {
                got = try f.floats(name)
            } else {
                let raw = try f.rawBytes(name)
                var out = [Float](repeating: 0, count: e.count)
                out.withUnsafeMutableBufferPointer { HalfConversion.toFloat(raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, dtype: e.dtype, count: e.count, into: $0.baseAddress!) }
                got = out
            }
            #expect(got.count == want.count, "\(name)")
            for (a, b) in zip(got, want) { maxDiff = max(maxDiff, abs(a - b)) }
        }
        print("mixed.safetensors: \(expected.count) tensors, max |diff| vs torch = \(maxDiff)")
        #expect(maxDiff == 0)
        #expect(f.entry("scalar")?.shape == [] && f.entry("scalar")?.count == 1)
        #expect(f.entry("empty")?.count == 0)
        #expect(try f.floats("empty").isEmpty)
        #expect(try f.floats("scalar") == [2.5])
    }

    @Test func readsEmptyFile() throws {
        let f = try SafeTensorsFile(url: TestSupport.fixture("empty.safetensors"))
        #expect(f.names.isEmpty && f.metadata.isEmpty)
    }

    /// A tiny Llama saved by transformers with max_shard_size=2000 (2 shards) and 500 (7 shards).
    @Test(arguments: ["sharded2", "sharded_big"])
    func readsShardedFolderFromTransformers(folder: String) throws {
        let c = try SafeTensorsCollection(path: TestSupport.fixture(folder))
        let expected = try #require(try Self.values()["llama"] as? [String: [String: Any]])
        #expect(c.names == expected.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }))
        var maxSumDiff = 0.0
        for (name, info) in expected {
            let e = try #require(try c.entry(name))
            #expect(e.shape == (info["shape"] as? [NSNumber] ?? []).map(\.intValue))
            let v = try c.floats(name)
            let head = (info["head"] as? [NSNumber] ?? []).map { Float($0.doubleValue) }
            #expect(Array(v.prefix(4)) == head, "\(name)")
            let sum = v.reduce(0.0) { $0 + Double($1) }
            maxSumDiff = max(maxSumDiff, abs(sum - ((info["sum"] as? NSNumber)?.doubleValue ?? .nan)))
            var buf = [Float](repeating: 0, count: e.count)
            try buf.withUnsafeMutableBufferPointer { try c.readFloats(name, into: $0) }
            #expect(buf == v)
            #expect(try c.rawBytes(name).count == e.byteCount)
        }
        print("\(folder): \(expected.count) tensors, max |sum diff| vs torch = \(maxSumDiff)")
        #expect(maxSumDiff < 1e-9)
        #expect(try c.entry("no.such.tensor") == nil)
    }

    @Test func collectionAcceptsSingleFileFolderAndGlob() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A path to one file.
        let one = try SafeTensorsCollection(path: TestSupport.fixture("f32.safetensors"))
        #expect(one.names == ["b", "w"])
        #expect(try one.floats("b") == Self.ramp(7))
        // A folder with model.safetensors (other files ignored).
        let single = dir.appendingPathComponent("single")
        try FileManager.default.createDirectory(at: single, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestSupport.fixture("bf16.safetensors"), to: single.appendingPathComponent("model.safetensors"))
        try FileManager.default.copyItem(at: TestSupport.fixture("f16.safetensors"), to: single.appendingPathComponent("other.safetensors"))
        let s = try SafeTensorsCollection(path: single)
        #expect(s.names == ["b", "w"])
        #expect(try s.entry("w")?.dtype == .bf16)
        // A folder with neither: every *.safetensors.
        let glob = dir.appendingPathComponent("glob")
        try FileManager.default.createDirectory(at: glob, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestSupport.fixture("f32.safetensors"), to: glob.appendingPathComponent("a.safetensors"))
        try FileManager.default.copyItem(at: TestSupport.fixture("i64_meta.safetensors"), to: glob.appendingPathComponent("b.safetensors"))
        let g = try SafeTensorsCollection(path: glob)
        #expect(g.names == ["b", "ids", "mask", "small", "w"])
        #expect(try g.floats("w") == Self.ramp(105))
    }

    /// readFloats on BF16 / F16 is one tight loop: measure it (a debug build is much slower than release).
    @Test func halfReadThroughput() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = 1 << 22
        let floats = (0..<n).map { Float($0 % 1000) * 0.001 - 0.5 }
        let url = dir.appendingPathComponent("big.safetensors")
        try SafeTensorsWriter.write([WritableTensor(name: "h", shape: [n], floats: floats, as: .f16),
                                     WritableTensor(name: "b", shape: [n], floats: floats, as: .bf16)], to: url)
        let f = try SafeTensorsFile(url: url)
        var out = [Float](repeating: 0, count: n)
        for name in ["h", "b"] {
            let clock = ContinuousClock()
            let t = clock.measure {
                try? out.withUnsafeMutableBufferPointer { try f.readFloats(name, into: $0) }
            }
            let s = Double(t.components.seconds) + Double(t.components.attoseconds) * 1e-18
            print("readFloats \(name == "h" ? "F16" : "BF16"): \(n) elements in \(String(format: "%.4f", s)) s = \(String(format: "%.0f", Double(n) / s / 1e6)) M elements/s")
            let maxDiff = zip(out, floats).map { abs($0 - $1) }.max() ?? 0
            #expect(maxDiff <= 0.002, "\(name) max diff \(maxDiff)")
        }
    }
}
