import Foundation

/// Slow-to-fast conversion: builds the tokenizer.json pipeline `transformers` 5 builds from a `tokenizer.model`.
public enum SentencePieceConverter {
    /// Which `transformers` conversion to follow.
    public enum Flavor: String, Sendable {
        /// `LlamaTokenizer` (Llama 2, Mistral): BPE with byte fallback, Metaspace, no normalizer.
        case llama
        /// The generic `TokenizersBackend` route (`build_tokenizer_from_spm_proto`): follows the model's own
        /// normalizer spec (precompiled charsmap, whitespace handling), BPE or Unigram.
        case generic
    }

    /// The flavor transformers would pick: `llama` for BPE models with byte fallback or a Llama/Mistral class.
    public static func defaultFlavor(_ m: SentencePieceModel, tokenizerClass: String? = nil) -> Flavor {
        if let c = tokenizerClass { return c.hasPrefix("Llama") || c.hasPrefix("Mistral") || c.hasPrefix("CodeLlama") ? .llama : .generic }
        return m.modelType == 2 && m.byteFallback ? .llama : .generic
    }

    /// Converts a SentencePiece model. `legacy` is tokenizer_config.json's `legacy` (nil: the class default).
    public static func convert(_ m: SentencePieceModel, flavor: Flavor? = nil, legacy: Bool? = nil, tokenizerClass: String? = nil) throws -> Tokenizer {
        let flavor = flavor ?? defaultFlavor(m, tokenizerClass: tokenizerClass)
        switch flavor {
        case .llama: return try llama(m, legacy: legacy ?? false)
        case .generic: return try generic(m, legacy: legacy ?? true)
        }
    }

    private static func vocabDict(_ m: SentencePieceModel) -> Vocab {
        var vocab = Vocab(minimumCapacity: m.pieces.count)
        for (i, p) in m.pieces.enumerated() { vocab[p.piece] = i }
        return vocab
    }

    /// `LlamaTokenizer`: merges from every vocabulary split, ordered by (merged id, left length).
    static func llama(_ m: SentencePieceModel, legacy: Bool) throws -> Tokenizer {
        let vocab = vocabDict(m)
        var ranked: [(Int, Int, String, String)] = []
        for (piece, id) in vocab.sortedPairs {
            let s = Array(piece.unicodeScalars)
            guard s.count > 1 else { continue }
            for k in 1..<s.count {
                let l = String(String.UnicodeScalarView(s[..<k])), r = String(String.UnicodeScalarView(s[k...]))
                if vocab[l] != nil && vocab[r] != nil { ranked.append((id, k, l, r)) }
            }
        }
        ranked.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        let bpe = try BPEModel(vocab: vocab, merges: ranked.map { ($0.2, $0.3) }, unkToken: nil, continuingSubwordPrefix: nil,
                               endOfWordSuffix: nil, fuseUnk: true, byteFallback: true, ignoreMerges: false, file: m.file)
        var added: [AddedToken] = []
        var seen = Set<String>()
        for (i, p) in m.pieces.enumerated() where p.type == .control || p.type == .userDefined {
            added.append(AddedToken(content: p.piece, id: vocab[p.piece] ?? i, special: p.type == .control, normalized: false)); seen.insert(p.piece)
        }
        for name in ["<unk>", "<s>", "</s>"] where !seen.contains(name) {
            if let id = vocab[name] { added.append(AddedToken(content: name, id: id, special: true, normalized: false)) }
        }
        added.sort { $0.id < $1.id }
        let tok = Tokenizer(normalizer: nil,
                            preTokenizer: .metaspace(replacement: "\u{2581}", prepend: legacy ? .always : .first, split: false),
                            model: .bpe(bpe), postProcessor: .template([.sequence]),
                            decoder: .sequence([.replace(.string(["\u{2581}"]), " "), .byteFallback, .fuse, .strip(content: " ", start: 1, stop: 0)]),
                            addedTokens: added, kind: "tokenizer.model (SentencePiece BPE, converted as LlamaTokenizer)", file: m.file)
        tok.bosToken = vocab["<s>"] != nil ? "<s>" : nil
        tok.eosToken = vocab["</s>"] != nil ? "</s>" : nil
        tok.unkToken = vocab["<unk>"] != nil ? "<unk>" : nil
        return tok
    }

