import ArgumentParser
import Foundation
import Yams

/// `sloth train --config run.yaml`: every flag of the command is a key (snake_case or kebab-case); flags given on the
/// command line override the file. The file's keys become command-line flags placed before the user's own, so the
/// parser (last value wins) and its validation treat both alike.
enum ConfigFile {
    /// A value of a parsed command's property wrapper, for `--print-config`.
    protocol Wrapped { var anyValue: Any? { get } }
    /// The argument type an `@OptionGroup` holds.
    protocol GroupTyped { var groupType: ParsableArguments.Type { get } }

    /// The flag names (kebab-case, as the parser spells them) of a command's options and flags, in declaration order,
    /// with whether each is a flag (no value).
    static func keys<C: ParsableArguments>(of type: C.Type) -> [(name: String, isFlag: Bool)] {
        var out: [(String, Bool)] = []
        func walk(_ value: Any) {
            for child in Mirror(reflecting: value).children {
                guard var label = child.label else { continue }
                if label.hasPrefix("_") { label.removeFirst() }
                let typeName = String(describing: Swift.type(of: child.value))
                if let g = child.value as? GroupTyped {
                    walk(g.groupType.init())   // an unparsed command's groups hold no value yet: walk a fresh one
                } else if typeName.hasPrefix("Option<") || typeName.hasPrefix("Flag<") {
                    out.append((kebab(label), typeName.hasPrefix("Flag<")))
                }
            }
        }
        walk(C())
        return out
    }

    /// The values of a parsed command, by flag name, in declaration order (`--print-config`).
    static func values<C: ParsableArguments>(of command: C) -> [(name: String, value: Any?)] {
        var out: [(String, Any?)] = []
        func walk(_ value: Any) {
            for child in Mirror(reflecting: value).children {
                guard var label = child.label else { continue }
                if label.hasPrefix("_") { label.removeFirst() }
                let typeName = String(describing: Swift.type(of: child.value))
                guard let w = child.value as? Wrapped else { continue }
                if typeName.hasPrefix("OptionGroup<") { if let inner = w.anyValue { walk(inner) } } else { out.append((kebab(label), w.anyValue)) }
            }
        }
        walk(command)
        return out
    }

    /// learningRate -> learning-rate, loadIn4bit -> load-in4bit (ArgumentParser's own conversion).
    static func kebab(_ s: String) -> String {
        var out = ""
        let chars = Array(s)
        for (i, c) in chars.enumerated() {
            if c.isUppercase {
                let prevLower = i > 0 && (chars[i - 1].isLowercase || chars[i - 1].isNumber)
                let nextLower = i + 1 < chars.count && chars[i + 1].isLowercase
                if i > 0 && (prevLower || nextLower) { out.append("-") }
                out.append(Character(c.lowercased()))
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Expands `--config FILE` in the arguments of `command` (its first argument names the subcommand).
    static func expand(_ args: [String], command: String, keys: [(name: String, isFlag: Bool)]) throws -> [String] {
        guard args.first == command, let i = args.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) else { return args }
        var rest = args
        let path: String
        if rest[i].hasPrefix("--config=") {
            path = String(rest[i].dropFirst("--config=".count)); rest.remove(at: i)
        } else {
            guard i + 1 < rest.count else { throw ValidationError("--config needs a file (e.g. --config run.yaml)") }
            path = rest[i + 1]; rest.removeSubrange(i...(i + 1))
        }
        return [command] + (try flags(fromFile: path, keys: keys)) + rest.dropFirst()
    }

    /// The flags a YAML (or JSON) file stands for.
    static func flags(fromFile path: String, keys: [(name: String, isFlag: Bool)]) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("--config: cannot read \(path)")
        }
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch {
            throw ValidationError("--config: \(path) is not valid YAML: \(error)")
        }
        guard let dict = loaded as? [String: Any] else {
            if loaded == nil { return [] }
            throw ValidationError("--config: \(path) must be a mapping of flag names to values (e.g. learning_rate: 2e-4)")
        }
        let known = Dictionary(keys.map { ($0.name, $0.isFlag) }, uniquingKeysWith: { a, _ in a })
        var out: [String] = []
        for key in dict.keys.sorted() {
            let name = key.replacingOccurrences(of: "_", with: "-")
            guard let isFlag = known[name], name != "config" else {
                let hint = closest(name, among: keys.map(\.name)).map { "; did you mean '\($0.replacingOccurrences(of: "-", with: "_"))'?" } ?? ""
                throw ValidationError("--config: \(path): unknown key '\(key)'\(hint)")
            }
            let value = dict[key]!
            if isFlag {
                guard let b = value as? Bool else { throw ValidationError("--config: \(path): '\(key)' is a switch; give true or false") }
                if b { out.append("--\(name)") }
                continue
            }
            switch value {
            case let list as [Any]: out += ["--\(name)", list.map(scalar).joined(separator: ",")]
            case is [String: Any]: throw ValidationError("--config: \(path): '\(key)' must be a single value or a list")
            default: out += ["--\(name)", scalar(value)]
            }
        }
        return out
    }

    static func scalar(_ v: Any) -> String {
        switch v {
        case let d as Double: return d == d.rounded() && abs(d) < 1e15 && !"\(d)".contains("e") ? String(Int(d)) : "\(d)"
        default: return "\(v)"
        }
    }

    /// The known key nearest to `name` by edit distance, if any is reasonably close.
    static func closest(_ name: String, among names: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var prev = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var cur = [i + 1] + Array(repeating: 0, count: b.count)
                for (j, cb) in b.enumerated() { cur[j + 1] = min(prev[j + 1] + 1, cur[j] + 1, prev[j] + (ca == cb ? 0 : 1)) }
                prev = cur
            }
            return prev[b.count]
        }
        let a = Array(name)
        guard let best = names.map({ ($0, distance(a, Array($0))) }).min(by: { $0.1 < $1.1 }), best.1 <= max(3, name.count / 3) else { return nil }
        return best.0
    }

    /// The values as (snake_case key, YAML value) pairs: `--print-config`, run.json and the report.
    static func display(_ values: [(name: String, value: Any?)]) -> [(name: String, value: String)] {
        func quote(_ s: String) -> String {
            let d = (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data()
            return String(decoding: d, as: UTF8.self).dropFirst().dropLast().description
        }
        func render(_ v: Any?) -> String {
            switch v {
            case nil: return "null"
            case let s as String: return quote(s)
            case let b as Bool: return b ? "true" : "false"
            case let a as [Any]: return "[" + a.map { render($0) }.joined(separator: ", ") + "]"
            case let x?: return "\(x)"
            }
        }
        return values.filter { $0.name != "config" && $0.name != "print-config" }
            .map { ($0.name.replacingOccurrences(of: "-", with: "_"), render($0.value)) }
    }

    /// YAML for `--print-config`: one `key: value` per line (snake_case keys, JSON-quoted strings, lists).
    static func yaml(_ values: [(name: String, value: Any?)]) -> String {
        display(values).map { "\($0.name): \($0.value)" }.joined(separator: "\n") + "\n"
    }
}

extension Option: ConfigFile.Wrapped {
    var anyValue: Any? {
        let m = Mirror(reflecting: wrappedValue)
        if m.displayStyle == .optional { return m.children.first?.value }
        return wrappedValue
    }
}
extension Flag: ConfigFile.Wrapped { var anyValue: Any? { wrappedValue } }
extension OptionGroup: ConfigFile.Wrapped { var anyValue: Any? { wrappedValue } }
extension OptionGroup: ConfigFile.GroupTyped { var groupType: ParsableArguments.Type { Value.self } }
