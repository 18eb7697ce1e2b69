public import Foundation
public import TollgateEvents

/// An API endpoint Tollgate proxies, with the provider it belongs to.
public enum Endpoint: String, Sendable, Hashable, CaseIterable {
    case openAIChatCompletions = "/v1/chat/completions"
    case openAICompletions = "/v1/completions"
    case openAIEmbeddings = "/v1/embeddings"
    case openAIResponses = "/v1/responses"
    case openAIModels = "/v1/models"
    case anthropicMessages = "/v1/messages"
    case anthropicCountTokens = "/v1/messages/count_tokens"
    /// `/v1beta/models/{model}:generateContent` and the same under `/v1/`.
    case geminiGenerateContent = ":generateContent"
    case geminiStreamGenerateContent = ":streamGenerateContent"
    case geminiCountTokens = ":countTokens"
    case geminiEmbedContent = ":embedContent"
    case geminiBatchEmbedContents = ":batchEmbedContents"

    public var provider: Provider {
        switch self {
        case .openAIChatCompletions, .openAICompletions, .openAIEmbeddings, .openAIResponses, .openAIModels:
            return .openai
        case .anthropicMessages, .anthropicCountTokens:
            return .anthropic
        case .geminiGenerateContent, .geminiStreamGenerateContent, .geminiCountTokens, .geminiEmbedContent,
             .geminiBatchEmbedContents:
            return .gemini
        }
    }

    /// Whether the provider bills tokens for this endpoint (counting tokens and listing models are free).
    public var isBilled: Bool {
        switch self {
        case .openAIModels, .anthropicCountTokens, .geminiCountTokens: return false
        default: return true
        }
    }
}

/// What metering and policy need to know about a request; the body itself goes upstream untouched.
public struct RequestFacts: Sendable, Hashable {
    /// The model the client asked for (from the body, or from the path for Gemini).
    public var model: String?
    /// The response will be a server-sent-event stream.
    public var stream: Bool
    /// The client's cap on output tokens (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
    /// `generationConfig.maxOutputTokens`).
    public var maxOutputTokens: Int?
    /// Number of tools (functions) offered to the model.
    public var toolCount: Int
    /// OpenAI's `user` field (used as the customer when no `x-tollgate-customer` header is sent).
    public var user: String?
    /// A local estimate of the input tokens (for reservations and for usage the provider never reported).
    public var estimatedInputTokens: Int
    /// OpenAI streams: the client itself asked for `stream_options.include_usage`.
    ///
    /// Only the OpenAI dialect reads it (to add the option upstream and drop the usage chunk the client
    /// did not ask for); the other dialects set it to `false`, their streams always carry usage.
    public var clientRequestedStreamUsage: Bool

    public init(model: String?, stream: Bool, maxOutputTokens: Int?, toolCount: Int, user: String?,
                estimatedInputTokens: Int, clientRequestedStreamUsage: Bool) {
        self.model = model
        self.stream = stream
        self.maxOutputTokens = maxOutputTokens
        self.toolCount = toolCount
        self.user = user
        self.estimatedInputTokens = estimatedInputTokens
        self.clientRequestedStreamUsage = clientRequestedStreamUsage
    }
}

/// Why a request body was refused before it went upstream (answered with a 400 in the provider's shape).
public enum RequestError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidUTF8
    case malformedJSON(String)
    case notAnObject
    case wrongType(field: String, expected: String)
    case missingField(String)

    public var description: String {
        switch self {
        case .invalidUTF8: return "the request body is not valid UTF-8"
        case .malformedJSON(let detail): return "the request body is not valid JSON: \(detail)"
        case .notAnObject: return "the request body must be a JSON object"
        case .wrongType(let field, let expected): return "'\(field)' must be \(expected)"
        case .missingField(let field): return "'\(field)' is required"
        }
    }
}

/// Errors Tollgate itself answers, mapped to each provider's status and error body.
public enum GatewayErrorKind: String, Sendable, Hashable, CaseIterable {
    /// 401: missing, unknown, expired or revoked key.
    case unauthenticated
    /// 403: the key may not use this model.
    case permissionDenied
    /// 400: malformed JSON, wrong types, invalid UTF-8.
    case invalidRequest
    /// 413: body over the configured limit.
    case requestTooLarge
    /// 404: unknown path.
    case notFound
    /// 429: a budget blocks the request (OpenAI `insufficient_quota`).
    case quotaExceeded
    /// 502: the upstream refused the connection or is unreachable.
    case upstreamUnavailable
    /// 504: the upstream did not answer in time.
    case upstreamTimeout
    /// 500: a Tollgate bug.
    case internalError

    public var status: Int {
        switch self {
        case .unauthenticated: return 401
        case .permissionDenied: return 403
        case .invalidRequest: return 400
        case .requestTooLarge: return 413
        case .notFound: return 404
        case .quotaExceeded: return 429
        case .upstreamUnavailable: return 502
        case .upstreamTimeout: return 504
        case .internalError: return 500
        }
    }
}

