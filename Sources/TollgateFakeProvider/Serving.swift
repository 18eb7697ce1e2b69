import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// One request after authentication and failure modes: its parsed body and what the endpoint needs to
/// answer it.
struct Call: Sendable {
    var body: JSON
    var headers: HTTPFields
    var query: [String: String]
    /// Hash of the body bytes mixed with the request's sequence number: the seed of every id.
    var seed: UInt64
    var created: Int

    /// An id `prefix` + 24 hex digits, distinct for each `salt`.
    func id(_ prefix: String, _ salt: String = "") -> String {
        let mixed = FakeRules.splitMix(FakeRules.fnv1a(salt.utf8, seed: seed))
        let second = FakeRules.splitMix(mixed)
        return prefix + hex(mixed, digits: 16) + hex(second >> 32, digits: 8)
    }

    private func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

/// What an endpoint answers.
enum Outcome: Sendable {
    /// A JSON body with status 200.
    case json(JSON)
    /// A stream of pre-rendered frames (SSE events, or pieces of a JSON array).
    case stream([String], contentType: String)
}

/// A request the fake provider refuses, rendered in each provider's own error shape.
enum Failure: Error, Sendable {
    case missingKey
    case invalidKey
    case rateLimited
    case serverError
    case overloaded
    case timedOut
    case invalidJSON
    case invalidRequest(String, param: String? = nil, code: String? = nil)
    case notFound(String)
    case tooLarge
}

/// Thrown inside a response body writer to drop the connection mid-response (`cut_stream`).
struct StreamCut: Error {}

extension FakeProvider {
    /// Authenticates, applies the failure mode, parses the body and renders what `endpoint` answers.
    func serve(
        _ request: Request, _ context: FakeProviderRequestContext, _ provider: Provider, hasBody: Bool = true,
        endpoint: @Sendable (Call) throws -> Outcome
    ) async -> Response {
        let sequence = counter.next()
        let requestID = "req_" + String(FakeRules.splitMix(sequence ^ 0x5EED), radix: 16)
        // Metadata goes on the lines themselves (only rendered when debug is on): setting it on the logger
        // makes `StreamLogHandler` re-render its metadata on every request.
        let logger = context.logger
        let path = request.uri.path
        var modeName: String?
        func metadata(_ status: Int) -> Logger.Metadata {
            var metadata: Logger.Metadata = ["tollgate.fake.path": "\(path)", "tollgate.fake.status": "\(status)"]
            if let modeName { metadata["tollgate.fake.mode"] = "\(modeName)" }
            return metadata
        }
        do {
            try authenticate(request, provider)
            let (mode, delay) = try failureMode(of: request)
            modeName = mode.rawValue
            switch mode {
            case .rateLimit: throw Failure.rateLimited
            case .serverError: throw Failure.serverError
            case .overloaded: throw Failure.overloaded
            case .timeout:
                await hang(context)
                throw Failure.timedOut
            case .none, .slowStream, .cutStream: break
            }
            var body: JSON = .object([])
            var seed = sequence
            if hasBody {
                let buffer: ByteBuffer
                do {
                    buffer = try await request.body.collect(upTo: configuration.maximumBodySize)
                } catch {
                    throw Failure.tooLarge
                }
                let bytes = buffer.readableBytesView
                do {
                    body = try JSON.parse(bytes)
                } catch {
                    throw Failure.invalidJSON
                }
                guard case .object = body else {
                    throw Failure.invalidRequest("The request body must be a JSON object.")
                }
                seed = FakeRules.fnv1a(bytes) ^ FakeRules.splitMix(sequence)
            }
            var query: [String: String] = [:]
            for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
            let call = Call(
                body: body, headers: request.headers, query: query, seed: seed,
                created: Int(Duration.secondsSinceEpoch))
            let outcome = try endpoint(call)
            logger.debug("fake provider answered", metadata: metadata(200))
            return render(outcome, mode: mode, delay: delay, provider: provider, requestID: requestID)
        } catch let failure as Failure {
            let response = provider.errorResponse(failure, requestID: requestID)
            logger.debug("fake provider refused", metadata: metadata(response.status.code))
            return response
        } catch {
            return provider.errorResponse(.serverError, requestID: requestID)
        }
    }

    private func authenticate(_ request: Request, _ provider: Provider) throws(Failure) {
        let key: String?
        switch provider {
        case .openAI:
            key = Self.bearer(request.headers[.authorization])
        case .anthropic:
            key = request.headers[.xAPIKey] ?? Self.bearer(request.headers[.authorization])
        case .gemini:
            key = request.headers[.xGoogAPIKey] ?? request.uri.queryParameters["key"].map(String.init)
        }
        guard let key, !key.isEmpty else { throw .missingKey }
        if let required = configuration.requiredKey, key != required { throw .invalidKey }
        if provider == .anthropic, request.method == .post, request.headers[.anthropicVersion] == nil {
            throw .invalidRequest("anthropic-version: header is required")
        }
    }

