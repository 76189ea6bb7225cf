// The OpenAI-compatible HTTP server on the coordinator rank (Hummingbird 2; lifecycle and signals by
// swift-service-lifecycle): completions and chat completions, streamed as server-sent events or whole, models,
// health, tokenize / detokenize and Prometheus metrics. Handlers never touch the scheduler: they post to the
// `EngineLoop` and read their request's events.
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import TesseraEngine
import TesseraFormats

/// How the server listens and what it accepts.
public struct ServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Bearer token every /v1, /tokenize and /detokenize request must carry (nil: none).
    public var apiKey: String?
    public var maxBodyBytes = 4 << 20
    /// Seconds running requests may take to finish after SIGTERM before they are cancelled.
    public var drainSeconds = 30.0

    public init() {}
}

public final class OpenAIServer: Sendable {
    let options: ServerOptions
    let engine: EngineLoop
    let metrics: ServerMetrics
    private let state = ModelBox()
    private let connections: ConnectionWatch

    public init(options: ServerOptions, engine: EngineLoop, metrics: ServerMetrics) {
        self.options = options; self.engine = engine; self.metrics = metrics
        connections = ConnectionWatch(engine: engine)
    }

    /// The model is loaded: requests are served from now on.
    public func ready(_ model: ServedModel) { state.set(model) }

