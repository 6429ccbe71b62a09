import Foundation

extension ChatTemplate {
    /// Loads the chat template of a model or tokenizer folder, as transformers 5 does: the
    /// `chat_template.jinja` file if present, else `chat_template` in `tokenizer_config.json`
    /// (a string, or a list of `{name, template}` from which `templateName` or `default` is taken),
    /// else `chat_template.json`.
    public static func load(folder: URL, templateName: String? = nil, limits: TemplateLimits = TemplateLimits()) throws -> ChatTemplate {
        let fm = FileManager.default
        let jinja = folder.appendingPathComponent("chat_template.jinja")
        if templateName == nil, fm.fileExists(atPath: jinja.path) {
            return try load(file: jinja, limits: limits)
        }
        let config = folder.appendingPathComponent("tokenizer_config.json")
        if fm.fileExists(atPath: config.path) {
            let value = try readJSON(config)
            if let t = try fromConfig(value, path: config.path, templateName: templateName, limits: limits) { return t }
        }
        let processor = folder.appendingPathComponent("chat_template.json")
        if fm.fileExists(atPath: processor.path) {
            let value = try readJSON(processor)
            if let t = try fromConfig(value, path: processor.path, templateName: templateName, limits: limits) { return t }
        }
        throw TemplateError(kind: .load, message: "no chat template in \(folder.path) (looked for chat_template.jinja, and chat_template in tokenizer_config.json and chat_template.json). Pass a named template (\(names.joined(separator: ", "))) or a .jinja file.", template: folder.path)
    }

    /// Loads a template from a file: a `.jinja` text file, or a JSON file with a `chat_template` field.
    public static func load(file: URL, templateName: String? = nil, limits: TemplateLimits = TemplateLimits()) throws -> ChatTemplate {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDir) else {
            throw TemplateError(kind: .load, message: "no such file: \(file.path)", template: file.path)
        }
        if isDir.boolValue { return try load(folder: file, templateName: templateName, limits: limits) }
        if file.pathExtension == "json" {
            let value = try readJSON(file)
            if let t = try fromConfig(value, path: file.path, templateName: templateName, limits: limits) { return t }
            throw TemplateError(kind: .load, message: "\(file.path) has no 'chat_template' field", template: file.path)
        }
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw TemplateError(kind: .load, message: "cannot read \(file.path): \(error.localizedDescription)", template: file.path)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TemplateError(kind: .load, message: "\(file.path) is not UTF-8 text", template: file.path)
        }
        return try ChatTemplate(source: text, name: file.path, limits: limits)
    }

    /// Resolves `--chat-template NAME|FILE|FOLDER`: a named template, else a path.
    public static func resolve(_ spec: String, limits: TemplateLimits = TemplateLimits()) throws -> ChatTemplate {
        if (try? namedTemplate(spec)) != nil, !FileManager.default.fileExists(atPath: spec) {
            return try named(spec, limits: limits)
        }
        return try load(file: URL(fileURLWithPath: spec), limits: limits)
    }

    /// The special tokens (`bos_token`, `eos_token`, `unk_token`, `pad_token`...) of a tokenizer folder's
    /// `tokenizer_config.json` (plain strings or `{"content": ...}` objects), or of the file itself.
    public static func specialTokens(tokenizerConfig url: URL) throws -> [String: String] {
        var file = url
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
            file = url.appendingPathComponent("tokenizer_config.json")
        }
        guard case .dict(let d) = try readJSON(file) else {
            throw TemplateError(kind: .load, message: "\(file.path): expected a JSON object", template: file.path)
        }
        var out: [String: String] = [:]
        for (k, v) in d.pairs where k.hasSuffix("_token") {
            switch v {
            case .string(let s): out[k] = s
            case .dict(let t): if let s = t["content"]?.stringValue { out[k] = s }
            default: break
            }
        }
        return out
    }

    private static func readJSON(_ url: URL) throws -> JinjaValue {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TemplateError(kind: .load, message: "cannot read \(url.path): \(error.localizedDescription)", template: url.path)
        }
        do {
            return try JinjaValue.parseJSON(data, source: url.path)
        } catch let e as JSONReadError {
            throw TemplateError(kind: .load, message: e.description, template: url.path)
        }
    }

    private static func fromConfig(_ value: JinjaValue, path: String, templateName: String?, limits: TemplateLimits) throws -> ChatTemplate? {
        guard case .dict(let d) = value, let ct = d["chat_template"], !ct.isNone else { return nil }
        switch ct {
        case .string(let s):
            if let templateName, templateName != "default" {
                throw TemplateError(kind: .load, message: "\(path) has a single chat template, not one named '\(templateName)'", template: path)
            }
            return try ChatTemplate(source: s, name: path, limits: limits)
        case .array(let entries):
            var named: [(String, String)] = []
            for (i, e) in entries.enumerated() {
                guard let n = e["name"]?.stringValue, let t = e["template"]?.stringValue else {
                    throw TemplateError(kind: .load, message: "\(path): chat_template[\(i)] needs string fields 'name' and 'template'", template: path)
                }
                named.append((n, t))
            }
            let want = templateName ?? "default"
            guard let hit = named.first(where: { $0.0 == want }) else {
                throw TemplateError(kind: .load, message: "\(path) has no chat template named '\(want)'; it has: \(named.map(\.0).joined(separator: ", "))", template: path)
            }
            return try ChatTemplate(source: hit.1, name: "\(path)#\(hit.0)", limits: limits)
        default:
            throw TemplateError(kind: .load, message: "\(path): 'chat_template' must be a string or a list of {name, template}", template: path)
        }
    }
}
