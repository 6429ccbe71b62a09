import Foundation
import SlothFormats
import SlothTokenizers
import SlothModels

/// Text in and out of a model folder's tokenizer.
public protocol TextCodec {
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int]
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    var eosTokenIds: [Int] { get }
    var chatTemplate: String? { get }
}

extension Tokenizer: TextCodec {
    public var eosTokenIds: [Int] { eosTokenId.map { [$0] } ?? [] }
}

/// Finds the tokenizer of a model folder for `{"text": ...}` rows and generation.
public enum TextEncoding {
    /// The folder's tokenizer (tokenizer.json or tokenizer.model), or nil when it has neither.
    public static func codec(for folder: URL) throws -> TextCodec? {
        if folder.pathExtension == "gguf" { return try ggufTokenizer(folder) }
        let fm = FileManager.default
        guard fm.fileExists(atPath: folder.appendingPathComponent("tokenizer.json").path)
                || fm.fileExists(atPath: folder.appendingPathComponent("tokenizer.model").path) else { return nil }
        return try Tokenizer.load(from: folder)
    }

    /// An encoder for the folder's tokenizer, or nil when the folder has none (pre-tokenized data then).
    public static func tokenizer(for folder: URL) throws -> ((String) throws -> [Int])? {
        guard let c = try codec(for: folder) else { return nil }
        return { try c.encode($0, addSpecialTokens: true) }
    }
}

extension TextEncoding {
    /// The tokenizer stored in a GGUF file's metadata, or nil when it has none.
    public static func ggufTokenizer(_ url: URL) throws -> Tokenizer? {
        let f = try GGUFFile(url: url)
        guard let model = f["tokenizer.ggml.model"]?.string, let tokens = f["tokenizer.ggml.tokens"]?.array?.compactMap(\.string) else { return nil }
        var fields = GGUFTokenizerFields(file: url.path, model: model, tokens: tokens)
        fields.pre = f["tokenizer.ggml.pre"]?.string
        fields.scores = f["tokenizer.ggml.scores"]?.array?.compactMap { $0.double.map(Float.init) }
        fields.types = f["tokenizer.ggml.token_type"]?.array?.compactMap { $0.int.map(Int32.init) }
        fields.merges = f["tokenizer.ggml.merges"]?.array?.compactMap(\.string)
        fields.bosId = f["tokenizer.ggml.bos_token_id"]?.int
        fields.eosId = f["tokenizer.ggml.eos_token_id"]?.int
        fields.unkId = f["tokenizer.ggml.unknown_token_id"]?.int
        fields.padId = f["tokenizer.ggml.padding_token_id"]?.int
        fields.addBos = f["tokenizer.ggml.add_bos_token"]?.bool
        fields.chatTemplate = f["tokenizer.chat_template"]?.string
        return try Tokenizer(gguf: fields)
    }
}

extension LanguageModel {
    /// A model folder, or a .gguf file.
    public static func load(path url: URL) throws -> LanguageModel {
        url.pathExtension == "gguf" ? try load(gguf: url) : try load(folder: url)
    }
}