    private static func bearer(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingASCIISpaces()
    }

    private func failureMode(of request: Request) throws(Failure) -> (FailureMode, Duration) {
        var mode = configuration.mode
        if let header = request.headers[.xFakeMode] {
            guard let parsed = FailureMode(rawValue: header.trimmingASCIISpaces().lowercased()) else {
                throw .invalidRequest(
                    "x-fake-mode: unknown mode '\(header)'; expected one of "
                        + FailureMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
            mode = parsed
        }
        var delay = configuration.streamDelay
        if let header = request.headers[.xFakeDelayMs] {
            guard let milliseconds = Int(header.trimmingASCIISpaces()), (0...600_000).contains(milliseconds) else {
                throw .invalidRequest("x-fake-delay-ms: expected milliseconds between 0 and 600000")
            }
            delay = .milliseconds(milliseconds)
        }
        return (mode, delay)
    }

    /// Waits until the client closes the connection, the server shuts down or the maximum hang passes.
    private func hang(_ context: FakeProviderRequestContext) async {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: configuration.maximumHang)
        // The server allows half-closed connections, so a client that gives up shows as end of input
        // rather than an inactive channel: a handler at the front of the pipeline watches for it.
        let watcher = ClientGoneWatcher()
        var watching = false
        if let channel = context.channel, channel.isActive {
            watching = (try? await channel.pipeline.addHandler(watcher, position: .first).get()) != nil
        }
        while clock.now < deadline, !Task.isCancelled, !Task.isShuttingDownGracefully, !watcher.isGone {
            try? await Task.sleep(for: min(.milliseconds(50), clock.now.duration(to: deadline)))
        }
        if watching, let channel = context.channel {
            _ = try? await channel.pipeline.removeHandler(watcher).get()
        }
    }

    private func render(
        _ outcome: Outcome, mode: FailureMode, delay: Duration, provider: Provider, requestID: String
    ) -> Response {
        var headers = provider.successHeaders(requestID: requestID)
        switch outcome {
        case .json(let json):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(1024)
            json.write(to: &bytes)
            headers[.contentType] = "application/json"
            let buffer = ByteBuffer(bytes: bytes)
            switch mode {
            case .slowStream:
                return Response(
                    status: .ok, headers: headers,
                    body: ResponseBody(contentLength: buffer.readableBytes) { writer in
                        try await Task.sleep(for: delay)
                        try await writer.write(buffer)
                        try await writer.finish(nil)
                    })
            case .cutStream:
                return Response(
                    status: .ok, headers: headers,
                    body: ResponseBody(contentLength: buffer.readableBytes) { writer in
                        try await writer.write(buffer.getSlice(at: buffer.readerIndex, length: buffer.readableBytes / 2)!)
                        throw StreamCut()
                    })
            default:
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: buffer))
            }
        case .stream(let frames, let contentType):
            headers[.contentType] = contentType
            headers[.cacheControl] = "no-cache"
            let cut: Int? = mode == .cutStream ? Self.cutIndex(frameCount: frames.count) : nil
            let slow = mode == .slowStream
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    for (index, frame) in frames.enumerated() {
                        if let cut, index == cut { throw StreamCut() }
                        if slow, index > 0 { try await Task.sleep(for: delay) }
                        try await writer.write(ByteBuffer(string: frame))
                    }
                    try await writer.finish(nil)
                })
        }
    }

    /// How many frames a cut stream sends: about half, at least one, never the last.
    static func cutIndex(frameCount: Int) -> Int {
        max(0, min(frameCount - 1, max(1, frameCount / 2)))
    }
}

extension Duration {
    static var secondsSinceEpoch: Double { Date().timeIntervalSince1970 }
}

extension StringProtocol {
    func trimmingASCIISpaces() -> String {
        let utf8 = Array(self.utf8)
        var start = 0
        var end = utf8.count
        while start < end, utf8[start] == 0x20 || utf8[start] == 0x09 { start += 1 }
        while end > start, utf8[end - 1] == 0x20 || utf8[end - 1] == 0x09 { end -= 1 }
        return String(decoding: utf8[start..<end], as: UTF8.self)
    }
}

// MARK: - Frames

enum Frames {
    /// An SSE event with only a data line: `data: {json}\n\n`.
    static func data(_ json: JSON) -> String { "data: " + json.serialized + "\n\n" }

    /// An SSE event with an event name: `event: name\ndata: {json}\n\n`.
    static func event(_ name: String, _ json: JSON) -> String {
        "event: " + name + "\ndata: " + json.serialized + "\n\n"
    }

    static let eventStream = "text/event-stream; charset=utf-8"
}

