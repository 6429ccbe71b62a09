import Foundation

/// Reads the tokenizer held in a GGUF file's metadata, as llama.cpp reads it.
enum GGUFTokenizer {
    static func load(_ url: URL) throws -> Tokenizer {
        throw TokenizerError.badGGUF(file: url.path, reason: "read the GGUF with SlothFormats.GGUFFile and pass its tokenizer.ggml.* values to Tokenizer(gguf:)")
    }
}

/// The `tokenizer.*` values of a GGUF file (what `sloth export gguf` writes and llama.cpp reads).
public struct GGUFTokenizerFields: Sendable {
    public var file: String
    public var model: String
    public var pre: String?
    public var tokens: [String]
    public var scores: [Float]?
    public var types: [Int32]?
    public var merges: [String]?
    public var bosId: Int?, eosId: Int?, unkId: Int?, padId: Int?
    public var addBos: Bool?
    public var chatTemplate: String?
    public init(file: String, model: String, tokens: [String]) { self.file = file; self.model = model; self.tokens = tokens }
}

extension Tokenizer {
    /// Rebuilds the Hugging Face pipeline a GGUF vocabulary came from: `gpt2` (byte-level BPE, pre-tokenizer by
    /// llama.cpp's `pre` name) or `llama` (SentencePiece pieces, converted as transformers converts tokenizer.model).
    public convenience init(gguf f: GGUFTokenizerFields) throws {
        let types = f.types ?? Array(repeating: 1, count: f.tokens.count)
        guard types.count == f.tokens.count else {
            throw TokenizerError.badGGUF(file: f.file, reason: "tokenizer.ggml.token_type has \(types.count) entries for \(f.tokens.count) tokens")
        }
        switch f.model {
        case "gpt2":
            guard let merges = f.merges else { throw TokenizerError.badGGUF(file: f.file, reason: "tokenizer.ggml.merges is missing (a gpt2 vocabulary needs it)") }
            var added: [Any] = []
            var vocab: [(String, Int)] = []
            for (id, t) in f.tokens.enumerated() {
                if types[id] == 3 || types[id] == 4 {
                    added.append(["id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                                  "normalized": types[id] == 4, "special": types[id] == 3] as [String: Any])
                }
                vocab.append((t, id))
            }
            let digits: String
            switch f.pre ?? "default" {
            case "llama-bpe", "llama3", "llama-v3": digits = "\\p{N}{1,3}"
            case "qwen2", "deepseek-r1-qwen": digits = "\\p{N}"
            default: digits = ""
            }
            let pre: [String: Any]
            if digits.isEmpty {
                pre = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
            } else {
                let regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\(digits)| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
                pre = ["type": "Sequence", "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": regex], "behavior": "Isolated", "invert": false] as [String: Any],
                    ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false] as [String: Any]]]
            }
            var post: Any = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
            if f.addBos == true, let b = f.bosId, b < f.tokens.count {
                let name = f.tokens[b]
                post = ["type": "TemplateProcessing",
                        "single": [["SpecialToken": ["id": name, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                        "pair": [["SpecialToken": ["id": name, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                                 ["SpecialToken": ["id": name, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]]],
                        "special_tokens": [name: ["id": name, "ids": [b], "tokens": [name]]]] as [String: Any]
            }
            let splitMerges: [Any] = try merges.enumerated().map { i, m in
                guard let sp = m.unicodeScalars.dropFirst().firstIndex(of: " ") else {
                    throw TokenizerError.badGGUF(file: f.file, reason: "tokenizer.ggml.merges[\(i)] '\(m)' is not \"left right\"")
                }
                return [String(m.unicodeScalars[..<sp]), String(m.unicodeScalars[m.unicodeScalars.index(after: sp)...])]
            }
            let json: [String: Any] = [
                "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added, "normalizer": NSNull(),
                "pre_tokenizer": pre, "post_processor": post,
                "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true] as [String: Any],
                "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                          "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": digits == "\\p{N}{1,3}",
                          "vocab": JSONEncoderExact.VocabObject(pairs: vocab), "merges": splitMerges] as [String: Any],
            ]
            try self.init(json: JSONEncoderExact.encode(json), file: f.file)
        case "llama":
            var sp = SentencePieceModel()
            sp.file = f.file
            sp.modelType = 2
            let scores = f.scores ?? Array(repeating: 0, count: f.tokens.count)
            for (i, t) in f.tokens.enumerated() {
                let type = SentencePieceModel.PieceType(rawValue: Int(types[i])) ?? .normal
                sp.pieces.append(.init(piece: t, score: i < scores.count ? scores[i] : 0, type: type))
            }
            sp.byteFallback = types.contains(6)
            if let u = f.unkId { sp.unkId = u }
            if let b = f.bosId { sp.bosId = b }
            if let e = f.eosId { sp.eosId = e }
            let converted = try SentencePieceConverter.convert(sp, flavor: sp.byteFallback ? .llama : .generic)
            try self.init(json: JSONEncoderExact.encode(TokenizerWriter.json(converted)), file: f.file)
        default:
            throw TokenizerError.badGGUF(file: f.file, reason: "tokenizer.ggml.model '\(f.model)' is not supported (Sloth reads gpt2 and llama vocabularies)")
        }
        func name(_ id: Int?) -> String? { id.flatMap { $0 >= 0 && $0 < f.tokens.count ? f.tokens[$0] : nil } }
        bosToken = name(f.bosId); eosToken = name(f.eosId); unkToken = name(f.unkId); padToken = name(f.padId)
        chatTemplate = f.chatTemplate
    }
}

extension SentencePieceModel {
    /// An empty model to fill piece by piece (GGUF vocabularies).
    init() {}
}
