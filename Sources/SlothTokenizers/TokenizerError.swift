import Foundation

/// Why a tokenizer could not be loaded, converted or healed.
///
/// Every case names the file and, where it applies, the field, and says what to do.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read at all.
    case unreadable(file: String, reason: String)
    /// The file is not valid JSON (truncated, wrong encoding...).
    case invalidJSON(file: String, reason: String)
    /// A field is missing or has the wrong type.
    case badField(file: String, field: String, expected: String)
    /// A component type (normalizer, pre-tokenizer, model...) that Sloth does not implement.
    case unsupportedComponent(file: String, field: String, type: String)
    /// A BPE merge names a token that is not in the vocabulary.
    case unknownMergeToken(file: String, merge: String, token: String)
    /// A regular expression in the file does not compile.
    case badRegex(file: String, field: String, pattern: String)
    /// A SentencePiece model (protobuf) that cannot be decoded.
    case badProtobuf(file: String, reason: String)
    /// No tokenizer file was found in a folder.
    case noTokenizerFiles(folder: String)
    /// A converted (slow to fast) tokenizer does not agree with the original.
    case conversionMismatch(file: String, reason: String)
    /// A problem that healing cannot repair.
    case cannotHeal(file: String, reason: String)
    /// A GGUF file whose tokenizer metadata cannot be read.
    case badGGUF(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read the file (\(reason)); check the path and permissions"
        case let .invalidJSON(file, reason):
            return "\(file): not valid JSON (\(reason)); the file may be truncated: download it again"
        case let .badField(file, field, expected):
            return "\(file): field '\(field)' must be \(expected); fix or regenerate the file"
        case let .unsupportedComponent(file, field, type):
            return "\(file): \(field) type '\(type)' is not supported by Sloth; please file an issue with this file"
        case let .unknownMergeToken(file, merge, token):
            return "\(file): merge '\(merge)' names '\(token)', which is not in model.vocab; the vocabulary and merges do not belong together"
        case let .badRegex(file, field, pattern):
            return "\(file): \(field) regex '\(pattern)' does not compile"
        case let .badProtobuf(file, reason):
            return "\(file): not a valid SentencePiece model (\(reason)); the file may be truncated or not a tokenizer.model"
        case let .noTokenizerFiles(folder):
            return "\(folder): no tokenizer.json, tokenizer.model or .gguf file found; point --tokenizer at a model folder or a tokenizer file"
        case let .conversionMismatch(file, reason):
            return "\(file): the converted fast tokenizer does not agree with the SentencePiece model (\(reason)); keep tokenizer.model and report the model"
        case let .cannotHeal(file, reason):
            return "\(file): \(reason)"
        case let .badGGUF(file, reason):
            return "\(file): cannot read the GGUF tokenizer (\(reason))"
        }
    }
}
