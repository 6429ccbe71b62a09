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
        for c in t["cases"]?.listItems ?? [] {
            total += 1
            let cid = c["conversation"]?.stringValue ?? ""
            let agp = c["add_generation_prompt"]?.truthy ?? false
            let label = "\(name) / \(cid) / add_generation_prompt=\(agp)"
            let messages = conversations[cid]?.listItems ?? []
            do {
                let text = try template.render(messages: messages, tools: (c["tools"]?.truthy ?? false) ? tools : nil,
                                               addGenerationPrompt: agp, specialTokens: tokens, now: Golden.now, timeZone: Golden.utc)
                if let want = c["text"]?.stringValue {
                    if let diff = Golden.firstDifference(text, want) { Issue.record("\(label): \(diff)") } else { matched += 1 }
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
