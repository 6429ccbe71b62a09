/// A small strict JSON reader and the two JSON writers the formats need.
///
/// The reader exists (instead of Foundation's JSONSerialization) so that every byte of an untrusted
/// header is checked by code we fuzz: exact integers (no silent Double rounding), duplicate keys
/// rejected, nesting depth bounded, invalid UTF-8 and lone surrogates rejected.
enum JSONValue: Equatable {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    /// An integer literal that fits in Int.
    case int(Int)
    /// Any other number literal (fraction, exponent, or out of Int range), kept as written.
    case number(String)
    case bool(Bool)
    case null

    /// A short name of the value's kind for error messages ("a string", "an array"...).
    var kindName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .int, .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }
}

/// Why a JSON text was rejected, with the byte offset.
struct JSONParseError: Error {
    let offset: Int
    let message: String
}

/// Parses JSON text from bytes; trailing whitespace is allowed, anything else after the value is not.
struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var pos = 0
    private let maxDepth: Int
    private let strictKeysDepth: Int

    /// Parses one complete JSON document.
    ///
    /// Duplicate keys are an error in objects at depth <= `duplicateKeysRejectedUpToDepth` (the root is depth 0);
    /// deeper, the last value wins (as serde_json does for fields it ignores).
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64, duplicateKeysRejectedUpToDepth: Int = .max) throws -> JSONValue {
        var p = JSONParser(bytes: bytes, maxDepth: maxDepth, strictKeysDepth: duplicateKeysRejectedUpToDepth)
        p.skipWhitespace()
        let value = try p.parseValue(depth: 0)
        p.skipWhitespace()
        if p.pos != bytes.count { throw p.fail("unexpected data after the JSON value") }
        return value
    }

    /// Parses one complete JSON document held in an array.
    static func parse(_ bytes: [UInt8], maxDepth: Int = 64, duplicateKeysRejectedUpToDepth: Int = .max) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0, maxDepth: maxDepth, duplicateKeysRejectedUpToDepth: duplicateKeysRejectedUpToDepth) }
    }

    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int, strictKeysDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.strictKeysDepth = strictKeysDepth
    }

    private func fail(_ message: String) -> JSONParseError {
        JSONParseError(offset: pos, message: message)
    }

    private var atEnd: Bool { pos >= bytes.count }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard !atEnd, bytes[pos] == byte else { throw fail("expected \(what)") }
        pos += 1
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth) levels") }
        guard !atEnd else { throw fail("unexpected end of JSON") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try parseLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected character")
        }
    }

    private mutating func parseLiteral(_ word: String) throws {
        let w = Array(word.utf8)
        guard bytes.count - pos >= w.count else { throw fail("unexpected end of JSON") }
        for i in 0..<w.count where bytes[pos + i] != w[i] { throw fail("invalid literal") }
        pos += w.count
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        pos += 1
        var dict: [String: JSONValue] = [:]
        skipWhitespace()
        if !atEnd, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(dict) }
        while true {
            skipWhitespace()
            guard !atEnd, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyOffset = pos
            let key = try parseString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':'")
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            if dict.updateValue(value, forKey: key) != nil, depth <= strictKeysDepth {
                throw JSONParseError(offset: keyOffset, message: "duplicate key \"\(key)\"")
            }
            skipWhitespace()
            guard !atEnd else { throw fail("unexpected end of JSON in an object") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(dict) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if !atEnd, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard !atEnd else { throw fail("unexpected end of JSON in an array") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard bytes.count - pos >= 4 else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    private mutating func parseString() throws -> String {
        pos += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard !atEnd else { throw fail("unterminated string") }
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { pos += 1; break }
            if c < 0x20 { throw fail("control character in a string (must be escaped)") }
            if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
            pos += 1
            guard !atEnd else { throw fail("unterminated escape") }
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
                var scalar = try parseHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard bytes.count - pos >= 2, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                        throw fail("lone surrogate in \\u escape")
                    }
                    pos += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("invalid surrogate pair") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw fail("lone surrogate in \\u escape")
                }
                guard let u = Unicode.Scalar(scalar), let encoded = UTF8.encode(u) else { throw fail("invalid \\u escape") }
                out.append(contentsOf: encoded)
            default:
                throw fail("invalid escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return s
    }

    private mutating func parseNumber() throws -> JSONValue {
        let start = pos
        var isInteger = true
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard !atEnd, isDigit(bytes[pos]) else { throw fail("invalid number") }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
        } else {
            while !atEnd, isDigit(bytes[pos]) { pos += 1 }
        }
        if !atEnd, bytes[pos] == UInt8(ascii: ".") {
            isInteger = false
            pos += 1
            guard !atEnd, isDigit(bytes[pos]) else { throw fail("invalid number") }
            while !atEnd, isDigit(bytes[pos]) { pos += 1 }
        }
        if !atEnd, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            isInteger = false
            pos += 1
            if !atEnd, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard !atEnd, isDigit(bytes[pos]) else { throw fail("invalid number") }
            while !atEnd, isDigit(bytes[pos]) { pos += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        if isInteger, let v = Int(text) { return .int(v) }
        // Like serde_json: a number that overflows Double is an error (underflow to 0 is fine).
        if !isInteger, let d = Double(text), !d.isFinite { throw JSONParseError(offset: start, message: "number out of range") }
        return .number(text)
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
}

/// JSON text writers matching the reference tools byte for byte.
enum JSONWriter {
    /// Appends `s` as a JSON string the way Rust's serde_json does (the safetensors header):
    /// escapes `"`, `\`, and control characters (`\b \t \n \f \r`, else `\u00xx` lowercase); all else raw UTF-8.
    static func appendSerdeString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        for c in s.utf8 {
            switch c {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0..<0x20: appendU4(UInt16(c), to: &out)
            default: out.append(c)
            }
        }
        out.append(0x22)
    }

    /// Appends `s` as a JSON string the way Python's `json.dumps` does with the default
    /// `ensure_ascii=True` (the HF index file): non-ASCII as `\uxxxx` (UTF-16, surrogate pairs).
    static func appendPythonString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        for u in s.utf16 {
            switch u {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x20..<0x7F: out.append(UInt8(u))
            default: appendU4(u, to: &out)
            }
        }
        out.append(0x22)
    }

    private static func appendU4(_ u: UInt16, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(contentsOf: [0x5C, UInt8(ascii: "u"),
                                hex[Int(u >> 12)], hex[Int((u >> 8) & 0xF)], hex[Int((u >> 4) & 0xF)], hex[Int(u & 0xF)]])
    }

    /// Orders strings by their UTF-8 bytes (= code points), as Rust and Python's `sort_keys` do.
    static func byteOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}
