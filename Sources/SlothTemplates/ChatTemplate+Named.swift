import Foundation

/// How conversation fields are named in the data: `role`/`content`/`user`/`assistant` (OpenAI style)
/// or ShareGPT's `from`/`value`/`human`/`gpt`.
public struct RoleMapping: Sendable, Equatable {
    public var role: String
    public var content: String
    public var user: String
    public var assistant: String

    public init(role: String, content: String, user: String, assistant: String) {
        self.role = role
        self.content = content
        self.user = user
        self.assistant = assistant
    }

    /// `role`, `content`, `user`, `assistant`: no change.
    public static let standard = RoleMapping(role: "role", content: "content", user: "user", assistant: "assistant")
    /// ShareGPT: `from`, `value`, `human`, `gpt`.
    public static let shareGPT = RoleMapping(role: "from", content: "value", user: "human", assistant: "gpt")
}

/// The result of Unsloth's `map_eos_token`: the stop token and the tokenizer edit that makes it EOS.
public struct EOSMapping: Sendable {
    /// The template to render with.
    public let template: ChatTemplate
    /// The literal token generation stops at (the tokenizer's EOS when the template's stop word is `eos_token`).
    public let stopToken: String
    /// The tokenizer's EOS token after the edit.
    public let eosToken: String
    /// Vocabulary pieces to rename in tokenizer.json and tokenizer.model (old piece -> new piece), applied
    /// together; empty when nothing changes. When the stop token is already in the vocabulary the two swap.
    public let renames: [(from: String, to: String)]
}

extension ChatTemplate {
    /// The names `named(_:)` accepts (Unsloth's names; aliases such as `llama3` also work).
    public static var names: [String] { NamedTemplate.all.map(\.name) }

    private static let aliases: [String: String] = [
        "llama3": "llama-3", "llama-31": "llama-3.1", "llama-3.2": "llama-3.1", "llama-3.3": "llama-3.1",
        "llama-32": "llama-3.1", "llama-33": "llama-3.1", "phi-35": "phi-3", "phi-3.5": "phi-3",
        "qwen-25": "qwen-2.5", "qwen25": "qwen-2.5", "qwen2.5": "qwen-2.5", "gemma3": "gemma-3", "qwen3": "qwen-3",
        "vicuna old": "vicuna_old",
    ]

    /// Looks up a named template (case-insensitive, with Unsloth's aliases).
    public static func namedTemplate(_ name: String) throws -> NamedTemplate {
        let key = name.lowercased()
        let canonical = aliases[key] ?? key
        guard let t = NamedTemplate.all.first(where: { $0.name == canonical }) else {
            throw TemplateError(kind: .load, message: "unknown chat template '\(name)'. Known templates: \(names.joined(separator: ", ")); or pass a .jinja file or a tokenizer folder.", template: name)
        }
        return t
    }

    /// A named template as Unsloth's `get_chat_template` builds it: the role mapping applied
    /// (ShareGPT data), and `{system_message}` replaced by `systemMessage` or the template's default.
    public static func named(_ name: String, systemMessage: String? = nil, mapping: RoleMapping = .standard,
                             limits: TemplateLimits = TemplateLimits()) throws -> ChatTemplate {
        let t = try namedTemplate(name)
        var source = applyingRoleMapping(t.source, mapping)
        source = try changingSystemMessage(source, default: t.defaultSystemMessage, systemMessage: systemMessage, name: t.name)
        return try ChatTemplate(source: source, name: t.name, limits: limits)
    }

    /// Unsloth's role mapping: replaces the quoted literals `'role'`, `'content'`, `'user'`, `'assistant'`
    /// and, when the mapping is not the standard one, renders the original for rows that have `role`.
    public static func applyingRoleMapping(_ source: String, _ mapping: RoleMapping) -> String {
        let mapped = source
            .replacingOccurrences(of: "'role'", with: "'" + escapeJinjaLiteral(mapping.role) + "'")
            .replacingOccurrences(of: "'content'", with: "'" + escapeJinjaLiteral(mapping.content) + "'")
            .replacingOccurrences(of: "'user'", with: "'" + escapeJinjaLiteral(mapping.user) + "'")
            .replacingOccurrences(of: "'assistant'", with: "'" + escapeJinjaLiteral(mapping.assistant) + "'")
        if mapping == .standard { return mapped }
        return "{% if 'role' in messages[0] %}" + source + "{% else %}" + mapped + "{% endif %}"
    }