    /// Serves until SIGTERM or SIGINT, then refuses new requests, lets running ones finish (for at most
    /// `drainSeconds`), closes the listener and stops the engine. `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        var logger = Logger(label: "tessera.server")
        logger.logLevel = .error
        let connections = self.connections
        let app = Application(router: router(),
                              server: .http1(configuration: .init(additionalChannelHandlers: [InputClosedHandler(connections: connections)])),
                              configuration: .init(address: .hostname(options.host, port: options.port),
                                                                      serverName: "tessera"),
                              onServerRunning: { onListening($0.localAddress?.port ?? -1) }, logger: logger)
        let drain = DrainOnShutdown(engine: engine, seconds: options.drainSeconds)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: drain, successTerminationBehavior: .ignore)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { engine.stop() }
        try await group.run()
    }

    // MARK: routes

    func router() -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.get("/health") { _, _ in
            switch self.engine.snapshot.phase {
            case .ready: return jsonResponse(["status": "ok"])
            case .loading: return errorResponse(APIError(status: 503, message: "the model is loading"))
            case .draining, .stopped: return errorResponse(APIError(status: 503, message: "the server is shutting down"))
            case .failed(let why): return errorResponse(APIError(status: 503, message: "the engine failed: \(why)"))
            }
        }
        router.get("/metrics") { _, _ in
            var buffer = ByteBuffer()
            buffer.writeBytes(self.metrics.render())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: buffer))
        }
        router.get("/v1/models") { request, _ in
            try await self.guarded(request) { model, _ in
                jsonResponse(["object": "list", "data": [[
                    "id": model.name, "object": "model", "created": model.created, "owned_by": "tessera",
                    "max_model_len": model.context] as [String: Any]]])
            }
        }
        router.post("/v1/completions") { request, context in
            try await self.guarded(request) { model, body in
                try await self.complete(body, endpoint: .completion, model: model, channel: context.channel)
            }
        }
        router.post("/v1/chat/completions") { request, context in
            try await self.guarded(request) { model, body in
                try await self.complete(body, endpoint: .chat, model: model, channel: context.channel)
            }
        }
        router.post("/tokenize") { request, _ in
            try await self.guarded(request) { model, body in try tokenize(body, model: model) }
        }
        router.post("/detokenize") { request, _ in
            try await self.guarded(request) { model, body in try detokenize(body, model: model) }
        }
        return router
    }

    /// Checks the key, waits for nothing (503 while loading), reads the body, and turns `APIError`s into answers.
    private func guarded(_ request: Request, _ handle: (ServedModel, [String: JSONValue]) async throws -> Response) async throws -> Response {
        do {
            if let key = options.apiKey, request.headers[.authorization] != "Bearer \(key)" {
                throw APIError(status: 401, message: "missing or wrong API key (send 'Authorization: Bearer KEY')",
                               code: "invalid_api_key")
            }
            guard let model = state.get() else { throw APIError(status: 503, message: "the model is loading") }
            var body: [String: JSONValue] = [:]
            if request.method == .post {
                if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > options.maxBodyBytes {
                    throw tooLarge(length)
                }
                let buffer: ByteBuffer
                do { buffer = try await request.body.collect(upTo: options.maxBodyBytes) } catch is NIOTooManyBytesError {
                    throw tooLarge(nil)
                }
                body = try parseBody(Array(buffer.readableBytesView))
            }
            return try await handle(model, body)
        } catch let error as APIError {
            return errorResponse(error)
        }
    }

    private func tooLarge(_ length: Int?) -> APIError {
        APIError(status: 413, message: "the request body" + (length.map { " has \($0) bytes; it" } ?? "") +
                 " is over the limit of \(options.maxBodyBytes) bytes (--max-body-bytes)", code: "request_too_large")
    }

    // MARK: completions

    private func complete(_ body: [String: JSONValue], endpoint: Endpoint, model: ServedModel,
                          channel: any Channel) async throws -> Response {
        let job = try parseCompletion(body, endpoint: endpoint, model: model)
        let (id, events) = engine.submit(job.request)
        let reply = Reply(job: job, model: model, id: (endpoint == .chat ? "chatcmpl-" : "cmpl-") + "\(id)")
        var iterator = events.makeAsyncIterator()
        // The first event tells a refusal (answered with its status) from a start.
        let first = await withTaskCancellationHandler { await iterator.next() } onCancel: { self.engine.cancel(id) }
        if case .failed(let status, let message)? = first {
            throw APIError(status: status, message: message, param: status == 400 ? (endpoint == .chat ? "messages" : "prompt") : nil)
        }
        guard job.stream else {
            // Nothing is written until the end, so a client that goes away is seen by its connection closing.
            connections.watch(channel, request: id)
            defer { connections.forget(channel, request: id) }
            var collector = Collector()
            if let first { collector.take(first) }
            while let event = await withTaskCancellationHandler(operation: { await iterator.next() },
                                                               onCancel: { self.engine.cancel(id) }) {
                collector.take(event)
            }
            guard let output = collector.output else {
                throw APIError(status: 503, message: collector.failure ?? "the request ended without a result")
            }
            return jsonResponse(reply.whole(output))
        }
        let engine = self.engine
        let stream = UnsafeTransfer(iterator)
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { writer in
            var iterator = stream.value
            var pending: [TokenLogprob] = []
            var event = first
            do {
                try await writer.write(sse(reply.opening()))
                while let e = event {
                    switch e {
                    case .token(_, let logprob): if let logprob { pending.append(logprob) }
                    case .text(let text):
                        try await writer.write(sse(reply.chunk(text, logprobs: pending)))
                        pending.removeAll()
                    case .finished(let output):
                        if !pending.isEmpty { try await writer.write(sse(reply.chunk("", logprobs: pending))) }
                        for chunk in reply.closing(output) { try await writer.write(sse(chunk)) }
                    case .failed(let status, let message):
                        try await writer.write(sse(APIError(status: status, message: message).json))
                    }
                    event = await iterator.next()
                }
                var done = ByteBuffer()
                done.writeString("data: [DONE]\n\n")
                try await writer.write(done)
                try await writer.finish(nil)
            } catch {
                engine.cancel(id)         // the client went away: free its blocks now
                throw error
            }
        })
    }
}

/// Cancels what is still running once graceful shutdown starts and the drain time is up.
struct DrainOnShutdown: Service {
    let engine: EngineLoop
    let seconds: Double
    func run() async throws {
        try? await gracefulShutdown()
        engine.beginDrain(deadline: Date().addingTimeInterval(seconds))
    }
}

/// The request context: Hummingbird's core storage and the connection, so a non-streaming request can be cancelled
/// when its client disconnects (Hummingbird does not cancel the handler's task then).
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Non-streaming requests waiting on each open connection, cancelled when the client's side of it ends. The server
/// allows half-closed connections, so a client that goes away shows up as the end of its input (`inputClosed`), not
/// as the channel closing; as in uvicorn, the end of input while a response is pending counts as a disconnect.
final class ConnectionWatch: @unchecked Sendable {
    private let lock = NSLock()
    private var waiting: [ObjectIdentifier: Set<Int>] = [:]
    private var ended: Set<ObjectIdentifier> = []
    private let engine: EngineLoop

