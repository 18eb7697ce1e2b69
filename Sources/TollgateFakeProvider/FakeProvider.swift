import HTTPTypes
public import Hummingbird
public import Logging
import NIOCore
import Synchronization

/// A deterministic stand-in for the OpenAI, Anthropic and Gemini HTTP APIs, on one port.
///
/// It speaks each provider's wire format (bodies, SSE streams, error shapes, authentication headers)
/// closely enough for the official SDKs to parse everything it sends, and answers with usage that
/// follows fixed, documented rules, so tests and benchmarks know exactly what Tollgate must meter.
///
/// ## Endpoints
/// - OpenAI: `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/responses`;
///   `GET /v1/models`.
/// - Anthropic: `POST /v1/messages`, `/v1/messages/count_tokens`; `GET /v1/models` when the request
///   has an `anthropic-version` or `x-api-key` header.
/// - Gemini, under both `/v1beta/` and `/v1/`: `POST models/{model}:generateContent`,
///   `:streamGenerateContent` (`?alt=sse` gives SSE, otherwise a streamed JSON array), `:countTokens`,
///   `:embedContent`, `:batchEmbedContents`; `GET /v1beta/models`.
///
/// ## Authentication (as the real APIs)
/// OpenAI `Authorization: Bearer K`; Anthropic `x-api-key: K` or `Authorization: Bearer K`, plus a
/// required `anthropic-version` header; Gemini `x-goog-api-key: K` or `?key=K`. A missing key gets the
/// provider's own answer (OpenAI and Anthropic 401; Gemini 403 `PERMISSION_DENIED`). With
/// ``Configuration/requiredKey`` set, any other key is refused (OpenAI 401 `invalid_api_key`, Anthropic
/// 401 `authentication_error`, Gemini 400 `API_KEY_INVALID`). Keys are never logged.
///
/// ## Usage rules
/// Tokens of a text are `ceil(UTF-8 bytes / 4)` (``FakeRules/tokens(_:)``), taken over the sum of the
/// bytes of the request's counted text fields:
/// - OpenAI chat: every message's `content` when a string, or the `text` of each content part.
///   Completions: `prompt` (strings; a token array counts one token per element). Embeddings: `input`
///   likewise. Responses: `instructions`, and `input` when a string, or each input item's `content`
///   (string or the parts' `text`) and each `function_call_output` item's `output`.
/// - Anthropic: `system` (string or the blocks' `text`), and every message's `content` (string, the
///   `text` of text blocks, and the `content` of `tool_result` blocks, string or text blocks).
/// - Gemini: the `text` of every part of `systemInstruction` and of every entry of `contents`.
///
/// Tool definitions, roles, images and other fields are not counted.
///
/// The reply (``FakeRules/reply(echoing:maxTokens:)``): `Echo:` followed by the words (split on ASCII
/// whitespace) of the text of the request's last message (OpenAI last message / last input item / the
/// prompt; Anthropic last message; Gemini last `contents` entry), at most 32 words. If the request's
/// output limit (`max_completion_tokens` or `max_tokens`, `max_output_tokens`, Anthropic `max_tokens`,
/// Gemini `generationConfig.maxOutputTokens`; legacy completions default to 16 like the real API) is
/// lower, the reply keeps that many words and stops for length (`length`, `max_tokens`,
/// `MAX_TOKENS`, Responses `incomplete`). Output tokens of a text reply: its number of words.
///
/// Tool calls: when the request offers function tools and its tool choice does not forbid them
/// (`none`, Gemini mode `NONE`), and its last message is not a tool result, the reply is one call to the
/// tool the choice names, or else the first tool, with ``FakeRules/placeholderArguments(for:)``
/// arguments. Its output tokens: `ceil(UTF-8 bytes of the compact arguments JSON / 4)`.
///
/// Reasoning tokens (added to the output tokens wherever the provider counts them there):
/// - OpenAI: `reasoning_effort` (chat) or `reasoning.effort` (Responses) set, or a model named `o` +
///   digit (effort `medium` unless set): ``FakeRules/reasoningTokens(effort:)`` (minimal 8, low 32,
///   medium 64, high 128, xhigh 256, none 0). Shown in `completion_tokens_details.reasoning_tokens` /
///   `output_tokens_details.reasoning_tokens`, included in `completion_tokens` / `output_tokens`.
/// - Anthropic: `thinking.type` `enabled` gives `min(budget_tokens, 64)`, `adaptive` gives 64; a
///   thinking block comes first in the content; included in `output_tokens`.
/// - Gemini: `generationConfig.thinkingConfig` with `thinkingBudget` (`min(budget, 64)`, `-1` gives
///   64, `0` none) or `thinkingLevel` (the effort table); reported as `thoughtsTokenCount`, not in
///   `candidatesTokenCount`, but in `totalTokenCount`.
///
/// Cache:
/// - OpenAI: with a `prompt_cache_key` and at least 1024 input tokens, `cached_tokens` is the largest
///   multiple of 128 not above the input tokens; `prompt_tokens` / `input_tokens` include them.
/// - Anthropic: the text of blocks (system or message content) that carry `cache_control` is a cache
///   write, 1-hour when its `ttl` is `"1h"`, otherwise 5-minute; with the request header
///   `x-fake-cache: read` it is a cache read instead. Each class is `ceil(bytes / 4)` of its own text:
///   `input_tokens` excludes both, `cache_creation_input_tokens` = 5m + 1h writes.
/// - Gemini: a request naming `cachedContent` has 1024 cached tokens, counted in
///   `cachedContentTokenCount` and included in `promptTokenCount`.
///
/// Embeddings: ``FakeRules/embedding(of:dimensions:)``, 16 dimensions unless the request asks
/// (`dimensions`, `outputDimensionality`); OpenAI `encoding_format: base64` gives little-endian
/// float32 bytes in base64 (the openai SDK asks for it by default).
///
/// ## Failure modes
/// Header `x-fake-mode` (or ``Configuration/mode`` for every request): `none`, `rate_limit` (429 in
/// the provider's shape, `retry-after: 1`), `server_error` (500), `overloaded` (Anthropic 529, OpenAI
/// and Gemini 503), `slow_stream` (waits `x-fake-delay-ms`, default ``Configuration/streamDelay``,
/// between stream chunks, or once before a non-streaming answer), `cut_stream` (sends about half of the
/// stream, or half of a non-streaming body, then closes the connection without the terminal event),
/// `timeout` (answers nothing until the client goes away, at most ``Configuration/maximumHang``, then
/// 504). An unknown mode is a 400. Malformed JSON and missing required fields are 400s in the
/// provider's shape.
///
/// Ids (`chatcmpl-…`, `msg_…`, `toolu_…`, …) derive from a hash of the request body and a per-process
/// request counter. Not emulated: `n` (always one choice), stop sequences, images and audio,
/// server-side tools, stored responses (`previous_response_id` is echoed, not resolved).
public struct FakeProvider: Sendable {
    public struct Configuration: Sendable {
        /// The failure mode of requests without an `x-fake-mode` header. Default `.none`.
        public var mode: FailureMode
        /// When set, the only API key accepted. Default nil: any non-empty key is accepted.
        public var requiredKey: String?
        /// Delay between stream chunks in `slow_stream` mode without `x-fake-delay-ms`. Default 100 ms.
        public var streamDelay: Duration
        /// Longest a `timeout` request hangs before the server answers 504. Default 60 s.
        public var maximumHang: Duration
        /// Largest request body accepted. Default 32 MiB.
        public var maximumBodySize: Int

