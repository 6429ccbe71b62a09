import Foundation

/// A value seen by a Jinja template: the JSON types plus Jinja's `undefined`, with Python's semantics.
///
/// Dictionaries keep their keys in insertion order (`tojson` and `items()` print them in that order,
/// as Python does). Callables and namespaces only arise inside a template.
public enum JinjaValue: Sendable, CustomStringConvertible {
    /// A missing variable, attribute or item; `name` says what was missing (for error messages).
    case undefined(String)
    /// Python's `None` / JSON `null`.
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    /// A Python tuple (from `(a, b)`, `items()`, `dictsort`): like a list, but printed with parentheses.
    case tuple([JinjaValue])
    case dict(JinjaDict)
    /// A `namespace()` object: a mutable attribute bag shared by reference.
    case namespace(JinjaNamespace)
    /// A macro, builtin function or bound method.
    case callable(JinjaCallable)

    /// The Python `str()` of the value, as `{{ value }}` prints it.
    public var description: String { pythonStr }

    /// Builds a value from a Swift string dictionary (convenience for special tokens).
    public init(_ string: String) { self = .string(string) }

    /// Whether the value is undefined.
    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// Whether the value is `None`.
    public var isNone: Bool { if case .none = self { return true } else { return false } }

    /// The items of a list or tuple.
    public var listItems: [JinjaValue]? {
        switch self {
        case .array(let a), .tuple(let a): return a
        default: return nil
        }
    }

    /// The value under `key` of a dict, or nil.
    public subscript(key: String) -> JinjaValue? {
        if case .dict(let d) = self { return d[key] }
        return nil
    }

    /// The string payload, if this is a string.
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }

    /// Python truthiness.
    public var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .callable: return true
        }
    }

    /// Python's type name, used in error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        }
    }
}

/// An insertion-ordered dictionary with string keys, as Python's `dict` behaves for JSON data.
public struct JinjaDict: Sendable {
    /// Keys in insertion order.
    public private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    public init() {}

    /// Builds a dictionary from key/value pairs; a repeated key keeps its first position and last value.
    public init(_ pairs: [(String, JinjaValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// The value for a key, or nil; setting nil removes the key.
    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Key/value pairs in insertion order.
    public var pairs: [(String, JinjaValue)] { keys.map { ($0, storage[$0]!) } }
}

/// The mutable attribute bag made by `namespace()`.
public final class JinjaNamespace: @unchecked Sendable {
    var attributes: JinjaDict
    init(_ attributes: JinjaDict) { self.attributes = attributes }
}

/// A function a template can call: a macro, a builtin or a bound method.
public final class JinjaCallable: @unchecked Sendable {
    let name: String
    let body: (Interpreter, [JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue
    /// Macros know their parameter names (used by `caller` and error messages).
    init(name: String, body: @escaping (Interpreter, [JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue) {
        self.name = name
        self.body = body
    }
}

// MARK: - Python str() and repr()

extension JinjaValue {
    /// Python's `str()` of the value (what `{{ }}` prints; undefined prints nothing).
    var pythonStr: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return pythonRepr
        }
    }

    /// Python's `repr()` of the value (used inside lists and dicts).
    var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return PythonFloat.repr(d)
        case .string(let s): return PythonString.repr(s)
        case .array(let a): return "[" + a.map { $0.pythonRepr }.joined(separator: ", ") + "]"
        case .tuple(let a): return "(" + a.map { $0.pythonRepr }.joined(separator: ", ") + (a.count == 1 ? ",)" : ")")
        case .dict(let d):
            return "{" + d.pairs.map { PythonString.repr($0.0) + ": " + $0.1.pythonRepr }.joined(separator: ", ") + "}"
        case .namespace(let ns):
            return "<Namespace " + ns.attributes.pairs.map { PythonString.repr($0.0) + ": " + $0.1.pythonRepr }.joined(separator: ", ") + ">"
        case .callable(let c): return "<function \(c.name)>"
        }
    }
}

/// Python's float formatting (`repr(float)`), shortest round-trip digits.
enum PythonFloat {
    /// `repr(x)` as Python prints it: `1.0`, `0.1`, `1e-05`, `1e+16`, `inf`, `nan`.
    static func repr(_ x: Double) -> String {
        if x.isNaN { return "nan" }
        if x.isInfinite { return x < 0 ? "-inf" : "inf" }
        if x == 0 { return x.sign == .minus ? "-0.0" : "0.0" }
        let (negative, digits, decpt) = shortestDigits(x)
        var out = negative ? "-" : ""
        if decpt > -4 && decpt <= 16 {
            if decpt <= 0 {
                out += "0." + String(repeating: "0", count: -decpt) + digits
            } else if decpt >= digits.count {
                out += digits + String(repeating: "0", count: decpt - digits.count) + ".0"
            } else {
                let i = digits.index(digits.startIndex, offsetBy: decpt)
                out += digits[..<i] + "." + digits[i...]
            }
        } else {
            let exp = decpt - 1
            out += String(digits.first!)
            if digits.count > 1 { out += "." + digits.dropFirst() }
            out += exp < 0 ? "e-" : "e+"
            let e = abs(exp)
            out += e < 10 ? "0\(e)" : "\(e)"
        }
        return out
    }

    /// The shortest round-trip decimal digits of `x` (no leading/trailing zeros) and the position
    /// of the decimal point: x = 0.d1d2... * 10^decpt.
    static func shortestDigits(_ x: Double) -> (Bool, String, Int) {
        // Swift's description prints the shortest round-trip digits; re-read them.
        let s = abs(x).description
        var mantissa = s
        var exp = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(s[..<e])
            exp = Int(s[s.index(after: e)...]) ?? 0
        }
        var intPart = mantissa
        var fracPart = ""
        if let dot = mantissa.firstIndex(of: ".") {
            intPart = String(mantissa[..<dot])
            fracPart = String(mantissa[mantissa.index(after: dot)...])
        }
        var digits = intPart + fracPart
        var decpt = intPart.count + exp
        while digits.first == "0" { digits.removeFirst(); decpt -= 1 }
        while digits.last == "0" { digits.removeLast() }
        if digits.isEmpty { digits = "0"; decpt = 1 }
        return (x < 0, digits, decpt)
    }
}

/// Python string helpers: `repr()` and the whitespace set of `str.split()`/`str.strip()`.
enum PythonString {
    /// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`.
    static func repr(_ s: String) -> String {
        let quote: Character = (s.contains("'") && !s.contains("\"")) ? "\"" : "'"
        var out = String(quote)
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(u) == quote { out += "\\" + String(quote); continue }
                if !isPrintable(u) {
                    let v = u.value
                    if v < 0x100 { out += String(format: "\\x%02x", v) }
                    else if v < 0x10000 { out += String(format: "\\u%04x", v) }
                    else { out += String(format: "\\U%08x", v) }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out.append(quote)
        return out
    }

    /// An approximation of Python's `str.isprintable` for one code point.
    static func isPrintable(_ u: Unicode.Scalar) -> Bool {
        if u == " " { return true }
        switch u.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// Python's `str.isspace` for one code point.
    static func isSpace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }
}
