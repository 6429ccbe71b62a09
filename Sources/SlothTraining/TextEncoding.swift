import Foundation

/// Finds the tokenizer of a model folder for `{"text": ...}` rows.
public enum TextEncoding {
    /// An encoder for the folder's tokenizer, or nil when the folder has none (pre-tokenized data then).
    public static func tokenizer(for folder: URL) throws -> ((String) throws -> [Int])? {
        nil  // Filled in when SlothTokenizers lands (issue 3).
    }
}
