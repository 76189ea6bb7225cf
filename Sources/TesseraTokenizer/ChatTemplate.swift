import TesseraJinja

/// One chat turn: `role` is "system", "user", "assistant" (or whatever the template knows), `content` its text.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A Hugging Face chat template (the Jinja text of `tokenizer.chat_template` / `chat_template`), parsed once
/// and rendered the way transformers' `apply_chat_template` renders it: `trim_blocks` and `lstrip_blocks` on,
/// `raise_exception` and `strftime_now` available, `tojson` without key sorting or ASCII escaping.
public struct ChatTemplate: Sendable {
    private let template: JinjaTemplate

    /// The template text as given.
    public var source: String { template.source }

    /// Parses `source`; an unsupported construct throws `ChatTemplateError.unsupported` naming it and its line.
    public init(_ source: String) throws {
        template = try JinjaTemplate(source)
    }

    /// Renders a conversation. Context: `messages` (role/content dicts), `add_generation_prompt`,
    /// `bos_token` / `eos_token` when given, and `tools` / `documents` as none, as transformers passes them.
    /// A template's `raise_exception(msg)` throws `ChatTemplateError.raised` carrying `msg`.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?,
                       eosToken: String?) throws -> String {
        var context: [String: JinjaValue] = [
            "messages": .list(messages.map { .object([("role", .string($0.role)), ("content", .string($0.content))]) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none,
            "documents": .none,
        ]
        if let bosToken { context["bos_token"] = .string(bosToken) }
        if let eosToken { context["eos_token"] = .string(eosToken) }
        return try render(context: context)
    }

    /// Renders with an arbitrary context (messages with tool calls, `tools`, extra template variables).
    public func render(context: [String: JinjaValue]) throws -> String {
        try template.render(context: context)
    }
}
