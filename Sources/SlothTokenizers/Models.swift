import Foundation

/// The tokenization model of tokenizer.json: BPE, WordPiece or Unigram.
enum Model {
    case bpe(BPEModel)
    case wordPiece(WordPieceModel)
    case unigram(UnigramModel)

    static func parse(_ o: JSONObject) throws -> Model {
        // Some old files omit "type"; infer it from the fields as HF does.
        var type = try o.optionalString("type")
        if type == nil {
            if o.has("merges") { type = "BPE" } else if o.has("continuing_subword_prefix") || o.has("max_input_chars_per_word") { type = "WordPiece" } else if o.dict["vocab"] is [Any] { type = "Unigram" }
        }
        switch type ?? "" {
        case "BPE": return .bpe(try BPEModel.parse(o))
        case "WordPiece": return .wordPiece(try WordPieceModel.parse(o))
        case "Unigram": return .unigram(try UnigramModel.parse(o))
        default: throw TokenizerError.unsupportedComponent(file: o.file, field: "model", type: type ?? "(missing)")
        }
    }

    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int]) {
        switch self {
        case let .bpe(m): m.tokenize(word, into: &out)
        case let .wordPiece(m): m.tokenize(word, into: &out)
        case let .unigram(m): m.tokenize(word, into: &out)
        }
    }

    func idToToken(_ id: Int) -> String? {
        switch self {
        case let .bpe(m): return m.idToToken[id]
        case let .wordPiece(m): return m.idToToken[id]
        case let .unigram(m): return id >= 0 && id < m.pieces.count ? m.pieces[id].piece : nil
        }
    }

    func tokenToId(_ token: String) -> Int? {
        switch self {
        case let .bpe(m): return m.vocab[token]
        case let .wordPiece(m): return m.vocab[token]
        case let .unigram(m): return m.pieceToId[token]
        }
    }

    /// Number of ids of the model (largest id + 1).
    var size: Int {
        switch self {
        case let .bpe(m): return (m.idToToken.keys.max() ?? -1) + 1
        case let .wordPiece(m): return (m.idToToken.keys.max() ?? -1) + 1
        case let .unigram(m): return m.pieces.count
        }
    }

    var kind: String {
        switch self {
        case let .bpe(m): return m.byteFallback ? "BPE (byte fallback)" : "BPE"
        case .wordPiece: return "WordPiece"
        case .unigram: return "Unigram"
        }
    }
}

/// WordPiece (BERT): greedy longest-match-first with a continuing-subword prefix.
final class WordPieceModel {
    let vocab: Vocab
    let idToToken: [Int: String]
    let unkToken: String
    let prefix: String
    let maxChars: Int

    init(vocab: Vocab, unkToken: String, prefix: String, maxChars: Int) {
        self.vocab = vocab
        var inv: [Int: String] = [:]
        for (k, v) in vocab.map { inv[v] = k.s }
        idToToken = inv
        self.unkToken = unkToken; self.prefix = prefix; self.maxChars = maxChars
    }

    static func parse(_ o: JSONObject) throws -> WordPieceModel {
        let vocab = try BPEModel.parseVocab(o)
        let unk = try o.optionalString("unk_token") ?? "[UNK]"
        guard vocab[unk] != nil else { throw o.bad("unk_token", "a token of model.vocab ('\(unk)' is not)") }
        return WordPieceModel(vocab: vocab, unkToken: unk, prefix: try o.optionalString("continuing_subword_prefix") ?? "##",
                              maxChars: try o.optionalInt("max_input_chars_per_word") ?? 100)
    }

    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int]) {
        if word.isEmpty { return }
        let unk = vocab[unkToken]!
        if word.count > maxChars { out.append(unk); return }
        var pieces: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int?
            while start < end {
                var v = String.UnicodeScalarView()
                v.append(contentsOf: word[start..<end])
                let s = start > 0 ? prefix + String(v) : String(v)
                if let id = vocab[s] { found = id; break }
                end -= 1
            }
            guard let id = found else { out.append(unk); return }
            pieces.append(id)
            start = end
        }
        out.append(contentsOf: pieces)
    }
}

