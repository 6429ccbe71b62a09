import Foundation

/// Bounds that keep an untrusted template from running forever or filling memory.
public struct TemplateLimits: Sendable {
    /// Loop iterations over the whole render (all loops together).
    public var maxIterations: Int
    /// Nesting of macro calls (recursion depth).
    public var maxCallDepth: Int
    /// Bytes (UTF-8) of output, and of any single string the template builds.
    public var maxOutputBytes: Int

    public init(maxIterations: Int = 1_000_000, maxCallDepth: Int = 128, maxOutputBytes: Int = 64 << 20) {
        self.maxIterations = maxIterations
        self.maxCallDepth = maxCallDepth
        self.maxOutputBytes = maxOutputBytes
    }
}

/// A variable scope: template level, loop iteration, macro call.
final class Scope {
    var vars: [String: JinjaValue] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> JinjaValue? {
        var s: Scope? = self
        while let c = s {
            if let v = c.vars[name] { return v }
            s = c.parent
        }
        return nil
    }
}

/// Text being rendered, with its size in bytes and code points (Python string indices).
struct OutputBuffer {
    var text = ""
    var scalars = 0
    var bytes = 0
}

/// Control flow out of a statement list.
enum Flow { case normal, breakLoop, continueLoop }

/// Walks the parsed template and renders it with Python/Jinja2 semantics.
final class Interpreter {
    let name: String
    let limits: TemplateLimits
    let now: Date
    let timeZone: TimeZone
    private var iterations = 0
    private var callDepth = 0
    private var buffers: [OutputBuffer] = [OutputBuffer()]
    /// Generation spans as code point offsets into the root output (HF's convention).
    private(set) var spans: [(Int, Int)] = []

    init(name: String, limits: TemplateLimits, now: Date, timeZone: TimeZone) {
        self.name = name
        self.limits = limits
        self.now = now
        self.timeZone = timeZone
    }

    var output: String { buffers[0].text }

    func error(_ failure: TemplateFailure, _ pos: SourcePos) -> TemplateError {
        TemplateError(kind: failure.kind, message: failure.message, template: name, line: pos.line, column: pos.column)
    }

    // MARK: Output

    private func write(_ s: String) throws {
        guard !s.isEmpty else { return }
        let n = s.utf8.count
        var b = buffers[buffers.count - 1]
        buffers[buffers.count - 1] = OutputBuffer()  // keep the string uniquely referenced
        if b.bytes + n > limits.maxOutputBytes {
            buffers[buffers.count - 1] = b
            throw TemplateFailure.limit("output is larger than \(limits.maxOutputBytes) bytes")
        }
        b.text += s
        b.bytes += n
        b.scalars += s.unicodeScalars.count
        buffers[buffers.count - 1] = b
    }

    /// Renders `body` into a fresh buffer and returns it.
    func capture(_ body: [Stmt], _ scope: Scope) throws -> OutputBuffer {
        buffers.append(OutputBuffer())
        defer { buffers.removeLast() }
        _ = try exec(body, scope)
        return buffers[buffers.count - 1]
    }

    /// Counts a loop iteration against the budget.
    private func tick() throws {
        iterations += 1
        if iterations > limits.maxIterations {
            throw TemplateFailure.limit("more than \(limits.maxIterations) loop iterations")
        }
    }

    // MARK: Statements

    func exec(_ stmts: [Stmt], _ scope: Scope) throws -> Flow {
        for s in stmts {
            let f = try execOne(s, scope)
            if f != .normal { return f }
        }
        return .normal
    }