        public init(
            mode: FailureMode = .none, requiredKey: String? = nil, streamDelay: Duration = .milliseconds(100),
            maximumHang: Duration = .seconds(60), maximumBodySize: Int = 32 << 20
        ) {
            self.mode = mode
            self.requiredKey = requiredKey
            self.streamDelay = streamDelay
            self.maximumHang = maximumHang
            self.maximumBodySize = maximumBodySize
        }
    }

    public var configuration: Configuration
    public var logger: Logger
    let counter = RequestCounter()

    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "tollgate.fake-provider")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The router with every endpoint.
    public func buildRouter() -> Router<FakeProviderRequestContext> {
        let router = Router(context: FakeProviderRequestContext.self)
        router.add(middleware: NotFoundMiddleware())
        router.post("/v1/chat/completions") { request, context in
            await self.serve(request, context, .openAI) { try self.openAIChat($0) }
        }
        router.post("/v1/completions") { request, context in
            await self.serve(request, context, .openAI) { try self.openAICompletion($0) }
        }
        router.post("/v1/embeddings") { request, context in
            await self.serve(request, context, .openAI) { try self.openAIEmbeddings($0) }
        }
        router.post("/v1/responses") { request, context in
            await self.serve(request, context, .openAI) { try self.openAIResponse($0) }
        }
        router.get("/v1/models") { request, context in
            let provider: Provider = Self.looksLikeAnthropic(request) ? .anthropic : .openAI
            return await self.serve(request, context, provider, hasBody: false) { _ in
                provider == .anthropic ? self.anthropicModels() : self.openAIModels()
            }
        }
        router.post("/v1/messages") { request, context in
            await self.serve(request, context, .anthropic) { try self.anthropicMessage($0) }
        }
        router.post("/v1/messages/count_tokens") { request, context in
            await self.serve(request, context, .anthropic) { try self.anthropicCountTokens($0) }
        }
        for version in ["v1beta", "v1"] {
            router.post("/\(version)/models/:target") { request, context in
                let target = context.parameters.get("target") ?? ""
                return await self.serve(request, context, .gemini) { try self.gemini($0, target: target) }
            }
        }
        router.get("/v1beta/models") { request, context in
            await self.serve(request, context, .gemini, hasBody: false) { _ in self.geminiModels() }
        }
        return router
    }

    /// An application serving ``buildRouter()`` on `host`:`port` (0 picks a free port). It logs
    /// `fake provider listening` with metadata `tollgate.port` once it accepts connections, then calls
    /// `onListening` with the bound port.
    public func buildApplication(
        host: String = "127.0.0.1", port: Int = 4010,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let logger = self.logger
        return Application(
            router: buildRouter(),
            configuration: .init(address: .hostname(host, port: port), serverName: "tollgate-fake-provider"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                logger.info(
                    "fake provider listening",
                    metadata: ["tollgate.host": "\(host)", "tollgate.port": "\(bound)"])
                await onListening(bound)
            },
            logger: logger
        )
    }

    /// Serves until SIGINT or SIGTERM.
    public func run(
        host: String = "127.0.0.1", port: Int = 4010,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        try await buildApplication(host: host, port: port, onListening: onListening).runService()
        logger.info("fake provider stopped")
    }

    static func looksLikeAnthropic(_ request: Request) -> Bool {
        request.headers[.anthropicVersion] != nil || request.headers[.xAPIKey] != nil
    }
}

