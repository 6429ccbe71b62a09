import ArgumentParser
import Foundation
import Sloth

/// `sloth template`: render and list chat templates.
struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Render and list chat templates.",
        subcommands: [TemplateRenderCommand.self, TemplateListCommand.self]
    )
}

/// `sloth template render`: prints a conversation rendered with a chat template, exactly (no added newline).
struct TemplateRenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Render a conversation with a chat template, exactly as transformers' apply_chat_template.",
        discussion: """
        FILE.json holds {"messages": [...]} (or ShareGPT {"conversations": [...]}, or a bare list), with
        optional "tools", "documents", "bos_token", "eos_token" and other "*_token" strings.
        The text is printed exactly, with no newline added.

        Examples:
          sloth template render --template chatml --messages conv.json --add-generation-prompt
          sloth template render --tokenizer models/tiny-llama --messages conv.json
          sloth template render --template my.jinja --messages conv.json --var enable_thinking=false
        """
    )

    @Option(name: .long, help: "A named template (see `sloth template list`), a .jinja file, a tokenizer_config.json or a model folder.")
    var template: String?

    @Option(name: .long, help: "JSON file with the conversation.")
    var messages: String

    @Flag(name: .long, help: "Append the assistant header so the model answers next.")
    var addGenerationPrompt = false

    @Option(name: .long, help: "Tokenizer or model folder: special tokens from its tokenizer_config.json, and its template when --template is not given.")
    var tokenizer: String?

    @Option(name: .customLong("var"), help: "An extra template variable, KEY=JSON (repeatable), e.g. --var date_string='\"26 Jul 2024\"'.")
    var variables: [String] = []

    @Option(name: .long, help: "For a named template: replace its default system message.")
    var systemMessage: String?

    @Option(name: .long, help: "For a tokenizer_config.json holding several templates: which one (default: 'default').")
    var templateName: String?

    @Flag(name: .long, help: "Render the messages as given, without apply_chat_template's clean-up (dropping null fields, reasoning aliases).")
    var raw = false

    func run() throws {
        let input = try TemplateCLI.readJSON(messages, what: "--messages")
        var messageList: [JinjaValue]
        var fileTokens: [String: String] = [:]
        var tools: [JinjaValue]? = nil
        var documents: [JinjaValue]? = nil
        var shareGPT = false
        switch input {
        case .array(let a):
            messageList = a
        case .dict(let d):
            if let m = d["messages"] {
                guard let a = m.listItems else { throw TemplateCLIError("\(messages): \"messages\" must be a list of message objects") }
                messageList = a
            } else if let c = d["conversations"] {
                guard let a = c.listItems else { throw TemplateCLIError("\(messages): \"conversations\" must be a list of {from, value} objects") }
                messageList = a
                shareGPT = true
            } else {
                throw TemplateCLIError("\(messages): no \"messages\" (or ShareGPT \"conversations\") list; expected {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}")
            }
            if let t = d["tools"], !t.isNone {
                guard let a = t.listItems else { throw TemplateCLIError("\(messages): \"tools\" must be a list of tool schemas") }
                tools = a
            }
            if let t = d["documents"], !t.isNone {
                guard let a = t.listItems else { throw TemplateCLIError("\(messages): \"documents\" must be a list") }
                documents = a
            }
            for (k, v) in d.pairs where k.hasSuffix("_token") {
                guard let s = v.stringValue else { throw TemplateCLIError("\(messages): \"\(k)\" must be a string") }
                fileTokens[k] = s
            }
        default:
            throw TemplateCLIError("\(messages): expected a JSON object {\"messages\": [...]} or a list of messages")
        }
        for (i, m) in messageList.enumerated() {
            guard case .dict = m else { throw TemplateCLIError("\(messages): message \(i) is not a JSON object") }
        }
        if shareGPT { messageList = try ChatTemplate.standardizeShareGPT(messageList) }

        var tokens: [String: String] = [:]
        if let tokenizer { tokens = try ChatTemplate.specialTokens(tokenizerConfig: URL(fileURLWithPath: tokenizer)) }
        for (k, v) in fileTokens { tokens[k] = v }

        let chatTemplate: ChatTemplate
        if let spec = template {
            if (try? ChatTemplate.namedTemplate(spec)) != nil, !FileManager.default.fileExists(atPath: spec) {
                chatTemplate = try ChatTemplate.named(spec, systemMessage: systemMessage)
            } else {
                guard FileManager.default.fileExists(atPath: spec) else {
                    throw TemplateCLIError("--template \(spec): not a named template (\(ChatTemplate.names.joined(separator: ", "))) and no such file or folder")
                }
                if systemMessage != nil { throw TemplateCLIError("--system-message only applies to named templates (\(ChatTemplate.names.joined(separator: ", ")))") }
                chatTemplate = try ChatTemplate.load(file: URL(fileURLWithPath: spec), templateName: templateName)
            }
        } else if let tokenizer {
            chatTemplate = try ChatTemplate.load(folder: URL(fileURLWithPath: tokenizer), templateName: templateName)
        } else {
            throw ValidationError("give --template NAME|FILE or --tokenizer FOLDER (named templates: \(ChatTemplate.names.joined(separator: ", ")))")
        }

        var extra: [String: JinjaValue] = [:]
        for v in variables {
            guard let eq = v.firstIndex(of: "="), eq != v.startIndex else {
                throw ValidationError("--var \(v): expected KEY=JSON, e.g. --var enable_thinking=false")
            }
            let key = String(v[..<eq])
            do {
                extra[key] = try JinjaValue.parseJSON(String(v[v.index(after: eq)...]), source: "--var \(key)")
            } catch let e as JSONReadError {
                throw ValidationError("--var \(key): the value is not JSON (\(e.message)); quote strings, e.g. --var \(key)='\"text\"'")
            }
        }

        let text = try chatTemplate.render(messages: messageList, tools: tools, documents: documents,
                                           addGenerationPrompt: addGenerationPrompt, specialTokens: tokens,
                                           extra: extra, normalizeMessages: !raw)
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// `sloth template list`: the named templates.
struct TemplateListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the named chat templates.")

    func run() throws {
        var out = ""
        let width = (ChatTemplate.names.map(\.count).max() ?? 8) + 2
        for name in ChatTemplate.names {
            let t = try ChatTemplate.namedTemplate(name)
            let stop = t.stopWord == "eos_token" ? "the tokenizer's EOS" : t.stopWord
            var line = name.padding(toLength: width, withPad: " ", startingAt: 0) + "stop: \(stop)"
            if t.mapsEOSToken { line += " (mapped onto EOS)" }
            if let sys = t.defaultSystemMessage, !sys.isEmpty { line += "; default system message" }
            out += line + "\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}

/// A user-facing error of `sloth template`.
struct TemplateCLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// File reading shared by the template subcommands.
enum TemplateCLI {
    static func readJSON(_ path: String, what: String) throws -> JinjaValue {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TemplateCLIError("\(what) \(path): cannot read the file (\(error.localizedDescription))")
        }
        do {
            return try JinjaValue.parseJSON(data, source: path)
        } catch let e as JSONReadError {
            throw TemplateCLIError(e.description)
        }
    }
}
