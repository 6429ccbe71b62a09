/// One of Unsloth's named chat templates: its Jinja text, stop word and EOS mapping rule.
public struct NamedTemplate: Sendable {
    /// The name (`chatml`, `llama-3.1`...).
    public let name: String
    /// The stop word: a literal token (`<|im_end|>`) or `eos_token` for the tokenizer's EOS.
    public let stopWord: String
    /// Whether Unsloth maps the stop word onto the EOS token for this template.
    public let mapsEOSToken: Bool
    /// The default system message substituted for `{system_message}`, or nil.
    public let defaultSystemMessage: String?
    /// The Jinja text as Unsloth ships it (with its `{system_message}` placeholder).
    public let source: String
}
