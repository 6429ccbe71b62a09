import Foundation
import SlothTemplates
import SlothTokenizers
import SlothModels

/// Turns conversations into prompt ids with a model's chat template, as transformers'
/// `apply_chat_template(..., tokenize=True)` does (the template supplies special tokens itself).
public struct ChatFormatter {
    public let template: ChatTemplate
    public let specialTokens: [String: String]
    public let codec: TextCodec

    /// The folder's template (or `templateSpec`: a named template, a .jinja file or a folder) and tokenizer.
    public init(folder: URL, templateSpec: String? = nil, codec: TextCodec) throws {
        if folder.pathExtension == "gguf" {
            // A GGUF file carries its chat template and special tokens in the tokenizer metadata.
            if let spec = templateSpec {
                template = try ChatTemplate.resolve(spec)
            } else if let source = codec.chatTemplate {
                template = try ChatTemplate(source: source, name: folder.lastPathComponent)
            } else {
                throw ModelError.unsupported(file: folder.path, what: "chat formatting without a chat template",
                                             hint: "The GGUF has no tokenizer.chat_template; pass --chat-template NAME.")
            }
            var t: [String: String] = [:]
            if let tok = codec as? Tokenizer {
                if let b = tok.bosToken { t["bos_token"] = b }
                if let e = tok.eosToken { t["eos_token"] = e }
                if let p = tok.padToken { t["pad_token"] = p }
                if let u = tok.unkToken { t["unk_token"] = u }
            }
            specialTokens = t
        } else {
            template = try templateSpec.map { try ChatTemplate.resolve($0) } ?? ChatTemplate.load(folder: folder)
            let cfg = folder.appendingPathComponent("tokenizer_config.json")
            specialTokens = FileManager.default.fileExists(atPath: cfg.path) ? try ChatTemplate.specialTokens(tokenizerConfig: cfg) : [:]
        }
        self.codec = codec
    }

    /// The rendered text for `messages` ((role, content) pairs).
    public func render(_ messages: [(role: String, content: String)], addGenerationPrompt: Bool) throws -> String {
        try template.render(messages: messages.map { JinjaValue.message($0.role, $0.content) },
                            addGenerationPrompt: addGenerationPrompt, specialTokens: specialTokens)
    }

    /// Prompt ids for the next assistant turn.
    public func promptIds(_ messages: [(role: String, content: String)]) throws -> [Int32] {
        try codec.encode(try render(messages, addGenerationPrompt: true), addSpecialTokens: false).map(Int32.init)
    }
}

/// Stops generation at any of a set of strings in the decoded output; trims the output there.
public struct StopStrings {
    public let strings: [String]
    public init(_ strings: [String]) { self.strings = strings.filter { !$0.isEmpty } }
    /// The text cut before the first stop string, or nil when none occurs.
    public func cut(_ text: String) -> String? {
        var best: String.Index?
        for s in strings { if let r = text.range(of: s), best == nil || r.lowerBound < best! { best = r.lowerBound } }
        return best.map { String(text[..<$0]) }
    }
}
