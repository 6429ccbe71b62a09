import Foundation

/// Typed access to a decoded JSON object that reports the file and field path on a type mismatch.
struct JSONObject {
    let dict: [String: Any]
    /// The file the object came from, for error messages.
    let file: String
    /// The field path of this object inside the file ("" for the root).
    let path: String

    init(_ dict: [String: Any], file: String, path: String) {
        self.dict = dict; self.file = file; self.path = path
    }

    /// Parses a whole JSON file into its root object.
    static func parse(data: Data, file: String) throws -> JSONObject {
        let any = try JSONParser.parse(data, file: file)
        guard let dict = any as? [String: Any] else { throw TokenizerError.badField(file: file, field: "(root)", expected: "a JSON object") }
        return JSONObject(dict, file: file, path: "")
    }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func has(_ key: String) -> Bool { if let v = dict[key], !(v is NSNull) { return true } else { return false } }

    func bad(_ key: String, _ expected: String) -> TokenizerError { .badField(file: file, field: field(key), expected: expected) }

    func string(_ key: String) throws -> String {
        guard let v = dict[key] as? String else { throw bad(key, "a string") }
        return v
    }
    func optionalString(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        return try string(key)
    }
    func bool(_ key: String, default value: Bool) throws -> Bool {
        guard has(key) else { return value }
        guard let n = dict[key] as? NSNumber, JSONObject.isBool(n) else { throw bad(key, "true or false") }
        return n.boolValue
    }
    func int(_ key: String) throws -> Int {
        guard let v = dict[key] as? NSNumber, !JSONObject.isBool(v), let i = Int(exactly: v.doubleValue) else { throw bad(key, "an integer") }
        return i
    }
    func optionalInt(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        return try int(key)
    }
    func double(_ key: String) throws -> Double {
        guard let v = dict[key] as? NSNumber, !JSONObject.isBool(v) else { throw bad(key, "a number") }
        return v.doubleValue
    }
    func object(_ key: String) throws -> JSONObject {
        guard let v = dict[key] as? [String: Any] else { throw bad(key, "an object") }
        return JSONObject(v, file: file, path: field(key))
    }
    func optionalObject(_ key: String) throws -> JSONObject? {
        guard has(key) else { return nil }
        return try object(key)
    }
    func array(_ key: String) throws -> [Any] {
        guard let v = dict[key] as? [Any] else { throw bad(key, "an array") }
        return v
    }
    func objects(_ key: String) throws -> [JSONObject] {
        let items = try array(key)
        return try items.enumerated().map { i, item in
            guard let d = item as? [String: Any] else { throw TokenizerError.badField(file: file, field: "\(field(key))[\(i)]", expected: "an object") }
            return JSONObject(d, file: file, path: "\(field(key))[\(i)]")
        }
    }

    /// NSNumber bridges JSON booleans too; these must not pass as numbers.
    static func isBool(_ n: NSNumber) -> Bool {
        #if canImport(Darwin)
        return CFGetTypeID(n) == CFBooleanGetTypeID()
        #else
        return type(of: n) != NSNumber.self && String(describing: type(of: n)).contains("Bool")
        #endif
    }
}
