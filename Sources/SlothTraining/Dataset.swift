import Foundation
import SlothModels

/// One training example: ids and labels aligned with them (transformers convention; -100 ignored).
public struct TokenizedRow: Sendable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    public init(ids: [Int32], labels: [Int32]) { self.ids = ids; self.labels = labels }
}

/// Errors reading a dataset: each names the file and row.
public struct DatasetError: Error, CustomStringConvertible {
    public let file: String
    public let row: Int?
    public let message: String
    public init(file: String, row: Int?, message: String) { self.file = file; self.row = row; self.message = message }
    public var description: String { row.map { "\(file): row \($0): \(message)" } ?? "\(file): \(message)" }
}

/// Reads training rows from JSONL (one object per line) or a JSON array.
public enum DatasetLoader {
    /// Rows of the file. Pre-tokenized rows `{"input_ids": [...], "labels": [...]}` (labels optional,
    /// defaulting to input_ids) are read as they are; `{"text": ...}` rows need `encode`.
    public static func load(_ url: URL, encode: ((String) throws -> [Int])? = nil, maxLength: Int? = nil, vocabSize: Int? = nil) throws -> [TokenizedRow] {
        let file = url.path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw DatasetError(file: file, row: nil, message: "cannot be read (missing or not a file)")
        }
        var objects: [(Int, Any)] = []
        let trimmed = data.drop(while: { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        if trimmed.first == UInt8(ascii: "[") {
            guard let arr = try? JSONSerialization.jsonObject(with: data) as? [Any] else {
                throw DatasetError(file: file, row: nil, message: "starts with '[' but is not a valid JSON array")
            }
            objects = arr.enumerated().map { ($0.offset + 1, $0.element) }
        } else {
            var lineNo = 0
            for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
                lineNo += 1
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) else {
                    throw DatasetError(file: file, row: lineNo, message: "not valid JSON (each line must be one JSON object)")
                }
                objects.append((lineNo, obj))
            }
        }
        if objects.isEmpty { throw DatasetError(file: file, row: nil, message: "holds no rows") }
        var rows: [TokenizedRow] = []
        for (n, obj) in objects {
            guard let dict = obj as? [String: Any] else { throw DatasetError(file: file, row: n, message: "is not a JSON object") }
            var row: TokenizedRow
            if let ids = dict["input_ids"] {
                let idArr = try intArray(ids, file: file, row: n, field: "input_ids")
                let labels = try dict["labels"].map { try intArray($0, file: file, row: n, field: "labels") } ?? idArr
                guard labels.count == idArr.count else {
                    throw DatasetError(file: file, row: n, message: "labels has \(labels.count) entries but input_ids has \(idArr.count); they must align")
                }
                if let v = vocabSize {
                    if let bad = idArr.first(where: { $0 < 0 || Int($0) >= v }) {
                        throw DatasetError(file: file, row: n, message: "input_ids holds \(bad), outside the model's vocabulary (0..<\(v))")
                    }
                    if let bad = labels.first(where: { $0 != -100 && ($0 < 0 || Int($0) >= v) }) {
                        throw DatasetError(file: file, row: n, message: "labels holds \(bad), outside the vocabulary (0..<\(v)) and not -100")
                    }
                }
                row = TokenizedRow(ids: idArr, labels: labels)
            } else if let text = dict["text"] {
                guard let s = text as? String else { throw DatasetError(file: file, row: n, message: "'text' must be a string") }
                guard let encode else {
                    throw DatasetError(file: file, row: n, message: "is a text row, but no tokenizer was found; give pre-tokenized rows {\"input_ids\": [...]} or a model folder with tokenizer.json")
                }
                let ids = try encode(s).map { Int32($0) }
                row = TokenizedRow(ids: ids, labels: ids)
            } else {
                let keys = dict.keys.sorted().joined(separator: ", ")
                throw DatasetError(file: file, row: n, message: "has keys [\(keys)]; expected {\"input_ids\": [...], \"labels\": [...]} or {\"text\": ...}")
            }
            if row.ids.isEmpty { throw DatasetError(file: file, row: n, message: "has no tokens") }
            if let m = maxLength, row.ids.count > m {
                row.ids = Array(row.ids.prefix(m)); row.labels = Array(row.labels.prefix(m))
            }
            rows.append(row)
        }
        let trainable = rows.reduce(0) { acc, r in acc + r.labels.dropFirst().filter { $0 != -100 }.count }
        if trainable == 0 {
            throw DatasetError(file: file, row: nil, message: "every label is -100 (or rows have one token): there is nothing to learn")
        }
        return rows
    }

    private static func intArray(_ v: Any, file: String, row: Int, field: String) throws -> [Int32] {
        guard let arr = v as? [Any] else { throw DatasetError(file: file, row: row, message: "'\(field)' must be a list of integers") }
        return try arr.enumerated().map { i, x in
            guard let n = x as? NSNumber, !(String(cString: n.objCType) == "c") else {
                throw DatasetError(file: file, row: row, message: "'\(field)'[\(i)] is not an integer")
            }
            let d = n.doubleValue
            guard d == d.rounded(), d >= -2_147_483_648, d <= 2_147_483_647 else {
                throw DatasetError(file: file, row: row, message: "'\(field)'[\(i)] = \(n) is not a valid token id")
            }
            return Int32(d)
        }
    }
}
