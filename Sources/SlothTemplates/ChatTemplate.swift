import Foundation

/// A parsed chat template that renders conversations exactly as Hugging Face's `apply_chat_template`
/// does (Jinja2 `ImmutableSandboxedEnvironment`, `trim_blocks`, `lstrip_blocks`, HF's `tojson`,
/// `raise_exception`, `strftime_now`, `namespace`, loop controls and `{% generation %}`).
public struct ChatTemplate: @unchecked Sendable {
    /// The Jinja text.
    public let source: String
    /// A name for error messages (file path, named template or `<template>`).
    public let name: String
    /// Bounds on loops, recursion and output size.
    public var limits: TemplateLimits
    private let program: [Stmt]

    /// Parses a template; throws `TemplateError` (kind `.syntax`) with line and column.
    public init(source: String, name: String? = nil, limits: TemplateLimits = TemplateLimits()) throws {
        self.source = source
        self.name = name ?? "<template>"
        self.limits = limits
        var lexer = Lexer(source: source, name: self.name)
        let tokens = try lexer.tokenize()
        var parser = Parser(tokens: tokens, name: self.name)
        program = try runWithLargeStack { try parser.parseTemplate() }
    }

    /// Whether the template has `{% generation %}` blocks (assistant masks from spans).
    public var hasGenerationBlocks: Bool {
        source.range(of: #"\{%-?\s*generation\s*-?%\}"#, options: .regularExpression) != nil
    }

    /// Renders a conversation.
    ///
    /// - Parameters:
    ///   - messages: the messages, each a dict (`role`, `content`, optional `tool_calls`...).
    ///   - tools: tool JSON schemas, or nil (the template sees `tools` as `none`).
    ///   - documents: documents for RAG templates, or nil.
    ///   - addGenerationPrompt: append the assistant header.
    ///   - specialTokens: `bos_token`, `eos_token`, ... as plain strings.
    ///   - extra: other variables (`date_string`, `enable_thinking`...).
    ///   - normalizeMessages: do what `apply_chat_template` does to messages first: drop keys whose
    ///     value is `None`, and copy `reasoning_content`/`thinking`/`reasoning` across those names.
    ///   - now: the time `strftime_now` sees; `timeZone` its zone (Python uses local time).
    public func render(messages: [JinjaValue], tools: [JinjaValue]? = nil, documents: [JinjaValue]? = nil,
                       addGenerationPrompt: Bool = false, specialTokens: [String: String] = [:],
                       extra: [String: JinjaValue] = [:], normalizeMessages: Bool = true,
                       now: Date = Date(), timeZone: TimeZone = .current) throws -> String {
        try renderWithGenerationSpans(messages: messages, tools: tools, documents: documents, addGenerationPrompt: addGenerationPrompt,
                                      specialTokens: specialTokens, extra: extra, normalizeMessages: normalizeMessages,
                                      now: now, timeZone: timeZone).text
    }

    /// The result of a render: the text and the `{% generation %}` spans.
    public struct Rendered: Sendable {
        public let text: String
        /// Spans as offsets in Unicode code points (Python string indices, as HF reports them).
        public let codePointSpans: [Range<Int>]
        /// The same spans as ranges of `text`.
        public let spans: [Range<String.Index>]
    }

    /// Renders and returns the text with the spans of `{% generation %}` blocks (assistant turns).
    public func renderWithGenerationSpans(messages: [JinjaValue], tools: [JinjaValue]? = nil, documents: [JinjaValue]? = nil,
                                          addGenerationPrompt: Bool = false, specialTokens: [String: String] = [:],
                                          extra: [String: JinjaValue] = [:], normalizeMessages: Bool = true,
                                          now: Date = Date(), timeZone: TimeZone = .current) throws -> Rendered {
        var context: [String: JinjaValue] = [:]
        for (k, v) in specialTokens { context[k] = .string(v) }
        for (k, v) in extra { context[k] = v }
        context["messages"] = .array(normalizeMessages ? ChatTemplate.normalize(messages) : messages)
        context["tools"] = tools.map { .array($0) } ?? .none
        context["documents"] = documents.map { .array($0) } ?? .none
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        return try render(context: context, now: now, timeZone: timeZone)
    }

    /// Renders with an explicit set of variables (no defaults added).
    public func render(context: [String: JinjaValue], now: Date = Date(), timeZone: TimeZone = .current) throws -> Rendered {
        let (text, spans) = try runWithLargeStack { () throws -> (String, [(Int, Int)]) in
            let interp = Interpreter(name: name, limits: limits, now: now, timeZone: timeZone)
            let globals = Scope(parent: nil)
            globals.vars = Builtins.globals(interp: interp)
            for (k, v) in context { globals.vars[k] = v }
            let top = Scope(parent: globals)
            let flow = try interp.exec(program, top)
            _ = flow
            return (interp.output, interp.spans)
        }
        // Map code point offsets to string indices.
        var indices: [Int: String.Index] = [:]
        let wanted = Set(spans.flatMap { [$0.0, $0.1] })
        if !wanted.isEmpty {
            var n = 0
            var idx = text.unicodeScalars.startIndex
            while true {
                if wanted.contains(n) { indices[n] = idx }
                if idx == text.unicodeScalars.endIndex { break }
                idx = text.unicodeScalars.index(after: idx)
                n += 1
            }
        }
        let ranges = spans.compactMap { s -> Range<String.Index>? in
            guard let a = indices[s.0], let b = indices[s.1], a <= b else { return nil }
            return a..<b
        }
        return Rendered(text: text, codePointSpans: spans.map { $0.0..<$0.1 }, spans: ranges)
    }

    /// What `apply_chat_template` does to messages before rendering: drop `None`-valued keys, and
    /// fill `thinking` and `reasoning_content` from whichever reasoning field is set.
    public static func normalize(_ messages: [JinjaValue]) -> [JinjaValue] {
        messages.map { m in
            guard case .dict(let d) = m else { return m }
            var out = JinjaDict()
            for (k, v) in d.pairs where !v.isNone { out[k] = v }
            if let reasoning = ["reasoning_content", "thinking", "reasoning"].lazy.compactMap({ out[$0] }).first {
                var aliased = JinjaDict()
                aliased["thinking"] = reasoning
                for (k, v) in out.pairs { aliased[k] = v }
                aliased["reasoning_content"] = reasoning
                out = aliased
            }
            return .dict(out)
        }
    }
}

extension JinjaValue {
    /// A `{"role": role, "content": content}` message.
    public static func message(_ role: String, _ content: String) -> JinjaValue {
        .dict(JinjaDict([("role", .string(role)), ("content", .string(content))]))
    }
}

/// Runs `body` on a thread with a large stack (deeply nested templates recurse deeply), rethrowing its error.
func runWithLargeStack<T>(_ body: @escaping () throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        box.result = Result { try body() }
        done.signal()
    }
    thread.stackSize = 256 << 20
    thread.start()
    done.wait()
    return try box.result!.get()
}

/// Carries a result out of the render thread.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}