    /// The generic route: follows the SentencePiece normalizer spec.
    static func generic(_ m: SentencePieceModel, legacy: Bool) throws -> Tokenizer {
        let userDefined = m.pieces.filter { $0.type == .userDefined }.map(\.piece)
        let model: Model
        switch m.modelType {
        case 2:
            let vocab = vocabDict(m)
            var normal: [ExactString: (Float, Int)] = [:]
            for (i, p) in m.pieces.enumerated() where p.type == .normal { normal[ExactString(p.piece)] = (p.score, i) }
            var ranked: [(Float, Int, Int, String, String)] = []
            for (key, (score, id)) in normal {
                let piece = key.s
                let s = Array(piece.unicodeScalars)
                guard s.count > 1 else { continue }
                for k in 1..<s.count {
                    let l = String(String.UnicodeScalarView(s[..<k])), r = String(String.UnicodeScalarView(s[k...]))
                    if normal[ExactString(l)] != nil && normal[ExactString(r)] != nil { ranked.append((-score, id, k, l, r)) }
                }
            }
            ranked.sort { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }
            model = .bpe(try BPEModel(vocab: vocab, merges: ranked.map { ($0.3, $0.4) }, unkToken: m.unkPiece, continuingSubwordPrefix: nil,
                                      endOfWordSuffix: nil, fuseUnk: true, byteFallback: m.byteFallback, ignoreMerges: !userDefined.isEmpty, file: m.file))
        case 1:
            model = .unigram(UnigramModel(pieces: m.pieces.map { .init(piece: $0.piece, score: Double($0.score)) }, unkId: m.unkId, byteFallback: m.byteFallback))
        default:
            throw TokenizerError.unsupportedComponent(file: m.file, field: "trainer_spec.model_type", type: m.modelType == 3 ? "WORD" : "CHAR")
        }
        var norms: [Normalizer] = []
        if !m.precompiledCharsmap.isEmpty { norms.append(.precompiled(try PrecompiledCharsmap(data: m.precompiledCharsmap, file: m.file))) }
        func re(_ p: String) throws -> Pattern {
            do { return .regex(try NSRegularExpression(pattern: p), source: p) } catch {
                throw TokenizerError.badRegex(file: m.file, field: "pieces (user-defined)", pattern: p)
            }
        }
        if m.removeExtraWhitespaces { norms += [.replace(try re("\\A +| +\\z"), ""), .replace(try re(" {2,}"), " ")] }
        if m.escapeWhitespaces { norms.append(.replace(.string([" "]), "\u{2581}")) }
        if m.addDummyPrefix && legacy { norms.append(.replace(try re("\\A\u{2581}"), "\u{2581}\u{2581}")) }
        var pres: [PreTokenizer] = []
        if m.addDummyPrefix { pres.append(.metaspace(replacement: "\u{2581}", prepend: legacy ? .always : .first, split: false)) }
        if !userDefined.isEmpty {
            let alt = userDefined.sorted { $0.unicodeScalars.count > $1.unicodeScalars.count }.map { NSRegularExpression.escapedPattern(for: $0) }.joined(separator: "|")
            pres.append(.split(SplitPattern(try re(alt)), .isolated, invert: false))
        }
        var decs: [Decoder] = [.replace(.string(["\u{2581}"]), " ")]
        if m.byteFallback { decs.append(.byteFallback) }
        if m.addDummyPrefix { decs += [.fuse, .strip(content: " ", start: 1, stop: 0)] } else if m.byteFallback { decs.append(.fuse) }
        var added: [AddedToken] = []
        var seen = Set<String>()
        for (i, p) in m.pieces.enumerated() where p.type == .control {
            added.append(AddedToken(content: p.piece, id: i, special: true, normalized: false)); seen.insert(p.piece)
        }
        for (id, name) in [(m.unkId, m.unkPiece), (m.bosId, m.bosPiece), (m.eosId, m.eosPiece)] where id >= 0 && !seen.contains(name) {
            added.append(AddedToken(content: name, id: id, special: true, normalized: false)); seen.insert(name)
        }
        added.sort { $0.id < $1.id }
        let tok = Tokenizer(normalizer: norms.isEmpty ? nil : .sequence(norms), preTokenizer: pres.isEmpty ? nil : .sequence(pres),
                            model: model, postProcessor: .template([.sequence]), decoder: .sequence(decs), addedTokens: added,
                            kind: "tokenizer.model (SentencePiece \(m.modelType == 2 ? "BPE" : "Unigram"), converted)", file: m.file)
        if m.bosId >= 0 { tok.bosToken = m.bosPiece }
        if m.eosId >= 0 { tok.eosToken = m.eosPiece }
        if m.unkId >= 0 { tok.unkToken = m.unkPiece }
        if m.padId >= 0 { tok.padToken = m.padPiece }
        return tok
    }
}
