import Foundation
import Testing
@testable import SlothFormats
import SlothCore

/// The writers: round trips, and byte-identical output vs Python `safetensors` / `transformers`.
@Suite struct SafeTensorsWriteTests {
    /// Rebuilds every tensor of a Python-written file from its raw bytes.
    static func tensors(of f: SafeTensorsFile) throws -> [WritableTensor] {
        try f.names.map { name in
            let e = try #require(f.entry(name))
            return WritableTensor(name: name, dtype: e.dtype, shape: e.shape, bytes: Array(try f.rawBytes(name)))
        }
    }

    static func expectIdentical(_ got: [UInt8], _ want: [UInt8], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        if let i = TestSupport.firstMismatch(got, want) {
            Issue.record("\(what): first byte mismatch at \(i) (sizes \(got.count) vs \(want.count)); ours \(TestSupport.context(got, i)), python \(TestSupport.context(want, i))",
                         sourceLocation: sourceLocation)
        } else {
            print("\(what): \(got.count) bytes, byte-identical")
        }
    }

    /// Writing the same tensors + metadata gives exactly the bytes `safetensors.torch.save_file` wrote.
    @Test(arguments: ["mixed", "f32", "f16", "bf16", "f64", "i64_meta", "empty", "nometa"])
    func byteIdenticalToPythonWriter(file: String) throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = TestSupport.fixture("\(file).safetensors")
        let f = try SafeTensorsFile(url: src)
        // Python writes "__metadata__" only when metadata was given; make.py gave it to mixed and i64_meta.
        let meta: [String: String]? = f.metadata.isEmpty ? nil : f.metadata
        let out = dir.appendingPathComponent("out.safetensors")
        // Shuffle the input order: the layout must not depend on it.
        try SafeTensorsWriter.write(try Self.tensors(of: f).reversed(), metadata: meta, to: out)
        Self.expectIdentical(try TestSupport.bytes(out), try TestSupport.bytes(src), "\(file).safetensors")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.safetensors"], "temp file left behind")
    }

    /// Values written from Floats match the Python file made from the same formula.
    @Test(arguments: [("f32", DType.f32), ("f16", .f16), ("bf16", .bf16), ("f64", .f64)])
    func floatsWrittenLikeTorch(file: String, dtype: DType) throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("ramp.safetensors")
        try SafeTensorsWriter.write([WritableTensor(name: "w", shape: [3, 5, 7], floats: SafeTensorsReadTests.ramp(105), as: dtype),
                                     WritableTensor(name: "b", shape: [7], floats: SafeTensorsReadTests.ramp(7), as: dtype)], to: out)
        Self.expectIdentical(try TestSupport.bytes(out), try TestSupport.bytes(TestSupport.fixture("\(file).safetensors")), "ramp as \(dtype)")
    }

    /// Write then read, every dtype, with metadata, empty and scalar shapes.
    @Test(arguments: DType.allCases)
    func roundTrip(dtype: DType) throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<(6 * dtype.byteSize)).map { _ in dtype == .bool ? UInt8.random(in: 0...1, using: &rng) : UInt8.random(in: 0...255, using: &rng) }
        let tensors = [
            WritableTensor(name: "x", dtype: dtype, shape: [2, 3], bytes: bytes),
            WritableTensor(name: "scalar", dtype: dtype, shape: [], bytes: Array(bytes.prefix(dtype.byteSize))),
            WritableTensor(name: "none", dtype: dtype, shape: [0, 3], bytes: []),
        ]
        let url = dir.appendingPathComponent("rt.safetensors")
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt", "b": "é\"\n"], to: url)
        let f = try SafeTensorsFile(url: url)
        #expect(f.metadata == ["format": "pt", "b": "é\"\n"])
        #expect(f.names == ["none", "scalar", "x"])
        for t in tensors {
            let e = try #require(f.entry(t.name))
            #expect(e.dtype == dtype && e.shape == t.shape)
            #expect(Array(try f.rawBytes(t.name)) == t.bytes)
        }
        if dtype.isFloatingPoint {
            var expected = [Float](repeating: 0, count: 6)
            bytes.withUnsafeBytes { b in expected.withUnsafeMutableBufferPointer { HalfConversion.toFloat(b.baseAddress!, dtype: dtype, count: 6, into: $0.baseAddress!) } }
            #expect(try f.floats("x").map(\.bitPattern) == expected.map(\.bitPattern))
        }
        // Overwriting an existing file is atomic and leaves no temp file.
        try SafeTensorsWriter.write([tensors[0]], to: url)
        #expect(try SafeTensorsFile(url: url).names == ["x"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["rt.safetensors"])
    }

    @Test func duplicateNamesAreRejected() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = WritableTensor(name: "a", shape: [1], floats: [1])
        TestSupport.expectError(.badWrite, mentions: ["\"a\"", "two tensors"]) {
            try SafeTensorsWriter.write([t, t], to: dir.appendingPathComponent("x.safetensors"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    /// The sharded writer reproduces transformers' save_pretrained folders byte for byte
    /// (shard split, names, per-shard layout, index JSON).
    @Test(arguments: ["sharded2", "sharded_big"])
    func shardedWriterMatchesTransformers(folder: String) throws {
        let src = TestSupport.fixture(folder)
        let orderJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: src.appendingPathComponent("order.json"))) as? [String: Any]
        let order = try #require(orderJSON?["order"] as? [String])
        let maxShard = try #require((orderJSON?["max_shard_size"] as? NSNumber)?.intValue)
        let c = try SafeTensorsCollection(path: src)
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try ShardedSafeTensorsWriter(directory: dir, maxShardBytes: maxShard, metadata: ["format": "pt"])
        for name in order {
            let e = try #require(try c.entry(name))
            try w.add(WritableTensor(name: name, dtype: e.dtype, shape: e.shape, bytes: Array(try c.rawBytes(name))))
        }
        try w.finish()
        let want = try FileManager.default.contentsOfDirectory(atPath: src.path).filter { $0 != "order.json" }.sorted()
        let got = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(got == want)
        for name in want {
            Self.expectIdentical(try TestSupport.bytes(dir.appendingPathComponent(name)),
                                 try TestSupport.bytes(src.appendingPathComponent(name)), "\(folder)/\(name)")
        }
    }

    @Test func shardedWriterSingleShardIsModelSafetensors() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A stale index and shards from an earlier save must not shadow the new single file.
        try Data("{}".utf8).write(to: dir.appendingPathComponent(SafeTensorsCollection.indexFileName))
        try Data("x".utf8).write(to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try Data("x".utf8).write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        try Data("keep".utf8).write(to: dir.appendingPathComponent("config.json"))
        let w = try ShardedSafeTensorsWriter(directory: dir, maxShardBytes: 1 << 30)
        try w.add(WritableTensor(name: "b", shape: [2], floats: [1, 2], as: .bf16))
        try w.add(WritableTensor(name: "a", shape: [3], floats: [3, 4, 5]))
        try w.finish()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["config.json", "model.safetensors"])
        let c = try SafeTensorsCollection(path: dir)
        #expect(c.names == ["a", "b"])
        #expect(try c.floats("b") == [1, 2])
        #expect(try c.floats("a") == [3, 4, 5])
    }

    @Test func shardedWriterRoundTripsManyShards() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Stale shards of an earlier, bigger save are removed.
        try Data("x".utf8).write(to: dir.appendingPathComponent("model-00099-of-00099.safetensors"))
        let w = try ShardedSafeTensorsWriter(directory: dir, maxShardBytes: 100)
        var all: [String: [Float]] = [:]
        for i in 0..<20 {
            let v = (0..<(i % 7 * 5)).map { Float($0 + i) }
            all["t\(i)"] = v
            try w.add(WritableTensor(name: "t\(i)", shape: [v.count], floats: v))
        }
        TestSupport.expectError(.badWrite, mentions: ["\"t3\"", "added twice"]) {
            try w.add(WritableTensor(name: "t3", shape: [1], floats: [0]))
        }
        try w.finish()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(files.contains(SafeTensorsCollection.indexFileName))
        #expect(!files.contains { $0.hasPrefix(".") }, "temp files left: \(files)")
        #expect(!files.contains("model-00099-of-00099.safetensors"))
        #expect(files.filter { ShardedSafeTensorsWriter.isShardName($0) }.count == files.count - 1)
        let c = try SafeTensorsCollection(path: dir)
        #expect(c.names.count == 20)
        for (k, v) in all { #expect(try c.floats(k) == v) }
    }
}