/// The request context of the fake provider: Hummingbird's core storage plus the connection, so a
/// hanging request notices when its client has gone.
public struct FakeProviderRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

/// How the fake provider misbehaves for a request.
public enum FailureMode: String, Sendable, CaseIterable {
    /// Answer normally.
    case none
    /// 429 in the provider's shape with `retry-after: 1`.
    case rateLimit = "rate_limit"
    /// 500 in the provider's shape.
    case serverError = "server_error"
    /// Anthropic 529 `overloaded_error`; OpenAI and Gemini 503.
    case overloaded
    /// A delay between stream chunks (once before a non-streaming answer).
    case slowStream = "slow_stream"
    /// Part of the stream (or body), then the connection closes.
    case cutStream = "cut_stream"
    /// No answer until the client gives up (bounded), then 504.
    case timeout
}

/// The providers whose APIs the fake provider speaks.
enum Provider: Sendable {
    case openAI, anthropic, gemini
}

final class RequestCounter: Sendable {
    private let value = Atomic<UInt64>(0)

    func next() -> UInt64 { value.add(1, ordering: .relaxed).newValue }
}

extension HTTPField.Name {
    static let xAPIKey = Self("x-api-key")!
    static let anthropicVersion = Self("anthropic-version")!
    static let xGoogAPIKey = Self("x-goog-api-key")!
    static let xFakeMode = Self("x-fake-mode")!
    static let xFakeDelayMs = Self("x-fake-delay-ms")!
    static let xFakeCache = Self("x-fake-cache")!
    static let xRequestID = Self("x-request-id")!
    static let requestID = Self("request-id")!
}

/// Turns the router's plain 404 into the provider's own "not found" shape.
struct NotFoundMiddleware: RouterMiddleware {
    typealias Context = FakeProviderRequestContext

    func handle(
        _ request: Request, context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError where error.status == .notFound {
            let path = request.uri.path
            let provider: Provider =
                path.hasPrefix("/v1beta/") || path.contains(":") || request.uri.queryParameters["key"] != nil
                    || request.headers[.xGoogAPIKey] != nil
                ? .gemini : FakeProvider.looksLikeAnthropic(request) ? .anthropic : .openAI
            let message =
                switch provider {
                case .openAI: "Invalid URL (\(request.method) \(path))"
                case .anthropic: "Not found"
                case .gemini: "Requested entity was not found."
                }
            return provider.errorResponse(.notFound(message), requestID: "req_notfound")
        }
    }
}
