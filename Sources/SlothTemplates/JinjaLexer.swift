/// A position in the template source: 1-based line and column (in Unicode code points).
struct SourcePos: Sendable {
    var line: Int
    var column: Int
}

/// One lexical token of a template.
struct Token: Sendable {
    enum Kind: Equatable, Sendable {
        /// Literal text between tags.
        case data(String)
        case blockBegin, blockEnd, varBegin, varEnd
        case name(String)
        case string(String)
        case int(Int)
        case float(Double)
        /// An operator or punctuation: `+`, `//`, `==`, `(`, `|`, ...
        case op(String)
        case eof
    }
    var kind: Kind
    var pos: SourcePos
}

/// Splits template text into tokens the way Jinja2's lexer does with `trim_blocks=True` and
/// `lstrip_blocks=True` (HF's settings): whitespace control with `-` and `+`, `raw` blocks,
/// comments, the single trailing newline dropped, newlines normalized to `\n`.
struct Lexer {
    private let src: [Unicode.Scalar]
    private var pos = 0
    private let name: String
    private var lineStarts: [Int] = [0]
    var trimBlocks = true
    var lstripBlocks = true
    private(set) var tokens: [Token] = []

    init(source: String, name: String) {
        // Normalize \r\n and \r to \n, then drop one trailing newline (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = it.next()
        while let u = pending {
            pending = it.next()
            if u == "\r" {
                scalars.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                scalars.append(u)
            }
        }
        if scalars.last == "\n" { scalars.removeLast() }
        src = scalars
        self.name = name
        for (i, u) in src.enumerated() where u == "\n" { lineStarts.append(i + 1) }
    }

    private func position(_ offset: Int) -> SourcePos {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return SourcePos(line: lo + 1, column: offset - lineStarts[lo] + 1)
    }

    private func fail(_ message: String, at offset: Int) -> TemplateError {
        let p = position(offset)
        return TemplateError(kind: .syntax, message: message, template: name, line: p.line, column: p.column)
    }

    private func starts(_ s: String, at i: Int) -> Bool {
        var j = i
        for u in s.unicodeScalars {
            guard j < src.count, src[j] == u else { return false }
            j += 1
        }
        return true
    }

