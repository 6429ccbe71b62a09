import Foundation
import SlothTokenizers

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
