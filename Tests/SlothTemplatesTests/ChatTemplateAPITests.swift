import Foundation
import Testing
@testable import SlothTemplates

@Test func jsonReaderKeepsKeyOrderAndPythonNumberTypes() throws {
    let v = try JinjaValue.parseJSON(#"{"z": 1, "a": [1.0, 2, -3e2, true, null], "é": "\u00e9\ud83e\udda5\n", "z2": {}}"#)
    guard case .dict(let d) = v else { Issue.record("not a dict"); return }
    #expect(d.keys == ["z", "a", "é", "z2"])
    let enc = PythonJSON()
    #expect(try enc.dumps(v) == #"{"z": 1, "a": [1.0, 2, -300.0, true, null], "é": "é🦥\n", "z2": {}}"#)
    #expect(try PythonJSON(indent: "  ").dumps(v) == "{\n  \"z\": 1,\n  \"a\": [\n    1.0,\n    2,\n    -300.0,\n    true,\n    null\n  ],\n  \"é\": \"é🦥\\n\",\n  \"z2\": {}\n}")
    #expect(try PythonJSON(ensureASCII: true).dumps(.string("é🦥\u{7f}")) == #""\u00e9\ud83e\udda5\u007f""#)
}

@Test func jsonReaderErrorsNameTheSourceAndPlace() throws {
    do {
        _ = try JinjaValue.parseJSON("{\n  \"a\": [1,\n  2,,]\n}", source: "conv.json")
        Issue.record("bad JSON was accepted")
    } catch let e as JSONReadError {
        #expect(e.line == 3 && e.source == "conv.json", "\(e)")
        #expect(e.description.hasPrefix("conv.json:3:"))
    }
    #expect(throws: JSONReadError.self) { try JinjaValue.parseJSON("[1] x") }
    #expect(throws: JSONReadError.self) { try JinjaValue.parseJSON("\"unterminated") }
    #expect(throws: JSONReadError.self) { try JinjaValue.parseJSON(Data([0xFF, 0xFE]), source: "bin") }
}

@Test func pythonFloatRepr() {
    let cases: [(Double, String)] = [(1, "1.0"), (0.1, "0.1"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (1e-5, "1e-05"),
                                     (0.0001, "0.0001"), (-2.5e-8, "-2.5e-08"), (123456789012345678, "1.2345678901234568e+17"),
                                     (5e-324, "5e-324"), (.infinity, "inf"), (-0.0, "-0.0"), (9007199254740992, "9007199254740992.0")]
    for (x, want) in cases { #expect(PythonFloat.repr(x) == want, "\(x)") }
}

@Test func namedTemplatesCoverTheIssueList() throws {
    for name in ["chatml", "llama-3", "llama-3.1", "mistral", "gemma", "gemma2", "zephyr", "vicuna", "alpaca", "phi-3", "qwen-2.5", "unsloth"] {
        #expect(ChatTemplate.names.contains(name), "\(name)")
        _ = try ChatTemplate.named(name)
    }
    #expect(try ChatTemplate.named("LLAMA3").name == "llama-3")
    #expect(try ChatTemplate.named("qwen2.5").name == "qwen-2.5")
    do {
        _ = try ChatTemplate.named("nope")
        Issue.record("unknown name accepted")
    } catch let e as TemplateError {
        #expect(e.kind == .load && e.description.contains("chatml"))
    }
}

@Test func namedTemplateSourcesMatchUnsloth() throws {
    // named.json is written by extract_named.py from Unsloth's chat_templates.py, like NamedTemplates.swift.
    let named = try Golden.load("named.json")
    let entries = named["templates"]?.listItems ?? []
    #expect(entries.count == NamedTemplate.all.count)
    for e in entries {
        let name = e["name"]?.stringValue ?? ""
        let t = try ChatTemplate.namedTemplate(name)
        #expect(t.source == e["template"]?.stringValue, "\(name)")
        #expect(t.stopWord == e["stop_word"]?.stringValue, "\(name)")
        #expect(t.mapsEOSToken == e["map_eos_token"]?.truthy, "\(name)")
        #expect(t.defaultSystemMessage == e["default_system_message"]?.stringValue, "\(name)")
    }
}

@Test func systemMessageOverrideIsEscapedLikeUnsloth() throws {
    let t = try ChatTemplate.named("unsloth", systemMessage: "Be 'brief' \\ \"ok\"")
    let text = try t.render(messages: [.message("user", "hi")], specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
    #expect(text == "<s>Be 'brief' \\ \"ok\"\n>>> User: hi\n")
}

@Test func shareGPTMappingRendersLikeStandardData() throws {
    let standard: [JinjaValue] = [.message("system", "sys"), .message("user", "hi"), .message("assistant", "yo")]
    let share: [JinjaValue] = [
        .dict(JinjaDict([("from", .string("system")), ("value", .string("sys"))])),
        .dict(JinjaDict([("from", .string("human")), ("value", .string("hi"))])),
        .dict(JinjaDict([("from", .string("gpt")), ("value", .string("yo"))])),
    ]
    for name in ["chatml", "llama-3", "phi-3", "zephyr"] {
        let plain = try ChatTemplate.named(name).render(messages: standard, specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
        let mapped = try ChatTemplate.named(name, mapping: .shareGPT)
        #expect(try mapped.render(messages: share, specialTokens: ["bos_token": "<s>", "eos_token": "</s>"]) == plain, "\(name)")
        // The mapped template still renders role/content rows (Unsloth's `'role' in messages[0]` switch).
        #expect(try mapped.render(messages: standard, specialTokens: ["bos_token": "<s>", "eos_token": "</s>"]) == plain, "\(name)")
        // Converting the data instead gives the same text.
        #expect(try ChatTemplate.named(name).render(messages: try ChatTemplate.standardizeShareGPT(share), specialTokens: ["bos_token": "<s>", "eos_token": "</s>"]) == plain)
    }
    #expect(throws: TemplateError.self) { try ChatTemplate.standardizeShareGPT([.dict(JinjaDict([("from", .string("alien")), ("value", .string("x"))]))]) }
}

@Test func mapEOSTokenFollowsUnsloth() throws {
    let chatml = try ChatTemplate.mapEOSToken(named: "chatml", eosToken: "</s>", vocabularyContains: { _ in false })
    #expect(chatml.stopToken == "<|im_end|>" && chatml.eosToken == "<|im_end|>")
    #expect(chatml.renames.map { "\($0.from)->\($0.to)" } == ["</s>-><|im_end|>"])
    let swapped = try ChatTemplate.mapEOSToken(named: "chatml", eosToken: "</s>", vocabularyContains: { $0 == "<|im_end|>" })
    #expect(swapped.renames.map { "\($0.from)->\($0.to)" } == ["</s>-><|im_end|>", "<|im_end|>-></s>"])
    let off = try ChatTemplate.mapEOSToken(named: "chatml", eosToken: "</s>", vocabularyContains: { _ in false }, mapEOSToken: false)
    #expect(off.renames.isEmpty && off.eosToken == "</s>" && off.stopToken == "<|im_end|>")
    let llama = try ChatTemplate.mapEOSToken(named: "llama-3", eosToken: "<|eot_id|>", vocabularyContains: { _ in true })
    #expect(llama.renames.isEmpty && llama.stopToken == "<|eot_id|>")
    let phi = try ChatTemplate.mapEOSToken(named: "phi-3", eosToken: "<|endoftext|>", vocabularyContains: { _ in true })
    #expect(phi.renames.isEmpty && phi.stopToken == "<|end|>" && phi.eosToken == "<|endoftext|>")
    let gemma = try ChatTemplate.mapEOSToken(named: "gemma", eosToken: "<eos>", vocabularyContains: { _ in true })
    #expect(gemma.eosToken == "<end_of_turn>" && gemma.renames.count == 2)
}

@Test func loadsTemplatesFromTokenizerFolders() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sloth-tpl-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let config = dir.appendingPathComponent("tokenizer_config.json")
    try #"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}"#
        .write(to: config, atomically: true, encoding: .utf8)
    let t = try ChatTemplate.load(folder: dir)
    let tokens = try ChatTemplate.specialTokens(tokenizerConfig: dir)
    #expect(tokens == ["bos_token": "<s>", "eos_token": "</s>"])
    #expect(try t.render(messages: [.message("user", "a")], specialTokens: tokens) == "<s>a")
    // A list of named templates.
    try #"{"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]}"#.write(to: config, atomically: true, encoding: .utf8)
    #expect(try ChatTemplate.load(folder: dir).render(messages: []) == "D")
    #expect(try ChatTemplate.load(folder: dir, templateName: "tool_use").render(messages: []) == "T")
    #expect(throws: TemplateError.self) { try ChatTemplate.load(folder: dir, templateName: "rag") }
    // chat_template.jinja wins.
    try "J{{ messages | length }}\n".write(to: dir.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
    #expect(try ChatTemplate.load(folder: dir).render(messages: [.message("user", "x")]) == "J1")
    #expect(try ChatTemplate.resolve(dir.path).render(messages: []) == "J0")
    #expect(try ChatTemplate.resolve("chatml").name == "chatml")
    // Broken JSON names the file and the line.
    try FileManager.default.removeItem(at: dir.appendingPathComponent("chat_template.jinja"))
    try "{\n \"chat_template\": 3,,\n}".write(to: config, atomically: true, encoding: .utf8)
    do {
        _ = try ChatTemplate.load(folder: dir)
        Issue.record("broken config accepted")
    } catch let e as TemplateError {
        #expect(e.kind == .load && e.description.contains("tokenizer_config.json:2:"), "\(e)")
    }
    let empty = dir.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    #expect(throws: TemplateError.self) { try ChatTemplate.load(folder: empty) }
}

@Test func generationSpansAreStringRanges() throws {
    let t = try ChatTemplate(source: "{% for m in messages %}{{ m.role }}: {% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}")
    #expect(t.hasGenerationBlocks)
    let r = try t.renderWithGenerationSpans(messages: [.message("user", "é🦥"), .message("assistant", "a👨‍👩‍👧b"), .message("assistant", "")])
    #expect(r.spans.map { String(r.text[$0]) } == ["a👨‍👩‍👧b", ""])
    #expect(r.codePointSpans.first == 19..<26)  // trim_blocks drops the newline after endif
}

@Test func messagesAreNormalizedLikeApplyChatTemplate() throws {
    let t = try ChatTemplate(source: "{% for m in messages %}{{ m | tojson }}{% endfor %}")
    let m = JinjaValue.dict(JinjaDict([("role", .string("assistant")), ("content", .none), ("reasoning", .string("r"))]))
    #expect(try t.render(messages: [m]) == #"{"thinking": "r", "role": "assistant", "reasoning": "r", "reasoning_content": "r"}"#)
    #expect(try t.render(messages: [m], normalizeMessages: false) == #"{"role": "assistant", "content": null, "reasoning": "r"}"#)
}

@Test func renderThroughput() throws {
    let t = try ChatTemplate.named("llama-3.1")
    let messages: [JinjaValue] = [.message("system", "You are helpful."), .message("user", "Hello there, how are you?"),
                                  .message("assistant", "Fine, thanks! And you?"), .message("user", "Great.")]
    let n = 300
    let start = Date()
    for _ in 0..<n { _ = try t.render(messages: messages, addGenerationPrompt: true, specialTokens: ["bos_token": "<|begin_of_text|>"]) }
    let s = Date().timeIntervalSince(start)
    print("render throughput: llama-3.1, 4 messages: \(Int(Double(n) / s)) renders/s (\(String(format: "%.0f", s / Double(n) * 1e6)) us each, debug build)")
}

/// A U+FEFF at the start of a JSON string is text, kept as Python's json.loads keeps it (Foundation's
/// String(bytes:encoding:) would drop it as a byte-order mark, and the row would tokenize differently).
@Test func jsonStringKeepsLeadingFEFF() throws {
    for source in ["{\"text\": \"\\ufeffab\"}", "{\"text\": \"\u{FEFF}ab\"}"] {
        let v = try JinjaValue.parseJSON(Data(source.utf8))
        #expect(v["text"]?.stringValue?.unicodeScalars.map(\.value) == [0xFEFF, 0x61, 0x62])
    }
}