    private func string(_ a: Int, _ b: Int) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: src[a..<b])
        return String(s)
    }

    private static func isWS(_ u: Unicode.Scalar) -> Bool { PythonString.isSpace(u) }

    /// Tokenizes the whole template.
    mutating func tokenize() throws -> [Token] {
        var lineStarting = true
        while pos < src.count {
            // Find the next tag opener.
            var i = pos
            var tag: Character? = nil
            while i + 1 < src.count {
                if src[i] == "{" {
                    let n = src[i + 1]
                    if n == "{" || n == "%" || n == "#" { tag = Character(n); break }
                }
                i += 1
            }
            guard let kind = tag else {
                emitData(pos, src.count, lineStarting: lineStarting, stripRight: false, lstrip: false)
                pos = src.count
                break
            }
            let modifier: Unicode.Scalar? = i + 2 < src.count && (src[i + 2] == "-" || src[i + 2] == "+") ? src[i + 2] : nil
            let stripRight = modifier == "-"
            let lstrip = lstripBlocks && (kind == "%" || kind == "#") && modifier != "+"
            emitData(pos, i, lineStarting: lineStarting, stripRight: stripRight, lstrip: lstrip)
            let tagStart = i
            var p = i + 2 + (modifier != nil ? 1 : 0)
            switch kind {
            case "#":
                // Comment: find "#}".
                var j = p
                while j + 1 < src.count, !(src[j] == "#" && src[j + 1] == "}") { j += 1 }
                guard j + 1 < src.count else { throw fail("unclosed comment (missing '#}')", at: tagStart) }
                let dash = j > p && src[j - 1] == "-"
                p = j + 2
                p = afterTagEnd(p, dash: dash, trim: trimBlocks)
            case "%" where isRawBegin(p):
                p = try lexRaw(from: p, tagStart: tagStart)
            default:
                let isBlock = kind == "%"
                tokens.append(Token(kind: isBlock ? .blockBegin : .varBegin, pos: position(tagStart)))
                p = try lexExpression(from: p, block: isBlock, tagStart: tagStart)
            }
            lineStarting = p > 0 && src[p - 1] == "\n"
            pos = p
        }
        tokens.append(Token(kind: .eof, pos: position(src.count)))
        return tokens
    }

    /// Emits the data in src[a..<b], applying `-` (strip all trailing whitespace) or lstrip_blocks.
    private mutating func emitData(_ a: Int, _ b: Int, lineStarting: Bool, stripRight: Bool, lstrip: Bool) {
        var end = b
        if stripRight {
            while end > a, Lexer.isWS(src[end - 1]) { end -= 1 }
        } else if lstrip {
            var l = end
            while l > a, src[l - 1] != "\n" { l -= 1 }
            if l > a || lineStarting {
                var onlySpace = true
                for k in l..<end where src[k] != " " && src[k] != "\t" { onlySpace = false; break }
                if onlySpace { end = l }
            }
        }
        if end > a { tokens.append(Token(kind: .data(string(a, end)), pos: position(a))) }
    }

    /// The position after a block/comment end: `-` strips all whitespace, trim_blocks one newline.
    private func afterTagEnd(_ p: Int, dash: Bool, trim: Bool) -> Int {
        var q = p
        if dash {
            while q < src.count, Lexer.isWS(src[q]) { q += 1 }
        } else if trim, q < src.count, src[q] == "\n" {
            q += 1
        }
        return q
    }

    private func skipInlineSpace(_ p: Int) -> Int {
        var q = p
        while q < src.count, Lexer.isWS(src[q]) { q += 1 }
        return q
    }

    private func isRawBegin(_ p: Int) -> Bool {
        let q = skipInlineSpace(p)
        guard starts("raw", at: q) else { return false }
        let r = skipInlineSpace(q + 3)
        return starts("%}", at: r) || starts("-%}", at: r)
    }

    /// Lexes `{% raw %}...{% endraw %}` starting just after `{%` (and its modifier).
    private mutating func lexRaw(from p: Int, tagStart: Int) throws -> Int {
        var q = skipInlineSpace(skipInlineSpace(p) + 3)
        let dashOpen = starts("-%}", at: q)
        q += dashOpen ? 3 : 2
        if dashOpen { while q < src.count, Lexer.isWS(src[q]) { q += 1 } }
        // Find {%[-+]? endraw [-]?%}
        var j = q
        while j + 1 < src.count {
            if src[j] == "{" && src[j + 1] == "%" {
                var k = j + 2
                let mod: Unicode.Scalar? = k < src.count && (src[k] == "-" || src[k] == "+") ? src[k] : nil
                if mod != nil { k += 1 }
                k = skipInlineSpace(k)
                if starts("endraw", at: k) {
                    k = skipInlineSpace(k + 6)
                    let dashClose = starts("-%}", at: k)
                    if dashClose || starts("%}", at: k) || starts("+%}", at: k) {
                        var end = j
                        if mod == "-" { while end > q, Lexer.isWS(src[end - 1]) { end -= 1 } }
                        if end > q { tokens.append(Token(kind: .data(string(q, end)), pos: position(q))) }
                        let after = k + (dashClose || starts("+%}", at: k) ? 3 : 2)
                        return afterTagEnd(after, dash: dashClose, trim: trimBlocks && !starts("+%}", at: k))
                    }
                }
            }
            j += 1
        }
        throw fail("unclosed raw block (missing '{% endraw %}')", at: tagStart)
    }

    private static let ops2: Set<String> = ["//", "**", "==", "!=", "<=", ">="]
    private static let ops1: Set<Unicode.Scalar> = ["+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"]

    /// Lexes expression tokens up to the matching `%}` / `}}`; returns the position after it.
    private mutating func lexExpression(from start: Int, block: Bool, tagStart: Int) throws -> Int {
        var p = start
        var balance: [Unicode.Scalar] = []
        let endMark = block ? "%}" : "}}"
        while true {
            while p < src.count, Lexer.isWS(src[p]) { p += 1 }
            guard p < src.count else {
                throw fail(block ? "unclosed block tag (missing '%}')" : "unclosed expression (missing '}}')", at: tagStart)
            }
            if balance.isEmpty {
                if starts("-" + endMark, at: p) || starts(endMark, at: p) || (block && starts("+%}", at: p)) {
                    let dash = src[p] == "-"
                    let plus = src[p] == "+"
                    tokens.append(Token(kind: block ? .blockEnd : .varEnd, pos: position(p)))
                    let after = p + ((dash || plus) ? 3 : 2)
                    return afterTagEnd(after, dash: dash, trim: block && trimBlocks && !plus)
                }
            }
            let u = src[p]
            let here = position(p)
            if u == "_" || (u.isASCII && u.properties.isAlphabetic) {
                var q = p
                while q < src.count, src[q] == "_" || (src[q].isASCII && (src[q].properties.isAlphabetic || ("0"..."9").contains(src[q]))) { q += 1 }
                tokens.append(Token(kind: .name(string(p, q)), pos: here))
                p = q
            } else if ("0"..."9").contains(u) {
                p = try lexNumber(p, here)
            } else if u == "'" || u == "\"" {
                p = try lexString(p, quote: u)
            } else {
                let two = p + 1 < src.count ? string(p, p + 2) : ""
                if Lexer.ops2.contains(two) {
                    tokens.append(Token(kind: .op(two), pos: here))
                    p += 2
                } else if Lexer.ops1.contains(u) {
                    if u == "(" || u == "[" || u == "{" { balance.append(u) }
                    if u == ")" || u == "]" || u == "}" {
                        let open: Unicode.Scalar = u == ")" ? "(" : (u == "]" ? "[" : "{")
                        guard balance.last == open else { throw fail("unexpected '\(u)'", at: p) }
                        balance.removeLast()
                    }
                    tokens.append(Token(kind: .op(String(u)), pos: here))
                    p += 1
                } else {
                    throw fail("unexpected character '\(u)'", at: p)
                }
            }
        }
    }

    private mutating func lexNumber(_ start: Int, _ here: SourcePos) throws -> Int {
        var p = start
        func digits() { while p < src.count, ("0"..."9").contains(src[p]) || (src[p] == "_" && p + 1 < src.count && ("0"..."9").contains(src[p + 1])) { p += 1 } }
        digits()
        var isFloat = false
        if p + 1 < src.count, src[p] == ".", ("0"..."9").contains(src[p + 1]) {
            isFloat = true
            p += 1
            digits()
        }
        if p < src.count, src[p] == "e" || src[p] == "E" {
            var q = p + 1
            if q < src.count, src[q] == "+" || src[q] == "-" { q += 1 }
            if q < src.count, ("0"..."9").contains(src[q]) {
                isFloat = true
                p = q
                digits()
            }
        }
        let text = string(start, p).replacingOccurrences(of: "_", with: "")
        if isFloat {
            guard let d = Double(text) else { throw fail("bad number \(text)", at: start) }
            tokens.append(Token(kind: .float(d), pos: here))
        } else {
            guard let i = Int(text) else { throw fail("integer \(text) is too large", at: start) }
            tokens.append(Token(kind: .int(i), pos: here))
        }
        return p
    }

    /// Lexes a string literal with Python `unicode-escape` decoding (unknown escapes kept as is).
    private mutating func lexString(_ start: Int, quote: Unicode.Scalar) throws -> Int {
        var p = start + 1
        var out = String.UnicodeScalarView()
        while true {
            guard p < src.count else { throw fail("unterminated string literal", at: start) }
            let u = src[p]
            if u == quote { p += 1; break }
            if u != "\\" { out.append(u); p += 1; continue }
            guard p + 1 < src.count else { throw fail("unterminated string literal", at: start) }
            let e = src[p + 1]
            p += 2
            switch e {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x", "u", "U":
                let n = e == "x" ? 2 : (e == "u" ? 4 : 8)
                guard p + n <= src.count, let v = UInt32(string(p, p + n), radix: 16), let s = Unicode.Scalar(v) else {
                    throw fail("bad \\\(e) escape in a string literal", at: p - 2)
                }
                out.append(s)
                p += n
            case "0"..."7":
                var v = e.value - 48
                var k = 0
                while k < 2, p < src.count, ("0"..."7").contains(src[p]) { v = v * 8 + src[p].value - 48; p += 1; k += 1 }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default:
                out.append("\\")
                out.append(e)
            }
        }
        tokens.append(Token(kind: .string(String(out)), pos: position(start)))
        return p
    }
}
