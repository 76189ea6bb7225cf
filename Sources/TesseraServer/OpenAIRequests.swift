// Request bodies of the OpenAI API (completions, chat completions, tokenize) read into engine requests. Every
// refusal is an `APIError` naming the field at fault, as OpenAI and vLLM answer: status 400, type
// `invalid_request_error`, `param` the field.
import Foundation
import TesseraEngine
import TesseraFormats
import TesseraTokenizer

/// An error answered as `{"error": {"message", "type", "param", "code"}}` with an HTTP status.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public let status: Int
    public let message: String
    public let type: String
    public let param: String?
    public let code: String?

    public init(status: Int, message: String, type: String? = nil, param: String? = nil, code: String? = nil) {
        self.status = status; self.message = message; self.param = param; self.code = code
        self.type = type ?? {
            switch status {
            case 401: return "authentication_error"
            case 404: return "not_found_error"
            case 413: return "request_too_large"
            case 429: return "rate_limit_error"
            case 500...: return "server_error"
            default: return "invalid_request_error"
            }
        }()
    }

    static func invalid(_ param: String, _ message: String, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, param: param, code: code)
    }

    public var description: String { "\(status): \(message)" }

    var json: [String: Any] {
        ["error": ["message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull()] as [String: Any]]
    }
}

/// What the server knows of the loaded model.
public struct ServedModel: Sendable {
    public let name: String
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate?
    /// Positions per sequence.
    public let context: Int
    public let created: Int

    public init(name: String, tokenizer: Tokenizer, context: Int) throws {
        self.name = name; self.tokenizer = tokenizer; self.context = context
        chatTemplate = try tokenizer.chatTemplate.map { try ChatTemplate($0) }
        created = Int(Date().timeIntervalSince1970)
    }

    /// The prompt a chat renders to, tokenized (the template adds the special tokens).
    func chatTokens(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> [Int] {
        guard let chatTemplate else {
            throw APIError.invalid("messages", "the model \(name) has no chat template; use /v1/completions")
        }
        let text: String
        do {
            text = try chatTemplate.render(messages: messages, addGenerationPrompt: addGenerationPrompt,
                                           bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken)
        } catch {
            throw APIError.invalid("messages", "the chat template failed on these messages: \(error)")
        }
        return tokenizer.encode(text, addSpecialTokens: false)
    }
}

/// Which endpoint a body came to.
enum Endpoint { case completion, chat }

/// A parsed completion or chat request.
struct CompletionJob {
    let endpoint: Endpoint
    var request: GenerationRequest
    let stream: Bool
    let includeUsage: Bool
    /// Top alternatives per token when log-probabilities were asked for.
    let logprobs: Int?
}

/// Reads a body; malformed JSON names the byte offset.
func parseBody(_ bytes: [UInt8]) throws -> [String: JSONValue] {
    let value: JSONValue
    do { value = try bytes.withUnsafeBytes { try JSONValue.parse($0, path: "request body") } } catch {
        throw APIError.invalid("body", "malformed JSON: \(error)", code: "invalid_json")
    }
    guard let object = value.object else { throw APIError.invalid("body", "the request body must be a JSON object") }
    return object
}

/// Typed reads of optional fields, each refusal naming the field.
struct Fields {
    let body: [String: JSONValue]

    func present(_ key: String) -> JSONValue? {
        guard let v = body[key], v != .null else { return nil }
        return v
    }
    func int(_ key: String) throws -> Int? {
        guard let v = present(key) else { return nil }
        guard let i = v.int else { throw APIError.invalid(key, "'\(key)' must be an integer, got \(describe(v))") }
        return i
    }
    func double(_ key: String) throws -> Double? {
        guard let v = present(key) else { return nil }
        guard let d = v.double, d.isFinite else { throw APIError.invalid(key, "'\(key)' must be a number, got \(describe(v))") }
        return d
    }
    func bool(_ key: String) throws -> Bool? {
        guard let v = present(key) else { return nil }
        guard let b = v.bool else { throw APIError.invalid(key, "'\(key)' must be true or false, got \(describe(v))") }
        return b
    }
    func string(_ key: String) throws -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v.string else { throw APIError.invalid(key, "'\(key)' must be a string, got \(describe(v))") }
        return s
    }
    func strings(_ key: String) throws -> [String] {
        guard let v = present(key) else { return [] }
        if let s = v.string { return [s] }
        let all = v.array?.compactMap(\.string)
        guard let all, all.count == v.array?.count else {
            throw APIError.invalid(key, "'\(key)' must be a string or an array of strings, got \(describe(v))")
        }
        return all
    }
}

func describe(_ v: JSONValue) -> String {
    switch v {
    case .null: return "null"
    case .bool(let b): return "\(b)"
    case .int(let i): return "\(i)"
    case .double(let d): return "\(d)"
    case .string(let s): return "the string \"\(s.prefix(40))\""
    case .array: return "an array"
    case .object: return "an object"
    }
}

/// The prompt of a completion request: a string, or token ids (one prompt per request).
func completionPrompt(_ f: Fields, model: ServedModel) throws -> [Int] {
    guard let v = f.present("prompt") else { throw APIError.invalid("prompt", "'prompt' is required") }
    if let s = v.string { return model.tokenizer.encode(s) }
    if let a = v.array {
        if a.count == 1, let s = a[0].string { return model.tokenizer.encode(s) }
        if a.count == 1, let inner = a[0].array, let ids = tokenIDs(inner) { return ids }
        if !a.isEmpty, let ids = tokenIDs(a) { return ids }
        if a.count > 1 { throw APIError.invalid("prompt", "one prompt per request (got \(a.count)); send them as separate requests") }
    }
    throw APIError.invalid("prompt", "'prompt' must be a string or an array of token ids, got \(describe(v))")
}

private func tokenIDs(_ a: [JSONValue]) -> [Int]? {
    let ids = a.compactMap(\.int)
    return ids.count == a.count ? ids : nil
}

/// The messages of a chat request (content a string, or text parts).
func chatMessages(_ f: Fields) throws -> [ChatMessage] {
    guard let v = f.present("messages") else { throw APIError.invalid("messages", "'messages' is required") }
    guard let list = v.array, !list.isEmpty else { throw APIError.invalid("messages", "'messages' must be a non-empty array") }
    return try list.enumerated().map { i, m in
        let at = "messages[\(i)]"
        guard let role = m["role"]?.string else { throw APIError.invalid(at + ".role", "\(at) needs a string 'role'") }
        switch m["content"] {
        case nil, .null?: return ChatMessage(role: role, content: "")
        case .string(let s)?: return ChatMessage(role: role, content: s)
        case .array(let parts)?:
            var text = ""
            for (j, part) in parts.enumerated() {
                guard part["type"]?.string == "text", let t = part["text"]?.string else {
                    throw APIError.invalid("\(at).content[\(j)]", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported")
                }
                text += t
            }
            return ChatMessage(role: role, content: text)
        case let other?:
            throw APIError.invalid(at + ".content", "\(at).content must be a string or an array of text parts, got \(describe(other))")
        }
    }
}

/// Reads a completion or chat body into a scheduler request.
func parseCompletion(_ body: [String: JSONValue], endpoint: Endpoint, model: ServedModel) throws -> CompletionJob {
    let f = Fields(body: body)
    if let name = try f.string("model"), name != model.name {
        throw APIError(status: 400, message: "the model '\(name)' does not exist; this server serves '\(model.name)'",
                       param: "model", code: "model_not_found")
    }
    if let n = try f.int("n"), n != 1 { throw APIError.invalid("n", "only n = 1 is supported, got \(n)") }
    if let b = try f.int("best_of"), b != 1 { throw APIError.invalid("best_of", "only best_of = 1 is supported, got \(b)") }
    let prompt: [Int], promptParam: String
    switch endpoint {
    case .completion: prompt = try completionPrompt(f, model: model); promptParam = "prompt"
    case .chat: prompt = try model.chatTokens(try chatMessages(f)); promptParam = "messages"
    }
    guard !prompt.isEmpty else { throw APIError.invalid(promptParam, "the prompt is empty") }
    if let bad = prompt.first(where: { $0 < 0 || $0 >= model.tokenizer.vocabularySize }) {
        throw APIError.invalid(promptParam, "token id \(bad) is outside the vocabulary of \(model.tokenizer.vocabularySize)")
    }
    let maxKey = f.present("max_completion_tokens") != nil ? "max_completion_tokens" : "max_tokens"
    let asked = try f.int(maxKey)
    if let asked, asked < 1 { throw APIError.invalid(maxKey, "'\(maxKey)' must be at least 1, got \(asked)") }
    guard prompt.count < model.context else {
        throw APIError.invalid(promptParam, "this model's maximum context length is \(model.context) tokens, but the prompt has \(prompt.count) tokens",
                               code: "context_length_exceeded")
    }
    if let asked, prompt.count + asked > model.context {
        throw APIError.invalid(maxKey, "this model's maximum context length is \(model.context) tokens, but \(prompt.count + asked) were requested (\(prompt.count) in the prompt, \(asked) to generate)",
                               code: "context_length_exceeded")
    }

    var p = SamplingParameters()
    p.temperature = try f.double("temperature") ?? 1
    p.topP = try f.double("top_p") ?? 1
    let topK = try f.int("top_k") ?? 0
    p.topK = topK == -1 ? 0 : topK
    p.minP = try f.double("min_p") ?? 0
    p.presencePenalty = try f.double("presence_penalty") ?? 0
    p.frequencyPenalty = try f.double("frequency_penalty") ?? 0
    p.repetitionPenalty = try f.double("repetition_penalty") ?? 1
    if let seed = try f.int("seed") { p.seed = UInt64(bitPattern: Int64(seed)) } else { p.seed = UInt64.random(in: 0...UInt64.max) }
    do { try p.validate() } catch let e as SamplingParameterError {
        let names = ["temperature": "temperature", "topK": "top_k", "topP": "top_p", "minP": "min_p",
                     "repetitionPenalty": "repetition_penalty", "presencePenalty": "presence_penalty",
                     "frequencyPenalty": "frequency_penalty"]
        let name = names[e.parameter] ?? e.parameter
        throw APIError.invalid(name, "'\(name)' \(e.reason)")
    }

    var logprobs: Int?
    switch endpoint {
    case .completion:
        if let n = try f.int("logprobs") {
            guard (0...20).contains(n) else { throw APIError.invalid("logprobs", "'logprobs' must be between 0 and 20, got \(n)") }
            logprobs = n
        }
    case .chat:
        let top = try f.int("top_logprobs")
        if let top, !(0...20).contains(top) { throw APIError.invalid("top_logprobs", "'top_logprobs' must be between 0 and 20, got \(top)") }
        if try f.bool("logprobs") == true { logprobs = top ?? 0 }
        else if top != nil { throw APIError.invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true") }
    }
    let stream = try f.bool("stream") ?? false
    var includeUsage = false
    if let options = f.present("stream_options") {
        guard let o = options.object else { throw APIError.invalid("stream_options", "'stream_options' must be an object") }
        includeUsage = try Fields(body: o).bool("include_usage") ?? false
    }
    let request = GenerationRequest(promptTokens: prompt, maxTokens: asked ?? model.context - prompt.count, sampling: p,
                                    stopStrings: try f.strings("stop").filter { !$0.isEmpty },
                                    stopAtEOS: !(try f.bool("ignore_eos") ?? false), logprobs: logprobs)
    return CompletionJob(endpoint: endpoint, request: request, stream: stream, includeUsage: includeUsage, logprobs: logprobs)
}
