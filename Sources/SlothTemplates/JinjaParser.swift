/// An expression node with its source position.
struct Expr: Sendable {
    indirect enum Kind: Sendable {
        case literal(JinjaValue)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(Expr, Expr)])
        case getattr(Expr, String)
        case getitem(Expr, Expr)
        case slice(Expr, Expr?, Expr?, Expr?)
        case call(Expr, CallArgs)
        case filter(Expr, String, CallArgs)
        case test(Expr, String, CallArgs, negated: Bool)
        case neg(Expr)
        case pos(Expr)
        case not(Expr)
        case and(Expr, Expr)
        case or(Expr, Expr)
        case binary(String, Expr, Expr)
        case concat([Expr])
        case compare(Expr, [(String, Expr)])
        case cond(Expr, Expr, Expr?)
    }
    var kind: Kind
    var pos: SourcePos
}

/// Arguments of a call, filter or test.
struct CallArgs: Sendable {
    var positional: [Expr] = []
    var keyword: [(String, Expr)] = []
    var star: Expr? = nil
    var doubleStar: Expr? = nil
}

/// The target of `for` and `set`: a name, a tuple of names or `ns.attr`.
enum AssignTarget: Sendable {
    case name(String)
    case tuple([String])
    case attribute(String, String)
}

/// A statement node with its source position.
struct Stmt: Sendable {
    indirect enum Kind: Sendable {
        case text(String)
        case output(Expr)
        case ifChain([(Expr, [Stmt])], [Stmt]?)
        case forLoop(target: AssignTarget, iterable: Expr, condition: Expr?, body: [Stmt], elseBody: [Stmt]?, recursive: Bool)
        case set(AssignTarget, Expr)
        case setBlock(AssignTarget, filters: [(String, CallArgs)], body: [Stmt])
        case macro(name: String, params: [(String, Expr?)], body: [Stmt])
        case callBlock(call: Expr, params: [(String, Expr?)], body: [Stmt])
        case filterBlock(filters: [(String, CallArgs, SourcePos)], body: [Stmt])
        case with(assignments: [(AssignTarget, Expr)], body: [Stmt])
        case generation([Stmt])
        case breakLoop
        case continueLoop
    }
    var kind: Kind
    var pos: SourcePos
}

/// Parses tokens into statements, following Jinja2's grammar and operator precedence.
struct Parser {
    private var tokens: [Token]
    private var i = 0
    private let name: String
    private var depth = 0
    private static let maxDepth = 200

    init(tokens: [Token], name: String) {
        self.tokens = tokens
        self.name = name
    }

    private var current: Token { tokens[i] }

    private func fail(_ message: String, _ pos: SourcePos? = nil) -> TemplateError {
        let p = pos ?? current.pos
        return TemplateError(kind: .syntax, message: message, template: name, line: p.line, column: p.column)
    }

    private mutating func advance() -> Token {
        let t = tokens[i]
        if i < tokens.count - 1 { i += 1 }
        return t
    }

    private func isOp(_ s: String) -> Bool { current.kind == .op(s) }
    private func isName(_ s: String) -> Bool { current.kind == .name(s) }

    private mutating func expectOp(_ s: String) throws {
        guard isOp(s) else { throw fail("expected '\(s)', got \(describe(current))") }
        _ = advance()
    }

    private mutating func expectName() throws -> String {
        guard case .name(let n) = current.kind else { throw fail("expected a name, got \(describe(current))") }
        _ = advance()
        return n
    }

