/// Hand-written scanners for the split regexes real byte-level BPE models use.
///
/// Each one gives exactly the matches Oniguruma gives for the pattern (HF `tokenizers` uses Oniguruma),
/// and is much faster than a general regex engine. Unknown patterns fall back to ICU regex.
enum FastSplit {
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// Qwen 2: as Llama 3 but `\p{N}` one digit at a time.
    case qwen2
    /// GPT-2 (ByteLevel's own regex): `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2

    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    init?(pattern: String) {
        switch pattern {
        case FastSplit.llama3Pattern: self = .llama3
        case FastSplit.qwen2Pattern: self = .qwen2
        case FastSplit.gpt2Pattern: self = .gpt2
        default: return nil
        }
    }

    /// Character classes: 1 letter (\p{L}), 2 number (\p{N}), 4 whitespace (\s), 8 CR or LF, 0 other.
    @inline(__always)
    static func cls(_ c: Unicode.Scalar) -> UInt8 {
        let v = c.value
        if v < 128 { return asciiClass[Int(v)] }
        let p = c.properties
        if p.isWhitespace { return 4 }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return 1
        case .decimalNumber, .letterNumber, .otherNumber: return 2
        default: return 0
        }
    }

    private static let asciiClass: [UInt8] = (0..<128).map { v -> UInt8 in
        switch v {
        case 10, 13: return 4 | 8
        case 9, 11, 12, 32: return 4
        case 48...57: return 2
        case 65...90, 97...122: return 1
        default: return 0
        }
    }

    /// All matches, left to right (they tile the text: every character is matched by some branch).
    func matches(_ t: [Unicode.Scalar]) -> [Range<Int>] {
        let n = t.count
        var classes = [UInt8](repeating: 0, count: n)
        for i in 0..<n { classes[i] = FastSplit.cls(t[i]) }
        var out: [Range<Int>] = []
        out.reserveCapacity(n / 3 + 1)
        var i = 0
        while i < n {
            let end: Int
            switch self {
            case .llama3: end = llamaMatch(t, classes, i, maxDigits: 3)
            case .qwen2: end = llamaMatch(t, classes, i, maxDigits: 1)
            case .gpt2: end = gpt2Match(t, classes, i)
            }
            out.append(i..<end)
            i = end
        }
        return out
    }

    /// Length of a contraction (`'s`, `'re`...) at i, or 0.
    @inline(__always)
    private func contraction(_ t: [Unicode.Scalar], _ i: Int, caseInsensitive: Bool) -> Int {
        guard t[i] == "'", i + 1 < t.count else { return 0 }
        func lower(_ c: Unicode.Scalar) -> UInt32 {
            if !caseInsensitive { return c.value }
            if c.value >= 65 && c.value <= 90 { return c.value + 32 }
            if c.value == 0x17F { return 115 } // LATIN SMALL LETTER LONG S folds to s
            return c.value
        }
        let a = lower(t[i + 1])
        if a == 115 || a == 116 || a == 109 || a == 100 { return 2 } // s t m d
        guard i + 2 < t.count else { return 0 }
        let b = lower(t[i + 2])
        if (a == 114 && b == 101) || (a == 118 && b == 101) || (a == 108 && b == 108) { return 3 } // re ve ll
        return 0
    }

    private func llamaMatch(_ t: [Unicode.Scalar], _ k: [UInt8], _ i: Int, maxDigits: Int) -> Int {
        let n = t.count
        let c = k[i]
        let c2 = contraction(t, i, caseInsensitive: true)
        if c2 > 0 { return i + c2 }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c == 1 || ((c & 8) == 0 && c != 2 && i + 1 < n && k[i + 1] == 1) {
            var j = i + 1
            while j < n && k[j] == 1 { j += 1 }
            return j
        }
        // \p{N}{1,maxDigits}
        if c == 2 {
            var j = i + 1
            while j < n && j - i < maxDigits && k[j] == 2 { j += 1 }
            return j
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        var s = -1
        if c == 0 { s = i } else if t[i] == " " && i + 1 < n && k[i + 1] == 0 { s = i + 1 }
        if s >= 0 {
            var j = s + 1
            while j < n && k[j] == 0 { j += 1 }
            while j < n && (k[j] & 8) != 0 { j += 1 }
            return j
        }
        // Whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
        var j = i
        var lastNewline = -1
        while j < n && (k[j] & 4) != 0 { if (k[j] & 8) != 0 { lastNewline = j }; j += 1 }
        if lastNewline >= 0 { return lastNewline + 1 }
        if j == n || j - i == 1 { return j }
        return j - 1
    }

    private func gpt2Match(_ t: [Unicode.Scalar], _ k: [UInt8], _ i: Int) -> Int {
        let n = t.count
        let c2 = contraction(t, i, caseInsensitive: false)
        if c2 > 0 { return i + c2 }
        // ' ?X+' for X in letters, numbers, other
        var s = i
        if t[i] == " " && i + 1 < n && (k[i + 1] & 4) == 0 { s = i + 1 }
        let c = k[s]
        if (c & 4) == 0 {
            var j = s + 1
            while j < n && k[j] == c { j += 1 }
            return j
        }
        // \s+(?!\S) | \s+
        var j = i
        while j < n && (k[j] & 4) != 0 { j += 1 }
        if j == n || j - i == 1 { return j }
        return j - 1
    }
}