/// A gateway error rendered in a provider's shape.
public struct ErrorResponse: Sendable, Hashable {
    public var status: Int
    /// Always `application/json`.
    public var contentType: String
    public var body: Data

    public init(status: Int, body: Data, contentType: String = "application/json") {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

/// Whether a streamed event goes on to the client.
public enum StreamDecision: Sendable, Hashable {
    case forward
    /// Tollgate asked for this event (OpenAI's usage chunk when the client did not): the client never sees it.
    case drop
}

/// Reads usage and the served model from a response stream while it flows.
public protocol StreamMeter: Sendable {
    /// Looks at one complete event; says whether to forward it.
    mutating func observe(_ event: SSEEvent) -> StreamDecision
    /// Usage reported by the provider so far (`nil` if none yet).
    var usage: TokenUsage? { get }
    /// The model that served the stream, once known.
    var servedModel: String? { get }
    /// The stream reached its provider-defined end (`[DONE]`, `message_stop`, `response.completed`,
    /// Gemini's finishReason on the last chunk).
    var completed: Bool { get }
    /// Characters of generated text seen so far (for estimating output when usage never comes).
    ///
    /// Counted in UTF-8 bytes, the unit of ``TokenEstimator``:
    /// `TokenEstimator.tokens(utf8Count: meter.outputCharacters)` is the output estimate.
    var outputCharacters: Int { get }
}

/// One provider's wire format: pure functions, no I/O.
public protocol ProviderDialect: Sendable {
    associatedtype Meter: StreamMeter

    static var provider: Provider { get }

    /// Parses what metering needs. `pathModel` is the model from the URL path (Gemini).
    static func requestFacts(endpoint: Endpoint, body: Data, pathModel: String?) throws(RequestError) -> RequestFacts

    /// The body to send upstream: `body` unchanged, except for documented rewrites — `model` replaced when
    /// `model` is non-nil (routing, downgrades), and for OpenAI streams whose client did not ask for it,
    /// `stream_options.include_usage: true` added. Untouched bytes stay byte-identical.
    static func upstreamBody(endpoint: Endpoint, body: Data, facts: RequestFacts, model: String?) -> Data

    /// Usage from a complete (non-streamed) response body; `nil` when it has none.
    static func usage(endpoint: Endpoint, responseBody: Data) -> TokenUsage?

    /// The served model from a complete response body.
    static func servedModel(endpoint: Endpoint, responseBody: Data) -> String?

    /// ``usage(endpoint:responseBody:)`` and ``servedModel(endpoint:responseBody:)`` together, reading
    /// the body once (the proxy needs both for every complete response).
    static func responseSummary(endpoint: Endpoint, responseBody: Data) -> ResponseSummary

    /// A meter for a streamed response to a request with these facts.
    static func meter(endpoint: Endpoint, facts: RequestFacts) -> Meter

    /// A Tollgate-originated error in this provider's shape.
    static func errorResponse(_ kind: GatewayErrorKind, message: String) -> ErrorResponse

    /// The error type string (`rate_limit_error`, `RESOURCE_EXHAUSTED`, …) from an upstream error body,
    /// for the response event's `error_type`.
    static func errorType(status: Int, responseBody: Data) -> String?
}

/// What a complete response body says about its call.
public struct ResponseSummary: Sendable, Hashable {
    /// Usage reported by the provider (`nil`: none).
    public var usage: TokenUsage?
    /// The model that served the call (`nil`: not named).
    public var servedModel: String?

    public init(usage: TokenUsage?, servedModel: String?) {
        self.usage = usage
        self.servedModel = servedModel
    }
}

extension ProviderDialect {
    public static func responseSummary(endpoint: Endpoint, responseBody: Data) -> ResponseSummary {
        ResponseSummary(usage: usage(endpoint: endpoint, responseBody: responseBody),
                        servedModel: servedModel(endpoint: endpoint, responseBody: responseBody))
    }
}

extension Endpoint {
    /// The dialect that speaks this endpoint's wire format.
    ///
    /// ```swift
    /// let dialect = endpoint.dialect
    /// let facts = try dialect.requestFacts(endpoint: endpoint, body: body, pathModel: pathModel)
    /// var meter = dialect.meter(endpoint: endpoint, facts: facts)   // any StreamMeter
    /// ```
    public var dialect: any ProviderDialect.Type {
        provider.dialect
    }
}

extension Provider {
    /// The dialect of this provider's API.
    public var dialect: any ProviderDialect.Type {
        switch self {
        case .openai: return OpenAIDialect.self
        case .anthropic: return AnthropicDialect.self
        case .gemini: return GeminiDialect.self
        }
    }
}
