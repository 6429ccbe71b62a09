import Foundation

/// Text in and out of a model folder's tokenizer.
public protocol TextCodec {
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int]
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    var eosTokenIds: [Int] { get }
    var chatTemplate: String? { get }
    var specialTokens: [String: String] { get }
}

/// Finds the tokenizer of a model folder for `{"text": ...}` rows and generation.
public enum TextEncoding {
    /// Loaders for the folder's tokenizer files; SlothTokenizers registers itself here.
    nonisolated(unsafe) public static var loader: ((URL) throws -> TextCodec?)? = nil

    /// The folder's tokenizer, or nil when it has none.
    public static func codec(for folder: URL) throws -> TextCodec? { try loader?(folder) }

    /// An encoder for the folder's tokenizer, or nil when the folder has none (pre-tokenized data then).
    public static func tokenizer(for folder: URL) throws -> ((String) throws -> [Int])? {
        guard let c = try codec(for: folder) else { return nil }
        return { try c.encode($0, addSpecialTokens: true) }
    }
}
