import Foundation

/// Unsloth-style "self-healing" of tokenizers (REFERENCE.md §4): each repair is reported in one line.
public enum TokenizerHealer {
    /// What healing changes (or would change), and what it cannot repair.
    public struct Report: Sendable {
        public var repairs: [String] = []
        public var errors: [String] = []
    }

    /// Tokens named for padding, best first.
    static let padNames = ["<|finetune_right_pad_id|>", "<pad>", "[PAD]", "<|pad|>", "<|PAD_TOKEN|>", "<|padding|>"]
    /// Prefixes of reserved (unused) tokens that may serve as padding.
    static let reservedPrefixes = ["<|reserved_special_token_", "[control_", "<unused", "[unused", "<|reserved", "<extra_id_"]

    /// The model's embedding rows: `vocab_size` of config.json beside the tokenizer, if any.
    public static func embeddingRows(near url: URL) -> Int? {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
        let folder = isDir.boolValue ? url : url.deletingLastPathComponent()
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("config.json")),
              let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        if let n = o["vocab_size"] as? NSNumber { return n.intValue }
        if let t = o["text_config"] as? [String: Any], let n = t["vocab_size"] as? NSNumber { return n.intValue }
        return nil
    }

    /// Finds a pad token: a pad-named token, else a reserved one (highest id), else <|endoftext|> or unk; never eos.
    static func padCandidate(_ tok: Tokenizer) -> String? {
        let eos = tok.eosTokenId
        for name in padNames { if let id = tok.tokenToId(name), id != eos { return name } }
        let reserved = tok.addedTokens.filter { t in t.id != eos && reservedPrefixes.contains { t.content.hasPrefix($0) } }
        if let r = reserved.max(by: { $0.id < $1.id }) { return r.content }
        for name in ["<|endoftext|>", "<unk>", "[UNK]"] { if let id = tok.tokenToId(name), id != eos { return name } }
        return nil
    }

    /// Works out the repairs, applying them to `tok` when `apply` is set.
    @discardableResult
    static func run(_ tok: Tokenizer, embeddingRows: Int?, apply: Bool) -> Report {
        var r = Report()
        // 1. Special-token strings that are not in the vocabulary.
        for (name, kp) in [("bos_token", \Tokenizer.bosToken), ("eos_token", \Tokenizer.eosToken), ("unk_token", \Tokenizer.unkToken), ("pad_token", \Tokenizer.padToken)] {
            guard let s = tok[keyPath: kp], tok.tokenToId(s) == nil else { continue }
            r.repairs.append("\(name) '\(s)' is not in the vocabulary: unset it")
            if apply { tok[keyPath: kp] = nil }
        }
        // 2. Added tokens beyond the embedding rows.
        if let rows = embeddingRows {
            let beyond = tok.addedTokens.filter { $0.id >= rows }
            for t in beyond where t.special {
                r.errors.append("special token '\(t.content)' has id \(t.id) but the model has \(rows) embedding rows: resize the embeddings or fix the tokenizer")
            }
            let removable = beyond.filter { !$0.special }
            if !removable.isEmpty {
                r.repairs.append("remove \(removable.count) added tokens with ids >= \(rows) embedding rows (\(removable.prefix(3).map { "'\($0.content)' \($0.id)" }.joined(separator: ", "))\(removable.count > 3 ? ", ..." : ""))")
                if apply { tok.setAddedTokens(tok.addedTokens.filter { $0.special || $0.id < rows }) }
            }
        }
        // 3. Missing pad token, or pad == eos.
        let padIsEos = tok.padTokenId != nil && tok.padTokenId == tok.eosTokenId
        if tok.padTokenId == nil || padIsEos {
            if let c = padCandidate(tok) {
                r.repairs.append(padIsEos ? "pad token equals eos '\(tok.eosToken ?? "")' (the model would not learn to stop): use '\(c)' (id \(tok.tokenToId(c)!))"
                                          : "no pad token: use '\(c)' (id \(tok.tokenToId(c)!))")
                if apply { tok.padToken = c }
            } else {
                r.errors.append("no pad token and no reserved token to use as one (never eos): add a <pad> token and resize the embeddings")
            }
        }
        return r
    }

    /// What healing would change, without changing anything.
    public static func plan(_ tok: Tokenizer, embeddingRows: Int?) -> Report {
        // Work on a copy of the mutable state by recording and restoring it.
        let saved = (tok.bosToken, tok.eosToken, tok.unkToken, tok.padToken)
        let report = run(tok, embeddingRows: embeddingRows, apply: false)
        (tok.bosToken, tok.eosToken, tok.unkToken, tok.padToken) = saved
        return report
    }

    /// Heals `tok` loaded from `source` and writes tokenizer.json, tokenizer_config.json (and a rewritten
    /// tokenizer.model when ChatML mapping renamed pieces) into `output`.
    public static func heal(_ tok: Tokenizer, source: URL, embeddingRows: Int?, chatml: Bool, output: URL) throws -> Report {
        var report = run(tok, embeddingRows: embeddingRows, apply: true)
        if let e = report.errors.first { throw TokenizerError.cannotHeal(file: source.path, reason: e) }
        var renames: [Int: String] = [:]
        if chatml {
            for (name, preferred) in [("<|im_end|>", tok.eosTokenId), ("<|im_start|>", nil as Int?)] where tok.tokenToId(name) == nil {
                guard let id = preferred ?? spareToken(tok, excluding: Set(renames.keys)) else {
                    throw TokenizerError.cannotHeal(file: source.path, reason: "no existing token to map \(name) onto: add it and resize the embeddings")
                }
                report.repairs.append("map \(name) onto '\(tok.idToToken(id) ?? "?")' (id \(id))")
                renames[id] = name
            }
        }
        do { try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true) } catch {
            throw TokenizerError.unreadable(file: output.path, reason: error.localizedDescription)
        }
        var json = TokenizerWriter.json(tok)
        if !renames.isEmpty { json = rename(json, renames) }
        try TokenizerWriter.writeJSON(json, to: output.appendingPathComponent("tokenizer.json"))
        // tokenizer_config.json: keep the original fields, update the special tokens.
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir)
        let folder = isDir.boolValue ? source : source.deletingLastPathComponent()
        var config = (try TokenizerConfig.read(folder.appendingPathComponent("tokenizer_config.json")))?.dict ?? [:]
        func name(_ s: String?) -> Any { s.map { id in tok.tokenToId(id).flatMap { renames[$0] } ?? id } ?? NSNull() }
        config["bos_token"] = name(tok.bosToken); config["eos_token"] = name(tok.eosToken)
        config["pad_token"] = name(tok.padToken); config["unk_token"] = name(tok.unkToken)
        if var dec = config["added_tokens_decoder"] as? [String: Any] {
            for (id, n) in renames { if var e = dec[String(id)] as? [String: Any] { e["content"] = n; dec[String(id)] = e } }
            let kept = Set(tok.addedTokens.map { String($0.id) })
            config["added_tokens_decoder"] = dec.filter { kept.contains($0.key) }
        }
        try TokenizerWriter.writeJSON(config, to: output.appendingPathComponent("tokenizer_config.json"))
        let spm = folder.appendingPathComponent("tokenizer.model")
        if FileManager.default.fileExists(atPath: spm.path) {
            let m = try SentencePieceModel(file: spm)
            try TokenizerWriter.writeAtomically(Data(try m.renamingPieces(renames)), to: output.appendingPathComponent("tokenizer.model"))
        }
        return report
    }

    /// An unused reserved token to carry a new name (e.g. <|reserved_special_token_0|>, <unused0>).
    static func spareToken(_ tok: Tokenizer, excluding: Set<Int>) -> Int? {
        let used = Set([tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.unkTokenId].compactMap { $0 }).union(excluding)
        for t in tok.addedTokens.sorted(by: { $0.id < $1.id }) where !used.contains(t.id) {
            let c = t.content
            if c.hasPrefix("<|reserved_special_token_") || c.hasPrefix("<unused") || c.hasPrefix("[unused") || c.hasPrefix("<|reserved") { return t.id }
        }
        return nil
    }

    /// Renames tokens (id -> new content) in a tokenizer.json object: vocabulary, merges, added tokens, templates.
    static func rename(_ json: [String: Any], _ renames: [Int: String]) -> [String: Any] {
        var json = json
        var old: [String: String] = [:]
        if var added = json["added_tokens"] as? [[String: Any]] {
            for i in added.indices { if let id = added[i]["id"] as? Int, let n = renames[id] { old[added[i]["content"] as? String ?? ""] = n; added[i]["content"] = n } }
            json["added_tokens"] = added
        }
        if var model = json["model"] as? [String: Any] {
            if let vocab = model["vocab"] as? JSONEncoderExact.VocabObject {
                model["vocab"] = JSONEncoderExact.VocabObject(pairs: vocab.pairs.map { t, id in
                    if let n = renames[id] { old[t] = n; return (n, id) }
                    return (t, id)
                })
            } else if var vocab = model["vocab"] as? [[Any]] {
                for (id, n) in renames where id < vocab.count { if let k = vocab[id][0] as? String { old[k] = n }; vocab[id][0] = n }
                model["vocab"] = vocab
            }
            if let merges = model["merges"] as? [[String]] { model["merges"] = merges.map { $0.map { old[$0] ?? $0 } } }
            json["model"] = model
        }
        return json
    }
}
