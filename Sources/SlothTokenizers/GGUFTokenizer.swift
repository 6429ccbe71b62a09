import Foundation

/// Reads the tokenizer held in a GGUF file's metadata, as llama.cpp reads it.
enum GGUFTokenizer {
    static func load(_ url: URL) throws -> Tokenizer {
        throw TokenizerError.badGGUF(file: url.path, reason: "GGUF tokenizers are not supported yet")
    }
}
