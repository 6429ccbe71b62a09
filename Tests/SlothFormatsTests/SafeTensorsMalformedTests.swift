import Foundation
import Testing
@testable import SlothFormats
import SlothCore

/// One malformed file per validation rule: each must throw a SafeTensorsError naming the problem, never crash.
@Suite struct SafeTensorsMalformedTests {
    /// A bad file, the error kind it must raise, and strings the error text must contain.
    struct Case: CustomTestStringConvertible, Sendable {
        let label: String
        let bytes: [UInt8]
        let kind: SafeTensorsError.Kind
        let mentions: [String]
        var testDescription: String { label }
    }

    static let f32x2 = [UInt8](repeating: 0, count: 8)

    static let cases: [Case] = [
        Case(label: "shorter than 8 bytes", bytes: [1, 2, 3], kind: .fileTooShort, mentions: ["3 bytes", "shorter than the 8-byte"]),
        Case(label: "header length beyond the file", bytes: TestSupport.file(header: "{}", length: 100), kind: .badHeaderLength,
             mentions: ["header length 100", "larger than the rest of the file"]),
        Case(label: "absurd header length", bytes: TestSupport.file(header: "{}", length: 1 << 40), kind: .badHeaderLength,
             mentions: ["absurd"]),
        Case(label: "empty header", bytes: TestSupport.file(header: ""), kind: .badHeaderJSON, mentions: ["not valid JSON", "unexpected end"]),
        Case(label: "header invalid UTF-8 bytes", bytes: [2, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFE], kind: .badHeaderJSON, mentions: ["UTF-8"]),
        Case(label: "header not JSON", bytes: TestSupport.file(header: "{\"a\": "), kind: .badHeaderJSON, mentions: ["not valid JSON"]),
        Case(label: "header not an object", bytes: TestSupport.file(header: "[1, 2]"), kind: .badHeaderJSON, mentions: ["an array", "expected a JSON object"]),
        Case(label: "duplicate tensor name", bytes: TestSupport.file(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, data: [1, 2]),
             kind: .badHeaderJSON, mentions: ["duplicate key \"a\""]),
        Case(label: "entry not an object", bytes: TestSupport.file(header: #"{"w":[1]}"#), kind: .badEntry, mentions: ["\"w\"", "an array"]),
        Case(label: "missing dtype", bytes: TestSupport.file(header: #"{"w":{"shape":[2],"data_offsets":[0,8]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["tensor \"w\"", "field \"dtype\"", "missing"]),
        Case(label: "missing shape", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","data_offsets":[0,8]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["tensor \"w\"", "field \"shape\"", "missing"]),
        Case(label: "missing data_offsets", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[2]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["tensor \"w\"", "field \"data_offsets\"", "missing"]),
        Case(label: "dtype not a string", bytes: TestSupport.file(header: #"{"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["field \"dtype\"", "a number", "expected a string"]),
        Case(label: "shape not an array", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["field \"shape\"", "a string"]),
        Case(label: "shape not integers", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["field \"shape\"", "not an integer"]),
        Case(label: "data_offsets wrong type", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":{"begin":0}}}"#, data: f32x2),
             kind: .badEntry, mentions: ["field \"data_offsets\"", "[begin, end]"]),
        Case(label: "data_offsets not a pair", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["field \"data_offsets\"", "[begin, end]"]),
        Case(label: "unknown dtype", bytes: TestSupport.file(header: #"{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#, data: [0, 0]),
             kind: .unknownDType, mentions: ["tensor \"w\"", "unsupported dtype \"F8_E4M3\"", "BF16"]),
        Case(label: "negative dimension", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["field \"shape\"", "negative (-2)"]),
        Case(label: "overflowing shape", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["field \"shape\"", "more elements than can be addressed"]),
        Case(label: "shape beyond Int", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#, data: f32x2),
             kind: .badEntry, mentions: ["field \"shape\"", "not an integer"]),
        Case(label: "begin after end", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: f32x2),
             kind: .badOffsets, mentions: ["field \"data_offsets\"", "[8, 0] is not a valid range"]),
        Case(label: "negative begin", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, data: f32x2),
             kind: .badOffsets, mentions: ["field \"data_offsets\"", "not a valid range"]),
        Case(label: "byte count != shape x dtype", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: f32x2),
             kind: .badOffsets, mentions: ["tensor \"w\"", "holds 4 bytes", "needs 8"]),
        Case(label: "truncated data section", bytes: TestSupport.file(header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: f32x2),
             kind: .badOffsets, mentions: ["tensor \"w\"", "past the end of the data section (8 bytes)", "truncated"]),
        Case(label: "overlapping tensors", bytes: TestSupport.file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: f32x2 + f32x2),
             kind: .overlap, mentions: ["tensor \"b\"", "overlap tensor \"a\""]),
        Case(label: "metadata not an object", bytes: TestSupport.file(header: #"{"__metadata__":["x"]}"#), kind: .badMetadata,
             mentions: ["field \"__metadata__\"", "an array"]),
        Case(label: "metadata value not a string", bytes: TestSupport.file(header: #"{"__metadata__":{"format":1}}"#), kind: .badMetadata,
             mentions: ["field \"__metadata__\"", "key \"format\"", "expected a string"]),
        Case(label: "deeply nested JSON", bytes: TestSupport.file(header: String(repeating: "[", count: 100_000)), kind: .badHeaderJSON,
             mentions: ["nesting deeper"]),
        Case(label: "lone surrogate", bytes: TestSupport.file(header: #"{"\ud800":1}"#), kind: .badHeaderJSON, mentions: ["surrogate"]),
    ]

    @Test(arguments: cases)
    func malformedFileIsRejected(_ c: Case) throws {
        let url = try TestSupport.write(c.bytes)
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        TestSupport.expectError(c.kind, mentions: [url.path] + c.mentions) {
            _ = try SafeTensorsFile(url: url)
        }
    }

    @Test func missingFileIsAnIOError() {
        TestSupport.expectError(.io, mentions: ["/no/such/file.safetensors", "cannot open"]) {
            _ = try SafeTensorsFile(url: URL(fileURLWithPath: "/no/such/file.safetensors"))
        }
    }

    @Test func wrongDTypeAndCountAreReported() throws {
        let f = try SafeTensorsFile(url: TestSupport.fixture("i64_meta.safetensors"))
        TestSupport.expectError(.wrongDType, mentions: ["tensor \"ids\"", "I64", "rawBytes"]) { _ = try f.floats("ids") }
        TestSupport.expectError(.missingTensor, mentions: ["tensor \"nope\"", "no such tensor"]) { _ = try f.rawBytes("nope") }
        let g = try SafeTensorsFile(url: TestSupport.fixture("f32.safetensors"))
        var small = [Float](repeating: 0, count: 3)
        TestSupport.expectError(.countMismatch, mentions: ["tensor \"b\"", "holds 3 floats", "has 7"]) {
            try small.withUnsafeMutableBufferPointer { try g.readFloats("b", into: $0) }
        }
    }

    /// Copies the 2-shard fixture into a temp folder and lets `edit` break it.
    static func brokenShardFolder(_ edit: (URL) throws -> Void) throws -> URL {
        let dir = try TestSupport.tempDir()
        for name in try FileManager.default.contentsOfDirectory(atPath: TestSupport.fixture("sharded2").path) {
            try FileManager.default.copyItem(at: TestSupport.fixture("sharded2").appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        try edit(dir)
        return dir
    }

    static func setIndex(_ dir: URL, _ text: String) throws {
        try Data(text.utf8).write(to: dir.appendingPathComponent(SafeTensorsCollection.indexFileName))
    }

    @Test func indexNotJSON() throws {
        let dir = try Self.brokenShardFolder { try Self.setIndex($0, "{\"weight_map\": {") }
        defer { try? FileManager.default.removeItem(at: dir) }
        TestSupport.expectError(.badIndex, mentions: ["model.safetensors.index.json", "not valid JSON"]) {
            _ = try SafeTensorsCollection(path: dir)
        }
    }

    @Test func indexWithoutWeightMap() throws {
        let dir = try Self.brokenShardFolder { try Self.setIndex($0, "{\"metadata\": {}}") }
        defer { try? FileManager.default.removeItem(at: dir) }
        TestSupport.expectError(.badIndex, mentions: ["field \"weight_map\"", "missing"]) { _ = try SafeTensorsCollection(path: dir) }
    }

    @Test func indexWeightMapWrongType() throws {
        let dir = try Self.brokenShardFolder { try Self.setIndex($0, "{\"weight_map\": {\"a\": 3}}") }
        defer { try? FileManager.default.removeItem(at: dir) }
        TestSupport.expectError(.badIndex, mentions: ["tensor \"a\"", "field \"weight_map\"", "a number"]) { _ = try SafeTensorsCollection(path: dir) }
    }

    @Test func indexNamesMissingShard() throws {
        let dir = try Self.brokenShardFolder { dir in
            try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        TestSupport.expectError(.badIndex, mentions: ["model-00002-of-00002.safetensors", "missing", "download is incomplete"]) {
            _ = try SafeTensorsCollection(path: dir)
        }
    }

    @Test func indexShardPathOutsideFolder() throws {
        let dir = try Self.brokenShardFolder { try Self.setIndex($0, "{\"weight_map\": {\"a\": \"../x.safetensors\"}}") }
        defer { try? FileManager.default.removeItem(at: dir) }
        TestSupport.expectError(.badIndex, mentions: ["\"../x.safetensors\"", "not a plain file name"]) { _ = try SafeTensorsCollection(path: dir) }
    }

    @Test func tensorListedInIndexButAbsentFromShard() throws {
        let dir = try Self.brokenShardFolder { dir in
            let url = dir.appendingPathComponent(SafeTensorsCollection.indexFileName)
            var text = try String(contentsOf: url, encoding: .utf8)
            text = text.replacingOccurrences(of: "\"lm_head.weight\": \"model-00002-of-00002.safetensors\"",
                                             with: "\"lm_head.weight\": \"model-00001-of-00002.safetensors\"")
            try Data(text.utf8).write(to: url)
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try SafeTensorsCollection(path: dir)
        TestSupport.expectError(.badIndex, mentions: ["tensor \"lm_head.weight\"", "model-00001-of-00002.safetensors", "does not contain it"]) {
            _ = try c.floats("lm_head.weight")
        }
        // Other tensors still load.
        #expect(try c.floats("model.norm.weight").count == 8)
    }

    @Test func corruptShardIsReportedOnFirstUse() throws {
        let dir = try Self.brokenShardFolder { dir in
            try Data([1, 2, 3]).write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try SafeTensorsCollection(path: dir)
        TestSupport.expectError(.fileTooShort, mentions: ["model-00002-of-00002.safetensors"]) { _ = try c.floats("lm_head.weight") }
    }

    @Test func folderWithoutWeights() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        TestSupport.expectError(.noWeights, mentions: [dir.path, "no model.safetensors.index.json"]) { _ = try SafeTensorsCollection(path: dir) }
    }
}
