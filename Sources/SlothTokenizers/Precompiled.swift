/// SentencePiece's precompiled normalization charsmap: a double-array trie over UTF-8 bytes whose values
/// are offsets into a blob of NUL-terminated replacement strings.
///
/// Layout: u32 little-endian trie byte size, the trie units (u32 each), then the replacement strings.
/// Normalization follows HF `tokenizers` (Precompiled normalizer): each grapheme shorter than 6 bytes is
/// looked up whole; otherwise (or when it has no entry) each of its characters is looked up alone. A lookup
/// takes the *first* (shortest) key that prefixes the bytes.
struct PrecompiledCharsmap {
    private let units: [UInt32]
    /// The charsmap as stored in the model (for writing tokenizer.json back).
    let raw: [UInt8]
    private let normalized: [UInt8]

    init(data: [UInt8], file: String) throws {
        guard data.count >= 4 else { throw TokenizerError.badProtobuf(file: file, reason: "precompiled_charsmap shorter than 4 bytes") }
        let size = Int(UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24)
        guard size % 4 == 0, size <= data.count - 4, size >= 4 else {
            throw TokenizerError.badProtobuf(file: file, reason: "precompiled_charsmap trie size \(size) does not fit its \(data.count) bytes")
        }
        raw = data
        var u: [UInt32] = []
        u.reserveCapacity(size / 4)
        var p = 4
        while p < 4 + size {
            u.append(UInt32(data[p]) | UInt32(data[p + 1]) << 8 | UInt32(data[p + 2]) << 16 | UInt32(data[p + 3]) << 24)
            p += 4
        }
        units = u
        normalized = Array(data[(4 + size)...])
    }

    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

    /// The replacement of the shortest key prefixing `key`, if any.
    private func transform<C: Collection>(_ key: C) -> [UInt8]? where C.Element == UInt8 {
        var node = 0
        guard !units.isEmpty else { return nil }
        node ^= PrecompiledCharsmap.offset(units[0])
        for c in key {
            if c == 0 { break }
            node ^= Int(c)
            guard node >= 0 && node < units.count else { return nil }
            let unit = units[node]
            if Int(unit & ((1 << 31) | 0xFF)) != Int(c) { return nil }
            node ^= PrecompiledCharsmap.offset(unit)
            guard node >= 0 && node < units.count else { return nil }
            if (unit >> 8) & 1 == 1 {
                let start = Int(units[node] & ((1 << 31) - 1))
                guard start <= normalized.count else { return nil }
                var end = start
                while end < normalized.count && normalized[end] != 0 { end += 1 }
                return Array(normalized[start..<end])
            }
        }
        return nil
    }

    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        if text.isEmpty { return text }
        var s = String.UnicodeScalarView()
        s.append(contentsOf: text)
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for g in String(s) {
            let bytes = Array(g.utf8)
            if bytes.count < 6, let rep = transform(bytes) {
                out.append(contentsOf: String(decoding: rep, as: UTF8.self).unicodeScalars)
                continue
            }
            for c in g.unicodeScalars {
                var cb: [UInt8] = []
                UTF8.encode(c) { cb.append($0) }
                if let rep = transform(cb) { out.append(contentsOf: String(decoding: rep, as: UTF8.self).unicodeScalars) } else { out.append(c) }
            }
        }
        return out
    }
}
