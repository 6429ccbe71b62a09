import Foundation
import Sloth
import Testing

/// End-to-end tests of `sloth template` against the jinja2 goldens in Tests/Fixtures/templates.
enum TemplateFixtures {
    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/templates")
    }

    static func load(_ name: String) throws -> JinjaValue {
        try JinjaValue.parseJSON(try Data(contentsOf: directory.appendingPathComponent(name)), source: name)
    }

    /// Writes `text` to a fresh temporary file and returns its path.
    static func temp(_ text: String, _ name: String = "conv.json") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sloth-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}

@Test func templateRenderPrintsJinja2GoldenBytes() throws {
    let corpus = try TemplateFixtures.load("conversations.json")
    let golden = try TemplateFixtures.load("named-golden.json")
    guard case .dict(let specials)? = golden["special_tokens"], let templates = golden["templates"]?.listItems,
          case .dict(let conversations)? = corpus["conversations"] else {
        Issue.record("malformed fixtures")
        return
    }
    var checked = 0
    for name in ["chatml", "llama-3.1", "mistral", "qwen-2.5"] {
        guard let entry = templates.first(where: { $0["name"]?.stringValue == name }) else { continue }
        for c in entry["cases"]?.listItems ?? [] {
            guard let want = c["text"]?.stringValue, c["tools"]?.truthy == false,
                  let cid = c["conversation"]?.stringValue, let conv = conversations[cid] else { continue }
            let agp = c["add_generation_prompt"]?.truthy ?? false
            var file = JinjaDict()
            file["messages"] = conv
            for (k, v) in specials.pairs { file[k] = v }
            let path = try TemplateFixtures.temp(try JSONText.dump(.dict(file)))
            let (status, out, err) = try CLI.run(["template", "render", "--template", name, "--messages", path] + (agp ? ["--add-generation-prompt"] : []))
            #expect(status == 0, "\(name)/\(cid): \(err)")
            #expect(out == want, "\(name)/\(cid)/agp=\(agp): got \(out.debugDescription), want \(want.debugDescription)")
            checked += 1
        }
    }
    print("sloth template render: \(checked) renders compared byte for byte with jinja2")
    #expect(checked > 20)
}

@Test func templateListNamesEveryTemplate() throws {
    let (status, out, _) = try CLI.run(["template", "list"])
    #expect(status == 0)
    for name in ["chatml", "llama-3", "llama-3.1", "mistral", "gemma", "gemma2", "zephyr", "vicuna", "alpaca", "phi-3", "qwen-2.5", "unsloth"] {
        #expect(out.split(separator: "\n").contains { $0.hasPrefix(name + " ") }, "\(name)")
    }
}

@Test func templateRenderFromTokenizerFolderWithVars() throws {
    let conv = try TemplateFixtures.temp(#"{"messages": [{"role": "user", "content": "hi"}]}"#)
    let dir = URL(fileURLWithPath: conv).deletingLastPathComponent()
    try #"{"bos_token": {"content": "<B>"}, "eos_token": "<E>", "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}{{ extra | tojson }}"}"#
        .write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
    let (status, out, err) = try CLI.run(["template", "render", "--tokenizer", dir.path, "--messages", conv, "--var", #"extra={"b": [1, 2.0], "a": null}"#])
    #expect(status == 0, "\(err)")
    #expect(out == #"<B>hi<E>{"b": [1, 2.0], "a": null}"#)
}

@Test func templateRenderShareGPTFile() throws {
    let conv = try TemplateFixtures.temp(#"{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}"#)
    let (status, out, _) = try CLI.run(["template", "render", "--template", "chatml", "--messages", conv])
    #expect(status == 0)
    #expect(out == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n")
}

@Test func templateRenderErrorsAreClear() throws {
    let conv = try TemplateFixtures.temp(#"{"messages": [{"role": "user", "content": "a"}, {"role": "narrator", "content": "b"}]}"#)
    let (s1, _, e1) = try CLI.run(["template", "render", "--template", "unsloth", "--messages", conv])
    #expect(s1 != 0)
    #expect(e1.contains("Only user and assistant roles are supported!"), "\(e1)")
    let (s2, _, e2) = try CLI.run(["template", "render", "--template", "no-such-template", "--messages", conv])
    #expect(s2 != 0 && e2.contains("chatml"), "\(e2)")
    let broken = try TemplateFixtures.temp("{\"messages\": [\n  {\"role\": \"user\",,}\n]}")
    let (s3, _, e3) = try CLI.run(["template", "render", "--template", "chatml", "--messages", broken])
    #expect(s3 != 0 && e3.contains("conv.json:2:"), "\(e3)")
    let loop = try TemplateFixtures.temp("{% macro f() %}{{ f() }}{% endmacro %}\n{{ f() }}", "loop.jinja")
    let (s4, _, e4) = try CLI.run(["template", "render", "--template", loop, "--messages", conv])
    #expect(s4 != 0 && e4.contains("loop.jinja:") && e4.contains("sandbox"), "\(e4)")
}

/// Serializes a value as JSON (key order kept) for test inputs.
enum JSONText {
    static func dump(_ v: JinjaValue) throws -> String {
        let t = try ChatTemplate(source: "{{ v | tojson }}")
        return try t.render(context: ["v": v]).text
    }
}