/// Unigram language model (SentencePiece unigram): best-scoring segmentation by Viterbi.
final class UnigramModel {
    struct Piece { var piece: String; var score: Double }
    let pieces: [Piece]
    let pieceToId: Vocab
    let unkId: Int?
    let byteFallback: Bool
    private let unkScore: Double
    /// Trie over characters: node -> (child by character, token id at node or -1).
    private var children: [[UInt32: Int32]] = [[:]]
    private var terminal: [Int32] = [-1]
    private let byteIds: [Int]?

    init(pieces: [Piece], unkId: Int?, byteFallback: Bool) {
        self.pieces = pieces
        var map = Vocab(minimumCapacity: pieces.count)
        for (i, p) in pieces.enumerated() where map[p.piece] == nil { map[p.piece] = i }
        pieceToId = map
        self.unkId = unkId
        self.byteFallback = byteFallback
        unkScore = (pieces.map { $0.score }.min() ?? 0) - 10.0
        if byteFallback {
            let ids = (0..<256).map { map[String(format: "<0x%02X>", $0)] }
            byteIds = ids.allSatisfy { $0 != nil } ? ids.map { $0! } : nil
        } else { byteIds = nil }
        for (i, p) in pieces.enumerated() {
            var node = 0
            for c in p.piece.unicodeScalars {
                if let nx = children[node][c.value] { node = Int(nx) } else {
                    children.append([:]); terminal.append(-1)
                    children[node][c.value] = Int32(children.count - 1)
                    node = children.count - 1
                }
            }
            if terminal[node] < 0 { terminal[node] = Int32(i) }
        }
    }

    static func parse(_ o: JSONObject) throws -> UnigramModel {
        let raw = try o.array("vocab")
        var pieces: [Piece] = []
        pieces.reserveCapacity(raw.count)
        for (i, item) in raw.enumerated() {
            guard let pair = item as? [Any], pair.count == 2, let s = pair[0] as? String, let n = pair[1] as? NSNumber, !JSONObject.isBool(n) else {
                throw TokenizerError.badField(file: o.file, field: "\(o.field("vocab"))[\(i)]", expected: "[piece, score]")
            }
            pieces.append(Piece(piece: s, score: n.doubleValue))
        }
        let unk = try o.optionalInt("unk_id")
        if let unk, unk < 0 || unk >= pieces.count { throw o.bad("unk_id", "an index into model.vocab") }
        return UnigramModel(pieces: pieces, unkId: unk, byteFallback: try o.bool("byte_fallback", default: false))
    }

    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int]) {
        let n = word.count
        if n == 0 { return }
        var bestScore = [Double](repeating: 0, count: n + 1)
        var bestStart = [Int](repeating: -1, count: n + 1)
        var bestId = [Int](repeating: -1, count: n + 1)
        bestStart[0] = 0
        for start in 0..<n where bestStart[start] >= 0 || start == 0 {
            let base = bestScore[start]
            var node = 0
            var hasSingle = false
            var k = start
            while k < n, let nx = children[node][word[k].value] {
                node = Int(nx); k += 1
                let id = Int(terminal[node])
                if id >= 0 {
                    if k == start + 1 { hasSingle = true }
                    let cand = base + pieces[id].score
                    if bestStart[k] < 0 || cand > bestScore[k] { bestScore[k] = cand; bestStart[k] = start; bestId[k] = id }
                }
            }
            if !hasSingle {
                let cand = base + unkScore
                if bestStart[start + 1] < 0 || cand > bestScore[start + 1] { bestScore[start + 1] = cand; bestStart[start + 1] = start; bestId[start + 1] = -2 }
            }
        }
        // Backtrack; unknown runs are fused into one unk (HF fuses unknowns).
        var spans: [(Int, Int, Int)] = []
        var e = n
        while e > 0 { let s = bestStart[e]; spans.append((s, e, bestId[e])); e = s }
        spans.reverse()
        var fused: [(Int, Int, Int)] = []
        for sp in spans {
            if sp.2 == -2, let last = fused.last, last.2 == -2 { fused[fused.count - 1].1 = sp.1 } else { fused.append(sp) }
        }
        for (s, e, id) in fused {
            if id >= 0 { out.append(id); continue }
            if let byteIds {
                for c in word[s..<e] { UTF8.encode(c) { out.append(byteIds[Int($0)]) } }
            } else if let unkId { out.append(unkId) }
        }
    }
}
