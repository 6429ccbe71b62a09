import Foundation

/// An error reading JSON: names the source, the byte offset (line and column) and what is wrong.
public struct JSONReadError: Error, CustomStringConvertible, Sendable {
    /// Where the text came from (a file path or a description).
    public let source: String
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String {
        "\(source):\(line):\(column): invalid JSON: \(message). Fix the JSON (it must be plain UTF-8 JSON) and try again."
    }
}

extension JinjaValue {
    /// Parses JSON text into a value, keeping object keys in their order (as Python's `json.loads`).
    ///
    /// Numbers without a fraction or exponent become `.int` (as Python), others `.double`.
    /// Duplicate keys keep the last value (as Python). `source` names the input in errors.
    public static func parseJSON(_ text: String, source: String = "<json>") throws -> JinjaValue {
        var reader = JSONReader(bytes: Array(text.utf8), source: source)
        reader.skipSpace()
        let value = try reader.readValue(depth: 0)
        reader.skipSpace()
        if reader.pos < reader.bytes.count { throw reader.error("unexpected text after the JSON value") }
        return value
    }

    /// Parses JSON bytes (UTF-8).
    public static func parseJSON(_ data: Data, source: String = "<json>") throws -> JinjaValue {
        guard let text = String(data: data, encoding: .utf8) else {
            throw JSONReadError(source: source, line: 1, column: 1, message: "the file is not valid UTF-8")
        }
        return try parseJSON(text, source: source)
    }
}

/// A small recursive-descent JSON reader over UTF-8 bytes.
private struct JSONReader {
    let bytes: [UInt8]
    let source: String
    var pos = 0
    static let maxDepth = 512

    init(bytes: [UInt8], source: String) {
        self.bytes = bytes
        self.source = source
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }
    }

    func error(_ message: String) -> JSONReadError {
        var line = 1, col = 1
        for b in bytes[..<min(pos, bytes.count)] {
            if b == UInt8(ascii: "\n") { line += 1; col = 1 } else if b & 0xC0 != 0x80 { col += 1 }
        }
        return JSONReadError(source: source, line: line, column: col, message: message)
    }

    mutating func skipSpace() {
        while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
    }

    mutating func readValue(depth: Int) throws -> JinjaValue {
        guard depth < JSONReader.maxDepth else { throw error("nesting deeper than \(JSONReader.maxDepth)") }
        guard pos < bytes.count else { throw error("unexpected end of input") }
        switch bytes[pos] {
        case UInt8(ascii: "{"):
            pos += 1
            var dict = JinjaDict()
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .dict(dict) }
            while true {
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let key = try readString()
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
                pos += 1
                skipSpace()
                let v = try readValue(depth: depth + 1)
                dict[key] = v
                skipSpace()
                guard pos < bytes.count else { throw error("unexpected end of input in an object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .dict(dict) }
                throw error("expected ',' or '}' in an object")
            }
        case UInt8(ascii: "["):
            pos += 1
            var arr: [JinjaValue] = []
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(arr) }
            while true {
                skipSpace()
                arr.append(try readValue(depth: depth + 1))
                skipSpace()
                guard pos < bytes.count else { throw error("unexpected end of input in an array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(arr) }
                throw error("expected ',' or ']' in an array")
            }
        case UInt8(ascii: "\""):
            return .string(try readString())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .none)
        case UInt8(ascii: "N"): return try literal("NaN", .double(.nan))
        case UInt8(ascii: "I"): return try literal("Infinity", .double(.infinity))
        default:
            return try readNumber()
        }
    }

    mutating func literal(_ word: String, _ value: JinjaValue) throws -> JinjaValue {
        let w = Array(word.utf8)
        guard pos + w.count <= bytes.count, Array(bytes[pos..<pos + w.count]) == w else { throw error("unexpected character") }
        pos += w.count
        return value
    }

    mutating func readNumber() throws -> JinjaValue {
        let start = pos
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") {
            pos += 1
            if pos + 8 <= bytes.count, String(decoding: bytes[pos..<pos + 8], as: UTF8.self) == "Infinity" {
                pos += 8
                return .double(-.infinity)
            }
        }
        var isFloat = false
        let digitsStart = pos
        while pos < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[pos]) { pos += 1 }
        if pos == digitsStart { throw error("unexpected character") }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            isFloat = true
            pos += 1
            let f = pos
            while pos < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[pos]) { pos += 1 }
            if pos == f { throw error("expected digits after '.'") }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            isFloat = true
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            let f = pos
            while pos < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[pos]) { pos += 1 }
            if pos == f { throw error("expected digits in an exponent") }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if !isFloat, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { throw error("bad number \(text)") }
        return .double(d)
    }

    mutating func readHex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[pos..<pos + 4], as: UTF8.self), radix: 16) else {
            throw error("bad \\u escape")
        }
        pos += 4
        return v
    }

    mutating func readString() throws -> String {
        pos += 1  // opening quote
        var out = [UInt8]()
        while true {
            guard pos < bytes.count else { throw error("unterminated string") }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") { pos += 1; break }
            if b < 0x20 { throw error("control character in a string (escape it)") }
            if b != UInt8(ascii: "\\") { out.append(b); pos += 1; continue }
            pos += 1
            guard pos < bytes.count else { throw error("unterminated escape") }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var v = try readHex4()
                if (0xD800..<0xDC00).contains(v), pos + 6 <= bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                    let save = pos
                    pos += 2
                    let lo = try readHex4()
                    if (0xDC00..<0xE000).contains(lo) {
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        pos = save
                    }
                }
                // A lone surrogate cannot live in a Swift string: use U+FFFD.
                let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(scalar).utf8))
            default:
                throw error("bad escape \\\(Character(Unicode.Scalar(e)))")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
        return s
    }
}

