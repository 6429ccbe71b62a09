import Foundation

/// A text normalizer of the tokenizer.json pipeline (HF `normalizers`).
///
/// Text flows through the pipeline as an array of Unicode scalars: HF works on Rust `char`s,
/// which are scalars, so this keeps every step character-exact.
indirect enum Normalizer {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case strip(left: Bool, right: Bool)
    case stripAccents
    case prepend(String)
    case replace(Pattern, String)
    case bert(cleanText: Bool, chineseChars: Bool, stripAccents: Bool?, lowercase: Bool)
    case precompiled(PrecompiledCharsmap)
    case sequence([Normalizer])

    /// Reads a normalizer object of tokenizer.json.
    static func parse(_ o: JSONObject) throws -> Normalizer {
        let type = try o.string("type")
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Strip": return .strip(left: try o.bool("strip_left", default: true), right: try o.bool("strip_right", default: true))
        case "StripAccents": return .stripAccents
        case "Prepend": return .prepend(try o.string("prepend"))
        case "Replace": return .replace(try Pattern.parse(o, key: "pattern"), try o.string("content"))
        case "BertNormalizer":
            let strip: Bool? = o.has("strip_accents") ? try o.bool("strip_accents", default: false) : nil
            return .bert(cleanText: try o.bool("clean_text", default: true), chineseChars: try o.bool("handle_chinese_chars", default: true),
                         stripAccents: strip, lowercase: try o.bool("lowercase", default: true))
        case "Precompiled":
            let b64 = try o.string("precompiled_charsmap")
            guard let data = Data(base64Encoded: b64) else { throw o.bad("precompiled_charsmap", "base64 data") }
            return .precompiled(try PrecompiledCharsmap(data: [UInt8](data), file: o.file))
        case "Sequence": return .sequence(try o.objects("normalizers").map(parse))
        default: throw TokenizerError.unsupportedComponent(file: o.file, field: o.path.isEmpty ? "normalizer" : o.path, type: type)
        }
    }

    /// Normalizes `text`.
    func apply(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .nfc: return Normalizer.unicode(text) { $0.precomposedStringWithCanonicalMapping }
        case .nfd: return Normalizer.unicode(text) { $0.decomposedStringWithCanonicalMapping }
        case .nfkc: return Normalizer.unicode(text) { $0.precomposedStringWithCompatibilityMapping }
        case .nfkd: return Normalizer.unicode(text) { $0.decomposedStringWithCompatibilityMapping }
        case .lowercase: return Normalizer.lowercased(text)
        case let .strip(left, right):
            var lo = 0, hi = text.count
            if left { while lo < hi && text[lo].properties.isWhitespace { lo += 1 } }
            if right { while hi > lo && text[hi - 1].properties.isWhitespace { hi -= 1 } }
            return Array(text[lo..<hi])
        case .stripAccents:
            return text.filter { $0.properties.generalCategory != .nonspacingMark }
        case let .prepend(s):
            return text.isEmpty ? text : Array(s.unicodeScalars) + text
        case let .replace(pattern, content):
            return pattern.replaceAll(in: text, with: Array(content.unicodeScalars))
        case let .bert(cleanText, chineseChars, stripAccents, lowercase):
            var out = text
            if cleanText {
                out = out.compactMap { c in
                    if c.value == 0 || c.value == 0xFFFD || Normalizer.isBertControl(c) { return nil }
                    return Normalizer.isBertWhitespace(c) ? " " : c
                }
            }
            if chineseChars {
                var padded: [Unicode.Scalar] = []
                padded.reserveCapacity(out.count)
                for c in out {
                    if Normalizer.isChineseChar(c) { padded.append(" "); padded.append(c); padded.append(" ") } else { padded.append(c) }
                }
                out = padded
            }
            if stripAccents ?? lowercase {
                out = Normalizer.unicode(out) { $0.decomposedStringWithCanonicalMapping }.filter { $0.properties.generalCategory != .nonspacingMark }
            }
            if lowercase { out = Normalizer.lowercased(out) }
            return out
        case let .precompiled(map):
            return map.normalize(text)
        case let .sequence(list):
            var out = text
            for n in list { out = n.apply(out) }
            return out
        }
    }

    /// Whether this normalizer is a no-op chain (so the caller can skip it).
    var isEmpty: Bool {
        if case let .sequence(list) = self { return list.allSatisfy { $0.isEmpty } }
        return false
    }

    private static func unicode(_ text: [Unicode.Scalar], _ f: (String) -> String) -> [Unicode.Scalar] {
        if text.allSatisfy({ $0.isASCII }) { return text }
        var s = String.UnicodeScalarView()
        s.append(contentsOf: text)
        return Array(f(String(s)).unicodeScalars)
    }

    /// Per-character full lowercase mapping, as Rust's `char::to_lowercase` (no final-sigma rule).
    static func lowercased(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for c in text {
            if c.isASCII {
                out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c)
            } else if c.properties.changesWhenLowercased {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            } else {
                out.append(c)
            }
        }
        return out
    }

    static func isBertWhitespace(_ c: Unicode.Scalar) -> Bool {
        c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace
    }

    static func isBertControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        switch c.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    static func isChineseChar(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }
}

