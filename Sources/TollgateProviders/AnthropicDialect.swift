public import Foundation
public import TollgateEvents

/// The Anthropic Messages API (`/v1/messages`) and its token counting (`/v1/messages/count_tokens`).
///
/// Token classes (see ``TokenUsage``; Anthropic's `input_tokens` already excludes cache reads and
/// writes; every difference is clamped at 0):
///
/// | Tollgate class | Anthropic `usage` |
/// |---|---|
/// | input | `input_tokens` |
/// | cached_input_read | `cache_read_input_tokens` |
/// | cache_write_5m | `cache_creation.ephemeral_5m_input_tokens`, plus any part of `cache_creation_input_tokens` the breakdown does not cover (all of it when `cache_creation` is absent) |
/// | cache_write_1h | `cache_creation.ephemeral_1h_input_tokens` |
/// | output | `output_tokens` − `output_tokens_details.thinking_tokens` |
/// | reasoning | `output_tokens_details.thinking_tokens` (0 when absent: thinking is then inside `output`) |
///
/// Anthropic bills thinking at the output price, and `output_tokens` stays the billed total; splitting
/// it when the API reports the split keeps the classes disjoint like OpenAI's and Gemini's.
public enum AnthropicDialect: ProviderDialect {
    public static var provider: Provider { .anthropic }

    // MARK: Requests

    public static func requestFacts(endpoint: Endpoint, body: Data, pathModel: String?) throws(RequestError) -> RequestFacts {
        let wire = try RequestDecoding.decode(RequestWire.self, from: body, endpoint: endpoint)
        let estimate = TokenEstimator.inputTokens(
            body: body, fields: [.text("system"), .text("messages"), .tools("tools")])
        return RequestFacts(
            model: wire.model, stream: wire.stream, maxOutputTokens: wire.maxTokens, toolCount: wire.toolCount,
            user: nil, estimatedInputTokens: estimate, clientRequestedStreamUsage: false)
    }

    private struct RequestWire: Decodable {
        var model: String?
        var stream = false
        var maxTokens: Int?
        var toolCount = 0

