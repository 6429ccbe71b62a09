import Foundation

/// Binds positional and keyword arguments to named parameters, Python style.
private func bind(_ fname: String, _ params: [String], _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> [JinjaValue?] {
    guard args.count <= params.count else {
        throw TemplateFailure.type("\(fname)() takes at most \(params.count) arguments (\(args.count) given)")
    }
    var out: [JinjaValue?] = Array(repeating: nil, count: params.count)
    for (i, a) in args.enumerated() { out[i] = a }
    for (k, v) in kwargs {
        guard let i = params.firstIndex(of: k) else { throw TemplateFailure.type("\(fname)() got an unexpected keyword argument '\(k)'") }
        out[i] = v
    }
    return out
}

private func str(_ v: JinjaValue) -> String { v.pythonStr }

private func requireString(_ v: JinjaValue, _ what: String) throws -> String {
    switch v {
    case .string(let s): return s
    case .undefined(let m): throw TemplateFailure.undefined(m)
    default: throw TemplateFailure.type("\(what) expects a string, got \(v.typeName)")
    }
}

private func toInt(_ v: JinjaValue?, _ what: String) throws -> Int? {
    guard let v, !v.isNone else { return nil }
    switch v {
    case .int(let i): return i
    case .bool(let b): return b ? 1 : 0
    default: throw TemplateFailure.type("\(what) expects an integer, got \(v.typeName)")
    }
}

/// Filters, tests, methods and globals available to chat templates.
enum Builtins {
    static let dictMethods: Set<String> = ["items", "keys", "values", "get", "update", "pop", "setdefault", "clear", "popitem", "copy"]
    static let stringMethods: Set<String> = [
        "upper", "lower", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith",
        "replace", "title", "capitalize", "format", "join", "find", "rfind", "index", "count", "isdigit", "isalpha",
        "isalnum", "isspace", "isupper", "islower", "zfill", "center", "ljust", "rjust", "removeprefix", "removesuffix",
        "swapcase", "casefold", "partition", "rpartition", "isnumeric", "isdecimal", "istitle", "expandtabs",
    ]
    static let listMethods: Set<String> = ["index", "count", "append", "extend", "pop", "insert", "remove", "sort", "reverse", "clear", "copy"]

    /// The global names every template sees (HF adds raise_exception, strftime_now, dict, namespace).
    static func globals(interp: Interpreter) -> [String: JinjaValue] {
        let now = interp.now, zone = interp.timeZone
        var g: [String: JinjaValue] = [:]
        g["range"] = .callable(JinjaCallable(name: "range") { _, args, _ in try range(args) })
        g["raise_exception"] = .callable(JinjaCallable(name: "raise_exception") { _, args, kw in
            let a = try bind("raise_exception", ["message"], args, kw)
            throw TemplateFailure.raised(a[0].map { str($0) } ?? "")
        })
        g["strftime_now"] = .callable(JinjaCallable(name: "strftime_now") { _, args, kw in
            let a = try bind("strftime_now", ["format"], args, kw)
            return .string(strftime(try requireString(a[0] ?? .undefined("format is missing"), "strftime_now"), now, zone))
        })
        g["namespace"] = .callable(JinjaCallable(name: "namespace") { _, args, kw in
            var d = JinjaDict()
            for a in args {
                guard case .dict(let x) = a else { throw TemplateFailure.type("namespace() takes a mapping or keyword arguments") }
                for (k, v) in x.pairs { d[k] = v }
            }
            for (k, v) in kw { d[k] = v }
            for k in d.keys where k.hasPrefix("_") {
                throw TemplateFailure.security("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(k)'. Please rename the attribute.")
            }
            return .namespace(JinjaNamespace(d))
        })
        g["dict"] = .callable(JinjaCallable(name: "dict") { _, args, kw in
            var d = JinjaDict()
            for a in args {
                guard case .dict(let x) = a else { throw TemplateFailure.type("dict() takes a mapping or keyword arguments") }
                for (k, v) in x.pairs { d[k] = v }
            }
            for (k, v) in kw { d[k] = v }
            return .dict(d)
        })
        return g
    }

    /// Jinja's sandboxed `range`: at most 100000 items (MAX_RANGE).
    static func range(_ args: [JinjaValue]) throws -> JinjaValue {
        let ints = try args.map { try toInt($0, "range") ?? 0 }
        var start = 0, stop = 0, step = 1
        switch ints.count {
        case 1: stop = ints[0]
        case 2: start = ints[0]; stop = ints[1]
        case 3: start = ints[0]; stop = ints[1]; step = ints[2]
        default: throw TemplateFailure.type("range expected 1 to 3 arguments, got \(ints.count)")
        }
        guard step != 0 else { throw TemplateFailure.type("range() arg 3 must not be zero") }
        let n: Int
        if step > 0 { n = stop > start ? (stop - start + step - 1) / step : 0 } else { n = start > stop ? (start - stop - step - 1) / (-step) : 0 }
        if n > 100_000 { throw TemplateFailure.limit("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
        return .array((0..<n).map { .int(start + $0 * step) })
    }

    // MARK: Filters

    static func filter(_ interp: Interpreter, _ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> JinjaValue {
        switch name {
        case "default", "d":
            let a = try bind(name, ["default_value", "boolean"], args, kw)
            let boolean = a[1]?.truthy ?? false
            if v.isUndefined || (boolean && !v.truthy) { return a[0] ?? .string("") }
            return v
        case "safe", "string":
            if name == "string" { return .string(str(v)) }
            return v
        case "trim":
            let a = try bind(name, ["chars"], args, kw)
            return .string(pyStrip(str(v), chars: a[0].flatMap { $0.isNone ? nil : str($0) }, left: true, right: true))
        case "upper": return .string(pyUpper(str(v)))
        case "lower": return .string(pyLower(str(v)))
        case "capitalize": return .string(pyCapitalize(str(v)))
        case "title": return .string(jinjaTitle(str(v)))
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .array(let a), .tuple(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            case .namespace(let ns): return .int(ns.attributes.count)
            default: throw TemplateFailure.type("object of type '\(v.typeName)' has no len()")
            }
        case "tojson":
            let a = try bind(name, ["ensure_ascii", "indent", "separators", "sort_keys"], args, kw)
            var indent: String? = nil
            if let i = a[1], !i.isNone {
                switch i {
                case .int(let n): indent = String(repeating: " ", count: max(0, n))
                case .string(let s): indent = s
                default: throw TemplateFailure.type("tojson indent must be an integer or a string")
                }
            }
            var seps: (String, String)? = nil
            if let s = a[2], !s.isNone {
                guard let pair = s.listItems, pair.count == 2, case .string(let x) = pair[0], case .string(let y) = pair[1] else {
                    throw TemplateFailure.type("tojson separators must be a pair of strings")
                }
                seps = (x, y)
            }
            let enc = PythonJSON(ensureASCII: a[0]?.truthy ?? false, indent: indent, separators: seps, sortKeys: a[3]?.truthy ?? false)
            return .string(try enc.dumps(v))
        case "join":
            let a = try bind(name, ["d", "attribute"], args, kw)
            var items = try interp.iterate(v)
            if let attr = a[1], !attr.isNone { items = try items.map { try attribute($0, attr, interp) } }
            let sep = a[0].map { str($0) } ?? ""
            let out = items.map { str($0) }.joined(separator: sep)
            if out.utf8.count > interp.limits.maxOutputBytes { throw TemplateFailure.limit("string longer than \(interp.limits.maxOutputBytes) bytes") }
            return .string(out)
        case "replace":
            let a = try bind(name, ["old", "new", "count"], args, kw)
            let count = try toInt(a[2], "replace")
            return .string(pyReplace(str(v), str(a[0] ?? .string("")), str(a[1] ?? .string("")), count ?? -1, interp.limits.maxOutputBytes))
        case "first":
            let items = try interp.iterate(v)
            return items.first ?? .undefined("No first item, sequence was empty.")
        case "last":
            let items = try interp.iterate(v)
            return items.last ?? .undefined("No last item, sequence was empty.")
        case "list":
            return .array(try interp.iterate(v))
        case "reverse":
            if case .string(let s) = v { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .array(try interp.iterate(v).reversed())
        case "items":
            switch v {
            case .dict(let d): return .array(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case .namespace(let ns): return .array(ns.attributes.pairs.map { .tuple([.string($0.0), $0.1]) })
            case .undefined: return .array([])
            default: throw TemplateFailure.type("can only get item pairs from a mapping.")
            }
        case "dictsort":
            let a = try bind(name, ["case_sensitive", "by", "reverse"], args, kw)
            guard case .dict(let d) = v else { throw TemplateFailure.type("dictsort expects a mapping") }
            let byValue = a[1].map { str($0) } == "value"
            let cs = a[0]?.truthy ?? false
            var pairs = d.pairs
            try stableSort(&pairs) { x, y in
                var l = byValue ? x.1 : .string(x.0), r = byValue ? y.1 : .string(y.0)
                if !cs { l = foldCase(l); r = foldCase(r) }
                guard let c = pyCompare(l, r) else { throw TemplateFailure.type("dictsort: values cannot be compared") }
                return c
            }
            if a[2]?.truthy ?? false { pairs.reverse() }
            return .array(pairs.map { .tuple([.string($0.0), $0.1]) })
        case "sort":
            let a = try bind(name, ["reverse", "case_sensitive", "attribute"], args, kw)
            var items = try interp.iterate(v)
            let cs = a[1]?.truthy ?? false
            let attr = a[2].flatMap { $0.isNone ? nil : $0 }
            try stableSort(&items) { x, y in
                var l = x, r = y
                if let attr { l = try attribute(x, attr, interp); r = try attribute(y, attr, interp) }
                if !cs { l = foldCase(l); r = foldCase(r) }
                guard let c = pyCompare(l, r) else { throw TemplateFailure.type("sort: values cannot be compared") }
                return c
            }
            if a[0]?.truthy ?? false { items.reverse() }
            return .array(items)
        case "unique":
            let a = try bind(name, ["case_sensitive", "attribute"], args, kw)
            let cs = a[0]?.truthy ?? false
            var seen: [JinjaValue] = []
            var out: [JinjaValue] = []
            for x in try interp.iterate(v) {
                var key = x
                if let attr = a[1], !attr.isNone { key = try attribute(x, attr, interp) }
                if !cs { key = foldCase(key) }
                if !seen.contains(where: { pyEquals($0, key) }) { seen.append(key); out.append(x) }
            }
            return .array(out)
        case "min", "max":
            let a = try bind(name, ["case_sensitive", "attribute"], args, kw)
            let items = try interp.iterate(v)
            guard var best = items.first else { return .undefined("No aggregated item, sequence was empty.") }
            let cs = a[0]?.truthy ?? false
            func key(_ x: JinjaValue) throws -> JinjaValue {
                var k = x
                if let attr = a[1], !attr.isNone { k = try attribute(x, attr, interp) }
                return cs ? k : foldCase(k)
            }
            for x in items.dropFirst() {
                guard let c = pyCompare(try key(x), try key(best)) else { throw TemplateFailure.type("\(name): values cannot be compared") }
                if (name == "min" && c < 0) || (name == "max" && c > 0) { best = x }
            }
            return best
        case "sum":
            let a = try bind(name, ["attribute", "start"], args, kw)
            var total = a[1] ?? .int(0)
            for x in try interp.iterate(v) {
                let item = try a[0].map { $0.isNone ? x : try attribute(x, $0, interp) } ?? x
                total = try interp.binary("+", total, item)
            }
            return total
        case "abs":
            switch v {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            case .bool(let b): return .int(b ? 1 : 0)
            default: throw TemplateFailure.type("bad operand type for abs(): '\(v.typeName)'")
            }
        case "int":
            let a = try bind(name, ["default", "base"], args, kw)
            let def = a[0] ?? .int(0)
            switch v {
            case .int: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d):
                guard d.isFinite, abs(d) < 9.2e18 else { return def }
                return .int(Int(d))
            case .string(let s):
                let t = pyStrip(s, chars: nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
                let base = try toInt(a[1], "int") ?? 10
                if let i = Int(t, radix: base) { return .int(i) }
                if let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return def
            default: return def
            }
        case "float":
            let a = try bind(name, ["default"], args, kw)
            let def = a[0] ?? .double(0)
            switch v {
            case .int(let i): return .double(Double(i))
            case .bool(let b): return .double(b ? 1 : 0)
            case .double: return v
            case .string(let s):
                let t = pyStrip(s, chars: nil, left: true, right: true).lowercased()
                if t == "nan" { return .double(.nan) }
                if t == "inf" || t == "infinity" { return .double(.infinity) }
                if t == "-inf" || t == "-infinity" { return .double(-.infinity) }
                if let d = Double(t.replacingOccurrences(of: "_", with: "")) { return .double(d) }
                return def
            default: return def
            }
        case "round":
            let a = try bind(name, ["precision", "method"], args, kw)
            let precision = try toInt(a[0], "round") ?? 0
            let method = a[1].map { str($0) } ?? "common"
            let x: Double
            switch v {
            case .int(let i): if method == "common" { return .int(i) }; x = Double(i)
            case .double(let d): x = d
            case .bool(let b): x = b ? 1 : 0
            default: throw TemplateFailure.type("round expects a number, got \(v.typeName)")
            }
            let m = pow(10.0, Double(precision))
            switch method {
            case "common": return .double((x * m).rounded(.toNearestOrEven) / m)
            case "ceil": return .double((x * m).rounded(.up) / m)
            case "floor": return .double((x * m).rounded(.down) / m)
            default: throw TemplateFailure.type("method must be common, ceil or floor")
            }
        case "indent":
            let a = try bind(name, ["width", "first", "blank"], args, kw)
            var ind = "    "
            if let w = a[0] {
                switch w {
                case .string(let s): ind = s
                default: ind = String(repeating: " ", count: max(0, try toInt(w, "indent") ?? 4))
                }
            }
            let s = str(v) + "\n"
            var rv: String
            let lines = pySplitlines(s)
            if a[2]?.truthy ?? false {
                rv = lines.joined(separator: "\n" + ind)
            } else {
                rv = lines.first ?? ""
                let rest = lines.dropFirst()
                if !rest.isEmpty { rv += "\n" + rest.map { $0.isEmpty ? $0 : ind + $0 }.joined(separator: "\n") }
            }
            if a[1]?.truthy ?? false { rv = ind + rv }
            return .string(rv)
        case "center":
            let a = try bind(name, ["width"], args, kw)
            return .string(pyCenter(str(v), try toInt(a[0], "center") ?? 80, " "))
        case "wordcount":
            return .int(pySplit(str(v), sep: nil, maxsplit: -1).count)
        case "format":
            if !kw.isEmpty && !args.isEmpty { throw TemplateFailure.type("can't handle positional and keyword arguments at the same time") }
            return .string(try percentFormat(str(v), kw.isEmpty ? .tuple(args) : .dict(JinjaDict(kw))))
        case "escape", "e", "forceescape":
            var out = ""
            for c in str(v).unicodeScalars {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(c)
                }
            }
            return .string(out)
        case "attr":
            let a = try bind(name, ["name"], args, kw)
            return try interp.getAttribute(v, str(a[0] ?? .string("")))
        case "map":
            let items = try interp.iterate(v)
            if let attrIndex = kw.firstIndex(where: { $0.0 == "attribute" }) {
                let attr = kw[attrIndex].1
                let def = kw.first(where: { $0.0 == "default" })?.1
                return .array(try items.map { x in
                    let r = try attribute(x, attr, interp)
                    if r.isUndefined, let def { return def }
                    return r
                })
            }
            guard let fname = args.first.flatMap({ $0.stringValue }) else { throw TemplateFailure.type("map requires a filter name or attribute=") }
            let rest = Array(args.dropFirst())
            return .array(try items.map { try filter(interp, fname, $0, rest, kw) })
        case "select", "reject":
            let items = try interp.iterate(v)
            let want = name == "select"
            return .array(try items.filter { x in
                let r: Bool
                if let tname = args.first.flatMap({ $0.stringValue }) {
                    r = try test(interp, tname, x, Array(args.dropFirst()), kw)
                } else {
                    r = x.truthy
                }
                return r == want
            })
        case "selectattr", "rejectattr":
            let items = try interp.iterate(v)
            guard let attr = args.first else { throw TemplateFailure.type("\(name) requires an attribute name") }
            let want = name == "selectattr"
            return .array(try items.filter { x in
                let av = try attribute(x, attr, interp)
                let r: Bool
                if args.count > 1, let tname = args[1].stringValue {
                    r = try test(interp, tname, av, Array(args.dropFirst(2)), kw)
                } else {
                    r = av.truthy
                }
                return r == want
            })
        case "batch":
            let a = try bind(name, ["linecount", "fill_with"], args, kw)
            let n = max(1, try toInt(a[0], "batch") ?? 1)
            var out: [JinjaValue] = [], cur: [JinjaValue] = []
            for x in try interp.iterate(v) {
                cur.append(x)
                if cur.count == n { out.append(.array(cur)); cur = [] }
            }
            if !cur.isEmpty {
                if let fill = a[1], !fill.isNone { while cur.count < n { cur.append(fill) } }
                out.append(.array(cur))
            }
            return .array(out)
        case "pprint":
            return .string(v.pythonRepr)
        case "truncate":
            let a = try bind(name, ["length", "killwords", "end", "leeway"], args, kw)
            let s = Array(str(v).unicodeScalars)
            let length = try toInt(a[0], "truncate") ?? 255
            let end = a[2].map { str($0) } ?? "..."
            let leeway = try toInt(a[3], "truncate") ?? 5
            if s.count <= length + leeway { return .string(str(v)) }
            let cut = max(0, length - end.unicodeScalars.count)
            var head = String(String.UnicodeScalarView(s[..<cut]))
            if !(a[1]?.truthy ?? false), let sp = head.lastIndex(of: " ") { head = String(head[..<sp]) }
            return .string(head + end)
        default:
            throw TemplateFailure.type("no filter named '\(name)'")
        }
    }

    /// `attribute` argument of map/selectattr/sort: item lookup, with dots for nesting.
    static func attribute(_ x: JinjaValue, _ attr: JinjaValue, _ interp: Interpreter) throws -> JinjaValue {
        if case .int = attr { return try interp.getItem(x, attr) }
        var cur = x
        for part in str(attr).split(separator: ".", omittingEmptySubsequences: false) {
            let key: JinjaValue = Int(part).map { .int($0) } ?? .string(String(part))
            if cur.isUndefined { return cur }
            cur = try interp.getItem(cur, key)
        }
        return cur
    }

    private static func foldCase(_ v: JinjaValue) -> JinjaValue {
        if case .string(let s) = v { return .string(pyLower(s)) }
        return v
    }

    /// A stable merge sort with a throwing three-way comparison.
    private static func stableSort<T>(_ a: inout [T], _ cmp: (T, T) throws -> Int) throws {
        if a.count < 2 { return }
        let mid = a.count / 2
        var l = Array(a[..<mid]), r = Array(a[mid...])
        try stableSort(&l, cmp)
        try stableSort(&r, cmp)
        var i = 0, j = 0, k = 0
        while i < l.count && j < r.count {
            if try cmp(r[j], l[i]) < 0 { a[k] = r[j]; j += 1 } else { a[k] = l[i]; i += 1 }
            k += 1
        }
        while i < l.count { a[k] = l[i]; i += 1; k += 1 }
        while j < r.count { a[k] = r[j]; j += 1; k += 1 }
    }

    // MARK: Tests

    static func test(_ interp: Interpreter, _ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> Bool {
        let other = args.first ?? kw.first?.1
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNone
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "number":
            switch v { case .int, .double, .bool: return true; default: return false }
        case "string": if case .string = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "iterable", "sequence":
            switch v { case .string, .array, .tuple, .dict, .undefined: return true; default: return false }
        case "callable": if case .callable = v { return true }; return false
        case "odd", "even":
            guard let i = try toInt(v, name) else { throw TemplateFailure.type("\(name) expects an integer") }
            let odd = i % 2 != 0
            return name == "odd" ? odd : !odd
        case "divisibleby":
            guard let i = try toInt(v, name), let n = try toInt(other, name) else { throw TemplateFailure.type("divisibleby expects integers") }
            guard n != 0 else { throw TemplateFailure.type("integer division or modulo by zero") }
            return i % n == 0
        case "eq", "equalto", "==": return pyEquals(v, other ?? JinjaValue.none)
        case "ne", "!=": return !pyEquals(v, other ?? JinjaValue.none)
        case "lt", "lessthan", "<": return try interp.compare("<", v, other ?? JinjaValue.none)
        case "le", "<=": return try interp.compare("<=", v, other ?? JinjaValue.none)
        case "gt", "greaterthan", ">": return try interp.compare(">", v, other ?? JinjaValue.none)
        case "ge", ">=": return try interp.compare(">=", v, other ?? JinjaValue.none)
        case "in": return try interp.contains(other ?? .undefined("'in' test needs a container"), v)
        case "sameas":
            switch (v, other ?? JinjaValue.none) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.int(let a), .int(let b)): return a == b
            case (.string(let a), .string(let b)): return a == b
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        case "lower": let s = str(v); return pyLower(s) == s && s.unicodeScalars.contains { $0.properties.isCased }
        case "upper": let s = str(v); return pyUpper(s) == s && s.unicodeScalars.contains { $0.properties.isCased }
        case "escaped": return false
        case "filter", "test": return true
        default: throw TemplateFailure.type("no test named '\(name)'")
        }
    }

    // MARK: Methods

    static func method(_ interp: Interpreter, _ obj: JinjaValue, _ name: String, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> JinjaValue? {
        switch obj {
        case .string(let s): return try stringMethod(interp, s, name, args, kw)
        case .dict(let d):
            switch name {
            case "items": return .array(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case "keys": return .array(d.keys.map { .string($0) })
            case "values": return .array(d.pairs.map { $0.1 })
            case "get":
                let a = try bind("get", ["key", "default"], args, kw)
                if case .string(let k)? = a[0], let v = d[k] { return v }
                return a[1] ?? JinjaValue.none
            case "copy": return obj
            case "update", "pop", "setdefault", "clear", "popitem":
                throw TemplateFailure.security("access to attribute '\(name)' of 'dict' object is unsafe.")
            default: return nil
            }
        case .array(let arr), .tuple(let arr):
            switch name {
            case "index":
                guard let x = args.first, let i = arr.firstIndex(where: { pyEquals($0, x) }) else {
                    throw TemplateFailure.type("value is not in list")
                }
                return .int(i)
            case "count":
                guard let x = args.first else { throw TemplateFailure.type("count() takes exactly one argument") }
                return .int(arr.filter { pyEquals($0, x) }.count)
            case "copy": return obj
            case "append", "extend", "pop", "insert", "remove", "sort", "reverse", "clear":
                throw TemplateFailure.security("access to attribute '\(name)' of 'list' object is unsafe.")
            default: return nil
            }
        default:
            return nil
        }
    }

    private static func stringMethod(_ interp: Interpreter, _ s: String, _ name: String, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> JinjaValue? {
        func optStr(_ v: JinjaValue?) throws -> String? {
            guard let v, !v.isNone else { return nil }
            return try requireString(v, name)
        }
        switch name {
        case "upper": return .string(pyUpper(s))
        case "lower", "casefold": return .string(pyLower(s))
        case "title": return .string(pyTitle(s))
        case "capitalize": return .string(pyCapitalize(s))
        case "swapcase":
            return .string(String(s.map { c in c.isUppercase ? Character(c.lowercased()) : (c.isLowercase ? Character(c.uppercased()) : c) }))
        case "strip", "lstrip", "rstrip":
            let a = try bind(name, ["chars"], args, kw)
            return .string(pyStrip(s, chars: try optStr(a[0]), left: name != "rstrip", right: name != "lstrip"))
        case "split", "rsplit":
            let a = try bind(name, ["sep", "maxsplit"], args, kw)
            let sep = try optStr(a[0])
            if sep == "" { throw TemplateFailure.type("empty separator") }
            let maxsplit = try toInt(a[1], name) ?? -1
            let parts = name == "split" ? pySplit(s, sep: sep, maxsplit: maxsplit) : pyRSplit(s, sep: sep, maxsplit: maxsplit)
            return .array(parts.map { .string($0) })
        case "splitlines":
            let a = try bind(name, ["keepends"], args, kw)
            return .array(pySplitlines(s, keepends: a[0]?.truthy ?? false).map { .string($0) })
        case "startswith", "endswith":
            let a = try bind(name, ["prefix", "start", "end"], args, kw)
            var sub = Array(s.unicodeScalars)
            let start = try toInt(a[1], name), end = try toInt(a[2], name)
            if start != nil || end != nil {
                let n = sub.count
                var lo = start ?? 0, hi = end ?? n
                if lo < 0 { lo = max(0, lo + n) }
                if hi < 0 { hi = max(0, hi + n) }
                lo = min(lo, n); hi = min(hi, n)
                sub = lo < hi ? Array(sub[lo..<hi]) : []
            }
            var cands: [String] = []
            switch a[0] ?? JinjaValue.none {
            case .string(let p): cands = [p]
            case .array(let ps), .tuple(let ps): cands = try ps.map { try requireString($0, name) }
            default: throw TemplateFailure.type("\(name) first arg must be str or a tuple of str")
            }
            for c in cands {
                let cs = Array(c.unicodeScalars)
                if name == "startswith" ? sub.starts(with: cs) : (cs.count <= sub.count && Array(sub.suffix(cs.count)) == cs) { return .bool(true) }
            }
            return .bool(false)
        case "replace":
            let a = try bind(name, ["old", "new", "count"], args, kw)
            return .string(pyReplace(s, try requireString(a[0] ?? JinjaValue.none, name), try requireString(a[1] ?? JinjaValue.none, name), try toInt(a[2], name) ?? -1, interp.limits.maxOutputBytes))
        case "removeprefix", "removesuffix":
            let p = try requireString(args.first ?? JinjaValue.none, name)
            if name == "removeprefix", s.unicodeScalars.starts(with: p.unicodeScalars) {
                return .string(String(String.UnicodeScalarView(s.unicodeScalars.dropFirst(p.unicodeScalars.count))))
            }
            if name == "removesuffix", !p.isEmpty, s.unicodeScalars.reversed().starts(with: p.unicodeScalars.reversed()) {
                return .string(String(String.UnicodeScalarView(s.unicodeScalars.dropLast(p.unicodeScalars.count))))
            }
            return .string(s)
        case "join":
            let items = try interp.iterate(args.first ?? JinjaValue.none)
            return .string(try items.map { try requireString($0, "join") }.joined(separator: s))
        case "find", "rfind", "index", "count":
            let sub = Array(try requireString(args.first ?? JinjaValue.none, name).unicodeScalars)
            let hay = Array(s.unicodeScalars)
            var hits: [Int] = []
            if sub.isEmpty {
                hits = Array(0...hay.count)
            } else if sub.count <= hay.count {
                var i = 0
                while i + sub.count <= hay.count {
                    if Array(hay[i..<i + sub.count]) == sub { hits.append(i); i += name == "count" ? sub.count : 1 } else { i += 1 }
                }
            }
            switch name {
            case "count": return .int(hits.count)
            case "find": return .int(hits.first ?? -1)
            case "rfind": return .int(hits.last ?? -1)
            default:
                guard let h = hits.first else { throw TemplateFailure.type("substring not found") }
                return .int(h)
            }
        case "isdigit", "isnumeric", "isdecimal":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil })
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { PythonString.isSpace($0) })
        case "isupper": return .bool(pyUpper(s) == s && s.unicodeScalars.contains { $0.properties.isCased })
        case "islower": return .bool(pyLower(s) == s && s.unicodeScalars.contains { $0.properties.isCased })
        case "istitle": return .bool(pyTitle(s) == s && s.unicodeScalars.contains { $0.properties.isCased })
        case "zfill":
            let w = try toInt(args.first, name) ?? 0
            let n = s.unicodeScalars.count
            if n >= w { return .string(s) }
            var body = s, sign = ""
            if let f = s.first, f == "-" || f == "+" { sign = String(f); body = String(s.dropFirst()) }
            return .string(sign + String(repeating: "0", count: w - n) + body)
        case "center", "ljust", "rjust":
            let w = try toInt(args.first, name) ?? 0
            let fill = args.count > 1 ? try requireString(args[1], name) : " "
            let n = s.unicodeScalars.count
            if n >= w { return .string(s) }
            if name == "ljust" { return .string(s + String(repeating: fill, count: w - n)) }
            if name == "rjust" { return .string(String(repeating: fill, count: w - n) + s) }
            return .string(pyCenter(s, w, fill))
        case "partition", "rpartition":
            let sep = try requireString(args.first ?? JinjaValue.none, name)
            let r = name == "partition" ? s.range(of: sep) : s.range(of: sep, options: .backwards)
            guard let r else { return .array(name == "partition" ? [.string(s), .string(""), .string("")] : [.string(""), .string(""), .string(s)]) }
            return .array([.string(String(s[..<r.lowerBound])), .string(sep), .string(String(s[r.upperBound...]))])
        case "expandtabs": return .string(s.replacingOccurrences(of: "\t", with: "        "))
        case "format": return .string(try strFormat(s, args, kw))
        default: return nil
        }
    }

    // MARK: Python string helpers

    /// `str.format` with `{}`, `{0}`, `{name}`, `{{` and `}}` (format specs are not supported).
    static func strFormat(_ s: String, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> String {
        var out = ""
        var auto = 0
        var it = s.makeIterator()
        while let c = it.next() {
            if c == "{" {
                var field = ""
                var closed = false
                while let d = it.next() {
                    if d == "{" && field.isEmpty { out.append("{"); closed = true; field = "\u{0}"; break }
                    if d == "}" { closed = true; break }
                    field.append(d)
                }
                if field == "\u{0}" { continue }
                guard closed else { throw TemplateFailure.type("Single '{' encountered in format string") }
                if field.contains(":") || field.contains("!") { throw TemplateFailure.type("format specs in str.format are not supported") }
                if field.isEmpty {
                    guard auto < args.count else { throw TemplateFailure.type("Replacement index \(auto) out of range for positional args tuple") }
                    out += str(args[auto]); auto += 1
                } else if let i = Int(field) {
                    guard i < args.count else { throw TemplateFailure.type("Replacement index \(i) out of range for positional args tuple") }
                    out += str(args[i])
                } else if let v = kw.first(where: { $0.0 == field })?.1 {
                    out += str(v)
                } else {
                    throw TemplateFailure.type("KeyError: '\(field)'")
                }
            } else if c == "}" {
                guard it.next() == "}" else { throw TemplateFailure.type("Single '}' encountered in format string") }
                out.append("}")
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Python's `fmt % args` for %s %r %d %i %f %e %x %o %c %%, with flags, width and precision.
    static func percentFormat(_ fmt: String, _ argsValue: JinjaValue) throws -> String {
        var args: [JinjaValue]
        if case .tuple(let a) = argsValue { args = a } else { args = [argsValue] }
        let mapping: JinjaDict? = { if case .dict(let d) = argsValue { return d } else { return nil } }()
        var out = ""
        let chars = Array(fmt)
        var i = 0
        var argi = 0
        func next() throws -> JinjaValue {
            guard argi < args.count else { throw TemplateFailure.type("not enough arguments for format string") }
            defer { argi += 1 }
            return args[argi]
        }
        while i < chars.count {
            let c = chars[i]
            i += 1
            if c != "%" { out.append(c); continue }
            guard i < chars.count else { throw TemplateFailure.type("incomplete format") }
            var key: String? = nil
            if chars[i] == "(" {
                var j = i + 1
                while j < chars.count, chars[j] != ")" { j += 1 }
                key = String(chars[(i + 1)..<min(j, chars.count)])
                i = j + 1
            }
            var flags = ""
            while i < chars.count, "-+ #0".contains(chars[i]) { flags.append(chars[i]); i += 1 }
            var width = 0
            while i < chars.count, let d = chars[i].wholeNumberValue { width = width * 10 + d; i += 1 }
            var precision: Int? = nil
            if i < chars.count, chars[i] == "." {
                i += 1
                var p = 0
                while i < chars.count, let d = chars[i].wholeNumberValue { p = p * 10 + d; i += 1 }
                precision = p
            }
            guard i < chars.count else { throw TemplateFailure.type("incomplete format") }
            let conv = chars[i]
            i += 1
            if conv == "%" { out.append("%"); continue }
            let v: JinjaValue
            if let key {
                guard let m = mapping, let x = m[key] else { throw TemplateFailure.type("format requires a mapping") }
                v = x
            } else {
                v = try next()
            }
            var body: String
            switch conv {
            case "s": body = str(v); if let p = precision { body = String(body.prefix(p)) }
            case "r", "a": body = v.pythonRepr
            case "d", "i", "u":
                switch v {
                case .int(let n): body = String(n)
                case .bool(let b): body = b ? "1" : "0"
                case .double(let d): body = String(Int(d))
                default: throw TemplateFailure.type("%\(conv) format: a real number is required, not \(v.typeName)")
                }
                if flags.contains("+"), !body.hasPrefix("-") { body = "+" + body }
            case "f", "F", "e", "E", "g", "G":
                let d: Double
                switch v {
                case .int(let n): d = Double(n)
                case .bool(let b): d = b ? 1 : 0
                case .double(let x): d = x
                default: throw TemplateFailure.type("must be real number, not \(v.typeName)")
                }
                body = String(format: "%\(flags.contains("+") ? "+" : "").\(precision ?? 6)\(conv)", d)
            case "x", "X", "o":
                guard case .int(let n) = v else { throw TemplateFailure.type("%\(conv) format: an integer is required") }
                body = String(n, radix: conv == "o" ? 8 : 16, uppercase: conv == "X")
            case "c":
                if case .int(let n) = v, let u = Unicode.Scalar(UInt32(max(0, n))) { body = String(u) } else { body = str(v) }
            default:
                throw TemplateFailure.type("unsupported format character '\(conv)'")
            }
            let len = body.unicodeScalars.count
            if width > len {
                if flags.contains("-") {
                    body += String(repeating: " ", count: width - len)
                } else if flags.contains("0"), "dfiFeEgGxXo".contains(conv) {
                    let neg = body.hasPrefix("-") || body.hasPrefix("+")
                    let sign = neg ? String(body.first!) : ""
                    body = sign + String(repeating: "0", count: width - len) + (neg ? String(body.dropFirst()) : body)
                } else {
                    body = String(repeating: " ", count: width - len) + body
                }
            }
            out += body
        }
        if mapping == nil, argi < args.count, case .tuple = argsValue {
            throw TemplateFailure.type("not all arguments converted during string formatting")
        }
        return out
    }
}

extension Interpreter {
    func applyFilter(_ name: String, _ v: JinjaValue, _ args: CallArgs, _ scope: Scope, _ pos: SourcePos) throws -> JinjaValue {
        let (p, kw) = try evalArgs(args, scope)
        do {
            return try Builtins.filter(self, name, v, p, kw)
        } catch let f as TemplateFailure {
            throw error(f, pos)
        }
    }

    func runTest(_ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> Bool {
        try Builtins.test(self, name, v, args, kw)
    }

    func callMethod(_ obj: JinjaValue, _ name: String, _ args: [JinjaValue], _ kw: [(String, JinjaValue)]) throws -> JinjaValue? {
        if case .dict(let d) = obj, !Builtins.dictMethods.contains(name), d[name] != nil { return nil }
        return try Builtins.method(self, obj, name, args, kw)
    }
}

// MARK: - Python string semantics

func pyUpper(_ s: String) -> String { s.uppercased() }
func pyLower(_ s: String) -> String { s.lowercased() }

/// Python `str.capitalize`: first character title-cased, the rest lower-cased.
func pyCapitalize(_ s: String) -> String {
    guard let first = s.unicodeScalars.first else { return s }
    return first.properties.titlecaseMapping + pyLower(String(String.UnicodeScalarView(s.unicodeScalars.dropFirst())))
}

/// Python `str.title`: title-case the first cased character of each run of cased characters.
func pyTitle(_ s: String) -> String {
    var out = ""
    var prevCased = false
    for u in s.unicodeScalars {
        let p = u.properties
        if p.isCased || p.isLowercase || p.isUppercase {
            out += prevCased ? p.lowercaseMapping : p.titlecaseMapping
            prevCased = true
        } else {
            out.unicodeScalars.append(u)
            prevCased = false
        }
    }
    return out
}

/// Jinja's `title` filter: split before runs of `-`, whitespace and opening brackets; each piece
/// gets its first character upper-cased and the rest lower-cased.
func jinjaTitle(_ s: String) -> String {
    let scalars = Array(s.unicodeScalars)
    func isSep(_ u: Unicode.Scalar) -> Bool { u == "-" || u == "(" || u == "{" || u == "[" || u == "<" || PythonString.isSpace(u) }
    var out = ""
    var i = 0
    while i < scalars.count {
        var j = i
        let sep = isSep(scalars[i])
        while j < scalars.count, isSep(scalars[j]) == sep { j += 1 }
        let piece = scalars[i..<j]
        out += pyUpper(String(piece.first!)) + pyLower(String(String.UnicodeScalarView(piece.dropFirst())))
        i = j
    }
    return out
}

/// Python `str.strip(chars)`.
func pyStrip(_ s: String, chars: String?, left: Bool, right: Bool) -> String {
    let u = Array(s.unicodeScalars)
    let set = chars.map { Set($0.unicodeScalars) }
    func strip(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? PythonString.isSpace(c) }
    var a = 0, b = u.count
    if left { while a < b, strip(u[a]) { a += 1 } }
    if right { while b > a, strip(u[b - 1]) { b -= 1 } }
    return String(String.UnicodeScalarView(u[a..<b]))
}

/// Python `str.split(sep, maxsplit)`; `sep == nil` splits on whitespace runs.
func pySplit(_ s: String, sep: String?, maxsplit: Int) -> [String] {
    let u = Array(s.unicodeScalars)
    var out: [String] = []
    func make(_ a: Int, _ b: Int) -> String { String(String.UnicodeScalarView(u[a..<b])) }
    if let sep {
        let p = Array(sep.unicodeScalars)
        var start = 0, i = 0
        while i + p.count <= u.count {
            if (maxsplit < 0 || out.count < maxsplit) && Array(u[i..<i + p.count]) == p {
                out.append(make(start, i))
                i += p.count
                start = i
            } else {
                i += 1
            }
        }
        out.append(make(start, u.count))
        return out
    }
    var i = 0
    while i < u.count {
        while i < u.count, PythonString.isSpace(u[i]) { i += 1 }
        if i >= u.count { break }
        if maxsplit >= 0 && out.count >= maxsplit {
            var e = u.count
            while e > i, PythonString.isSpace(u[e - 1]) { e -= 1 }
            out.append(make(i, e))
            break
        }
        let st = i
        while i < u.count, !PythonString.isSpace(u[i]) { i += 1 }
        out.append(make(st, i))
    }
    return out
}

/// Python `str.rsplit(sep, maxsplit)`.
func pyRSplit(_ s: String, sep: String?, maxsplit: Int) -> [String] {
    if maxsplit < 0 { return pySplit(s, sep: sep, maxsplit: -1) }
    let rev = String(String.UnicodeScalarView(s.unicodeScalars.reversed()))
    let rsep = sep.map { String(String.UnicodeScalarView($0.unicodeScalars.reversed())) }
    return pySplit(rev, sep: rsep, maxsplit: maxsplit).reversed().map { String(String.UnicodeScalarView($0.unicodeScalars.reversed())) }
}

/// Python `str.splitlines(keepends)`.
func pySplitlines(_ s: String, keepends: Bool = false) -> [String] {
    let u = Array(s.unicodeScalars)
    var out: [String] = []
    var start = 0, i = 0
    while i < u.count {
        let c = u[i]
        let isBreak = ["\n", "\r", "\u{0B}", "\u{0C}", "\u{1C}", "\u{1D}", "\u{1E}", "\u{85}", "\u{2028}", "\u{2029}"].contains(c)
        if isBreak {
            var end = i + 1
            if c == "\r", end < u.count, u[end] == "\n" { end += 1 }
            out.append(String(String.UnicodeScalarView(u[start..<(keepends ? end : i)])))
            start = end
            i = end
        } else {
            i += 1
        }
    }
    if start < u.count { out.append(String(String.UnicodeScalarView(u[start...]))) }
    return out
}

/// Python `str.replace(old, new, count)`.
func pyReplace(_ s: String, _ old: String, _ new: String, _ count: Int, _ limit: Int) -> String {
    if old.isEmpty {
        var out = ""
        var n = 0
        for u in s.unicodeScalars {
            if count < 0 || n < count { out += new; n += 1 }
            out.unicodeScalars.append(u)
            if out.utf8.count > limit { return out }
        }
        if count < 0 || n < count { out += new }
        return out
    }
    let parts = pySplit(s, sep: old, maxsplit: count)
    return parts.joined(separator: new)
}

/// Python `str.center(width, fill)`.
func pyCenter(_ s: String, _ width: Int, _ fill: String) -> String {
    let n = s.unicodeScalars.count
    guard width > n else { return s }
    let marg = width - n
    let left = marg / 2 + (marg & width & 1)
    return String(repeating: fill, count: left) + s + String(repeating: fill, count: marg - left)
}

// MARK: - strftime

private let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
private let dayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

/// Python's `datetime.strftime` in the C locale for the common directives, in local time.
func strftime(_ fmt: String, _ date: Date, _ zone: TimeZone) -> String {
    var cal = Calendar(identifier: .gregorian)
    cal.timeZone = zone
    let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday, .nanosecond], from: date)
    let year = c.year ?? 1970, month = c.month ?? 1, day = c.day ?? 1
    let hour = c.hour ?? 0, minute = c.minute ?? 0, second = c.second ?? 0
    let wday = (c.weekday ?? 1) - 1
    let yday = cal.ordinality(of: .day, in: .year, for: date) ?? 1
    func pad(_ v: Int, _ w: Int = 2) -> String {
        let s = String(v)
        return s.count >= w ? s : String(repeating: "0", count: w - s.count) + s
    }
    var out = ""
    var it = fmt.makeIterator()
    while let ch = it.next() {
        guard ch == "%" else { out.append(ch); continue }
        guard var d = it.next() else { out.append("%"); break }
        var noPad = false
        if d == "-", let e = it.next() { noPad = true; d = e }
        func p(_ v: Int, _ w: Int = 2) -> String { noPad ? String(v) : pad(v, w) }
        switch d {
        case "d": out += p(day)
        case "e": out += day < 10 ? " \(day)" : String(day)
        case "m": out += p(month)
        case "Y": out += String(year)
        case "y": out += p(year % 100)
        case "H": out += p(hour)
        case "I": out += p(hour % 12 == 0 ? 12 : hour % 12)
        case "M": out += p(minute)
        case "S": out += p(second)
        case "p": out += hour < 12 ? "AM" : "PM"
        case "B": out += monthNames[month - 1]
        case "b", "h": out += String(monthNames[month - 1].prefix(3))
        case "A": out += dayNames[wday]
        case "a": out += String(dayNames[wday].prefix(3))
        case "j": out += p(yday, 3)
        case "w": out += String(wday)
        case "u": out += String(wday == 0 ? 7 : wday)
        case "f": out += pad((c.nanosecond ?? 0) / 1000, 6)
        case "F": out += "\(year)-\(pad(month))-\(pad(day))"
        case "D": out += "\(pad(month))/\(pad(day))/\(pad(year % 100))"
        case "T": out += "\(pad(hour)):\(pad(minute)):\(pad(second))"
        case "R": out += "\(pad(hour)):\(pad(minute))"
        case "c": out += "\(dayNames[wday].prefix(3)) \(monthNames[month - 1].prefix(3)) \(day < 10 ? " \(day)" : String(day)) \(pad(hour)):\(pad(minute)):\(pad(second)) \(year)"
        case "x": out += "\(pad(month))/\(pad(day))/\(pad(year % 100))"
        case "X": out += "\(pad(hour)):\(pad(minute)):\(pad(second))"
        case "Z": out += zone.abbreviation(for: date) ?? ""
        case "z":
            let off = zone.secondsFromGMT(for: date)
            out += (off < 0 ? "-" : "+") + pad(abs(off) / 3600) + pad(abs(off) % 3600 / 60)
        case "%": out += "%"
        default: out += "%" + String(d)
        }
    }
    return out
}
