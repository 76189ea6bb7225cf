// Response bodies and stream chunks of the OpenAI API for one request: `text_completion` objects for
// /v1/completions, `chat.completion` and `chat.completion.chunk` for /v1/chat/completions, with usage (cached
// prompt tokens included) and log-probabilities in each endpoint's own shape.
import Foundation
import TesseraEngine

struct Reply: Sendable {
    let job: CompletionJob
    let model: ServedModel
    let id: String
    let created = Int(Date().timeIntervalSince1970)

    private var isChat: Bool { job.endpoint == .chat }

    private func head(_ object: String) -> [String: Any] {
        ["id": id, "object": object, "created": created, "model": model.name]
    }

    func finishReason(_ r: StopReason) -> String {
        switch r {
        case .endOfSequence, .stopString: return "stop"
        case .maxTokens, .contextFull: return "length"
        case .cancelled: return "abort"
        }
    }

    func usage(_ o: GenerationOutput) -> [String: Any] {
        let prompt = job.request.promptTokens.count
        return ["prompt_tokens": prompt, "completion_tokens": o.tokens.count, "total_tokens": prompt + o.tokens.count,
                "prompt_tokens_details": ["cached_tokens": o.cachedPromptTokens]]
    }

    /// The whole answer of a non-streaming request.
    func whole(_ o: GenerationOutput) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "finish_reason": finishReason(o.stopReason),
                                     "logprobs": logprobs(o.logprobs) ?? NSNull()]
        if isChat { choice["message"] = ["role": "assistant", "content": o.text] } else { choice["text"] = o.text }
        var body = head(isChat ? "chat.completion" : "text_completion")
        body["choices"] = [choice]
        body["usage"] = usage(o)
        return body
    }

    /// The first chunk of a chat stream names the role (completion streams start with text).
    func opening() -> [String: Any] {
        isChat ? chunkObject(delta: ["role": "assistant", "content": ""], logprobs: [], finish: nil) : chunkObject(text: "", logprobs: [], finish: nil)
    }

    func chunk(_ text: String, logprobs: [TokenLogprob]) -> [String: Any] {
        isChat ? chunkObject(delta: ["content": text], logprobs: logprobs, finish: nil)
               : chunkObject(text: text, logprobs: logprobs, finish: nil)
    }

    /// The chunk carrying the finish reason, and the usage chunk when `stream_options.include_usage` asked for it.
    func closing(_ o: GenerationOutput) -> [[String: Any]] {
        let reason = finishReason(o.stopReason)
        var chunks = [isChat ? chunkObject(delta: [:], logprobs: [], finish: reason) : chunkObject(text: "", logprobs: [], finish: reason)]
        if job.includeUsage {
            var last = head(isChat ? "chat.completion.chunk" : "text_completion")
            last["choices"] = [Any]()
            last["usage"] = usage(o)
            chunks.append(last)
        }
        return chunks
    }

    private func chunkObject(delta: [String: Any]? = nil, text: String? = nil, logprobs l: [TokenLogprob], finish: String?) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "finish_reason": finish ?? NSNull(), "logprobs": logprobs(l) ?? NSNull()]
        if let delta { choice["delta"] = delta }
        if let text { choice["text"] = text }
        var body = head(isChat ? "chat.completion.chunk" : "text_completion")
        body["choices"] = [choice]
        if job.includeUsage { body["usage"] = NSNull() }
        return body
    }

    private func piece(_ token: Int) -> String { model.tokenizer.decode([token], skipSpecialTokens: false) }

    /// Log-probabilities in the endpoint's shape, or nil when not asked for (or nothing to report).
    func logprobs(_ entries: [TokenLogprob]) -> Any? {
        guard job.logprobs != nil, !entries.isEmpty else { return nil }
        if isChat {
            return ["content": entries.map { e -> [String: Any] in
                let text = piece(e.token)
                return ["token": text, "logprob": Double(e.logprob), "bytes": Array(text.utf8).map(Int.init),
                        "top_logprobs": e.top.map { t -> [String: Any] in
                            let s = piece(t.token)
                            return ["token": s, "logprob": Double(t.logprob), "bytes": Array(s.utf8).map(Int.init)]
                        }]
            }]
        }
        var offset = 0, offsets: [Int] = [], tokens: [String] = []
        for e in entries {
            let text = piece(e.token)
            tokens.append(text); offsets.append(offset); offset += text.count
        }
        return ["tokens": tokens, "token_logprobs": entries.map { Double($0.logprob) }, "text_offset": offsets,
                "top_logprobs": entries.map { e -> [String: Double] in
                    var top: [String: Double] = [:]
                    for t in e.top { top[piece(t.token)] = Double(t.logprob) }
                    return top
                }]
    }
}

/// Gathers a non-streaming request's events.
struct Collector {
    var output: GenerationOutput?
    var failure: String?

    mutating func take(_ event: EngineEvent) {
        switch event {
        case .finished(let o): output = o
        case .failed(_, let message): failure = message
        case .token, .text: break
        }
    }
}