        init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder)
            model = try fields.string("model")
            _ = try fields.arrayCount("messages")
            toolCount = try fields.arrayCount("tools") ?? 0
            if fields.endpoint != .anthropicCountTokens {
                stream = try fields.bool("stream") ?? false
                maxTokens = try fields.integer("max_tokens")
            }
            guard model != nil else { throw FieldMissing(field: "model") }
        }
    }

    /// Replaces `model` when asked; nothing else (Anthropic streams always carry usage).
    public static func upstreamBody(endpoint: Endpoint, body: Data, facts: RequestFacts, model: String?) -> Data {
        guard let model else { return body }
        return BodyRewrite.rewrite(body) { scanner, root in
            BodyRewrite.setModel(model, scanner: scanner, root: root)
        }
    }

    // MARK: Responses

    public static func usage(endpoint: Endpoint, responseBody: Data) -> TokenUsage? {
        guard let wire = ResponseDecoding.decode(ResponseWire.self, from: responseBody, keeping: ResponseWire.members)
        else { return nil }
        return usage(endpoint: endpoint, wire: wire)
    }

    private static func usage(endpoint: Endpoint, wire: ResponseWire) -> TokenUsage? {
        if endpoint == .anthropicCountTokens {
            // `{"input_tokens": N}`: not billed, reported for the ingress to decide.
            return wire.inputTokens.map { TokenUsage(inputTokens: TokenCount.clamp($0)) }
        }
        return wire.usage?.tokenUsage
    }

    public static func servedModel(endpoint: Endpoint, responseBody: Data) -> String? {
        guard endpoint == .anthropicMessages else { return nil }
        return ResponseDecoding.decode(ResponseWire.self, from: responseBody, keeping: ResponseWire.members)?.model
    }

    public static func responseSummary(endpoint: Endpoint, responseBody: Data) -> ResponseSummary {
        guard let wire = ResponseDecoding.decode(ResponseWire.self, from: responseBody, keeping: ResponseWire.members)
        else { return ResponseSummary(usage: nil, servedModel: nil) }
        return ResponseSummary(usage: usage(endpoint: endpoint, wire: wire),
                               servedModel: endpoint == .anthropicMessages ? wire.model : nil)
    }

    private struct ResponseWire: Decodable {
        /// The only members read: the content blocks are skipped unparsed.
        static let members = ["model", "usage", "input_tokens"]

        var model: String?
        var usage: UsageWire?
        /// count_tokens' answer.
        var inputTokens: Int64?

        enum CodingKeys: String, CodingKey {
            case model, usage
            case inputTokens = "input_tokens"
        }
    }

    /// `usage` of a message, of `message_start`'s message, or of `message_delta` (where every field but
    /// `output_tokens` is optional and cumulative).
    struct UsageWire: Decodable, Sendable {
        var inputTokens: Int64?
        var cacheCreationInputTokens: Int64?
        var cacheReadInputTokens: Int64?
        var cacheCreation: CacheCreation?
        var outputTokens: Int64?
        var outputTokensDetails: OutputDetails?

        struct CacheCreation: Decodable, Sendable {
            var ephemeral5m: Int64?
            var ephemeral1h: Int64?

            enum CodingKeys: String, CodingKey {
                case ephemeral5m = "ephemeral_5m_input_tokens"
                case ephemeral1h = "ephemeral_1h_input_tokens"
            }
        }

        struct OutputDetails: Decodable, Sendable {
            var thinkingTokens: Int64?

            enum CodingKeys: String, CodingKey {
                case thinkingTokens = "thinking_tokens"
            }
        }

        enum CodingKeys: String, CodingKey {
            case inputTokens = "input_tokens"
            case cacheCreationInputTokens = "cache_creation_input_tokens"
            case cacheReadInputTokens = "cache_read_input_tokens"
            case cacheCreation = "cache_creation"
            case outputTokens = "output_tokens"
            case outputTokensDetails = "output_tokens_details"
        }

        /// Overlays the fields a later report carries (a `message_delta`'s usage over `message_start`'s).
        mutating func update(with later: UsageWire) {
            if let value = later.inputTokens { inputTokens = value }
            if let value = later.cacheCreationInputTokens { cacheCreationInputTokens = value }
            if let value = later.cacheReadInputTokens { cacheReadInputTokens = value }
            if let value = later.cacheCreation { cacheCreation = value }
            if let value = later.outputTokens { outputTokens = value }
            if let value = later.outputTokensDetails { outputTokensDetails = value }
        }

        /// The usage by Tollgate token class (see the table on ``AnthropicDialect``).
        var tokenUsage: TokenUsage {
            let write1h = TokenCount.clamp(cacheCreation?.ephemeral1h)
            let write5mReported = TokenCount.clamp(cacheCreation?.ephemeral5m)
            let uncovered = TokenCount.remainder(cacheCreationInputTokens, minus: write5mReported, write1h)
            let thinking = min(TokenCount.clamp(outputTokensDetails?.thinkingTokens), TokenCount.clamp(outputTokens))
            return TokenUsage(
                inputTokens: TokenCount.clamp(inputTokens),
                cachedInputReadTokens: TokenCount.clamp(cacheReadInputTokens),
                cacheWrite5mTokens: TokenCount.sum(write5mReported, uncovered),
                cacheWrite1hTokens: write1h,
                outputTokens: TokenCount.remainder(outputTokens, minus: thinking),
                reasoningTokens: thinking)
        }
    }

    // MARK: Streams

    public static func meter(endpoint: Endpoint, facts: RequestFacts) -> Meter {
        Meter()
    }

    /// Meters a Messages stream.
    ///
    /// `message_start` carries the message's `model` and its usage so far (input and cache counts);
    /// each `message_delta` carries cumulative usage (`output_tokens`, and in newer API versions input
    /// and cache counts too), laid over the earlier report field by field; `message_stop` ends the
    /// stream. ``outputCharacters`` counts the UTF-8 bytes of `text_delta`, `thinking_delta` and
    /// `input_json_delta` content (thinking is billed as output). Anthropic never needs an event dropped.
    public struct Meter: StreamMeter {
        private var reported: UsageWire?
        public private(set) var servedModel: String?
        public private(set) var completed = false
        public private(set) var outputCharacters = 0

        public init() {}

        public var usage: TokenUsage? { reported?.tokenUsage }

        public mutating func observe(_ event: SSEEvent) -> StreamDecision {
            guard !event.data.isEmpty, let wire = ResponseDecoding.decode(StreamEventWire.self, from: event.data) else {
                return .forward
            }
            switch wire.type ?? event.event ?? "" {
            case "message_start":
                if let model = wire.message?.model, !model.isEmpty { servedModel = model }
                if let usage = wire.message?.usage { merge(usage) }
            case "message_delta":
                if let usage = wire.usage { merge(usage) }
            case "content_block_delta":
                outputCharacters += wire.delta?.text?.utf8.count ?? 0
                outputCharacters += wire.delta?.thinking?.utf8.count ?? 0
                outputCharacters += wire.delta?.partialJSON?.utf8.count ?? 0
            case "message_stop":
                completed = true
            default:
                break
            }
            return .forward
        }

        private mutating func merge(_ usage: UsageWire) {
            if reported == nil {
                reported = usage
            } else {
                reported?.update(with: usage)
            }
        }
    }

    /// Any Messages stream event; each part is read only when it has the expected shape.
    private struct StreamEventWire: Decodable {
        var type: String?
        var message: ResponseWire?
        var usage: UsageWire?
        var delta: Delta?

        struct Delta: Decodable {
            var text: String?
            var thinking: String?
            var partialJSON: String?

            enum CodingKeys: String, CodingKey {
                case text, thinking
                case partialJSON = "partial_json"
            }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                text = try? container.decodeIfPresent(String.self, forKey: .text)
                thinking = try? container.decodeIfPresent(String.self, forKey: .thinking)
                partialJSON = try? container.decodeIfPresent(String.self, forKey: .partialJSON)
            }
        }

        enum CodingKeys: String, CodingKey {
            case type, message, usage, delta
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            type = try? container.decodeIfPresent(String.self, forKey: .type)
            message = try? container.decodeIfPresent(ResponseWire.self, forKey: .message)
            usage = try? container.decodeIfPresent(UsageWire.self, forKey: .usage)
            delta = try? container.decodeIfPresent(Delta.self, forKey: .delta)
        }
    }

    // MARK: Errors

    /// `{"type":"error","error":{"type":…,"message":…}}`, the shape the Anthropic SDKs read
    /// (`APIStatusError.type` and `.api_message` from `error.type` and `error.message`).
    ///
    /// | kind | status | error.type |
    /// |---|---|---|
    /// | invalidRequest | 400 | invalid_request_error |
    /// | unauthenticated | 401 | authentication_error |
    /// | permissionDenied | 403 | permission_error |
    /// | notFound | 404 | not_found_error |
    /// | requestTooLarge | 413 | request_too_large |
    /// | quotaExceeded | 429 | rate_limit_error |
    /// | internalError | 500 | api_error |
    /// | upstreamUnavailable | 502 | api_error |
    /// | upstreamTimeout | 504 | timeout_error |
    public static func errorResponse(_ kind: GatewayErrorKind, message: String) -> ErrorResponse {
        let type: String
        switch kind {
        case .invalidRequest: type = "invalid_request_error"
        case .unauthenticated: type = "authentication_error"
        case .permissionDenied: type = "permission_error"
        case .notFound: type = "not_found_error"
        case .requestTooLarge: type = "request_too_large"
        case .quotaExceeded: type = "rate_limit_error"
        case .internalError, .upstreamUnavailable: type = "api_error"
        case .upstreamTimeout: type = "timeout_error"
        }
        let body = "{\"type\":\"error\",\"error\":{\"type\":\(JSONText.string(type)),\"message\":\(JSONText.string(message))}}"
        return ErrorResponse(status: kind.status, body: Data(body.utf8))
    }

    /// `error.type` (`rate_limit_error`, `overloaded_error`, …).
    public static func errorType(status: Int, responseBody: Data) -> String? {
        guard let type = ResponseDecoding.decode(ErrorWire.self, from: responseBody)?.error?.type, !type.isEmpty else {
            return nil
        }
        return type
    }

    private struct ErrorWire: Decodable {
        var error: Detail?

        struct Detail: Decodable {
            var type: String?
        }
    }
}
