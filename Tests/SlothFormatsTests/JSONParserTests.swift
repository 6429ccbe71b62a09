import Foundation
import Testing
@testable import SlothFormats

/// The strict JSON reader used for headers and indexes, checked against Foundation's JSONSerialization.
@Suite struct JSONParserTests {
    /// Converts a JSONSerialization result into the reader's value type (integers stay exact when they are integers).
    static func convert(_ any: Any) -> JSONValue? {
        switch any {
        case let d as [String: Any]:
            var out: [String: JSONValue] = [:]
            for (k, v) in d { guard let c = convert(v) else { return nil }; out[k] = c }
            return .object(out)
        case let a as [Any]:
            var out: [JSONValue] = []
            for v in a { guard let c = convert(v) else { return nil }; out.append(c) }
            return .array(out)
        case let s as String: return .string(s)
        case is NSNull: return .null
        case let n as NSNumber:
            return .bool(n.boolValue)  // `documents` hold no numbers (checked in integersAreExact), so this is true/false
        default: return nil
        }
    }

    static let documents: [String] = [
        #"{}"#, #"[]"#, #"  {"a" : "b" }  "#,
        #"{"esc": "q\"b\\s\/n\nt\tr\rf\fb\bu\u0041\u00e9\u4e2d\ud83d\ude00"}"#,
        #"{"nested": {"x": [{"y": []}, {}, [[["deep"]]]]}, "t": true, "f": false, "n": null}"#,
        #"{"raw utf8 é 中 😀": "ok", "": ""}"#,
        #"["a", "b", {"c": ["d"]}]"#,
    ]

    @Test(arguments: documents)
    func agreesWithJSONSerialization(text: String) throws {
        let ours = try JSONParser.parse(Array(text.utf8))
        let theirs = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        let converted = try #require(Self.convert(theirs))
        #expect(ours == converted, "ours \(ours) vs Foundation \(converted)")
    }

    @Test func integersAreExact() throws {
        // Integers beyond 2^53 must not round through Double.
        let v = try JSONParser.parse(Array("[0, -1, 9007199254740993, 9223372036854775807, -9223372036854775808, 9223372036854775808, 1.5, 1e3, -0]".utf8))
        let numbers = (try JSONSerialization.jsonObject(with: Data("[0, -1, 9007199254740993, 9223372036854775807]".utf8)) as? [NSNumber]) ?? []
        #expect(v == .array([.int(0), .int(-1), .int(9007199254740993), .int(numbers[3].intValue), .int(Int.min),
                             .number("9223372036854775808"), .number("1.5"), .number("1e3"), .int(0)]))
        #expect(numbers[2].int64Value == 9007199254740993)
    }

    /// Duplicate tensor names / entry fields are errors; deeper (ignored) objects keep the last value, as serde_json does.
    @Test func duplicateKeysByDepth() throws {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(#"{"a":{"b":{"c":1,"c":2}}}"#.utf8), duplicateKeysRejectedUpToDepth: 2) }
        #expect(try JSONParser.parse(Array(#"{"a":{"b":{"c":1,"c":2}}}"#.utf8), duplicateKeysRejectedUpToDepth: 1)
                == .object(["a": .object(["b": .object(["c": .int(2)])])]))
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(#"{"a":1,"a":1}"#.utf8), duplicateKeysRejectedUpToDepth: 0) }
    }

    @Test func serdeAndPythonStringEscapes() throws {
        // Round trip through our reader; the byte-exact forms are checked against Python's writers in SafeTensorsWriteTests.
        let s = "q\"b\\n\nt\tc\u{01}\u{7f}é中😀/"
        for write in [JSONWriter.appendSerdeString, JSONWriter.appendPythonString] {
            var out: [UInt8] = []
            write(s, &out)
            #expect(try JSONParser.parse(out) == .string(s))
        }
        var py: [UInt8] = []
        JSONWriter.appendPythonString(s, to: &py)
        #expect(py.allSatisfy { $0 < 0x80 }, "ensure_ascii output must be ASCII")
    }
}

/// Many threads reading a lazily opened sharded collection.
@Suite struct CollectionConcurrencyTests {
    @Test func concurrentReadsAgree() throws {
        let c = try SafeTensorsCollection(path: TestSupport.fixture("sharded_big"))
        let names = c.names
        let expected = try names.map { try SafeTensorsCollection(path: TestSupport.fixture("sharded_big")).floats($0) }
        let lock = NSLock()
        var failures = 0
        DispatchQueue.concurrentPerform(iterations: 200) { i in
            let k = (i * 7) % names.count
            let ok = (try? c.floats(names[k])) == expected[k]
            if !ok { lock.lock(); failures += 1; lock.unlock() }
        }
        #expect(failures == 0)
    }
}

/// Which JSON values the reference parser (safetensors 0.8.0 / serde_json) accepts inside a header.
@Suite struct JSONVerdictTests {
    @Test func agreesWithSafetensorsOnEveryCase() throws {
        let data = try Data(contentsOf: TestSupport.fixture("json_verdicts.json"))
        let cases = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(cases.count >= 30)
        var disagreements: [String] = []
        for c in cases {
            let value = try #require(c["value"] as? String)
            let accepted = try #require(c["accepted"] as? Bool)
            let header = #"{"t":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"x":"# + value + "}}"
            let bytes = TestSupport.file(header: header)
            let ours = bytes.withUnsafeBytes { (try? SafeTensorsHeader.parse($0, file: "case")) != nil }
            if ours != accepted { disagreements.append("\(value.debugDescription): safetensors \(accepted), ours \(ours)") }
        }
        print("JSON verdicts: \(cases.count) cases, \(disagreements.count) disagreements with safetensors")
        #expect(disagreements.isEmpty, "\(disagreements)")
    }
}
