import Foundation

/// A post-processor of tokenizer.json: adds the special tokens around a single sequence.
indirect enum PostProcessor {
    /// `TemplateProcessing` (single template): items are either a special token's ids or the sequence.
    case template([TemplateItem])
    /// `BertProcessing` / `RobertaProcessing`: cls + sequence + sep.
    case clsSep(cls: Int, sep: Int)
    /// `ByteLevel` (changes offsets only).
    case byteLevel
    case sequence([PostProcessor])

    enum TemplateItem { case special([Int]), sequence }

    static func parse(_ o: JSONObject) throws -> PostProcessor {
        let type = try o.string("type")
        switch type {
        case "TemplateProcessing":
            let specials = try o.object("special_tokens")
            var items: [TemplateItem] = []
            for (i, raw) in try o.array("single").enumerated() {
                guard let item = raw as? [String: Any] else { throw o.bad("single[\(i)]", "an object") }
                if let sp = item["SpecialToken"] as? [String: Any], let name = sp["id"] as? String {
                    guard let tok = specials.dict[name] as? [String: Any], let ids = tok["ids"] as? [Any] else {
                        throw o.bad("special_tokens", "an entry for '\(name)' with ids")
                    }
                    items.append(.special(try ids.map { v in
                        guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else { throw o.bad("special_tokens.\(name).ids", "integers") }
                        return i
                    }))
                } else if item["Sequence"] != nil {
                    items.append(.sequence)
                } else { throw o.bad("single[\(i)]", "{\"SpecialToken\": ...} or {\"Sequence\": ...}") }
            }
            return .template(items)
        case "BertProcessing", "RobertaProcessing":
            func pair(_ key: String) throws -> Int {
                guard let p = o.dict[key] as? [Any], p.count == 2, let n = p[1] as? NSNumber, let id = Int(exactly: n.doubleValue) else {
                    throw o.bad(key, "[token, id]")
                }
                return id
            }
            return .clsSep(cls: try pair("cls"), sep: try pair("sep"))
        case "ByteLevel": return .byteLevel
        case "Sequence": return .sequence(try o.objects("processors").map(parse))
        default: throw TokenizerError.unsupportedComponent(file: o.file, field: "post_processor", type: type)
        }
    }

    /// Adds the special tokens to a single encoded sequence.
    func process(_ ids: [Int]) -> [Int] {
        switch self {
        case let .template(items):
            var out: [Int] = []
            out.reserveCapacity(ids.count + 2)
            for item in items {
                switch item {
                case let .special(s): out.append(contentsOf: s)
                case .sequence: out.append(contentsOf: ids)
                }
            }
            return out
        case let .clsSep(cls, sep): return [cls] + ids + [sep]
        case .byteLevel: return ids
        case let .sequence(list):
            var out = ids
            for p in list { out = p.process(out) }
            return out
        }
    }

    /// Number of ids added to each sequence (for truncation).
    var addedCount: Int { process([]).count }
}

/// A decoder of tokenizer.json: turns token strings back into text.
indirect enum Decoder {
    case byteLevel
    case metaspace(replacement: Unicode.Scalar, prepend: Bool)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case replace(Pattern, String)
    case wordPiece(prefix: String, cleanup: Bool)
    case bpe(suffix: String)
    case ctc
    case sequence([Decoder])

    static func parse(_ o: JSONObject) throws -> Decoder {
        let type = try o.string("type")
        switch type {
        case "ByteLevel": return .byteLevel
        case "Metaspace":
            let rep = try o.string("replacement")
            guard let r = rep.unicodeScalars.first, rep.unicodeScalars.count == 1 else { throw o.bad("replacement", "a single character") }
            var prepend = true
            if let s = try o.optionalString("prepend_scheme") { prepend = s != "never" } else if o.has("add_prefix_space") { prepend = try o.bool("add_prefix_space", default: true) }
            return .metaspace(replacement: r, prepend: prepend)
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let c = try o.string("content")
            guard let ch = c.unicodeScalars.first, c.unicodeScalars.count == 1 else { throw o.bad("content", "a single character") }
            return .strip(content: ch, start: try o.int("start"), stop: try o.int("stop"))
        case "Replace": return .replace(try Pattern.parse(o, key: "pattern"), try o.string("content"))
        case "WordPiece": return .wordPiece(prefix: try o.optionalString("prefix") ?? "##", cleanup: try o.bool("cleanup", default: true))
        case "BPEDecoder": return .bpe(suffix: try o.optionalString("suffix") ?? "</w>")
        case "Sequence": return .sequence(try o.objects("decoders").map(parse))
        default: throw TokenizerError.unsupportedComponent(file: o.file, field: "decoder", type: type)
        }
    }

    /// Decodes the tokens into one string.
    func decode(_ tokens: [String]) -> String { decodeChain(tokens).joined() }

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens {
                var tb: [UInt8] = []
                var ok = true
                for c in t.unicodeScalars {
                    let b = c.value < 512 ? ByteLevel.charToByte[Int(c.value)] : -1
                    if b < 0 { ok = false; break }
                    tb.append(UInt8(b))
                }
                bytes.append(contentsOf: ok ? tb : Array(t.utf8))
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case let .metaspace(replacement, prepend):
            return tokens.enumerated().map { i, t in
                var v = String.UnicodeScalarView()
                for c in t.unicodeScalars where !(i == 0 && prepend && c == replacement) {
                    v.append(c == replacement ? " " : c)
                }
                return String(v)
            }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validating: pending, as: UTF8.self) { out.append(s) } else {
                    out.append(contentsOf: Array(repeating: "\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for t in tokens {
                let u = Array(t.utf8)
                if u.count == 6, u[0] == 60, u[1] == 48, u[2] == 120, u[5] == 62,
                   let b = UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16) {
                    pending.append(b)
                } else { flush(); out.append(t) }
            }
            flush()
            return out
        case .fuse: return [tokens.joined()]
        case let .strip(content, start, stop):
            return tokens.map { t in
                let chars = Array(t.unicodeScalars)
                var lo = 0, hi = chars.count
                while lo < min(start, chars.count) && chars[lo] == content { lo += 1 }
                var k = 0
                while k < stop && hi > lo && chars[hi - 1] == content { hi -= 1; k += 1 }
                var v = String.UnicodeScalarView()
                v.append(contentsOf: chars[lo..<hi])
                return String(v)
            }
        case let .replace(pattern, content):
            let c = Array(content.unicodeScalars)
            return tokens.map { t in
                var v = String.UnicodeScalarView()
                v.append(contentsOf: pattern.replaceAll(in: Array(t.unicodeScalars), with: c))
                return String(v)
            }
        case let .wordPiece(prefix, cleanup):
            return tokens.enumerated().map { i, t in
                var s = t
                if i != 0 {
                    if s.unicodeScalars.starts(with: prefix.unicodeScalars) {
                        s = String(String.UnicodeScalarView(s.unicodeScalars.dropFirst(prefix.unicodeScalars.count)))
                    } else { s = " " + s }
                }
                return cleanup ? Decoder.cleanup(s) : s
            }
        case let .bpe(suffix):
            return tokens.enumerated().map { i, t in
                t.replacingOccurrences(of: suffix, with: i == tokens.count - 1 ? "" : " ")
            }
        case .ctc: return tokens
        case let .sequence(list):
            var out = tokens
            for d in list { out = d.decodeChain(out) }
            return out
        }
    }

    /// HF's `clean_up_tokenization` for WordPiece.
    static func cleanup(_ s: String) -> String {
        var s = s
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                       (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            s = s.replacingOccurrences(of: a, with: b)
        }
        return s
    }
}
