import Foundation

/// A string compared and hashed by its exact Unicode scalars (UTF-8 bytes).
///
/// Swift's `String` equality is canonical equivalence, so "é" (U+00E9) and "e\u{301}" are one dictionary
/// key; tokenizer vocabularies may hold both as different tokens, so every vocabulary map uses this key.
struct ExactString: Hashable {
    let s: String
    init(_ s: String) { self.s = s }
    static func == (a: ExactString, b: ExactString) -> Bool { a.s.utf8.elementsEqual(b.s.utf8) }
    func hash(into h: inout Hasher) {
        var s = self.s
        s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// A token -> id map keyed by exact strings.
struct Vocab {
    private(set) var map: [ExactString: Int] = [:]
    init() {}
    init(minimumCapacity n: Int) { map.reserveCapacity(n) }
    subscript(_ s: String) -> Int? {
        get { map[ExactString(s)] }
        set { map[ExactString(s)] = newValue }
    }
    var count: Int { map.count }
    /// (token, id) pairs in id order.
    var sortedPairs: [(String, Int)] { map.map { ($0.key.s, $0.value) }.sorted { $0.1 < $1.1 } }
}

/// The key under which a parsed object keeps all its (key, value) pairs when two keys are canonically equal.
let exactPairsKey = "\u{0}pairs"

/// A small JSON parser that keeps keys that Swift considers equal (see `ExactString`).
///
/// Produces Foundation-style values: `[String: Any]`, `[Any]`, `String`, `NSNumber` (numbers and booleans), `NSNull`.
/// An object whose keys collide also gets `exactPairsKey` -> `[(String, Any)]` with every pair in file order.
struct JSONParser {
    private let b: [UInt8]
    private var i = 0
    private let file: String

    static func parse(_ data: Data, file: String) throws -> Any {
        var p = JSONParser(b: [UInt8](data), file: file)
        p.ws()
        let v = try p.value(depth: 0)
        p.ws()
        guard p.i == p.b.count else { throw p.fail("unexpected text after the JSON value") }
        return v
    }

    private init(b: [UInt8], file: String) { self.b = b; self.file = file }

    private func fail(_ why: String) -> TokenizerError {
        var line = 1
        for k in 0..<min(i, b.count) where b[k] == 10 { line += 1 }
        return .invalidJSON(file: file, reason: "\(why) at line \(line), byte \(i)")
    }

    private mutating func ws() { while i < b.count, b[i] == 32 || b[i] == 10 || b[i] == 13 || b[i] == 9 { i += 1 } }

    private mutating func value(depth: Int) throws -> Any {
        guard depth < 512 else { throw fail("nesting too deep") }
        guard i < b.count else { throw fail("unexpected end of file (truncated?)") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var dict: [String: Any] = [:]
            var pairs: [(String, Any)] = []
            ws()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return dict }
            while true {
                ws()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let k = try string()
                ws()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1; ws()
                let v = try value(depth: depth + 1)
                dict[k] = v
                pairs.append((k, v))
                ws()
                guard i < b.count else { throw fail("unexpected end of file in an object (truncated?)") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; break }
                throw fail("expected ',' or '}'")
            }
            if dict.count < pairs.count { dict[exactPairsKey] = pairs }
            return dict
        case UInt8(ascii: "["):
            i += 1
            var arr: [Any] = []
            ws()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return arr }
            while true {
                ws()
                arr.append(try value(depth: depth + 1))
                ws()
                guard i < b.count else { throw fail("unexpected end of file in an array (truncated?)") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; break }
                throw fail("expected ',' or ']'")
            }
            return arr
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"): try literal("true"); return NSNumber(value: true)
        case UInt8(ascii: "f"): try literal("false"); return NSNumber(value: false)
        case UInt8(ascii: "n"): try literal("null"); return NSNull()
        default: return try number()
        }
    }

    private mutating func literal(_ s: String) throws {
        let u = Array(s.utf8)
        guard i + u.count <= b.count, Array(b[i..<(i + u.count)]) == u else { throw fail("invalid literal") }
        i += u.count
    }

