import Foundation

/// Writes a tokenizer back as a Hugging Face tokenizer.json (what `convert` and `heal` produce).
public enum TokenizerWriter {
    /// The tokenizer.json object of a tokenizer.
    public static func json(_ tok: Tokenizer) -> [String: Any] {
        var root: [String: Any] = ["version": "1.0"]
        root["truncation"] = tok.truncation.map { ["max_length": $0.maxLength, "strategy": "LongestFirst", "stride": 0, "direction": $0.fromLeft ? "Left" : "Right"] as [String: Any] } ?? NSNull()
        root["padding"] = tok.padding.map { p -> [String: Any] in
            ["strategy": p.length.map { ["Fixed": $0] as Any } ?? "BatchLongest", "direction": p.side == .left ? "Left" : "Right",
             "pad_to_multiple_of": p.multipleOf.map { $0 as Any } ?? NSNull(), "pad_id": p.padId, "pad_type_id": 0,
             "pad_token": tok.idToToken(p.padId) ?? "[PAD]"]
        } ?? NSNull()
        root["added_tokens"] = tok.addedTokens.map { t -> [String: Any] in
            ["id": t.id, "content": t.content, "single_word": t.singleWord, "lstrip": t.lstrip, "rstrip": t.rstrip,
             "normalized": t.normalized, "special": t.special]
        }
        root["normalizer"] = tok.normalizer.map(normalizer) ?? NSNull()
        root["pre_tokenizer"] = tok.preTokenizer.map(preTokenizer) ?? NSNull()
        root["model"] = model(tok.model)
        root["post_processor"] = tok.postProcessor.map { postProcessor($0, tok) } ?? NSNull()
        root["decoder"] = tok.decoder.map(decoder) ?? NSNull()
        return root
    }

    /// Writes tokenizer.json atomically (temporary file, then rename).
    public static func write(_ tok: Tokenizer, to url: URL) throws {
        try writeJSON(json(tok), to: url)
    }

    /// Writes a JSON object atomically.
    static func writeJSON(_ object: Any, to url: URL) throws {
        try writeAtomically(JSONEncoderExact.encode(object), to: url)
    }

