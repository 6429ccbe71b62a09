import Foundation
import Testing
@testable import SlothTemplates

/// Renders `source` and returns the error it must throw.
private func renderError(_ source: String, limits: TemplateLimits = TemplateLimits(), context: [String: JinjaValue] = [:]) -> TemplateError? {
    do {
        let t = try ChatTemplate(source: source, name: "t.jinja", limits: limits)
        _ = try t.render(context: context)
        return nil
    } catch let e as TemplateError {
        return e
    } catch {
        Issue.record("unexpected error type \(type(of: error)): \(error)")
        return nil
    }
}

@Test func nestedLoopsStopAtTheIterationBudget() throws {
    let start = Date()
    let e = try #require(renderError("x\n  {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                                     limits: TemplateLimits(maxIterations: 200_000)))
    #expect(e.kind == .limit)
    #expect(e.message.contains("loop iterations"))
    #expect(e.line == 2 && e.column > 0, "\(e)")
    #expect(e.description.contains("t.jinja:2:"))
    print("iteration budget: stopped after 200000 iterations in \(String(format: "%.2f", Date().timeIntervalSince(start))) s: \(e)")
}

@Test func defaultIterationBudgetStopsQuadraticLoops() throws {
    let start = Date()
    let e = try #require(renderError("{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}"))
    #expect(e.kind == .limit)
    let seconds = Date().timeIntervalSince(start)
    print("default budget (\(TemplateLimits().maxIterations) iterations) reached in \(String(format: "%.2f", seconds)) s")
    #expect(seconds < 120)
}

@Test func endlessMacroRecursionStops() throws {
    let e = try #require(renderError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}"))
    #expect(e.kind == .limit)
    #expect(e.message.contains("nested deeper"), "\(e)")
    #expect(e.line >= 1 && e.column > 0)
}

@Test func mutualRecursionStops() throws {
    let e = try #require(renderError("{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{% endmacro %}{{ a(0) }}"))
    #expect(e.kind == .limit)
}

@Test func callerRecursionStops() throws {
    let e = try #require(renderError("{% macro m() %}{% call m() %}{{ caller() }}{% endcall %}{% endmacro %}{{ m() }}"))
    #expect(e.kind == .limit)
}

@Test func outputSizeIsBounded() throws {
    // Writes 100000 x 100 KB = 10 GB unless stopped.
    let e = try #require(renderError("{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}", limits: TemplateLimits(maxOutputBytes: 1 << 20)))
    #expect(e.kind == .limit && e.message.contains("output is larger"), "\(e)")
    // Strings that double in a loop are stopped before they grow past the limit.
    let d = try #require(renderError("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
                                     limits: TemplateLimits(maxOutputBytes: 1 << 20)))
    #expect(d.kind == .limit, "\(d)")
    let r = try #require(renderError("{{ 'ab' * 1000000000000 }}"))
    #expect(r.kind == .limit)
    let l = try #require(renderError("{{ ([1] * 1000000000) | length }}"))
    #expect(l.kind == .limit)
    let j = try #require(renderError("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = [ns.s, ns.s] | join %}{% endfor %}",
                                     limits: TemplateLimits(maxOutputBytes: 1 << 20)))
    #expect(j.kind == .limit)
}

@Test func hugeRangeIsRefusedLikeJinjaSandbox() throws {
    let e = try #require(renderError("{% for i in range(10**9) %}{% endfor %}"))
    #expect(e.kind == .limit)
    #expect(e.message == "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
}

@Test func deepNestingDoesNotCrash() throws {
    // Expressions nested past the parser's bound are a syntax error, not a stack overflow.
    let deep = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
    let e = try #require(renderError(deep))
    #expect(e.kind == .syntax)
    // Deeply nested blocks parse and render.
    let n = 1000
    let blocks = String(repeating: "{% if true %}", count: n) + "ok" + String(repeating: "{% endif %}", count: n)
    #expect(try ChatTemplate(source: blocks).render(context: [:]).text == "ok")
    // Deeply nested JSON is refused with a clear error.
    #expect(throws: JSONReadError.self) { try JinjaValue.parseJSON(String(repeating: "[", count: 100000)) }
}

@Test func errorsCarryLineAndColumn() throws {
    let s = try #require(renderError("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}"))
    #expect(s.kind == .syntax && s.line == 3, "\(s)")
    let u = try #require(renderError("a\nb\n   {{ missing.attr }}"))
    #expect(u.kind == .undefined && u.line == 3 && u.column == 7, "\(u)")
    #expect(u.message == "'missing' is undefined")
    let r = try #require(renderError("{% for m in messages %}\n{% if m.role == 'x' %}{{ raise_exception('Bad role ' + m.role) }}{% endif %}{% endfor %}",
                                     context: ["messages": .array([.message("x", "c")])]))
    #expect(r.kind == .raised && r.message == "Bad role x" && r.line == 2, "\(r)")
    #expect(r.description.contains("the chat template raised an error: Bad role x"))
    let t = try #require(renderError("{% frob %}"))
    #expect(t.kind == .syntax && t.message.contains("unknown tag 'frob'"))
    let n = try #require(renderError("{% include 'x.jinja' %}"))
    #expect(n.kind == .syntax && n.message.contains("not available"))
}

@Test func sandboxRefusesMutationAndPrivateNames() throws {
    let a = try #require(renderError("{% set l = [] %}{{ l.append(1) }}"))
    #expect(a.kind == .security)
    let u = try #require(renderError("{% set ns = namespace(_secret=1) %}"))
    #expect(u.kind == .security)
}

@Test func integersBeyond64BitsAreAClearError() throws {
    let e = try #require(renderError("{{ 123456789012345678901234567890 }}"))
    #expect(e.kind == .syntax && e.message.contains("too large"))
    let p = try #require(renderError("{{ 10 ** 40 }}"))
    #expect(p.kind == .limit)
}

/// Mutated real templates (bytes dropped, duplicated, swapped) must parse or fail with TemplateError, never crash.
@Test func mutatedTemplatesNeverCrash() throws {
    var rng = SplitMix(seed: 42)
    let sources = NamedTemplate.all.map(\.source)
    let messages: [JinjaValue] = [.message("system", "s"), .message("user", "u"), .message("assistant", "a")]
    var parsed = 0, rendered = 0, total = 0
    for _ in 0..<1500 {
        var bytes = Array(sources[Int(rng.next() % UInt64(sources.count))].utf8)
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            guard !bytes.isEmpty else { break }
            let i = Int(rng.next() % UInt64(bytes.count))
            switch rng.next() % 4 {
            case 0: bytes.remove(at: i)
            case 1: bytes.insert(bytes[Int(rng.next() % UInt64(bytes.count))], at: i)
            case 2:
                let pool = Array("{}%#-+()[]'\".|~ \n".utf8)
                bytes[i] = pool[Int(rng.next() % UInt64(pool.count))]
            default: bytes.swapAt(i, Int(rng.next() % UInt64(bytes.count)))
            }
        }
        total += 1
        let text = String(decoding: bytes, as: UTF8.self)
        guard let t = try? ChatTemplate(source: text, limits: TemplateLimits(maxIterations: 10_000, maxOutputBytes: 1 << 16)) else { continue }
        parsed += 1
        if (try? t.render(messages: messages, addGenerationPrompt: true, specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])) != nil { rendered += 1 }
    }
    print("mutated templates: \(total) tried, \(parsed) parsed, \(rendered) rendered, none crashed")
    #expect(total == 1500)
}

/// A small deterministic random generator for the mutation test.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
