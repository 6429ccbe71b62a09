import Foundation

/// tokenizer_config.json and special_tokens_map.json: special tokens, BOS/EOS adding, chat templates.
enum TokenizerConfig {
    /// Reads a JSON object file if it exists.
    static func read(_ url: URL) throws -> JSONObject? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TokenizerError.unreadable(file: url.path, reason: error.localizedDescription) }
        return try JSONObject.parse(data: data, file: url.path)
    }

    /// `legacy` of tokenizer_config.json (changes how SentencePiece models are converted).
    static func legacyFlag(folder: URL) throws -> Bool? {
        guard let c = try read(folder.appendingPathComponent("tokenizer_config.json")), c.has("legacy") else { return nil }
        return try c.bool("legacy", default: false)
    }

    /// A special token entry: a string, or an object with `content`.
    static func tokenString(_ o: JSONObject, _ key: String) throws -> String? {
        guard o.has(key) else { return nil }
        if let s = o.dict[key] as? String { return s }
        if let d = o.dict[key] as? [String: Any], let s = d["content"] as? String { return s }
        throw o.bad(key, "a string or an object with \"content\"")
    }

    /// Applies the folder's tokenizer_config.json and special_tokens_map.json to the tokenizer.
    static func apply(folder: URL, to tok: Tokenizer) throws {
        let map = try read(folder.appendingPathComponent("special_tokens_map.json"))
        let config = try read(folder.appendingPathComponent("tokenizer_config.json"))
        for source in [map, config].compactMap({ $0 }) {
            if let s = try tokenString(source, "bos_token") { tok.bosToken = s }
            if let s = try tokenString(source, "eos_token") { tok.eosToken = s }
            if let s = try tokenString(source, "pad_token") { tok.padToken = s }
            if let s = try tokenString(source, "unk_token") { tok.unkToken = s }
        }
        guard let config else { return }
        // added_tokens_decoder: tokens the config knows that tokenizer.json may lack.
        if let dec = try config.optionalObject("added_tokens_decoder") {
            var added = tok.addedTokens
            var known = Set(added.map(\.id))
            for (key, value) in dec.dict where key != exactPairsKey {
                guard let id = Int(key), let v = value as? [String: Any] else { throw dec.bad(key, "an object keyed by a token id") }
                let entry = try AddedToken.parse(JSONObject(v.merging(["id": id]) { a, _ in a }, file: dec.file, path: dec.field(key)))
                if !known.contains(id) { added.append(entry); known.insert(id) }
            }
            if added.count != tok.addedTokens.count { tok.setAddedTokens(added.sorted { $0.id < $1.id }) }
        }
        if config.has("chat_template") {
            if let s = config.dict["chat_template"] as? String {
                tok.chatTemplate = s
            } else if let list = config.dict["chat_template"] as? [Any] {
                for (i, item) in list.enumerated() {
                    guard let d = item as? [String: Any], let name = d["name"] as? String, let t = d["template"] as? String else {
                        throw config.bad("chat_template[\(i)]", "an object with \"name\" and \"template\"")
                    }
                    tok.chatTemplates[name] = t
                }
                tok.chatTemplate = tok.chatTemplates["default"]
            } else { throw config.bad("chat_template", "a string or a list of {name, template}") }
        }
        if config.has("model_max_length"), let n = config.dict["model_max_length"] as? NSNumber {
            let d = n.doubleValue
            tok.modelMaxLength = d < 1e15 ? Int(d) : nil
        }
        // transformers 5: an explicit add_bos_token / add_eos_token rebuilds the post-processor as a template.
        if config.has("add_bos_token") || config.has("add_eos_token") || tok.postProcessor == nil {
            var addBos = try config.bool("add_bos_token", default: false)
            var addEos = try config.bool("add_eos_token", default: false)
            if tok.bosTokenId == nil { addBos = false }
            if tok.eosTokenId == nil { addEos = false }
            var items: [PostProcessor.TemplateItem] = []
            if addBos, let b = tok.bosTokenId { items.append(.special([b])) }
            items.append(.sequence)
            if addEos, let e = tok.eosTokenId { items.append(.special([e])) }
            tok.postProcessor = .template(items)
        }
    }
}