    private func execOne(_ s: Stmt, _ scope: Scope) throws -> Flow {
        do {
            switch s.kind {
            case .text(let t):
                try write(t)
            case .output(let e):
                let v = try eval(e, scope)
                try write(try strValue(v, e.pos))
            case .ifChain(let branches, let elseBody):
                for (cond, body) in branches where try eval(cond, scope).truthy {
                    return try exec(body, scope)
                }
                if let elseBody { return try exec(elseBody, scope) }
            case .forLoop(let target, let iterable, let condition, let body, let elseBody, let recursive):
                if recursive { throw TemplateError(kind: .syntax, message: "recursive for loops are not supported", template: name, line: s.pos.line, column: s.pos.column) }
                try execFor(target: target, iterable: iterable, condition: condition, body: body, elseBody: elseBody, scope: scope, pos: s.pos)
            case .set(let target, let e):
                try assign(target, try eval(e, scope), scope, s.pos)
            case .setBlock(let target, let filters, let body):
                let buf = try capture(body, Scope(parent: scope))
                var v = JinjaValue.string(buf.text)
                for (n, args) in filters { v = try applyFilter(n, v, args, scope, s.pos) }
                try assign(target, v, scope, s.pos)
            case .macro(let n, let params, let body):
                scope.vars[n] = .callable(makeMacro(name: n, params: params, body: body, defScope: scope, pos: s.pos))
            case .callBlock(let call, let params, let body):
                guard case .call(let callee, let args) = call.kind else { break }
                let caller = makeMacro(name: "caller", params: params, body: body, defScope: scope, pos: s.pos)
                let f = try eval(callee, scope)
                var (pos, kw) = try evalArgs(args, scope)
                kw.append(("caller", .callable(caller)))
                let v = try callValue(f, pos, kw, s.pos)
                try write(try strValue(v, s.pos))
            case .filterBlock(let filters, let body):
                let buf = try capture(body, scope)
                var v = JinjaValue.string(buf.text)
                for (n, args, p) in filters { v = try applyFilter(n, v, args, scope, p) }
                try write(try strValue(v, s.pos))
            case .with(let assignments, let body):
                let inner = Scope(parent: scope)
                for (t, e) in assignments { try assign(t, try eval(e, scope), inner, s.pos) }
                return try exec(body, inner)
            case .generation(let body):
                let start = buffers[0].scalars
                let buf = try capture(body, scope)
                spans.append((start, start + buf.scalars))
                try write(buf.text)
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
        } catch let f as TemplateFailure {
            throw error(f, s.pos)
        }
        return .normal
    }

    private func execFor(target: AssignTarget, iterable: Expr, condition: Expr?, body: [Stmt], elseBody: [Stmt]?, scope: Scope, pos: SourcePos) throws {
        let seq = try eval(iterable, scope)
        var items = try iterate(seq)
        if let condition {
            var kept: [JinjaValue] = []
            for item in items {
                try tick()
                let s = Scope(parent: scope)
                try assign(target, item, s, pos)
                if try eval(condition, s).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            if let elseBody { _ = try exec(elseBody, scope) }
            return
        }
        let n = items.count
        let state = LoopState()
        let cycle = JinjaValue.callable(JinjaCallable(name: "cycle") { _, args, _ in
            guard !args.isEmpty else { throw TemplateFailure.type("no items for cycling given") }
            return args[state.index % args.count]
        })
        let changed = JinjaValue.callable(JinjaCallable(name: "changed") { _, args, _ in
            let v = JinjaValue.array(args)
            if let last = state.last, pyEquals(last, v) { return .bool(false) }
            state.last = v
            return .bool(true)
        })
        for (i, item) in items.enumerated() {
            try tick()
            state.index = i
            let s = Scope(parent: scope)
            try assign(target, item, s, pos)
            var loop = JinjaDict()
            loop["index"] = .int(i + 1)
            loop["index0"] = .int(i)
            loop["revindex"] = .int(n - i)
            loop["revindex0"] = .int(n - i - 1)
            loop["first"] = .bool(i == 0)
            loop["last"] = .bool(i == n - 1)
            loop["length"] = .int(n)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            loop["previtem"] = i > 0 ? items[i - 1] : .undefined("there is no previous item")
            loop["nextitem"] = i < n - 1 ? items[i + 1] : .undefined("there is no next item")
            loop["cycle"] = cycle
            loop["changed"] = changed
            s.vars["loop"] = .dict(loop)
            let flow = try exec(body, s)
            if flow == .breakLoop { break }
        }
    }

    /// State shared by a loop's `cycle` and `changed` helpers.
    private final class LoopState {
        var index = 0
        var last: JinjaValue?
    }

    /// The items a `for` loop visits: list items, dict keys, string characters.
    func iterate(_ v: JinjaValue) throws -> [JinjaValue] {
        switch v {
        case .array(let a), .tuple(let a): return a
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        case .namespace(let ns): return ns.attributes.keys.map { .string($0) }
        default: throw TemplateFailure.type("'\(v.typeName)' object is not iterable")
        }
    }

    func assign(_ target: AssignTarget, _ v: JinjaValue, _ scope: Scope, _ pos: SourcePos) throws {
        switch target {
        case .name(let n):
            scope.vars[n] = v
        case .tuple(let names):
            let items = try iterate(v)
            guard items.count == names.count else {
                throw TemplateFailure.type(items.count > names.count ? "too many values to unpack (expected \(names.count))" : "not enough values to unpack (expected \(names.count), got \(items.count))")
            }
            for (n, x) in zip(names, items) { scope.vars[n] = x }
        case .attribute(let n, let attr):
            guard case .namespace(let ns) = scope.lookup(n) ?? .undefined("'\(n)' is undefined") else {
                throw TemplateFailure.type("cannot assign attribute on non-namespace object")
            }
            if attr.hasPrefix("_") {
                throw TemplateFailure.security("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(attr)'. Please rename the attribute.")
            }
            ns.attributes[attr] = v
        }
    }

    private func makeMacro(name: String, params: [(String, Expr?)], body: [Stmt], defScope: Scope, pos: SourcePos) -> JinjaCallable {
        JinjaCallable(name: name) { [unowned self] _, args, kwargs in
            self.callDepth += 1
            defer { self.callDepth -= 1 }
            if self.callDepth > self.limits.maxCallDepth {
                throw TemplateFailure.limit("macro calls nested deeper than \(self.limits.maxCallDepth) (endless recursion?) in '\(name)'")
            }
            let s = Scope(parent: defScope)
            var kw = kwargs
            for (i, (p, def)) in params.enumerated() {
                if i < args.count {
                    s.vars[p] = args[i]
                } else if let k = kw.firstIndex(where: { $0.0 == p }) {
                    s.vars[p] = kw[k].1
                    kw.remove(at: k)
                } else if let def {
                    s.vars[p] = try self.eval(def, s)
                } else {
                    s.vars[p] = .undefined("'\(p)' is undefined (missing argument of macro '\(name)')")
                }
            }
            s.vars["varargs"] = .tuple(args.count > params.count ? Array(args[params.count...]) : [])
            if let c = kw.firstIndex(where: { $0.0 == "caller" }) {
                s.vars["caller"] = kw[c].1
                kw.remove(at: c)
            }
            s.vars["kwargs"] = .dict(JinjaDict(kw))
            let buf = try self.capture(body, s)
            return .string(buf.text)
        }
    }

    // MARK: Expressions

    func eval(_ e: Expr, _ scope: Scope) throws -> JinjaValue {
        do {
            return try evalKind(e, scope)
        } catch let f as TemplateFailure {
            throw error(f, e.pos)
        }
    }

    private func evalKind(_ e: Expr, _ scope: Scope) throws -> JinjaValue {
        switch e.kind {
        case .literal(let v):
            return v
        case .name(let n):
            return scope.lookup(n) ?? .undefined("'\(n)' is undefined")
        case .list(let items):
            return .array(try items.map { try eval($0, scope) })
        case .tuple(let items):
            return .tuple(try items.map { try eval($0, scope) })
        case .dict(let pairs):
            var d = JinjaDict()
            for (k, v) in pairs {
                let key = try eval(k, scope)
                guard case .string(let ks) = key else {
                    throw TemplateFailure.type("dictionary keys must be strings in chat templates, got \(key.typeName)")
                }
                d[ks] = try eval(v, scope)
            }
            return .dict(d)
        case .getattr(let target, let attr):
            return try getAttribute(try eval(target, scope), attr)
        case .getitem(let target, let index):
            return try getItem(try eval(target, scope), try eval(index, scope))
        case .slice(let target, let a, let b, let c):
            let t = try eval(target, scope)
            return try slice(t, try a.map { try eval($0, scope) }, try b.map { try eval($0, scope) }, try c.map { try eval($0, scope) })
        case .call(let callee, let args):
            if case .getattr(let objExpr, let method) = callee.kind {
                let obj = try eval(objExpr, scope)
                let (p, kw) = try evalArgs(args, scope)
                if let r = try callMethod(obj, method, p, kw) { return r }
                return try callValue(try getAttribute(obj, method), p, kw, e.pos)
            }
            let f = try eval(callee, scope)
            let (p, kw) = try evalArgs(args, scope)
            return try callValue(f, p, kw, e.pos)
        case .filter(let target, let n, let args):
            if n == "default" || n == "d" {
                // `default` must see undefined values without failing.
                let v = try eval(target, scope)
                return try applyFilter(n, v, args, scope, e.pos)
            }
            return try applyFilter(n, try eval(target, scope), args, scope, e.pos)
        case .test(let target, let n, let args, let negated):
            let v = try eval(target, scope)
            let (p, kw) = try evalArgs(args, scope)
            let r = try runTest(n, v, p, kw)
            return .bool(negated ? !r : r)
        case .neg(let x):
            switch try eval(x, scope) {
            case .int(let i): return .int(-i)
            case .double(let d): return .double(-d)
            case .bool(let b): return .int(b ? -1 : 0)
            case .undefined(let m): throw TemplateFailure.undefined(m)
            case let v: throw TemplateFailure.type("bad operand type for unary -: '\(v.typeName)'")
            }
        case .pos(let x):
            let v = try eval(x, scope)
            switch v {
            case .int, .double: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .undefined(let m): throw TemplateFailure.undefined(m)
            default: throw TemplateFailure.type("bad operand type for unary +: '\(v.typeName)'")
            }
        case .not(let x):
            return .bool(!(try eval(x, scope).truthy))
        case .and(let a, let b):
            let l = try eval(a, scope)
            return l.truthy ? try eval(b, scope) : l
        case .or(let a, let b):
            let l = try eval(a, scope)
            return l.truthy ? l : try eval(b, scope)
        case .binary(let op, let a, let b):
            return try binary(op, try eval(a, scope), try eval(b, scope))
        case .concat(let items):
            var s = ""
            for x in items {
                s += try strValue(try eval(x, scope), x.pos)
                if s.utf8.count > limits.maxOutputBytes { throw TemplateFailure.limit("string longer than \(limits.maxOutputBytes) bytes") }
            }
            return .string(s)
        case .compare(let first, let rest):
            var l = try eval(first, scope)
            for (op, rx) in rest {
                let r = try eval(rx, scope)
                if !(try compare(op, l, r)) { return .bool(false) }
                l = r
            }
            return .bool(true)
        case .cond(let cond, let then, let other):
            if try eval(cond, scope).truthy { return try eval(then, scope) }
            if let other { return try eval(other, scope) }
            return .undefined("the inline if expression had no else branch")
        }
    }

    func evalArgs(_ args: CallArgs, _ scope: Scope) throws -> ([JinjaValue], [(String, JinjaValue)]) {
        var p = try args.positional.map { try eval($0, scope) }
        var kw = try args.keyword.map { ($0.0, try eval($0.1, scope)) }
        if let star = args.star { p += try iterate(try eval(star, scope)) }
        if let ds = args.doubleStar {
            guard case .dict(let d) = try eval(ds, scope) else { throw TemplateFailure.type("argument after ** must be a mapping") }
            kw += d.pairs
        }
        return (p, kw)
    }

    func callValue(_ f: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], _ pos: SourcePos) throws -> JinjaValue {
        switch f {
        case .callable(let c): return try c.body(self, args, kwargs)
        case .undefined(let m): throw TemplateFailure.undefined(m)
        default: throw TemplateFailure.type("'\(f.typeName)' object is not callable")
        }
    }

    /// `str()` of a value for output; undefined prints nothing.
    func strValue(_ v: JinjaValue, _ pos: SourcePos) throws -> String {
        v.pythonStr
    }

    // MARK: Attribute and item access

    /// `obj.attr`: Python attribute first (methods), then item, else undefined.
    func getAttribute(_ obj: JinjaValue, _ attr: String) throws -> JinjaValue {
        switch obj {
        case .undefined(let m):
            throw TemplateFailure.undefined(m)
        case .dict(let d):
            if Builtins.dictMethods.contains(attr) { return boundMethod(obj, attr) }
            if let v = d[attr] { return v }
            return .undefined("'dict object' has no attribute '\(attr)'")
        case .namespace(let ns):
            if let v = ns.attributes[attr] { return v }
            return .undefined("'Namespace object' has no attribute '\(attr)'")
        case .string:
            if Builtins.stringMethods.contains(attr) { return boundMethod(obj, attr) }
            return .undefined("'str object' has no attribute '\(attr)'")
        case .array, .tuple:
            if Builtins.listMethods.contains(attr) { return boundMethod(obj, attr) }
            return .undefined("'list object' has no attribute '\(attr)'")
        case .none:
            return .undefined("'None' has no attribute '\(attr)'")
        default:
            return .undefined("'\(obj.typeName) object' has no attribute '\(attr)'")
        }
    }

    private func boundMethod(_ obj: JinjaValue, _ name: String) -> JinjaValue {
        .callable(JinjaCallable(name: name) { interp, args, kwargs in
            guard let r = try interp.callMethod(obj, name, args, kwargs) else {
                throw TemplateFailure.type("'\(obj.typeName)' object has no method '\(name)'")
            }
            return r
        })
    }

    /// `obj[key]`: item first, then attribute for string keys, else undefined.
    func getItem(_ obj: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        switch (obj, key) {
        case (.undefined(let m), _):
            throw TemplateFailure.undefined(m)
        case (.array(let a), _), (.tuple(let a), _):
            if let i = intIndex(key) {
                let j = i < 0 ? a.count + i : i
                if j >= 0 && j < a.count { return a[j] }
                return .undefined("list object has no element \(i)")
            }
        case (.string(let s), _):
            if let i = intIndex(key) {
                let scalars = Array(s.unicodeScalars)
                let j = i < 0 ? scalars.count + i : i
                if j >= 0 && j < scalars.count { return .string(String(scalars[j])) }
                return .undefined("str object has no element \(i)")
            }
        case (.dict(let d), .string(let k)):
            if let v = d[k] { return v }
        case (.namespace(let ns), .string(let k)):
            if let v = ns.attributes[k] { return v }
        default:
            break
        }
        if case .string(let k) = key { return try getAttribute(obj, k) }
        return .undefined("'\(obj.typeName) object' has no attribute \(key.pythonRepr)")
    }

    private func intIndex(_ v: JinjaValue) -> Int? {
        switch v {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Python slicing `x[a:b:c]` of lists and strings.
    func slice(_ t: JinjaValue, _ a: JinjaValue?, _ b: JinjaValue?, _ c: JinjaValue?) throws -> JinjaValue {
        func idx(_ v: JinjaValue?) throws -> Int? {
            guard let v, !v.isNone else { return nil }
            if let i = intIndex(v) { return i }
            throw TemplateFailure.type("slice indices must be integers or None")
        }
        let step = try idx(c) ?? 1
        guard step != 0 else { throw TemplateFailure.type("slice step cannot be zero") }
        func indices(_ n: Int) throws -> [Int] {
            var start = try idx(a), stop = try idx(b)
            if step > 0 {
                var s = start ?? 0, e = stop ?? n
                if s < 0 { s = max(0, s + n) } else { s = min(s, n) }
                if e < 0 { e = max(0, e + n) } else { e = min(e, n) }
                return s < e ? Array(stride(from: s, to: e, by: step)) : []
            } else {
                if let s0 = start { start = s0 < 0 ? max(-1, s0 + n) : min(s0, n - 1) }
                if let e0 = stop { stop = e0 < 0 ? max(-1, e0 + n) : min(e0, n - 1) }
                let s = start ?? n - 1, e = stop ?? -1
                return s > e ? Array(stride(from: s, to: e, by: step)) : []
            }
        }
        switch t {
        case .array(let arr): return .array(try indices(arr.count).map { arr[$0] })
        case .tuple(let arr): return .tuple(try indices(arr.count).map { arr[$0] })
        case .string(let s):
            let sc = Array(s.unicodeScalars)
            var v = String.UnicodeScalarView()
            for i in try indices(sc.count) { v.append(sc[i]) }
            return .string(String(v))
        case .undefined(let m): throw TemplateFailure.undefined(m)
        default: throw TemplateFailure.type("'\(t.typeName)' object is not subscriptable")
        }
    }

    // MARK: Operators

    func binary(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue {
        if case .undefined(let m) = l { throw TemplateFailure.undefined(m) }
        if case .undefined(let m) = r { throw TemplateFailure.undefined(m) }
        let unsupported = TemplateFailure.type("unsupported operand type(s) for \(op): '\(l.typeName)' and '\(r.typeName)'")
        switch op {
        case "+":
            switch (l, r) {
            case (.string(let a), .string(let b)):
                if a.utf8.count + b.utf8.count > limits.maxOutputBytes { throw TemplateFailure.limit("string longer than \(limits.maxOutputBytes) bytes") }
                return .string(a + b)
            case (.array(let a), .array(let b)): return .array(a + b)
            case (.tuple(let a), .tuple(let b)): return .tuple(a + b)
            default: return try arith(op, l, r) ?? { throw unsupported }()
            }
        case "*":
            switch (l, r) {
            case (.string(let s), _) where intIndex(r) != nil: return try repeatString(s, intIndex(r)!)
            case (_, .string(let s)) where intIndex(l) != nil: return try repeatString(s, intIndex(l)!)
            case (.array(let a), _) where intIndex(r) != nil: return try repeatArray(a, intIndex(r)!)
            case (_, .array(let a)) where intIndex(l) != nil: return try repeatArray(a, intIndex(l)!)
            default: return try arith(op, l, r) ?? { throw unsupported }()
            }
        case "%":
            if case .string(let fmt) = l { return .string(try Builtins.percentFormat(fmt, r)) }
            return try arith(op, l, r) ?? { throw unsupported }()
        default:
            return try arith(op, l, r) ?? { throw unsupported }()
        }
    }

    private func repeatString(_ s: String, _ n: Int) throws -> JinjaValue {
        if n <= 0 { return .string("") }
        if s.utf8.count.multipliedReportingOverflow(by: n).overflow || s.utf8.count * n > limits.maxOutputBytes {
            throw TemplateFailure.limit("string longer than \(limits.maxOutputBytes) bytes")
        }
        return .string(String(repeating: s, count: n))
    }

    private func repeatArray(_ a: [JinjaValue], _ n: Int) throws -> JinjaValue {
        if n <= 0 { return .array([]) }
        if a.count.multipliedReportingOverflow(by: n).overflow || a.count * n > limits.maxIterations {
            throw TemplateFailure.limit("list longer than \(limits.maxIterations) items")
        }
        var out: [JinjaValue] = []
        for _ in 0..<n { out += a }
        return .array(out)
    }

    /// Numeric operators with Python's int/float rules; nil when the operands are not numbers.
    private func arith(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue? {
        func num(_ v: JinjaValue) -> (Int?, Double)? {
            switch v {
            case .int(let i): return (i, Double(i))
            case .bool(let b): return (b ? 1 : 0, b ? 1 : 0)
            case .double(let d): return (nil, d)
            default: return nil
            }
        }
        guard let (li, ld) = num(l), let (ri, rd) = num(r) else { return nil }
        if let a = li, let b = ri {
            switch op {
            case "+": let (v, o) = a.addingReportingOverflow(b); if !o { return .int(v) }; return .double(ld + rd)
            case "-": let (v, o) = a.subtractingReportingOverflow(b); if !o { return .int(v) }; return .double(ld - rd)
            case "*": let (v, o) = a.multipliedReportingOverflow(by: b); if !o { return .int(v) }; return .double(ld * rd)
            case "/":
                guard b != 0 else { throw TemplateFailure.type("division by zero") }
                return .double(ld / rd)
            case "//":
                guard b != 0 else { throw TemplateFailure.type("integer division or modulo by zero") }
                var q = a / b
                if (a % b != 0) && ((a < 0) != (b < 0)) { q -= 1 }
                return .int(q)
            case "%":
                guard b != 0 else { throw TemplateFailure.type("integer division or modulo by zero") }
                var m = a % b
                if m != 0 && ((m < 0) != (b < 0)) { m += b }
                return .int(m)
            case "**":
                if b < 0 { return .double(pow(ld, rd)) }
                var result = 1, base = a, e = b
                while e > 0 {
                    if e & 1 == 1 {
                        let (v, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw TemplateFailure.limit("integer too large in '**'") }
                        result = v
                    }
                    e >>= 1
                    if e > 0 {
                        let (v, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw TemplateFailure.limit("integer too large in '**'") }
                        base = v
                    }
                }
                return .int(result)
            default: return nil
            }
        }
        switch op {
        case "+": return .double(ld + rd)
        case "-": return .double(ld - rd)
        case "*": return .double(ld * rd)
        case "/":
            guard rd != 0 else { throw TemplateFailure.type("float division by zero") }
            return .double(ld / rd)
        case "//":
            guard rd != 0 else { throw TemplateFailure.type("float floor division by zero") }
            return .double((ld / rd).rounded(.down))
        case "%":
            guard rd != 0 else { throw TemplateFailure.type("float modulo") }
            var m = fmod(ld, rd)
            if m != 0 && ((m < 0) != (rd < 0)) { m += rd }
            return .double(m)
        case "**": return .double(pow(ld, rd))
        default: return nil
        }
    }

    func compare(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> Bool {
        switch op {
        case "==": return pyEquals(l, r)
        case "!=": return !pyEquals(l, r)
        case "in": return try contains(r, l)
        case "notin": return !(try contains(r, l))
        default:
            if case .undefined(let m) = l { throw TemplateFailure.undefined(m) }
            if case .undefined(let m) = r { throw TemplateFailure.undefined(m) }
            guard let c = pyCompare(l, r) else {
                throw TemplateFailure.type("'\(op)' not supported between instances of '\(l.typeName)' and '\(r.typeName)'")
            }
            switch op {
            case "<": return c < 0
            case ">": return c > 0
            case "<=": return c <= 0
            default: return c >= 0
            }
        }
    }

    func contains(_ container: JinjaValue, _ item: JinjaValue) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let sub) = item else {
                if case .undefined(let m) = item { throw TemplateFailure.undefined(m) }
                throw TemplateFailure.type("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return sub.isEmpty || s.contains(sub)
        case .array(let a), .tuple(let a): return a.contains { pyEquals($0, item) }
        case .dict(let d):
            if case .string(let k) = item { return d[k] != nil }
            return false
        case .namespace(let ns):
            if case .string(let k) = item { return ns.attributes[k] != nil }
            return false
        case .undefined: return false
        default: throw TemplateFailure.type("argument of type '\(container.typeName)' is not iterable")
        }
    }
}

/// Python `==`.
func pyEquals(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
    switch (a, b) {
    case (.undefined, .undefined), (.none, .none): return true
    case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
    case (.array(let x), .array(let y)), (.tuple(let x), .tuple(let y)): return x.count == y.count && zip(x, y).allSatisfy { pyEquals($0, $1) }
    case (.dict(let x), .dict(let y)):
        return x.count == y.count && x.pairs.allSatisfy { k, v in y[k].map { pyEquals(v, $0) } ?? false }
    case (.namespace(let x), .namespace(let y)): return x === y
    case (.callable(let x), .callable(let y)): return x === y
    default:
        if let x = numeric(a), let y = numeric(b) { return x == y }
        return false
    }
}

private func numeric(_ v: JinjaValue) -> Double? {
    switch v {
    case .int(let i): return Double(i)
    case .double(let d): return d
    case .bool(let b): return b ? 1 : 0
    default: return nil
    }
}

/// Python ordering: -1, 0, 1, or nil when the types cannot be ordered.
func pyCompare(_ a: JinjaValue, _ b: JinjaValue) -> Int? {
    switch (a, b) {
    case (.string(let x), .string(let y)):
        if x.unicodeScalars.elementsEqual(y.unicodeScalars) { return 0 }
        return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars) ? -1 : 1
    case (.array(let x), .array(let y)), (.tuple(let x), .tuple(let y)):
        for (p, q) in zip(x, y) where !pyEquals(p, q) { return pyCompare(p, q) }
        return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
    case (.int(let x), .int(let y)): return x == y ? 0 : (x < y ? -1 : 1)
    default:
        guard let x = numeric(a), let y = numeric(b) else { return nil }
        return x == y ? 0 : (x < y ? -1 : 1)
    }
}