    /// Unsloth's `_change_system_message`.
    static func changingSystemMessage(_ source: String, default def: String?, systemMessage: String?, name: String) throws -> String {
        guard let def else {
            if source.contains("{system_message}") {
                guard let systemMessage else {
                    throw TemplateError(kind: .load, message: "this template needs a system message (it has a {system_message} placeholder)", template: name)
                }
                return source.replacingOccurrences(of: "{system_message}", with: systemMessage)
            }
            return source
        }
        return source.replacingOccurrences(of: "{system_message}", with: escapeJinjaLiteral(systemMessage ?? def))
    }

    /// Escapes text for a Jinja string literal (Unsloth's `_escape_jinja_literal`).
    public static func escapeJinjaLiteral(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            .replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\r", with: "\\r")
    }

    /// Unsloth's `map_eos_token` for a named template.
    ///
    /// When mapping is requested, the template allows it (chatml, gemma, gemma2) and its stop word is a
    /// literal token, the tokenizer's EOS piece is renamed to the stop word (swapping the two pieces when
    /// the stop word already exists), so the model learns to stop on the template's end-of-turn token
    /// without new embedding rows. Otherwise nothing is renamed.
    public static func mapEOSToken(named name: String, eosToken: String, vocabularyContains: (String) -> Bool,
                                   mapEOSToken: Bool = true, systemMessage: String? = nil,
                                   mapping: RoleMapping = .standard) throws -> EOSMapping {
        let t = try namedTemplate(name)
        let template = try named(name, systemMessage: systemMessage, mapping: mapping)
        let literal = t.stopWord != "eos_token"
        let stop = literal ? t.stopWord : eosToken
        guard mapEOSToken && t.mapsEOSToken && literal && stop != eosToken else {
            return EOSMapping(template: template, stopToken: stop, eosToken: eosToken, renames: [])
        }
        let renames: [(from: String, to: String)] = vocabularyContains(stop)
            ? [(from: eosToken, to: stop), (from: stop, to: eosToken)]
            : [(from: eosToken, to: stop)]
        return EOSMapping(template: template, stopToken: stop, eosToken: stop, renames: renames)
    }

    /// Converts ShareGPT messages (`from`/`value`, `human`/`gpt`) to `role`/`content` messages, as
    /// Unsloth's `standardize_sharegpt` does; other keys are kept.
    public static func standardizeShareGPT(_ messages: [JinjaValue]) throws -> [JinjaValue] {
        let roles = ["system": "system", "user": "user", "human": "user", "input": "user",
                     "gpt": "assistant", "assistant": "assistant", "output": "assistant", "model": "assistant",
                     "tool": "tool", "function": "tool", "observation": "tool"]
        return try messages.enumerated().map { i, m in
            guard case .dict(let d) = m else {
                throw TemplateError(kind: .load, message: "message \(i) is not an object")
            }
            guard let from = d["from"]?.stringValue ?? d["role"]?.stringValue else {
                throw TemplateError(kind: .load, message: "message \(i) has no 'from' (ShareGPT) or 'role' field")
            }
            guard let role = roles[from.lowercased()] else {
                throw TemplateError(kind: .load, message: "message \(i) has an unknown role '\(from)'; expected one of \(roles.keys.sorted().joined(separator: ", "))")
            }
            var out = JinjaDict()
            out["role"] = .string(role)
            out["content"] = d["value"] ?? d["content"] ?? .string("")
            for (k, v) in d.pairs where !["from", "value", "role", "content"].contains(k) { out[k] = v }
            return .dict(out)
        }
    }
}
