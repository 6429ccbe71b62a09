import Foundation

/// A tokenizer as GGUF metadata (`tokenizer.ggml.*`), the way llama.cpp's converter writes it.
public struct GGUFVocabulary: Sendable {
    /// `tokenizer.ggml.model`: "llama" (SentencePiece) or "gpt2" (byte-level BPE).
    public var model: String
    /// `tokenizer.ggml.pre`: the pre-tokenizer llama.cpp must run ("default" for SentencePiece).
    public var pre: String
    /// Token strings by id, padded to the model's vocabulary with `[PAD<id>]`.
    public var tokens: [String]
    /// SentencePiece scores (nil for gpt2).
    public var scores: [Float]?
    /// Token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    public var types: [Int32]
    /// `"left right"` merges in rank order (gpt2 only).
    public var merges: [String]?
    /// Set when the choice of `pre` was a guess the user should know about.
    public var warning: String?
}

extension Tokenizer {
    /// GGUF vocabulary metadata for a model whose embedding has `vocabSize` rows. `sentencePiece` is the
    /// folder's tokenizer.model when it has one (its pieces, scores and types are what llama.cpp's "llama"
    /// vocabulary reads); otherwise the tokenizer must be byte-level BPE ("gpt2").
    public func ggufVocabulary(vocabSize: Int, sentencePiece: SentencePieceModel?) throws -> GGUFVocabulary {
        let added = Dictionary(addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        if let sp = sentencePiece {
            var tokens = (0..<vocabSize).map { "[PAD\($0)]" }
            var scores = [Float](repeating: -10000, count: vocabSize)
            var types = [Int32](repeating: 5, count: vocabSize)
            for (i, p) in sp.pieces.enumerated() where i < vocabSize {
                tokens[i] = p.piece; scores[i] = p.score; types[i] = Int32(p.type.rawValue)
            }
            for (id, t) in added where id >= sp.pieces.count && id < vocabSize {
                tokens[id] = t.special ? t.content : t.content.replacingOccurrences(of: "\u{2581}", with: " ")
                scores[id] = -1000
                types[id] = t.special || Self.looksSpecial(t.content) ? 3 : 4
            }
            return GGUFVocabulary(model: "llama", pre: "default", tokens: tokens, scores: scores, types: types, merges: nil, warning: nil)
        }
        guard case let .bpe(bpe) = model, !bpe.byteFallback, containsByteLevel(preTokenizer) else {
            throw TokenizerError.unsupportedComponent(file: file, field: "model", type: "\(kind) for GGUF (llama.cpp reads SentencePiece tokenizer.model or byte-level BPE tokenizer.json)")
        }
        let size = max(vocabSize, self.vocabularySize)
        var tokens: [String] = [], types: [Int32] = []
        tokens.reserveCapacity(size); types.reserveCapacity(size)
        for id in 0..<size {
            if let t = added[id] {
                let special = t.special || Self.looksSpecial(t.content)
                tokens.append(special ? t.content : t.content.replacingOccurrences(of: "\u{2581}", with: " "))
                types.append(special ? 3 : 4)
            } else if let s = bpe.idToToken[id] {
                tokens.append(s); types.append(1)
            } else {
                tokens.append("[PAD\(id)]"); types.append(5)
            }
        }
        let merges = bpe.mergeList.map { $0.0.replacingOccurrences(of: " ", with: "\u{0120}") + " " + $0.1.replacingOccurrences(of: " ", with: "\u{0120}") }
        let (pre, warning) = ggufPreTokenizer()
        return GGUFVocabulary(model: "gpt2", pre: pre, tokens: tokens, scores: nil, types: types, merges: merges, warning: warning)
    }

    /// Largest id + 1 over the model and the added tokens.
    var vocabularySize: Int { max(model.size, (addedTokens.map(\.id).max() ?? -1) + 1) }

    /// llama.cpp's converter treats these as control tokens even when not marked special.
    static func looksSpecial(_ s: String) -> Bool {
        (s.hasPrefix("<|") && s.hasSuffix("|>")) || (s.hasPrefix("<\u{FF5C}") && s.hasSuffix("\u{FF5C}>")) || s == "<pad>" || s == "<mask>"
            || s == "<2mass>" || s == "[@BOS@]" || s.hasPrefix("<unused")
    }

    private func containsByteLevel(_ p: PreTokenizer?) -> Bool {
        switch p {
        case .byteLevel?: return true
        case let .sequence(list)?: return list.contains { containsByteLevel($0) }
        default: return false
        }
    }

    /// The llama.cpp pre-tokenizer whose regex this tokenizer splits with. llama.cpp's converter decides by hashing
    /// an encoding; Sloth reads the split pattern itself: Llama 3's (digits in runs of up to three), Qwen 2's
    /// (single digits) or GPT-2's (ByteLevel's own regex).
    func ggufPreTokenizer() -> (String, String?) {
        func patterns(_ p: PreTokenizer?) -> [String] {
            switch p {
            case let .split(sp, _, _)?:
                if case let .regex(_, source) = sp.pattern { return [source] }
                return []
            case let .sequence(list)?: return list.flatMap { patterns($0) }
            default: return []
            }
        }
        func byteLevelRegex(_ p: PreTokenizer?) -> Bool {
            switch p {
            case let .byteLevel(_, useRegex)?: return useRegex
            case let .sequence(list)?: return list.contains { byteLevelRegex($0) }
            default: return false
            }
        }
        let regexes = patterns(preTokenizer)
        let shared = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
        if regexes.contains(where: { $0.hasPrefix(shared + "\\p{N}{1,3}|") }) { return ("llama-bpe", nil) }
        if regexes.contains(where: { $0.hasPrefix(shared + "\\p{N}| ?") }) { return ("qwen2", nil) }
        if regexes.isEmpty && byteLevelRegex(preTokenizer) { return ("gpt-2", nil) }
        return ("default", "the tokenizer's pre-tokenizer matches none llama.cpp names (Llama 3, Qwen 2, GPT-2); wrote tokenizer.ggml.pre = \"default\", so llama.cpp may split text differently")
    }
}
