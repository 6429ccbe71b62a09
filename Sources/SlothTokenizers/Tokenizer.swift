import Foundation

/// A tokenizer that encodes and decodes exactly as Hugging Face `tokenizers` does.
///
/// Load it from a model folder, a `tokenizer.json`, a SentencePiece `tokenizer.model` (converted to the
/// fast pipeline as `transformers` converts it) or a GGUF file:
///
///     let tok = try Tokenizer.load(from: URL(fileURLWithPath: "models/tiny-llama"))
///     let ids = tok.encode("Hello world")
///     let text = tok.decode(ids)
///
/// Encoding is thread-safe; `encodeBatch` uses several threads.
public final class Tokenizer: @unchecked Sendable {
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: Model
    var postProcessor: PostProcessor?
    let decoder: Decoder?
    /// The added tokens (special and not), in file order.
    public private(set) var addedTokens: [AddedToken]
    private var rawMatcher: AddedTokenMatcher
    private var normalizedMatcher: AddedTokenMatcher
    private var addedById: [Int: AddedToken] = [:]
    private var addedByContent = Vocab()

    /// What the tokenizer was loaded from and its model kind, for `sloth tokenizer inspect`.
    public internal(set) var kind: String
    /// The file the tokenizer was loaded from.
    public internal(set) var file: String

    public var bosToken: String?
    public var eosToken: String?
    public var padToken: String?
    public var unkToken: String?
    public var bosTokenId: Int? { bosToken.flatMap(tokenToId) }
    public var eosTokenId: Int? { eosToken.flatMap(tokenToId) }
    public var padTokenId: Int? { padToken.flatMap(tokenToId) }
    public var unkTokenId: Int? { unkToken.flatMap(tokenToId) }
    /// The default chat template (`chat_template` of tokenizer_config.json, or the one named "default").
    public var chatTemplate: String?
    /// Named chat templates (tokenizer_config.json may hold a list of `{name, template}`).
    public var chatTemplates: [String: String] = [:]
    /// `model_max_length` of tokenizer_config.json.
    public var modelMaxLength: Int?

    /// Truncation applied by `encode` (tokenizer.json `truncation`).
    public struct Truncation: Equatable, Sendable {
        public var maxLength: Int
        /// Drop tokens from the start instead of the end.
        public var fromLeft: Bool
        public init(maxLength: Int, fromLeft: Bool = false) { self.maxLength = maxLength; self.fromLeft = fromLeft }
    }
    /// Padding applied by `encode` (tokenizer.json `padding`).
    public struct Padding: Equatable, Sendable {
        /// Pad every sequence to this length (`Fixed`); nil pads a batch to its longest (`BatchLongest`).
        public var length: Int?
        public var side: PaddingSide
        public var padId: Int
        public var multipleOf: Int?
        public init(length: Int?, side: PaddingSide = .right, padId: Int, multipleOf: Int? = nil) {
            self.length = length; self.side = side; self.padId = padId; self.multipleOf = multipleOf
        }
    }
    public var truncation: Truncation?
    public var padding: Padding?

    init(normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: Model, postProcessor: PostProcessor?, decoder: Decoder?,
         addedTokens: [AddedToken], kind: String, file: String) {
        self.normalizer = normalizer.flatMap { $0.isEmpty ? nil : $0 }
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.addedTokens = addedTokens
        self.kind = kind
        self.file = file
        rawMatcher = AddedTokenMatcher([])
        normalizedMatcher = AddedTokenMatcher([])
        rebuildAddedTokens()
    }

    func rebuildAddedTokens() {
        rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        normalizedMatcher = AddedTokenMatcher(addedTokens.filter { $0.normalized })
        addedById = [:]; addedByContent = Vocab()
        for t in addedTokens { addedById[t.id] = t; addedByContent[t.content] = t.id }
    }

    /// Adds tokens as `tokenizer.add_tokens` does (HF): each new content gets the next id (len(tokenizer) upward);
    /// contents already in the vocabulary keep their id. Returns the ids of `contents`, in order.
    @discardableResult
    public func addTokens(_ contents: [String], special: Bool = false) -> [Int] {
        var next = vocabSize
        var out: [Int] = []
        var tokens = addedTokens
        for c in contents {
            if let id = tokenToId(c) ?? tokens.first(where: { $0.content == c })?.id { out.append(id); continue }
            tokens.append(AddedToken(content: c, id: next, special: special))
            out.append(next); next += 1
        }
        setAddedTokens(tokens)
        return out
    }

    /// Replaces the added tokens (healing).
    func setAddedTokens(_ tokens: [AddedToken]) {
        addedTokens = tokens
        rebuildAddedTokens()
    }

    // MARK: Loading

