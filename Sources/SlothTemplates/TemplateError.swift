/// An error parsing or rendering a chat template, with the template line and column.
public struct TemplateError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, broadly.
    public enum Kind: String, Sendable {
        /// The template text is not valid Jinja (or uses a construct Sloth does not support).
        case syntax
        /// The template called `raise_exception(message)`; `message` is the template's own text.
        case raised
        /// A missing variable or attribute was used in a way that needs a value.
        case undefined
        /// An operation got values of the wrong type.
        case type
        /// A sandbox bound was hit: loop iterations, recursion depth, output size or range size.
        case limit
        /// A security rule of the sandbox (private attributes, mutating a list).
        case security
        /// Loading a template or its configuration failed.
        case load
    }

    public let kind: Kind
    /// The message; for `.raised`, exactly the text the template passed to `raise_exception`.
    public let message: String
    /// The template's name (a file path, a named template or `<template>`).
    public let template: String
    /// 1-based line and column of the construct that failed (0 when unknown).
    public let line: Int
    public let column: Int

    public init(kind: Kind, message: String, template: String = "<template>", line: Int = 0, column: Int = 0) {
        self.kind = kind
        self.message = message
        self.template = template
        self.line = line
        self.column = column
    }

    public var description: String {
        let place = line > 0 ? "\(template):\(line):\(column)" : template
        switch kind {
        case .raised:
            return "\(place): the chat template raised an error: \(message)"
        case .syntax:
            return "\(place): template syntax error: \(message). Fix the template text."
        case .limit:
            return "\(place): template stopped by the sandbox: \(message). The template loops, recurses or writes too much; fix the template or raise the limit."
        case .load:
            return "\(place): \(message)"
        default:
            return "\(place): template error (\(kind.rawValue)): \(message)"
        }
    }
}

/// Errors thrown by builtins before the interpreter knows the position; converted to `TemplateError`.
enum TemplateFailure: Error {
    case type(String)
    case undefined(String)
    case raised(String)
    case limit(String)
    case security(String)

    var kind: TemplateError.Kind {
        switch self {
        case .type: return .type
        case .undefined: return .undefined
        case .raised: return .raised
        case .limit: return .limit
        case .security: return .security
        }
    }

    var message: String {
        switch self {
        case .type(let m), .undefined(let m), .raised(let m), .limit(let m), .security(let m): return m
        }
    }
}