    private mutating func number() throws -> NSNumber {
        let start = i
        var isInt = true
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        while i < b.count {
            let c = b[i]
            if c >= 48 && c <= 57 { i += 1 } else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { isInt = false; i += 1 } else { break }
        }
        let s = String(decoding: b[start..<i], as: UTF8.self)
        if isInt, let v = Int(s) { return NSNumber(value: v) }
        guard !s.isEmpty, let d = Double(s) else { throw fail("invalid value") }
        return NSNumber(value: d)
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count, let v = UInt32(String(decoding: b[i..<(i + 4)], as: UTF8.self), radix: 16) else { throw fail("invalid \\u escape") }
        i += 4
        return v
    }

    private mutating func string() throws -> String {
        i += 1
        let start = i
        // Fast path: no escapes.
        while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\") { i += 1 }
        guard i < b.count else { throw fail("unterminated string (truncated?)") }
        if b[i] == UInt8(ascii: "\"") {
            defer { i += 1 }
            guard let s = String(validating: b[start..<i], as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            return s
        }
        var out = Array(b[start..<i])
        while true {
            guard i < b.count else { throw fail("unterminated string (truncated?)") }
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { throw fail("unterminated escape") }
            let e = b[i]; i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(34)
            case UInt8(ascii: "\\"): out.append(92)
            case UInt8(ascii: "/"): out.append(47)
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "u"):
                var v = try hex4()
                if v >= 0xD800 && v < 0xDC00, i + 6 <= b.count, b[i] == 92, b[i + 1] == UInt8(ascii: "u") {
                    let save = i
                    i += 2
                    let lo = try hex4()
                    if lo >= 0xDC00 && lo < 0xE000 { v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00) } else { i = save }
                }
                let scalar = Unicode.Scalar(v) ?? "\u{FFFD}" // a lone surrogate becomes U+FFFD, as serde_json does lossily
                UTF8.encode(scalar) { out.append($0) }
            default: throw fail("invalid escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return s
    }
}

/// A JSON encoder that writes vocabularies key by key (exact strings) and sorts object keys.
enum JSONEncoderExact {
    /// A vocabulary to write as an object in id order.
    struct VocabObject { var pairs: [(String, Int)] }

    static func encode(_ v: Any) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        write(v, &out)
        return Data(out)
    }

    private static func write(_ v: Any, _ out: inout [UInt8]) {
        switch v {
        case let s as String: string(s, &out)
        case let vo as VocabObject:
            out.append(UInt8(ascii: "{"))
            for (k, (t, id)) in vo.pairs.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                string(t, &out); out.append(UInt8(ascii: ":")); out += Array(String(id).utf8)
            }
            out.append(UInt8(ascii: "}"))
        case let d as [String: Any]:
            out.append(UInt8(ascii: "{"))
            for (k, key) in d.keys.sorted().enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                string(key, &out); out.append(UInt8(ascii: ":")); write(d[key]!, &out)
            }
            out.append(UInt8(ascii: "}"))
        case let a as [Any]:
            out.append(UInt8(ascii: "["))
            for (k, x) in a.enumerated() { if k > 0 { out.append(UInt8(ascii: ",")) }; write(x, &out) }
            out.append(UInt8(ascii: "]"))
        case let b as Bool: out += Array((b ? "true" : "false").utf8)
        case let n as Int: out += Array(String(n).utf8)
        case let f as Float: out += Array(Double(f).description.utf8)
        case let f as Double: out += Array((f.isFinite ? f.description : "0").utf8)
        case let n as NSNumber:
            if JSONObject.isBool(n) { out += Array((n.boolValue ? "true" : "false").utf8) } else if let i = Int(exactly: n.doubleValue) { out += Array(String(i).utf8) } else { out += Array(n.doubleValue.description.utf8) }
        default: out += Array("null".utf8)
        }
    }

    private static func string(_ s: String, _ out: inout [UInt8]) {
        out.append(34)
        for c in s.utf8 {
            switch c {
            case 34: out += [92, 34]
            case 92: out += [92, 92]
            case 10: out += [92, UInt8(ascii: "n")]
            case 13: out += [92, UInt8(ascii: "r")]
            case 9: out += [92, UInt8(ascii: "t")]
            case 0..<32: out += Array(String(format: "\\u%04x", c).utf8)
            default: out.append(c)
            }
        }
        out.append(34)
    }
}
