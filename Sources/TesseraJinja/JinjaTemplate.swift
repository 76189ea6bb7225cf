// The interpreter's entry point: a template parsed once, rendered against any context.

/// A Jinja template (the subset Hugging Face chat templates use), parsed once and rendered the way transformers'
/// sandboxed environment renders it: `trim_blocks` and `lstrip_blocks` on, `raise_exception` and `strftime_now`
/// available, `tojson` without key sorting or ASCII escaping.
public struct JinjaTemplate: Sendable {
    /// The template text as given.
    public let source: String
    private let nodes: [Node]

    /// Parses `source`; an unsupported construct throws `ChatTemplateError.unsupported` naming it and its line.
    public init(_ source: String) throws {
        self.source = source
        var parser = JinjaParser(tokens: try JinjaLexer().tokenize(source))
        nodes = try parser.parseTemplate()
    }

    /// Renders with `context` as the template's global variables; `raise_exception(msg)` throws
    /// `ChatTemplateError.raised` carrying `msg`.
    public func render(context: [String: JinjaValue]) throws -> String {
        try JinjaInterpreter(context: context).render(nodes)
    }
}
