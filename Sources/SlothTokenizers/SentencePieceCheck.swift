import Foundation

extension SentencePieceConverter {
    /// The check text of Unsloth's slow-to-fast test (without the special tokens around it; those are checked one by one).
    public static let checkText = "A quick brown fox jumps over the lazy dog!!\n\n"

    /// The result of a checked conversion.
    public struct Checked {
        public var tokenizer: Tokenizer
        /// One line per decision (flavor used, retries).
        public var notes: [String]
    }

    /// Converts `file` (a tokenizer.model) and accepts the result only when the vocabulary, the special tokens and
    /// the encoding of the check text agree with SentencePiece's own algorithm; retries with the other
    /// dummy-prefix scheme (Unsloth retries without the Prepend normalizer) before giving up.
    public static func convertChecked(file: URL, flavor: Flavor? = nil) throws -> Checked {
        let m = try SentencePieceModel(file: file)
        let folder = file.deletingLastPathComponent()
        let config = try TokenizerConfig.read(folder.appendingPathComponent("tokenizer_config.json"))
        let cls = try config?.optionalString("tokenizer_class")
        let legacy = try TokenizerConfig.legacyFlag(folder: folder)
        let flavor = flavor ?? defaultFlavor(m, tokenizerClass: cls)
        let defaultLegacy = legacy ?? (flavor == .generic)
        var notes: [String] = []
        var reasons: [String] = []
        for attempt in [defaultLegacy, !defaultLegacy] {
            let tok = try convert(m, flavor: flavor, legacy: attempt)
            let problems = disagreements(tok, m)
            let scheme = attempt ? "dummy prefix on every chunk (legacy)" : "dummy prefix on the first chunk only"
            if problems.isEmpty {
                notes.append("converted as \(flavor.rawValue), \(scheme): vocabulary, special tokens and check text agree with SentencePiece")
                try TokenizerConfig.apply(folder: folder, to: tok)
                return Checked(tokenizer: tok, notes: notes)
            }
            notes.append("\(flavor.rawValue), \(scheme): \(problems.joined(separator: "; ")); retrying")
            reasons += problems
        }
        throw TokenizerError.conversionMismatch(file: file.path, reason: reasons.joined(separator: "; "))
    }

    /// What differs between the converted tokenizer and the SentencePiece model (empty when they agree).
    static func disagreements(_ tok: Tokenizer, _ m: SentencePieceModel) -> [String] {
        var out: [String] = []
        var firstIndex = Vocab()
        for (i, p) in m.pieces.enumerated() where firstIndex[p.piece] == nil { firstIndex[p.piece] = i }
        var bad = 0
        for (i, p) in m.pieces.enumerated() where firstIndex[p.piece] == i || p.type == .control {
            if tok.idToToken(i) != p.piece { bad += 1 }
        }
        if bad > 0 { out.append("\(bad) pieces have different ids") }
        for (name, id, piece) in [("unk", m.unkId, m.unkPiece), ("bos", m.bosId, m.bosPiece), ("eos", m.eosId, m.eosPiece)] where id >= 0 {
            if tok.tokenToId(piece) != id { out.append("\(name) '\(piece)' is not id \(id)") }
            if m.pieces[id].type == .control && tok.encode(piece, addSpecialTokens: false) != [id] { out.append("\(name) '\(piece)' does not encode to [\(id)]") }
        }
        if m.modelType == 2 || m.modelType == 1 {
            let want = SentencePieceReference.encode(checkText, m)
            let got = tok.encode(checkText, addSpecialTokens: false)
            if want != got { out.append("check text encodes to \(got.prefix(12)), SentencePiece gives \(want.prefix(12))") }
        }
        return out
    }
}

/// A plain re-implementation of SentencePiece's own encoder (BPE by piece score, Unigram by Viterbi),
/// used only as the oracle of the slow-to-fast check. Normalization: whitespace rules and dummy prefix
/// (the precompiled charsmap is applied too, by its longest-prefix rule).
enum SentencePieceReference {
    static func normalize(_ text: String, _ m: SentencePieceModel) -> [Unicode.Scalar] {
        var t = Array(text.unicodeScalars)
        if !m.precompiledCharsmap.isEmpty, let map = try? PrecompiledCharsmap(data: m.precompiledCharsmap, file: m.file) { t = map.normalize(t) }
        if m.removeExtraWhitespaces {
            var out: [Unicode.Scalar] = []
            for c in t {
                if c == " " && (out.isEmpty || out.last == " ") { continue }
                out.append(c)
            }
            while out.last == " " { out.removeLast() }
            t = out
        }
        if t.isEmpty { return [] }
        if m.addDummyPrefix { t.insert(" ", at: 0) }
        if m.escapeWhitespaces { t = t.map { $0 == " " ? "\u{2581}" : $0 } }
        return t
    }

    static func encode(_ text: String, _ m: SentencePieceModel) -> [Int] {
        let t = normalize(text, m)
        var vocab = Vocab()
        for (i, p) in m.pieces.enumerated() where vocab[p.piece] == nil && (p.type == .normal || p.type == .userDefined) { vocab[p.piece] = i }
        var ids: [Int] = []
        if m.modelType == 1 {
            let pieces = m.pieces.map { UnigramModel.Piece(piece: $0.type == .normal || $0.type == .userDefined ? $0.piece : "", score: Double($0.score)) }
            UnigramModel(pieces: pieces, unkId: m.unkId, byteFallback: m.byteFallback).tokenize(t, into: &ids)
            return ids
        }
        // BPE: merge the adjacent pair whose concatenation is the best-scoring piece, leftmost on ties.
        var symbols = t.map { String(Character($0)) }
        while symbols.count > 1 {
            var best = -1
            var bestScore = -Float.infinity
            for i in 0..<(symbols.count - 1) {
                if let id = vocab[symbols[i] + symbols[i + 1]], m.pieces[id].score > bestScore { best = i; bestScore = m.pieces[id].score }
            }
            if best < 0 { break }
            symbols[best] += symbols[best + 1]
            symbols.remove(at: best + 1)
        }
        for s in symbols {
            if let id = vocab[s] { ids.append(id); continue }
            if m.byteFallback {
                for b in s.utf8 { if let id = vocab[String(format: "<0x%02X>", b)] ?? m.pieces.firstIndex(where: { $0.piece == String(format: "<0x%02X>", b) }) { ids.append(id) } }
            } else { ids.append(m.unkId) }
        }
        return ids
    }
}