    /// Loads a tokenizer from a model folder, a tokenizer.json, a tokenizer.model or a .gguf file.
    ///
    /// A folder is searched for tokenizer.json (preferred), then tokenizer.model; tokenizer_config.json and
    /// special_tokens_map.json beside it are applied.
    public static func load(from url: URL) throws -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw TokenizerError.unreadable(file: url.path, reason: "no such file or folder")
        }
        let folder = isDir.boolValue ? url : url.deletingLastPathComponent()
        let tok: Tokenizer
        if isDir.boolValue {
            let json = url.appendingPathComponent("tokenizer.json"), spm = url.appendingPathComponent("tokenizer.model")
            if FileManager.default.fileExists(atPath: json.path) {
                tok = try Tokenizer(jsonFile: json)
            } else if FileManager.default.fileExists(atPath: spm.path) {
                tok = try SentencePieceConverter.convert(SentencePieceModel(file: spm), legacy: TokenizerConfig.legacyFlag(folder: url))
            } else if let gguf = try? FileManager.default.contentsOfDirectory(atPath: url.path).sorted().first(where: { $0.hasSuffix(".gguf") }) {
                return try GGUFTokenizer.load(url.appendingPathComponent(gguf))
            } else {
                throw TokenizerError.noTokenizerFiles(folder: url.path)
            }
        } else if url.pathExtension == "gguf" {
            return try GGUFTokenizer.load(url)
        } else if url.pathExtension == "model" {
            tok = try SentencePieceConverter.convert(SentencePieceModel(file: url), legacy: TokenizerConfig.legacyFlag(folder: folder))
        } else {
            tok = try Tokenizer(jsonFile: url)
        }
        try TokenizerConfig.apply(folder: folder, to: tok)
        return tok
    }

    /// Reads a tokenizer.json file.
    public convenience init(jsonFile url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TokenizerError.unreadable(file: url.path, reason: error.localizedDescription) }
        try self.init(json: data, file: url.path)
    }

    /// Parses tokenizer.json contents; `file` names the source in errors.
    public convenience init(json data: Data, file: String = "tokenizer.json") throws {
        let root = try JSONObject.parse(data: data, file: file)
        try self.init(root: root)
    }

    convenience init(root: JSONObject) throws {
        let model = try Model.parse(root.object("model"))
        let normalizer = try root.optionalObject("normalizer").map(Normalizer.parse)
        let pre = try root.optionalObject("pre_tokenizer").map(PreTokenizer.parse)
        let post = try root.optionalObject("post_processor").map(PostProcessor.parse)
        let dec = try root.optionalObject("decoder").map(Decoder.parse)
        let added = root.has("added_tokens") ? try root.objects("added_tokens").map(AddedToken.parse) : []
        self.init(normalizer: normalizer, preTokenizer: pre, model: model, postProcessor: post, decoder: dec,
                  addedTokens: added, kind: "tokenizer.json, \(model.kind)", file: root.file)
        if let t = try root.optionalObject("truncation") {
            let dir = try t.optionalString("direction") ?? "Right"
            guard dir == "Right" || dir == "Left" else { throw t.bad("direction", "Right or Left") }
            truncation = Truncation(maxLength: try t.int("max_length"), fromLeft: dir == "Left")
        }
        if let p = try root.optionalObject("padding") {
            var length: Int?
            if let st = p.dict["strategy"] as? [String: Any] {
                guard let n = st["Fixed"] as? NSNumber, let l = Int(exactly: n.doubleValue) else { throw p.bad("strategy", "\"BatchLongest\" or {\"Fixed\": n}") }
                length = l
            } else if (p.dict["strategy"] as? String) != "BatchLongest" { throw p.bad("strategy", "\"BatchLongest\" or {\"Fixed\": n}") }
            let dir = try p.optionalString("direction") ?? "Right"
            guard dir == "Right" || dir == "Left" else { throw p.bad("direction", "Right or Left") }
            padding = Padding(length: length, side: dir == "Left" ? .left : .right, padId: try p.optionalInt("pad_id") ?? 0,
                              multipleOf: try p.optionalInt("pad_to_multiple_of"))
        }
        // Sensible defaults before tokenizer_config.json: the usual special-token names when present.
        for name in ["<|begin_of_text|>", "<s>", "[CLS]", "<bos>"] where tokenToId(name) != nil { bosToken = name; break }
        for name in ["<|end_of_text|>", "</s>", "[SEP]", "<eos>", "<|endoftext|>"] where tokenToId(name) != nil { eosToken = name; break }
        for name in ["<unk>", "[UNK]"] where tokenToId(name) != nil { unkToken = name; break }
        for name in ["<pad>", "[PAD]"] where tokenToId(name) != nil { padToken = name; break }
    }

    // MARK: Vocabulary

    /// Vocabulary size including added tokens (HF `get_vocab_size(with_added_tokens=True)`).
    public var vocabSize: Int {
        model.size + addedTokens.filter { model.tokenToId($0.content) == nil && $0.id >= model.size }.count
    }

    /// The id of a token string (added tokens first, then the model vocabulary).
    public func tokenToId(_ token: String) -> Int? { addedByContent[token] ?? model.tokenToId(token) }

    /// The token string of an id.
    public func idToToken(_ id: Int) -> String? { addedById[id]?.content ?? model.idToToken(id) }

    /// Whether the id is a special added token.
    public func isSpecial(_ id: Int) -> Bool { addedById[id]?.special ?? false }

    // MARK: Encoding

    /// Encodes text into token ids, adding the post-processor's special tokens (e.g. BOS) when asked.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        let scalars = Array(text.unicodeScalars)
        for piece in rawMatcher.split(scalars, start: 0) {
            switch piece {
            case let .token(id): ids.append(id)
            case let .text(t, start):
                let normalized = normalizer?.apply(t) ?? t
                for sub in normalizedMatcher.split(normalized, start: 0) {
                    switch sub {
                    case let .token(id): ids.append(id)
                    case let .text(nt, nstart):
                        let splits = [Split(text: nt, atStart: start == 0 && nstart == 0)]
                        for s in preTokenizer?.apply(splits) ?? splits { model.tokenize(s.text, into: &ids) }
                    }
                }
            }
        }
        if let truncation {
            let room = max(0, truncation.maxLength - (addSpecialTokens ? (postProcessor?.addedCount ?? 0) : 0))
            if ids.count > room { ids = truncation.fromLeft ? Array(ids.suffix(room)) : Array(ids.prefix(room)) }
        }
        if addSpecialTokens, let postProcessor { ids = postProcessor.process(ids) }
        if let padding {
            var length = max(ids.count, padding.length ?? 0)
            if let m = padding.multipleOf, m > 0, length % m != 0 { length += m - length % m }
            if ids.count < length {
                let fill = [Int](repeating: padding.padId, count: length - ids.count)
                ids = padding.side == .right ? ids + fill : fill + ids
            }
        }
        return ids
    }

    /// Encodes many texts on `threads` threads; the result is in input order.
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = true, threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [[Int]] {
        var out = [[Int]](repeating: [], count: texts.count)
        let workers = max(1, min(threads, texts.count))
        if workers == 1 { return texts.map { encode($0, addSpecialTokens: addSpecialTokens) } }
        out.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var i = w
                while i < texts.count { (base + i).initialize(to: encode(texts[i], addSpecialTokens: addSpecialTokens)); i += workers }
            }
        }
        return out
    }

    /// Encodes a batch with truncation and padding to a common length.
    ///
    /// - Returns: ids and attention masks (1 for real tokens, 0 for padding), each row `length` long.
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = true, maxLength: Int?, padding: PaddingSide?,
                            padToMultipleOf: Int? = nil) -> (ids: [[Int]], attentionMask: [[Int]]) {
        var rows = encodeBatch(texts, addSpecialTokens: false)
        let added = addSpecialTokens ? (postProcessor?.addedCount ?? 0) : 0
        for i in rows.indices {
            if let maxLength, rows[i].count + added > maxLength { rows[i] = Array(rows[i].prefix(max(0, maxLength - added))) }
            if addSpecialTokens, let postProcessor { rows[i] = postProcessor.process(rows[i]) }
        }
        var masks = rows.map { [Int](repeating: 1, count: $0.count) }
        if let padding {
            var length = rows.map(\.count).max() ?? 0
            if let m = padToMultipleOf, m > 0, length % m != 0 { length += m - length % m }
            let pad = padTokenId ?? 0
            for i in rows.indices where rows[i].count < length {
                let fill = length - rows[i].count
                switch padding {
                case .right:
                    rows[i] += [Int](repeating: pad, count: fill); masks[i] += [Int](repeating: 0, count: fill)
                case .left:
                    rows[i] = [Int](repeating: pad, count: fill) + rows[i]; masks[i] = [Int](repeating: 0, count: fill) + masks[i]
                }
            }
        }
        return (rows, masks)
    }

    /// Which side padding goes on.
    public enum PaddingSide: String, Sendable { case left, right }

    // MARK: Decoding

    /// Decodes ids into text as HF's `decode` does (unknown ids are skipped).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let a = addedById[id] {
                if skipSpecialTokens && a.special { continue }
                tokens.append(a.content)
            } else if let t = model.idToToken(id) {
                tokens.append(t)
            }
        }
        if let decoder { return decoder.decode(tokens) }
        return tokens.joined(separator: " ")
    }

    /// The token strings of the ids (for display).
    public func tokens(_ ids: [Int]) -> [String] { ids.map { idToToken($0) ?? "<?\($0)>" } }
}
