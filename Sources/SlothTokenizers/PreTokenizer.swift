import Foundation

/// One piece of text between pre-tokenization steps.
struct Split {
    /// The piece's characters (normalized text; byte-level characters after ByteLevel).
    var text: [Unicode.Scalar]
    /// Whether the piece starts at offset 0 of the original input (Metaspace `prepend_scheme: first`).
    var atStart: Bool
}

/// How a Split pre-tokenizer treats the matched delimiters (HF `SplitDelimiterBehavior`).
enum SplitBehavior: String {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    /// Cuts `text` into pieces given the delimiter matches (sorted, non-overlapping).
    func apply(_ split: Split, matches: [Range<Int>], invert: Bool = false) -> [Split] {
        let text = split.text
        var segs: [(Range<Int>, Bool)] = []
        var last = 0
        for m in matches {
            if m.lowerBound > last { segs.append((last..<m.lowerBound, invert)) }
            segs.append((m, !invert))
            last = m.upperBound
        }
        if last < text.count { segs.append((last..<text.count, invert)) }
        var ranges: [Range<Int>] = []
        switch self {
        case .removed: ranges = segs.filter { !$0.1 }.map { $0.0 }
        case .isolated: ranges = segs.map { $0.0 }
        case .contiguous:
            var prevMatch = false
            for (r, isMatch) in segs {
                if isMatch && prevMatch, let l = ranges.last { ranges[ranges.count - 1] = l.lowerBound..<r.upperBound } else { ranges.append(r) }
                prevMatch = isMatch
            }
        case .mergedWithPrevious:
            var prevMatch = false
            for (r, isMatch) in segs {
                if isMatch && !prevMatch, let l = ranges.last { ranges[ranges.count - 1] = l.lowerBound..<r.upperBound } else { ranges.append(r) }
                prevMatch = isMatch
            }
        case .mergedWithNext:
            var prevMatch = false
            var rev: [Range<Int>] = []
            for (r, isMatch) in segs.reversed() {
                if isMatch && !prevMatch, let l = rev.last { rev[rev.count - 1] = r.lowerBound..<l.upperBound } else { rev.append(r) }
                prevMatch = isMatch
            }
            ranges = rev.reversed()
        }
        return ranges.filter { !$0.isEmpty }.map { Split(text: Array(text[$0]), atStart: split.atStart && $0.lowerBound == 0) }
    }
}

