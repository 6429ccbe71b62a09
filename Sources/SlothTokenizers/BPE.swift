import Foundation

/// Byte-pair encoding (HF `models.BPE`): byte-level (GPT-2, Llama 3, Qwen 2) and SentencePiece-style
/// (Llama 2, Mistral: `byte_fallback`, `fuse_unk`).
final class BPEModel {
    /// Token string -> id.
    let vocab: Vocab
    /// Id -> token string.
    let idToToken: [Int: String]
    /// (left id, right id) packed -> (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// The merges in rank order, as read (for writing tokenizer.json back).
    let mergeList: [(String, String)]
    let unkToken: String?
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// `<0x00>`..`<0xFF>` ids when byte_fallback is on.
    private let byteIds: [Int]?
    /// Single-character tokens, looked up without building strings.
    private let charIds: [UInt32: Int]
    private var cache: [ExactString: [Int]] = [:]
    private let cacheLock = NSLock()

    init(vocab: Vocab, merges: [(String, String)], unkToken: String?, continuingSubwordPrefix: String?,
         endOfWordSuffix: String?, fuseUnk: Bool, byteFallback: Bool, ignoreMerges: Bool, file: String) throws {
        self.vocab = vocab
        var inv: [Int: String] = [:]
        inv.reserveCapacity(vocab.count)
        for (k, v) in vocab.map { inv[v] = k.s }
        idToToken = inv
        let prefixLen = continuingSubwordPrefix?.unicodeScalars.count ?? 0
        var m: [UInt64: (rank: Int32, id: Int32)] = [:]
        m.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a] else { throw TokenizerError.unknownMergeToken(file: file, merge: "\(a) \(b)", token: a) }
            guard let ib = vocab[b] else { throw TokenizerError.unknownMergeToken(file: file, merge: "\(a) \(b)", token: b) }
            let stripped = prefixLen > 0 && b.unicodeScalars.starts(with: continuingSubwordPrefix!.unicodeScalars)
            let merged = a + (stripped ? String(String.UnicodeScalarView(b.unicodeScalars.dropFirst(prefixLen))) : b)
            guard let im = vocab[merged] else { throw TokenizerError.unknownMergeToken(file: file, merge: "\(a) \(b)", token: merged) }
            let key = UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))
            if m[key] == nil { m[key] = (Int32(rank), Int32(im)) }
        }
        self.merges = m
        mergeList = merges
        self.unkToken = unkToken
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        if byteFallback {
            let ids = (0..<256).map { vocab[String(format: "<0x%02X>", $0)] }
            byteIds = ids.allSatisfy { $0 != nil } ? ids.map { $0! } : nil
        } else { byteIds = nil }
        var ci: [UInt32: Int] = [:]
        for (k, v) in vocab.map where k.s.unicodeScalars.count == 1 { ci[k.s.unicodeScalars.first!.value] = v }
        charIds = ci
    }

    /// Reads `model` of tokenizer.json (type BPE).
    static func parse(_ o: JSONObject) throws -> BPEModel {
        let vocab = try parseVocab(o)
        var merges: [(String, String)] = []
        let raw = try o.array("merges")
        merges.reserveCapacity(raw.count)
        for (i, item) in raw.enumerated() {
            if let s = item as? String {
                // Old format: "a b" (split at the first space after position 0).
                let scalars = Array(s.unicodeScalars)
                guard let sp = scalars.dropFirst().firstIndex(of: " ") else {
                    throw TokenizerError.badField(file: o.file, field: "\(o.field("merges"))[\(i)]", expected: "\"left right\" or [left, right]")
                }
                merges.append((String(String.UnicodeScalarView(scalars[..<sp])), String(String.UnicodeScalarView(scalars[(sp + 1)...]))))
            } else if let pair = item as? [Any], pair.count == 2, let a = pair[0] as? String, let b = pair[1] as? String {
                merges.append((a, b))
            } else {
                throw TokenizerError.badField(file: o.file, field: "\(o.field("merges"))[\(i)]", expected: "\"left right\" or [left, right]")
            }
        }
        if o.has("dropout"), let d = o.dict["dropout"] as? NSNumber, d.doubleValue > 0 {
            throw TokenizerError.unsupportedComponent(file: o.file, field: o.field("dropout"), type: "BPE dropout \(d)")
        }
        return try BPEModel(vocab: vocab, merges: merges, unkToken: try o.optionalString("unk_token"),
                            continuingSubwordPrefix: try o.optionalString("continuing_subword_prefix"),
                            endOfWordSuffix: try o.optionalString("end_of_word_suffix"),
                            fuseUnk: try o.bool("fuse_unk", default: false), byteFallback: try o.bool("byte_fallback", default: false),
                            ignoreMerges: try o.bool("ignore_merges", default: false), file: o.file)
    }

    static func parseVocab(_ o: JSONObject) throws -> Vocab {
        guard let raw = o.dict["vocab"] as? [String: Any] else { throw o.bad("vocab", "an object of token -> id") }
        var vocab = Vocab(minimumCapacity: raw.count)
        // Keys that Swift's String equality merges (e.g. NFC and NFD forms) come back as exact pairs.
        let pairs = (raw[exactPairsKey] as? [(String, Any)]) ?? raw.map { ($0.key, $0.value) }
        for (k, v) in pairs {
            guard let n = v as? NSNumber, !JSONObject.isBool(n), let id = Int(exactly: n.doubleValue), id >= 0 else {
                throw TokenizerError.badField(file: o.file, field: "\(o.field("vocab"))[\"\(k)\"]", expected: "a non-negative integer id")
            }
            vocab[k] = id
        }
        return vocab
    }

    /// Encodes one pre-tokenized piece.
    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int]) {
        if word.isEmpty { return }
        var key = String.UnicodeScalarView()
        key.append(contentsOf: word)
        let s = String(key)
        if ignoreMerges, let id = vocab[s] { out.append(id); return }
        let ck = ExactString(s)
        cacheLock.lock()
        let hit = cache[ck]
        cacheLock.unlock()
        if let hit { out.append(contentsOf: hit); return }
        let ids = merge(word)
        if word.count < 256 {
            cacheLock.lock()
            if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
            cache[ck] = ids
            cacheLock.unlock()
        }
        out.append(contentsOf: ids)
    }

    private func merge(_ word: [Unicode.Scalar]) -> [Int] {
        // Initial symbols: one per character (or per byte with byte fallback), unknowns fused when asked.
        var ids: [Int32] = []
        ids.reserveCapacity(word.count)
        var lastWasUnk = false
        let unkId = unkToken.flatMap { vocab[$0] }
        let simple = continuingSubwordPrefix == nil && endOfWordSuffix == nil
        for (i, c) in word.enumerated() {
            var id: Int?
            if simple { id = charIds[c.value] } else {
                var s = String(Character(c))
                if i > 0, let p = continuingSubwordPrefix { s = p + s }
                if i == word.count - 1, let sfx = endOfWordSuffix { s += sfx }
                id = vocab[s]
            }
            if let id { ids.append(Int32(id)); lastWasUnk = false; continue }
            if let byteIds {
                UTF8.encode(c) { ids.append(Int32(byteIds[Int($0)])) }
                lastWasUnk = false
                continue
            }
            if let unkId {
                if !(fuseUnk && lastWasUnk) { ids.append(Int32(unkId)) }
                lastWasUnk = true
            }
        }
        if ids.count < 2 { return ids.map(Int.init) }
        // Merge the lowest-ranked pair, leftmost first, until none applies (linked list + heap).
        let n = ids.count
        var prev = [Int32](repeating: -1, count: n), next = [Int32](repeating: -1, count: n)
        var alive = [Bool](repeating: true, count: n)
        for i in 0..<n { prev[i] = Int32(i - 1); next[i] = i + 1 < n ? Int32(i + 1) : -1 }
        var heap = MergeHeap()
        func pushPair(_ i: Int) {
            let j = Int(next[i])
            guard j >= 0 else { return }
            let key = UInt64(UInt32(ids[i])) << 32 | UInt64(UInt32(ids[j]))
            if let m = merges[key] { heap.push(rank: m.rank, pos: Int32(i), left: ids[i], right: ids[j]) }
        }
        for i in 0..<(n - 1) { pushPair(i) }
        while let top = heap.pop() {
            let i = Int(top.pos)
            guard alive[i], ids[i] == top.left else { continue }
            let j = Int(next[i])
            guard j >= 0, ids[j] == top.right else { continue }
            let key = UInt64(UInt32(ids[i])) << 32 | UInt64(UInt32(ids[j]))
            guard let m = merges[key], m.rank == top.rank else { continue }
            ids[i] = m.id
            alive[j] = false
            next[i] = next[j]
            if next[j] >= 0 { prev[Int(next[j])] = Int32(i) }
            if prev[i] >= 0 { pushPair(Int(prev[i])) }
            pushPair(i)
        }
        var out: [Int] = []
        var i = 0
        while i >= 0 && i < n { out.append(Int(ids[i])); i = Int(next[i]) }
        return out
    }
}

/// A binary min-heap of candidate merges ordered by (rank, position).
struct MergeHeap {
    struct Item { var rank: Int32; var pos: Int32; var left: Int32; var right: Int32 }
    private var items: [Item] = []

    @inline(__always) private func less(_ a: Item, _ b: Item) -> Bool { a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos) }

    mutating func push(rank: Int32, pos: Int32, left: Int32, right: Int32) {
        items.append(Item(rank: rank, pos: pos, left: left, right: right))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if less(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop() -> Item? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && less(items[l], items[m]) { m = l }
                if r < items.count && less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }
}
