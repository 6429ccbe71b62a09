import Foundation

/// A token of tokenizer.json's `added_tokens`: matched in the text before the model runs.
public struct AddedToken: Equatable, Sendable {
    public var content: String
    public var id: Int
    public var special: Bool
    public var singleWord: Bool
    public var lstrip: Bool
    public var rstrip: Bool
    public var normalized: Bool

    public init(content: String, id: Int, special: Bool, singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false, normalized: Bool? = nil) {
        self.content = content; self.id = id; self.special = special
        self.singleWord = singleWord; self.lstrip = lstrip; self.rstrip = rstrip
        self.normalized = normalized ?? !special
    }

    static func parse(_ o: JSONObject) throws -> AddedToken {
        let special = try o.bool("special", default: false)
        return AddedToken(content: try o.string("content"), id: try o.int("id"), special: special,
                          singleWord: try o.bool("single_word", default: false), lstrip: try o.bool("lstrip", default: false),
                          rstrip: try o.bool("rstrip", default: false), normalized: try o.bool("normalized", default: !special))
    }
}

/// Finds added tokens in text, leftmost-longest as HF's Aho-Corasick matcher does.
struct AddedTokenMatcher {
    private struct Candidate { var scalars: [Unicode.Scalar]; var token: AddedToken }
    /// First character -> candidates, longest first.
    private var byFirst: [UInt32: [Candidate]] = [:]

    init(_ tokens: [AddedToken]) {
        for t in tokens where !t.content.isEmpty {
            let s = Array(t.content.unicodeScalars)
            byFirst[s[0].value, default: []].append(Candidate(scalars: s, token: t))
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.scalars.count > $1.scalars.count } }
    }

    var isEmpty: Bool { byFirst.isEmpty }

    /// A piece of text: either plain text to tokenize, or an added token's id.
    enum Piece { case text([Unicode.Scalar], start: Int), token(Int) }

    /// Cuts `text` at the added tokens it contains. `start` is the piece's offset in the original text.
    func split(_ text: [Unicode.Scalar], start: Int) -> [Piece] {
        if byFirst.isEmpty || text.isEmpty { return text.isEmpty ? [] : [.text(text, start: start)] }
        var out: [Piece] = []
        var last = 0
        var i = 0
        let n = text.count
        while i < n {
            guard let cands = byFirst[text[i].value] else { i += 1; continue }
            var found: Candidate?
            for c in cands where i + c.scalars.count <= n {
                var ok = true
                for k in 1..<c.scalars.count where text[i + k] != c.scalars[k] { ok = false; break }
                if ok { found = c; break }
            }
            guard let c = found else { i += 1; continue }
            var s = i, e = i + c.scalars.count
            if c.token.singleWord {
                let before = s == 0 || !AddedTokenMatcher.isWordChar(text[s - 1])
                let after = e == n || !AddedTokenMatcher.isWordChar(text[e])
                if !(before && after) { i += 1; continue }
            }
            if c.token.lstrip { while s > last && text[s - 1].properties.isWhitespace { s -= 1 } }
            if c.token.rstrip { while e < n && text[e].properties.isWhitespace { e += 1 } }
            if s > last { out.append(.text(Array(text[last..<s]), start: start + last)) }
            out.append(.token(c.token.id))
            last = e
            i = e
        }
        if last < n { out.append(.text(Array(text[last..<n]), start: start + last)) }
        return out
    }

    static func isWordChar(_ c: Unicode.Scalar) -> Bool {
        c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
    }
}