// MARK: - Error shapes

extension Provider {
    func successHeaders(requestID: String) -> HTTPFields {
        switch self {
        case .openAI: [.xRequestID: requestID]
        case .anthropic: [.requestID: requestID]
        case .gemini: [:]
        }
    }

    func errorResponse(_ failure: Failure, requestID: String) -> Response {
        let (status, body) = errorBody(failure, requestID: requestID)
        var headers = successHeaders(requestID: requestID)
        headers[.contentType] = "application/json"
        if case .rateLimited = failure { headers[.retryAfter] = "1" }
        var bytes: [UInt8] = []
        body.write(to: &bytes)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func errorBody(_ failure: Failure, requestID: String) -> (Int, JSON) {
        switch self {
        case .openAI:
            func error(_ status: Int, _ message: String, type: String, param: String? = nil, code: String? = nil)
                -> (Int, JSON)
            {
                (status, .object([("error", .object([
                    ("message", .string(message)), ("type", .string(type)), ("param", .optional(param)),
                    ("code", .optional(code)),
                ]))]))
            }
            switch failure {
            case .missingKey:
                return error(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    type: "invalid_request_error")
            case .invalidKey:
                return error(401, "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")
            case .rateLimited:
                return error(
                    429, "Rate limit reached for requests per min (RPM). Please try again in 1s.", type: "requests",
                    code: "rate_limit_exceeded")
            case .serverError:
                return error(500, "The server had an error while processing your request. Sorry about that!",
                             type: "server_error")
            case .overloaded:
                return error(503, "The engine is currently overloaded, please try again later.", type: "server_error")
            case .timedOut:
                return error(504, "Request timed out.", type: "timeout")
            case .invalidJSON:
                return error(
                    400,
                    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
                    type: "invalid_request_error")
            case .invalidRequest(let message, let param, let code):
                return error(400, message, type: "invalid_request_error", param: param, code: code)
            case .notFound(let message):
                return error(404, message, type: "invalid_request_error")
            case .tooLarge:
                return error(413, "The request body is too large.", type: "invalid_request_error")
            }
        case .anthropic:
            func error(_ status: Int, _ type: String, _ message: String) -> (Int, JSON) {
                (status, .object([
                    ("type", "error"),
                    ("error", .object([("type", .string(type)), ("message", .string(message))])),
                    ("request_id", .string(requestID)),
                ]))
            }
            switch failure {
            case .missingKey: return error(401, "authentication_error", "x-api-key header is required")
            case .invalidKey: return error(401, "authentication_error", "invalid x-api-key")
            case .rateLimited:
                return error(429, "rate_limit_error", "This request would exceed the rate limit for your organization. Please try again later.")
            case .serverError: return error(500, "api_error", "Internal server error")
            case .overloaded: return error(529, "overloaded_error", "Overloaded")
            case .timedOut: return error(504, "timeout_error", "Request timed out")
            case .invalidJSON:
                return error(400, "invalid_request_error", "The request body is not valid JSON.")
            case .invalidRequest(let message, _, _): return error(400, "invalid_request_error", message)
            case .notFound(let message): return error(404, "not_found_error", message)
            case .tooLarge:
                return error(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
            }
        case .gemini:
            func error(_ status: Int, _ state: String, _ message: String, details: JSON? = nil) -> (Int, JSON) {
                var members: [(String, JSON)] = [
                    ("code", .int(status)), ("message", .string(message)), ("status", .string(state)),
                ]
                if let details { members.append(("details", details)) }
                return (status, .object([("error", .object(members))]))
            }
            switch failure {
            case .missingKey:
                return error(
                    403, "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
            case .invalidKey:
                return error(
                    400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                    details: [.object([
                        ("@type", "type.googleapis.com/google.rpc.ErrorInfo"), ("reason", "API_KEY_INVALID"),
                        ("domain", "googleapis.com"),
                        ("metadata", .object([("service", "generativelanguage.googleapis.com")])),
                    ])])
            case .rateLimited:
                return error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
            case .serverError:
                return error(500, "INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting")
            case .overloaded: return error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
            case .timedOut: return error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")
            case .invalidJSON:
                return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.")
            case .invalidRequest(let message, _, _): return error(400, "INVALID_ARGUMENT", message)
            case .notFound(let message): return error(404, "NOT_FOUND", message)
            case .tooLarge: return error(400, "INVALID_ARGUMENT", "Request payload size exceeds the limit.")
            }
        }
    }
}

/// Notices when the client of a hanging request closes its side of the connection.
final class ClientGoneWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private let gone = Atomic<Bool>(false)

    var isGone: Bool { gone.load(ordering: .relaxed) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { gone.store(true, ordering: .relaxed) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        gone.store(true, ordering: .relaxed)
        context.fireChannelInactive()
    }
}