/// A pre-tokenizer of the tokenizer.json pipeline (HF `pre_tokenizers`).
indirect enum PreTokenizer {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(SplitPattern, SplitBehavior, invert: Bool)
    case metaspace(replacement: Unicode.Scalar, prepend: PrependScheme, split: Bool)
    case whitespace
    case whitespaceSplit
    case punctuation(SplitBehavior)
    case digits(individual: Bool)
    case bert
    case sequence([PreTokenizer])

    /// Metaspace's `prepend_scheme`.
    enum PrependScheme: String { case always, never, first }

    static func parse(_ o: JSONObject) throws -> PreTokenizer {
        let type = try o.string("type")
        switch type {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try o.bool("add_prefix_space", default: true), useRegex: try o.bool("use_regex", default: true))
        case "Split":
            let behavior = try o.string("behavior")
            guard let b = SplitBehavior(rawValue: behavior) else { throw o.bad("behavior", "one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous") }
            return .split(try SplitPattern(Pattern.parse(o, key: "pattern")), b, invert: try o.bool("invert", default: false))
        case "Metaspace":
            let rep = try o.string("replacement")
            guard let r = rep.unicodeScalars.first, rep.unicodeScalars.count == 1 else { throw o.bad("replacement", "a single character") }
            var scheme = PrependScheme.always
            if let s = try o.optionalString("prepend_scheme") {
                guard let p = PrependScheme(rawValue: s) else { throw o.bad("prepend_scheme", "always, never or first") }
                scheme = p
            } else if o.has("add_prefix_space") {
                scheme = try o.bool("add_prefix_space", default: true) ? .always : .never
            }
            return .metaspace(replacement: r, prepend: scheme, split: try o.bool("split", default: true))
        case "Whitespace": return .whitespace
        case "WhitespaceSplit": return .whitespaceSplit
        case "Punctuation":
            let b = try o.optionalString("behavior") ?? "Isolated"
            guard let behavior = SplitBehavior(rawValue: b) else { throw o.bad("behavior", "a split behavior") }
            return .punctuation(behavior)
        case "Digits": return .digits(individual: try o.bool("individual_digits", default: false))
        case "BertPreTokenizer": return .bert
        case "Sequence": return .sequence(try o.objects("pretokenizers").map(parse))
        default: throw TokenizerError.unsupportedComponent(file: o.file, field: o.path.isEmpty ? "pre_tokenizer" : o.path, type: type)
        }
    }

    /// Pre-tokenizes the pieces.
    func apply(_ splits: [Split]) -> [Split] {
        switch self {
        case let .sequence(list):
            var out = splits
            for p in list { out = p.apply(out) }
            return out
        default:
            var out: [Split] = []
            out.reserveCapacity(splits.count * 4)
            for s in splits { applyOne(s, into: &out) }
            return out
        }
    }

    private func applyOne(_ s: Split, into out: inout [Split]) {
        switch self {
        case let .byteLevel(addPrefixSpace, useRegex):
            var s = s
            if addPrefixSpace && s.text.first != " " { s.text.insert(" ", at: 0) }
            let pieces = useRegex ? SplitBehavior.isolated.apply(s, matches: FastSplit.gpt2.matches(s.text)) : [s]
            for p in pieces { out.append(Split(text: ByteLevel.encode(p.text), atStart: p.atStart)) }
        case let .split(pattern, behavior, invert):
            out.append(contentsOf: behavior.apply(s, matches: pattern.matches(s.text), invert: invert))
        case let .metaspace(replacement, prepend, split):
            var text = s.text.map { $0 == " " ? replacement : $0 }
            if (prepend == .always || (prepend == .first && s.atStart)) && text.first != replacement {
                text.insert(replacement, at: 0)
            }
            let t = Split(text: text, atStart: s.atStart)
            if split {
                let ms = text.indices.filter { text[$0] == replacement }.map { $0..<($0 + 1) }
                out.append(contentsOf: SplitBehavior.mergedWithNext.apply(t, matches: ms))
            } else {
                out.append(t)
            }
        case .whitespace:
            // HF: regex \w+|[^\w\s]+, keeping only the matches.
            out.append(contentsOf: SplitBehavior.removed.apply(s, matches: PreTokenizer.wordRuns(s.text), invert: true))
        case .whitespaceSplit:
            let ms = s.text.indices.filter { s.text[$0].properties.isWhitespace }.map { $0..<($0 + 1) }
            out.append(contentsOf: SplitBehavior.removed.apply(s, matches: ms))
        case let .punctuation(behavior):
            let ms = s.text.indices.filter { PreTokenizer.isPunctuation(s.text[$0]) }.map { $0..<($0 + 1) }
            out.append(contentsOf: behavior.apply(s, matches: ms))
        case let .digits(individual):
            var ms: [Range<Int>] = []
            var i = 0
            while i < s.text.count {
                if s.text[i].properties.numericType == .decimal {
                    var j = i + 1
                    if !individual { while j < s.text.count && s.text[j].properties.numericType == .decimal { j += 1 } }
                    ms.append(i..<j); i = j
                } else { i += 1 }
            }
            out.append(contentsOf: (individual ? SplitBehavior.isolated : .contiguous).apply(s, matches: ms))
        case .bert:
            let ws = s.text.indices.filter { s.text[$0].properties.isWhitespace }.map { $0..<($0 + 1) }
            for w in SplitBehavior.removed.apply(s, matches: ws) {
                let ps = w.text.indices.filter { PreTokenizer.isPunctuation(w.text[$0]) }.map { $0..<($0 + 1) }
                out.append(contentsOf: SplitBehavior.isolated.apply(w, matches: ps))
            }
        case .sequence:
            out.append(contentsOf: apply([s]))
        }
    }

    /// HF's punctuation test: ASCII punctuation or a Unicode punctuation category.
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII {
            let v = c.value
            return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v)
        }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .closePunctuation, .finalPunctuation, .initialPunctuation,
             .otherPunctuation, .openPunctuation: return true
        default: return false
        }
    }

    /// Matches of `\w+|[^\w\s]+` (Whitespace pre-tokenizer).
    static func wordRuns(_ t: [Unicode.Scalar]) -> [Range<Int>] {
        func isWord(_ c: Unicode.Scalar) -> Bool {
            if c == "_" { return true }
            let p = c.properties
            if p.isAlphabetic { return true }
            switch p.generalCategory {
            case .decimalNumber, .nonspacingMark, .spacingMark, .enclosingMark, .connectorPunctuation: return true
            default: return false
            }
        }
        var out: [Range<Int>] = []
        var i = 0
        while i < t.count {
            if t[i].properties.isWhitespace { i += 1; continue }
            let w = isWord(t[i])
            var j = i + 1
            while j < t.count && !t[j].properties.isWhitespace && isWord(t[j]) == w { j += 1 }
            out.append(i..<j); i = j
        }
        return out
    }
}

/// The pattern of a Split pre-tokenizer: a hand-written scanner for the patterns real models use, else a regex.
struct SplitPattern {
    let pattern: Pattern
    let fast: FastSplit?

    init(_ pattern: Pattern) {
        self.pattern = pattern
        if case let .regex(_, source) = pattern { fast = FastSplit(pattern: source) } else { fast = nil }
    }

    func matches(_ text: [Unicode.Scalar]) -> [Range<Int>] {
        if let fast { return fast.matches(text) }
        return pattern.matches(in: text)
    }
}

/// GPT-2's byte-to-character map used by the ByteLevel pre-tokenizer and decoder.
enum ByteLevel {
    /// Byte value -> printable character.
    static let byteToChar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable { table[b] = Unicode.Scalar(UInt32(b))! } else { table[b] = Unicode.Scalar(256 + n)!; n += 1 }
        }
        return table
    }()

    /// Character value -> byte (-1 when the character is not in the map).
    static let charToByte: [Int16] = {
        var t = [Int16](repeating: -1, count: 512)
        for (b, c) in byteToChar.enumerated() { t[Int(c.value)] = Int16(b) }
        return t
    }()

    /// Maps text to its UTF-8 bytes, each shown as its GPT-2 character.
    static func encode(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for c in text {
            if c.value < 0x80 { out.append(byteToChar[Int(c.value)]); continue }
            UTF8.encode(c) { out.append(byteToChar[Int($0)]) }
        }
        return out
    }
}