    /// Writes bytes atomically (temporary file in the same folder, then rename).
    static func writeAtomically(_ data: Data, to url: URL) throws {
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            try data.write(to: tmp)
            if FileManager.default.fileExists(atPath: url.path) { _ = try FileManager.default.replaceItemAt(url, withItemAt: tmp) } else {
                try FileManager.default.moveItem(at: tmp, to: url)
            }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw TokenizerError.unreadable(file: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    static func pattern(_ p: Pattern) -> [String: Any] {
        switch p {
        case let .string(s): var v = String.UnicodeScalarView(); v.append(contentsOf: s); return ["String": String(v)]
        case let .regex(_, source): return ["Regex": source]
        }
    }

    static func normalizer(_ n: Normalizer) -> [String: Any] {
        switch n {
        case .nfc: return ["type": "NFC"]
        case .nfd: return ["type": "NFD"]
        case .nfkc: return ["type": "NFKC"]
        case .nfkd: return ["type": "NFKD"]
        case .lowercase: return ["type": "Lowercase"]
        case let .strip(l, r): return ["type": "Strip", "strip_left": l, "strip_right": r]
        case .stripAccents: return ["type": "StripAccents"]
        case let .prepend(s): return ["type": "Prepend", "prepend": s]
        case let .replace(p, c): return ["type": "Replace", "pattern": pattern(p), "content": c]
        case let .bert(clean, chinese, strip, lower):
            return ["type": "BertNormalizer", "clean_text": clean, "handle_chinese_chars": chinese,
                    "strip_accents": strip.map { $0 as Any } ?? NSNull(), "lowercase": lower]
        case let .precompiled(m): return ["type": "Precompiled", "precompiled_charsmap": Data(m.raw).base64EncodedString()]
        case let .sequence(list): return ["type": "Sequence", "normalizers": list.map(normalizer)]
        }
    }

    static func preTokenizer(_ p: PreTokenizer) -> [String: Any] {
        switch p {
        case let .byteLevel(prefix, regex): return ["type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": true, "use_regex": regex]
        case let .split(sp, behavior, invert): return ["type": "Split", "pattern": pattern(sp.pattern), "behavior": behavior.rawValue, "invert": invert]
        case let .metaspace(r, scheme, split): return ["type": "Metaspace", "replacement": String(Character(r)), "prepend_scheme": scheme.rawValue, "split": split]
        case .whitespace: return ["type": "Whitespace"]
        case .whitespaceSplit: return ["type": "WhitespaceSplit"]
        case let .punctuation(b): return ["type": "Punctuation", "behavior": b.rawValue]
        case let .digits(ind): return ["type": "Digits", "individual_digits": ind]
        case .bert: return ["type": "BertPreTokenizer"]
        case let .sequence(list): return ["type": "Sequence", "pretokenizers": list.map(preTokenizer)]
        }
    }

    static func model(_ m: Model) -> [String: Any] {
        switch m {
        case let .bpe(b):
            return ["type": "BPE", "dropout": NSNull(), "unk_token": b.unkToken.map { $0 as Any } ?? NSNull(),
                    "continuing_subword_prefix": b.continuingSubwordPrefix.map { $0 as Any } ?? NSNull(),
                    "end_of_word_suffix": b.endOfWordSuffix.map { $0 as Any } ?? NSNull(),
                    "fuse_unk": b.fuseUnk, "byte_fallback": b.byteFallback, "ignore_merges": b.ignoreMerges,
                    "vocab": JSONEncoderExact.VocabObject(pairs: b.vocab.sortedPairs), "merges": b.mergeList.map { [$0.0, $0.1] }]
        case let .wordPiece(w):
            return ["type": "WordPiece", "unk_token": w.unkToken, "continuing_subword_prefix": w.prefix, "max_input_chars_per_word": w.maxChars, "vocab": JSONEncoderExact.VocabObject(pairs: w.vocab.sortedPairs)]
        case let .unigram(u):
            return ["type": "Unigram", "unk_id": u.unkId.map { $0 as Any } ?? NSNull(), "byte_fallback": u.byteFallback,
                    "vocab": u.pieces.map { [$0.piece, $0.score] as [Any] }]
        }
    }

    static func postProcessor(_ p: PostProcessor, _ tok: Tokenizer) -> [String: Any] {
        switch p {
        case let .template(items):
            var single: [Any] = [], pair: [Any] = []
            var specials: [String: Any] = [:]
            for (k, seq) in [("A", 0), ("B", 1)] {
                for item in items {
                    switch item {
                    case let .special(ids):
                        let name = ids.map { tok.idToToken($0) ?? "\($0)" }.joined()
                        specials[name] = ["id": name, "ids": ids, "tokens": ids.map { tok.idToToken($0) ?? "" }]
                        let e: [String: Any] = ["SpecialToken": ["id": name, "type_id": seq]]
                        if k == "A" { single.append(e) }
                        pair.append(e)
                    case .sequence:
                        let e: [String: Any] = ["Sequence": ["id": k, "type_id": seq]]
                        if k == "A" { single.append(e) }
                        pair.append(e)
                    }
                }
            }
            return ["type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials]
        case let .clsSep(cls, sep):
            return ["type": "BertProcessing", "cls": [tok.idToToken(cls) ?? "", cls], "sep": [tok.idToToken(sep) ?? "", sep]]
        case .byteLevel: return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        case let .sequence(list): return ["type": "Sequence", "processors": list.map { postProcessor($0, tok) }]
        }
    }

    static func decoder(_ d: Decoder) -> [String: Any] {
        switch d {
        case .byteLevel: return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
        case let .metaspace(r, prepend): return ["type": "Metaspace", "replacement": String(Character(r)), "prepend_scheme": prepend ? "always" : "never", "split": true]
        case .byteFallback: return ["type": "ByteFallback"]
        case .fuse: return ["type": "Fuse"]
        case let .strip(c, start, stop): return ["type": "Strip", "content": String(Character(c)), "start": start, "stop": stop]
        case let .replace(p, c): return ["type": "Replace", "pattern": pattern(p), "content": c]
        case let .wordPiece(prefix, cleanup): return ["type": "WordPiece", "prefix": prefix, "cleanup": cleanup]
        case let .bpe(suffix): return ["type": "BPEDecoder", "suffix": suffix]
        case .ctc: return ["type": "CTC"]
        case let .sequence(list): return ["type": "Sequence", "decoders": list.map(decoder)]
        }
    }
}