/// A string or regex pattern of a Replace normalizer, Split pre-tokenizer or Replace decoder.
enum Pattern {
    case string([Unicode.Scalar])
    case regex(NSRegularExpression, source: String)

    static func parse(_ o: JSONObject, key: String) throws -> Pattern {
        let p = try o.object(key)
        if let s = p.dict["String"] as? String { return .string(Array(s.unicodeScalars)) }
        if let r = p.dict["Regex"] as? String {
            do { return .regex(try NSRegularExpression(pattern: Pattern.translate(r), options: []), source: r) } catch {
                throw TokenizerError.badRegex(file: o.file, field: o.field(key), pattern: r)
            }
        }
        throw TokenizerError.badField(file: o.file, field: o.field(key), expected: "{\"String\": ...} or {\"Regex\": ...}")
    }

    /// Oniguruma syntax (HF) to ICU syntax: the two agree on what real tokenizers use; `\z` and `\A` exist in both.
    static func translate(_ onig: String) -> String { onig }

    /// The matches of the pattern in `text`, as scalar index ranges, left to right and non-overlapping.
    func matches(in text: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case let .string(needle):
            guard !needle.isEmpty, needle.count <= text.count else { return [] }
            var out: [Range<Int>] = []
            var i = 0
            let first = needle[0]
            while i + needle.count <= text.count {
                if text[i] == first && text[i..<(i + needle.count)].elementsEqual(needle) {
                    out.append(i..<(i + needle.count)); i += needle.count
                } else { i += 1 }
            }
            return out
        case let .regex(re, _):
            return RegexMatcher.matches(re, in: text)
        }
    }

    /// Replaces every match by `content`.
    func replaceAll(in text: [Unicode.Scalar], with content: [Unicode.Scalar]) -> [Unicode.Scalar] {
        let ms = matches(in: text)
        if ms.isEmpty { return text }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var last = 0
        for m in ms {
            out.append(contentsOf: text[last..<m.lowerBound]); out.append(contentsOf: content); last = m.upperBound
        }
        out.append(contentsOf: text[last...])
        return out
    }
}

/// Runs an ICU regex over scalar arrays, mapping UTF-16 offsets back to scalar indices.
enum RegexMatcher {
    static func matches(_ re: NSRegularExpression, in text: [Unicode.Scalar]) -> [Range<Int>] {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: text)
        let str = String(s)
        // UTF-16 offset -> scalar index.
        var u16ToScalar = [Int](repeating: 0, count: str.utf16.count + 1)
        var u = 0
        for (i, c) in text.enumerated() {
            let n = c.value > 0xFFFF ? 2 : 1
            for k in 0..<n { u16ToScalar[u + k] = i }
            u += n
        }
        u16ToScalar[u] = text.count
        let ns = str as NSString
        return re.matches(in: str, options: [], range: NSRange(location: 0, length: ns.length)).compactMap { m in
            guard m.range.location != NSNotFound, m.range.length > 0 else { return nil }
            return u16ToScalar[m.range.location]..<u16ToScalar[m.range.location + m.range.length]
        }
    }
}