    init(engine: EngineLoop) { self.engine = engine }

    func watch(_ channel: any Channel, request id: Int) {
        let key = ObjectIdentifier(channel)
        lock.lock()
        let gone = ended.contains(key)
        if !gone { waiting[key, default: []].insert(id) }
        lock.unlock()
        if gone { engine.cancel(id) }
    }

    func forget(_ channel: any Channel, request id: Int) {
        lock.lock()
        waiting[ObjectIdentifier(channel)]?.remove(id)
        lock.unlock()
    }

    /// The client's side of `channel` ended: what waits on it is cancelled.
    func inputClosed(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        lock.lock()
        let ids = waiting.removeValue(forKey: key) ?? []
        ended.insert(key)
        lock.unlock()
        for id in ids { engine.cancel(id) }
    }

    /// The connection is gone: forget it.
    func closed(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        lock.lock()
        waiting[key] = nil
        ended.remove(key)
        lock.unlock()
    }
}

/// Tells the connection watch when a client's input ends or its connection closes (one per connection, in the
/// pipeline after HTTP decoding).
final class InputClosedHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = Any   // passed on untouched
    typealias InboundOut = Any
    let connections: ConnectionWatch
    init(connections: ConnectionWatch) { self.connections = connections }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { connections.inputClosed(context.channel) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connections.closed(context.channel)
        context.fireChannelInactive()
    }
}

/// The loaded model, set once from the engine's thread and read by handlers.
final class ModelBox: @unchecked Sendable {
    private let lock = NSLock()
    private var model: ServedModel?
    func set(_ m: ServedModel) { lock.lock(); model = m; lock.unlock() }
    func get() -> ServedModel? { lock.lock(); defer { lock.unlock() }; return model }
}

/// Hands a value that is used by one task at a time to a `@Sendable` closure.
struct UnsafeTransfer<T>: @unchecked Sendable { var value: T; init(_ v: T) { value = v } }

// MARK: tokenize

func tokenize(_ body: [String: JSONValue], model: ServedModel) throws -> Response {
    let f = Fields(body: body)
    let tokens: [Int]
    if f.present("messages") != nil {
        tokens = try model.chatTokens(try chatMessages(f), addGenerationPrompt: try f.bool("add_generation_prompt") ?? true)
    } else if let prompt = try f.string("prompt") {
        tokens = model.tokenizer.encode(prompt, addSpecialTokens: try f.bool("add_special_tokens") ?? true)
    } else {
        throw APIError.invalid("prompt", "give 'prompt' (a string) or 'messages'")
    }
    return jsonResponse(["tokens": tokens, "count": tokens.count, "max_model_len": model.context])
}

func detokenize(_ body: [String: JSONValue], model: ServedModel) throws -> Response {
    guard let list = body["tokens"]?.array else { throw APIError.invalid("tokens", "'tokens' must be an array of token ids") }
    let ids = list.compactMap(\.int)
    guard ids.count == list.count else { throw APIError.invalid("tokens", "'tokens' must hold only integers") }
    let vocab = model.tokenizer.vocabularySize
    if let bad = ids.first(where: { $0 < 0 || $0 >= vocab }) {
        throw APIError.invalid("tokens", "token id \(bad) is outside the vocabulary of \(vocab)")
    }
    return jsonResponse(["prompt": model.tokenizer.decode(ids)])
}

// MARK: encoding

func jsonData(_ object: Any) -> Data {
    (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
}

func jsonResponse(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
    var buffer = ByteBuffer()
    buffer.writeBytes(jsonData(object))
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
}

func errorResponse(_ e: APIError) -> Response {
    jsonResponse(e.json, status: HTTPResponse.Status(code: e.status))
}

/// One server-sent event carrying `object` as JSON.
func sse(_ object: Any) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeString("data: ")
    buffer.writeBytes(jsonData(object))
    buffer.writeString("\n\n")
    return buffer
}