    private mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw fail("expected end of statement block '%}', got \(describe(current))") }
        _ = advance()
    }

    private func describe(_ t: Token) -> String {
        switch t.kind {
        case .data: return "template text"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .varBegin: return "'{{'"
        case .varEnd: return "'}}'"
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string '\(s)'"
        case .int(let v): return "integer \(v)"
        case .float(let v): return "number \(v)"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    /// Parses the whole template.
    mutating func parseTemplate() throws -> [Stmt] {
        let (body, end) = try parseBody(until: [])
        if let end { throw fail("unexpected '\(end)'") }
        return body
    }

    /// Parses statements until a block tag whose name is in `until` (left as the current token:
    /// the name after `{%`), or the end of the template (returns nil then).
    private mutating func parseBody(until: Set<String>) throws -> ([Stmt], String?) {
        var body: [Stmt] = []
        while true {
            let t = current
            switch t.kind {
            case .eof:
                if !until.isEmpty { throw fail("unexpected end of template; expected one of: \(until.sorted().map { "'\($0)'" }.joined(separator: ", "))") }
                return (body, nil)
            case .data(let s):
                _ = advance()
                body.append(Stmt(kind: .text(s), pos: t.pos))
            case .varBegin:
                _ = advance()
                let e = try parseTuple(allowEmpty: false)
                guard current.kind == .varEnd else { throw fail("expected '}}', got \(describe(current))") }
                _ = advance()
                body.append(Stmt(kind: .output(e), pos: t.pos))
            case .blockBegin:
                _ = advance()
                guard case .name(let kw) = current.kind else { throw fail("expected a statement name after '{%'") }
                if until.contains(kw) { return (body, kw) }
                body.append(try parseStatement(kw, t.pos))
            default:
                throw fail("unexpected \(describe(t))")
            }
        }
    }

    /// Parses a body ending in `{% end %}`; consumes the end tag.
    private mutating func parseBlock(_ end: String) throws -> [Stmt] {
        let (b, _) = try parseBody(until: [end])
        _ = advance()
        try expectBlockEnd()
        return b
    }

    private mutating func parseStatement(_ kw: String, _ pos: SourcePos) throws -> Stmt {
        _ = advance()
        switch kw {
        case "if":
            var branches: [(Expr, [Stmt])] = []
            var cond = try parseExpression()
            try expectBlockEnd()
            while true {
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                _ = advance()
                branches.append((cond, body))
                if end == "elif" {
                    cond = try parseExpression()
                    try expectBlockEnd()
                    continue
                }
                if end == "else" {
                    try expectBlockEnd()
                    let elseBody = try parseBlock("endif")
                    return Stmt(kind: .ifChain(branches, elseBody), pos: pos)
                }
                try expectBlockEnd()
                return Stmt(kind: .ifChain(branches, nil), pos: pos)
            }
        case "for":
            let target = try parseAssignTarget(allowAttribute: false)
            guard isName("in") else { throw fail("expected 'in' in a for loop") }
            _ = advance()
            let iterable = try parseTuple(allowEmpty: false, withCondexpr: false)
            var condition: Expr? = nil
            if isName("if") { _ = advance(); condition = try parseExpression() }
            var recursive = false
            if isName("recursive") { _ = advance(); recursive = true }
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["else", "endfor"])
            _ = advance()
            try expectBlockEnd()
            var elseBody: [Stmt]? = nil
            if end == "else" { elseBody = try parseBlock("endfor") }
            return Stmt(kind: .forLoop(target: target, iterable: iterable, condition: condition, body: body, elseBody: elseBody, recursive: recursive), pos: pos)
        case "set":
            let target = try parseAssignTarget(allowAttribute: true)
            if isOp("=") {
                _ = advance()
                let value = try parseTuple(allowEmpty: false)
                try expectBlockEnd()
                return Stmt(kind: .set(target, value), pos: pos)
            }
            var filters: [(String, CallArgs)] = []
            while isOp("|") {
                _ = advance()
                let (n, a) = try parseFilterCall()
                filters.append((n, a))
            }
            try expectBlockEnd()
            let body = try parseBlock("endset")
            return Stmt(kind: .setBlock(target, filters: filters, body: body), pos: pos)
        case "macro":
            let n = try expectName()
            let params = try parseSignature()
            try expectBlockEnd()
            let body = try parseBlock("endmacro")
            return Stmt(kind: .macro(name: n, params: params, body: body), pos: pos)
        case "call":
            var params: [(String, Expr?)] = []
            if isOp("(") { params = try parseSignature() }
            let call = try parseExpression()
            guard case .call = call.kind else { throw fail("expected a call after 'call'", call.pos) }
            try expectBlockEnd()
            let body = try parseBlock("endcall")
            return Stmt(kind: .callBlock(call: call, params: params, body: body), pos: pos)
        case "filter":
            var filters: [(String, CallArgs, SourcePos)] = []
            repeat {
                if isOp("|") { _ = advance() }
                let p = current.pos
                let (n, a) = try parseFilterCall()
                filters.append((n, a, p))
            } while isOp("|")
            try expectBlockEnd()
            let body = try parseBlock("endfilter")
            return Stmt(kind: .filterBlock(filters: filters, body: body), pos: pos)
        case "with":
            var assignments: [(AssignTarget, Expr)] = []
            while current.kind != .blockEnd {
                if !assignments.isEmpty { try expectOp(",") }
                let t = try parseAssignTarget(allowAttribute: false)
                try expectOp("=")
                assignments.append((t, try parseExpression()))
            }
            try expectBlockEnd()
            let body = try parseBlock("endwith")
            return Stmt(kind: .with(assignments: assignments, body: body), pos: pos)
        case "generation":
            try expectBlockEnd()
            let body = try parseBlock("endgeneration")
            return Stmt(kind: .generation(body), pos: pos)
        case "break":
            try expectBlockEnd()
            return Stmt(kind: .breakLoop, pos: pos)
        case "continue":
            try expectBlockEnd()
            return Stmt(kind: .continueLoop, pos: pos)
        case "extends", "include", "import", "from", "block":
            throw fail("'\(kw)' is not available in chat templates (no other templates can be loaded)", pos)
        default:
            throw fail("encountered unknown tag '\(kw)'", pos)
        }
    }

    private mutating func parseAssignTarget(allowAttribute: Bool) throws -> AssignTarget {
        var names: [String] = []
        let paren = isOp("(")
        if paren { _ = advance() }
        let first = try expectName()
        if allowAttribute, isOp(".") {
            _ = advance()
            let attr = try expectName()
            return .attribute(first, attr)
        }
        names.append(first)
        while isOp(",") {
            _ = advance()
            if case .name = current.kind { names.append(try expectName()) } else { break }
        }
        if paren { try expectOp(")") }
        return names.count == 1 && !paren ? .name(first) : .tuple(names)
    }

    /// Parses `(a, b=default, ...)`.
    private mutating func parseSignature() throws -> [(String, Expr?)] {
        try expectOp("(")
        var params: [(String, Expr?)] = []
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let n = try expectName()
            if isOp("=") {
                _ = advance()
                params.append((n, try parseExpression()))
            } else {
                params.append((n, nil))
            }
        }
        try expectOp(")")
        return params
    }

    // MARK: Expressions

    private mutating func enter() throws {
        depth += 1
        if depth > Parser.maxDepth { throw fail("expression nested deeper than \(Parser.maxDepth) levels") }
    }

    /// A tuple or a single expression (`a, b` without parentheses where Jinja allows it).
    private mutating func parseTuple(allowEmpty: Bool, withCondexpr: Bool = true) throws -> Expr {
        let pos = current.pos
        var items: [Expr] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard isOp(",") else { break }
                _ = advance()
                sawComma = true
            }
            if current.kind == .varEnd || current.kind == .blockEnd || isOp(")") || isName("in") || isName("if") || isName("recursive") {
                break
            }
            items.append(withCondexpr ? try parseExpression() : try parseOr())
        }
        if items.isEmpty {
            if allowEmpty { return Expr(kind: .tuple([]), pos: pos) }
            throw fail("expected an expression, got \(describe(current))")
        }
        if items.count == 1 && !sawComma { return items[0] }
        return Expr(kind: .tuple(items), pos: pos)
    }

    mutating func parseExpression() throws -> Expr {
        try enter()
        defer { depth -= 1 }
        let pos = current.pos
        var e = try parseOr()
        while isName("if") {
            _ = advance()
            let cond = try parseOr()
            var other: Expr? = nil
            if isName("else") {
                _ = advance()
                other = try parseExpression()
            }
            e = Expr(kind: .cond(cond, e, other), pos: pos)
        }
        return e
    }

    private mutating func parseOr() throws -> Expr {
        var e = try parseAnd()
        while isName("or") {
            let p = current.pos
            _ = advance()
            e = Expr(kind: .or(e, try parseAnd()), pos: p)
        }
        return e
    }

    private mutating func parseAnd() throws -> Expr {
        var e = try parseNot()
        while isName("and") {
            let p = current.pos
            _ = advance()
            e = Expr(kind: .and(e, try parseNot()), pos: p)
        }
        return e
    }

    private mutating func parseNot() throws -> Expr {
        if isName("not") {
            let p = current.pos
            _ = advance()
            try enter()
            defer { depth -= 1 }
            return Expr(kind: .not(try parseNot()), pos: p)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let pos = current.pos
        let e = try parseMath1()
        var ops: [(String, Expr)] = []
        while true {
            if case .op(let o) = current.kind, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                _ = advance()
                ops.append((o, try parseMath1()))
            } else if isName("in") {
                _ = advance()
                ops.append(("in", try parseMath1()))
            } else if isName("not"), i + 1 < tokens.count, tokens[i + 1].kind == .name("in") {
                _ = advance(); _ = advance()
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? e : Expr(kind: .compare(e, ops), pos: pos)
    }

    private mutating func parseMath1() throws -> Expr {
        var e = try parseConcat()
        while case .op(let o) = current.kind, o == "+" || o == "-" {
            let p = current.pos
            _ = advance()
            e = Expr(kind: .binary(o, e, try parseConcat()), pos: p)
        }
        return e
    }

    private mutating func parseConcat() throws -> Expr {
        let pos = current.pos
        var items = [try parseMath2()]
        while isOp("~") {
            _ = advance()
            items.append(try parseMath2())
        }
        return items.count == 1 ? items[0] : Expr(kind: .concat(items), pos: pos)
    }

    private mutating func parseMath2() throws -> Expr {
        var e = try parsePow()
        while case .op(let o) = current.kind, ["*", "/", "//", "%"].contains(o) {
            let p = current.pos
            _ = advance()
            e = Expr(kind: .binary(o, e, try parsePow()), pos: p)
        }
        return e
    }

    private mutating func parsePow() throws -> Expr {
        var e = try parseUnary(withFilter: true)
        while isOp("**") {
            let p = current.pos
            _ = advance()
            e = Expr(kind: .binary("**", e, try parseUnary(withFilter: true)), pos: p)
        }
        return e
    }

    private mutating func parseUnary(withFilter: Bool) throws -> Expr {
        try enter()
        defer { depth -= 1 }
        let pos = current.pos
        var e: Expr
        if isOp("-") {
            _ = advance()
            e = Expr(kind: .neg(try parseUnary(withFilter: false)), pos: pos)
        } else if isOp("+") {
            _ = advance()
            e = Expr(kind: .pos(try parseUnary(withFilter: false)), pos: pos)
        } else {
            e = try parsePrimary()
        }
        e = try parsePostfix(e)
        if withFilter { e = try parseFilterExpr(e) }
        return e
    }

    private mutating func parsePrimary() throws -> Expr {
        let t = current
        switch t.kind {
        case .name(let n):
            _ = advance()
            switch n {
            case "true", "True": return Expr(kind: .literal(.bool(true)), pos: t.pos)
            case "false", "False": return Expr(kind: .literal(.bool(false)), pos: t.pos)
            case "none", "None": return Expr(kind: .literal(.none), pos: t.pos)
            default: return Expr(kind: .name(n), pos: t.pos)
            }
        case .string(let s):
            _ = advance()
            var text = s
            while case .string(let more) = current.kind { text += more; _ = advance() }
            return Expr(kind: .literal(.string(text)), pos: t.pos)
        case .int(let v):
            _ = advance()
            return Expr(kind: .literal(.int(v)), pos: t.pos)
        case .float(let v):
            _ = advance()
            return Expr(kind: .literal(.double(v)), pos: t.pos)
        case .op("("):
            _ = advance()
            let e = try parseTuple(allowEmpty: true)
            try expectOp(")")
            return e
        case .op("["):
            _ = advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return Expr(kind: .list(items), pos: t.pos)
        case .op("{"):
            _ = advance()
            var items: [(Expr, Expr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let k = try parseExpression()
                try expectOp(":")
                items.append((k, try parseExpression()))
            }
            try expectOp("}")
            return Expr(kind: .dict(items), pos: t.pos)
        default:
            throw fail("unexpected \(describe(t))")
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var e = start
        while true {
            // Postfix nodes carry the position where the whole expression starts (`messages[0].content`).
            let p = start.pos
            if isOp(".") {
                _ = advance()
                switch current.kind {
                case .name(let n):
                    _ = advance()
                    e = Expr(kind: .getattr(e, n), pos: p)
                case .int(let v):
                    _ = advance()
                    e = Expr(kind: .getitem(e, Expr(kind: .literal(.int(v)), pos: p)), pos: p)
                default:
                    throw fail("expected an attribute name after '.'")
                }
            } else if isOp("[") {
                _ = advance()
                e = try parseSubscript(e, p)
            } else if isOp("(") {
                e = Expr(kind: .call(e, try parseCallArgs()), pos: p)
            } else {
                return e
            }
        }
    }

    private mutating func parseSubscript(_ target: Expr, _ pos: SourcePos) throws -> Expr {
        var parts: [Expr?] = []
        var current: Expr? = nil
        var sawColon = false
        while !isOp("]") {
            if isOp(":") {
                _ = advance()
                parts.append(current)
                current = nil
                sawColon = true
            } else {
                if current != nil { throw fail("expected ':' or ']' in a subscript") }
                current = try parseExpression()
            }
        }
        _ = advance()
        if !sawColon {
            guard let index = current else { throw fail("empty subscript", pos) }
            return Expr(kind: .getitem(target, index), pos: pos)
        }
        parts.append(current)
        guard parts.count <= 3 else { throw fail("too many ':' in a slice", pos) }
        while parts.count < 3 { parts.append(nil) }
        return Expr(kind: .slice(target, parts[0], parts[1], parts[2]), pos: pos)
    }

    private mutating func parseCallArgs() throws -> CallArgs {
        try expectOp("(")
        var args = CallArgs()
        var first = true
        while !isOp(")") {
            if !first { try expectOp(",") }
            first = false
            if isOp(")") { break }
            if isOp("*") {
                _ = advance()
                args.star = try parseExpression()
            } else if isOp("**") {
                _ = advance()
                args.doubleStar = try parseExpression()
            } else if case .name(let n) = current.kind, i + 1 < tokens.count, tokens[i + 1].kind == .op("=") {
                _ = advance(); _ = advance()
                args.keyword.append((n, try parseExpression()))
            } else {
                args.positional.append(try parseExpression())
            }
        }
        try expectOp(")")
        return args
    }

    private mutating func parseFilterCall() throws -> (String, CallArgs) {
        var n = try expectName()
        while isOp(".") { _ = advance(); n += "." + (try expectName()) }
        let args = isOp("(") ? try parseCallArgs() : CallArgs()
        return (n, args)
    }

    private mutating func parseFilterExpr(_ start: Expr) throws -> Expr {
        var e = start
        while true {
            let p = current.pos
            if isOp("|") {
                _ = advance()
                let (n, args) = try parseFilterCall()
                e = Expr(kind: .filter(e, n, args), pos: p)
            } else if isName("is") {
                _ = advance()
                var negated = false
                if isName("not") { _ = advance(); negated = true }
                var n = try expectName()
                while isOp(".") { _ = advance(); n += "." + (try expectName()) }
                var args = CallArgs()
                if isOp("(") {
                    args = try parseCallArgs()
                } else if startsTestArgument() {
                    let arg = try parsePrimary()
                    args.positional = [try parsePostfix(arg)]
                }
                e = Expr(kind: .test(e, n, args, negated: negated), pos: p)
            } else if isOp("(") {
                e = Expr(kind: .call(e, try parseCallArgs()), pos: p)
            } else {
                return e
            }
        }
    }

    /// Whether the token after a test name starts its single unparenthesized argument (`is divisibleby 3`).
    private func startsTestArgument() -> Bool {
        switch current.kind {
        case .string, .int, .float: return true
        case .op(let o): return o == "[" || o == "{"
        case .name(let n): return !["else", "or", "and", "is", "in", "if", "not", "recursive"].contains(n)
        default: return false
        }
    }
}
