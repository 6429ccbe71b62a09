import Foundation

/// Errors from reading a model folder or adapter: each names the file, the field or tensor, and what to do.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case fileMissing(path: String, hint: String)
    case badJSON(file: String, detail: String)
    case badField(file: String, field: String, detail: String)
    case unsupportedModelType(file: String, modelType: String)
    case missingTensor(file: String, tensor: String)
    case wrongShape(file: String, tensor: String, expected: [Int], found: [Int])
    case unsupported(file: String, what: String, hint: String)
    case badData(file: String, line: Int, detail: String)

    public var description: String {
        switch self {
        case let .fileMissing(path, hint):
            return "\(path): not found. \(hint)"
        case let .badJSON(file, detail):
            return "\(file): not valid JSON (\(detail)). Check the file is complete and was not truncated."
        case let .badField(file, field, detail):
            return "\(file): field '\(field)': \(detail)"
        case let .unsupportedModelType(file, modelType):
            return "\(file): model_type '\(modelType)' is not supported. Sloth supports: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))."
        case let .missingTensor(file, tensor):
            return "\(file): tensor '\(tensor)' is missing. The weights do not match config.json, or the checkpoint is incomplete."
        case let .wrongShape(file, tensor, expected, found):
            return "\(file): tensor '\(tensor)' has shape \(found) but config.json implies \(expected)."
        case let .unsupported(file, what, hint):
            return "\(file): \(what) is not supported. \(hint)"
        case let .badData(file, line, detail):
            return "\(file):\(line): \(detail)"
        }
    }
}

/// Reads a JSON object from a file with clear errors.
func readJSONObject(_ url: URL) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: url.path) else {
        throw ModelError.fileMissing(path: url.path, hint: "Pass a Hugging Face model folder holding config.json and *.safetensors.")
    }
    let obj: Any
    do { obj = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
        throw ModelError.badJSON(file: url.path, detail: (error as NSError).localizedDescription)
    }
    guard let dict = obj as? [String: Any] else { throw ModelError.badJSON(file: url.path, detail: "the top level is not an object") }
    return dict
}

/// Typed field access on a decoded JSON object, with errors naming the file and key.
struct JSONFields {
    let file: String
    let dict: [String: Any]

    func has(_ key: String) -> Bool { if let v = dict[key], !(v is NSNull) { return true }; return false }

    func int(_ key: String) throws -> Int? {
        guard let v = dict[key], !(v is NSNull) else { return nil }
        if let n = v as? NSNumber, !isJSONBool(n) {
            let d = n.doubleValue
            guard d == d.rounded(), abs(d) < 1e15 else { throw ModelError.badField(file: file, field: key, detail: "expected an integer, found \(n)") }
            return Int(d)
        }
        throw ModelError.badField(file: file, field: key, detail: "expected an integer, found \(type(of: v)) \(v)")
    }
    func requiredInt(_ key: String, min lo: Int = 1) throws -> Int {
        guard let v = try int(key) else { throw ModelError.badField(file: file, field: key, detail: "required but missing") }
        guard v >= lo else { throw ModelError.badField(file: file, field: key, detail: "must be at least \(lo), found \(v)") }
        return v
    }
    func double(_ key: String) throws -> Double? {
        guard let v = dict[key], !(v is NSNull) else { return nil }
        if let n = v as? NSNumber, !isJSONBool(n) { return n.doubleValue }
        throw ModelError.badField(file: file, field: key, detail: "expected a number, found \(v)")
    }
    func bool(_ key: String) throws -> Bool? {
        guard let v = dict[key], !(v is NSNull) else { return nil }
        if let n = v as? NSNumber, isJSONBool(n) { return n.boolValue }
        throw ModelError.badField(file: file, field: key, detail: "expected true or false, found \(v)")
    }
    func string(_ key: String) throws -> String? {
        guard let v = dict[key], !(v is NSNull) else { return nil }
        if let s = v as? String { return s }
        throw ModelError.badField(file: file, field: key, detail: "expected a string, found \(v)")
    }
    func object(_ key: String) throws -> JSONFields? {
        guard let v = dict[key], !(v is NSNull) else { return nil }
        if let d = v as? [String: Any] { return JSONFields(file: file, dict: d) }
        throw ModelError.badField(file: file, field: key, detail: "expected an object")
    }
    func strings(_ key: String) throws -> [String]? {
        guard let v = dict[key], !(v is NSNull) else { return nil }
        if let s = v as? String { return [s] }
        if let a = v as? [Any] {
            return try a.map { x in
                guard let s = x as? String else { throw ModelError.badField(file: file, field: key, detail: "expected a list of strings") }
                return s
            }
        }
        throw ModelError.badField(file: file, field: key, detail: "expected a string or a list of strings")
    }
    /// An integer or a list of integers (e.g. eos_token_id).
    func ints(_ key: String) throws -> [Int] {
        guard let v = dict[key], !(v is NSNull) else { return [] }
        if let a = v as? [Any] {
            return try a.enumerated().map { i, x in
                guard let n = x as? NSNumber else { throw ModelError.badField(file: file, field: "\(key)[\(i)]", detail: "expected an integer") }
                return n.intValue
            }
        }
        return [try int(key)].compactMap { $0 }
    }
}

/// JSONSerialization hands booleans back as NSNumber; they are the ones whose objCType is "c".
func isJSONBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
