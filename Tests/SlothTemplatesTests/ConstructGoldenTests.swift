import Foundation
import Testing
@testable import SlothTemplates

/// Every construct template rendered by Python jinja2 (HF's environment) must render byte-identically.
@Test func constructsMatchJinja2() throws {
    let root = try Golden.load("constructs.json")
    guard case .dict(let specials)? = root["special_tokens"], let cases = root["cases"]?.listItems else {
        Issue.record("constructs.json has no cases")
        return
    }
    let tokens = Dictionary(uniqueKeysWithValues: specials.pairs.compactMap { k, v in v.stringValue.map { (k, $0) } })
    var matched = 0
    for c in cases {
        let name = c["name"]?.stringValue ?? "?"
        let source = c["template"]?.stringValue ?? ""
        var extra: [String: JinjaValue] = [:]
        if case .dict(let vars)? = c["variables"] { for (k, v) in vars.pairs { extra[k] = v } }
        let messages = c["messages"]?.listItems ?? []
        let wantSpans = c["spans"]?.listItems
        do {
            let template = try ChatTemplate(source: source, name: name)
            let r = try template.renderWithGenerationSpans(messages: messages, specialTokens: tokens, extra: extra,
                                                           now: Golden.now, timeZone: Golden.utc)
            if let want = c["text"]?.stringValue {
                if let diff = Golden.firstDifference(r.text, want) {
                    Issue.record("\(name): \(diff)")
                } else if let wantSpans {
                    let spans = wantSpans.map { s -> Range<Int> in
                        let a = s.listItems ?? []
                        if case .int(let x) = a[0], case .int(let y) = a[1] { return x..<y }
                        return 0..<0
                    }
                    if spans != r.codePointSpans { Issue.record("\(name): spans \(r.codePointSpans), want \(spans)") } else { matched += 1 }
                } else {
                    matched += 1
                }
            } else {
                Issue.record("\(name): rendered \(r.text.debugDescription) but jinja2 failed with \(c["error"]?.stringValue ?? "?"): \(c["message"]?.stringValue ?? "")")
            }
        } catch let e as TemplateError {
            guard let kind = c["error"]?.stringValue else {
                Issue.record("\(name): failed with \(e) but jinja2 rendered \(c["text"]?.stringValue.debugDescription ?? "")")
                continue
            }
            let want = c["message"]?.stringValue ?? ""
            switch kind {
            case "raised", "security":
                if e.message != want { Issue.record("\(name): message \(e.message.debugDescription), want \(want.debugDescription)") } else { matched += 1 }
            case "OverflowError", "RecursionError":
                if e.kind != .limit { Issue.record("\(name): error kind \(e.kind), want a sandbox limit") } else { matched += 1 }
            case "syntax":
                if e.kind != .syntax { Issue.record("\(name): error kind \(e.kind), want syntax") } else { matched += 1 }
            default:
                matched += 1
            }
            #expect(e.line > 0, "\(name): error without a line: \(e)")
        }
    }
    print("constructs: \(matched)/\(cases.count) match jinja2 (byte-identical text or same error)")
    #expect(matched == cases.count)
}