// MARK: - json.dumps

/// Python's `json.dumps(x, ensure_ascii=..., indent=..., separators=..., sort_keys=...)`.
struct PythonJSON {
    var ensureASCII = false
    /// nil: single line; otherwise the indent unit (spaces for an int, the string itself).
    var indent: String? = nil
    var itemSeparator: String
    var keySeparator: String
    var sortKeys = false

    init(ensureASCII: Bool = false, indent: String? = nil, separators: (String, String)? = nil, sortKeys: Bool = false) {
        self.ensureASCII = ensureASCII
        self.indent = indent
        self.sortKeys = sortKeys
        if let separators {
            itemSeparator = separators.0
            keySeparator = separators.1
        } else {
            itemSeparator = indent == nil ? ", " : ","
            keySeparator = ": "
        }
    }

    /// Serializes a value; throws a message for values JSON cannot hold (undefined, callables).
    func dumps(_ v: JinjaValue) throws -> String {
        var out = ""
        try write(v, level: 0, into: &out)
        return out
    }

    private func write(_ v: JinjaValue, level: Int, into out: inout String) throws {
        switch v {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += PythonFloat.repr(d) }
        case .string(let s): out += quote(s)
        case .array(let a), .tuple(let a):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (i, x) in a.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1, &out)
                try write(x, level: level + 1, into: &out)
            }
            newline(level, &out)
            out += "]"
        case .dict(let d):
            try writeDict(d.pairs, level: level, into: &out)
        case .namespace(let ns):
            try writeDict(ns.attributes.pairs, level: level, into: &out)
        case .undefined:
            throw TemplateFailure.type("Object of type Undefined is not JSON serializable")
        case .callable:
            throw TemplateFailure.type("Object of type function is not JSON serializable")
        }
    }

    private func writeDict(_ pairsIn: [(String, JinjaValue)], level: Int, into out: inout String) throws {
        if pairsIn.isEmpty { out += "{}"; return }
        let pairs = sortKeys ? pairsIn.sorted { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) } : pairsIn
        out += "{"
        for (i, (k, x)) in pairs.enumerated() {
            if i > 0 { out += itemSeparator }
            newline(level + 1, &out)
            out += quote(k)
            out += keySeparator
            try write(x, level: level + 1, into: &out)
        }
        newline(level, &out)
        out += "}"
    }

    private func newline(_ level: Int, _ out: inout String) {
        guard let indent else { return }
        out += "\n"
        for _ in 0..<level { out += indent }
    }

    /// A JSON string literal as Python writes it.
    func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || (ensureASCII && u.value > 0x7E) {
                    if u.value > 0xFFFF {
                        let v = u.value - 0x10000
                        out += String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
                    } else {
                        out += String(format: "\\u%04x", u.value)
                    }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
