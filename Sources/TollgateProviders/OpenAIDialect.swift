public import Foundation
public import TollgateEvents

/// The OpenAI API: Chat Completions, (legacy) Completions, Embeddings, Responses and Models.
///
/// Token classes (see ``TokenUsage``; every difference is clamped at 0):
///
/// | Tollgate class | Chat Completions / Completions / Embeddings | Responses |
/// |---|---|---|
/// | input | `prompt_tokens` − `prompt_tokens_details.cached_tokens` − `prompt_tokens_details.audio_tokens` | `input_tokens` − `input_tokens_details.cached_tokens` |
/// | cached_input_read | `prompt_tokens_details.cached_tokens` | `input_tokens_details.cached_tokens` |
/// | audio_input | `prompt_tokens_details.audio_tokens` | — |
/// | output | `completion_tokens` − `completion_tokens_details.reasoning_tokens` − `completion_tokens_details.audio_tokens` | `output_tokens` − `output_tokens_details.reasoning_tokens` |
/// | reasoning | `completion_tokens_details.reasoning_tokens` | `output_tokens_details.reasoning_tokens` |
/// | audio_output | `completion_tokens_details.audio_tokens` | — |
///
/// OpenAI's prompt-cache writes (`cache_write_tokens`, 30-minute and 12-hour lifetimes) have no
/// Tollgate class of their own (the cache-write classes are Anthropic's 5-minute and 1-hour ones) and
/// stay in `input`. Predicted-output tokens (`accepted_prediction_tokens`,
/// `rejected_prediction_tokens`) are part of `completion_tokens` and billed as output, so they stay
/// in `output`.
///
/// Streams of Chat Completions and Completions only carry usage when the request asks for it with
/// `stream_options.include_usage`; Tollgate adds that option when the client did not
/// (``upstreamBody(endpoint:body:facts:model:)``) and its meter then drops the extra usage chunk
/// (`"choices": []`) so the client sees the stream it asked for.
public enum OpenAIDialect: ProviderDialect {
    public static var provider: Provider { .openai }

    // MARK: Requests

    public static func requestFacts(endpoint: Endpoint, body: Data, pathModel: String?) throws(RequestError) -> RequestFacts {
        guard endpoint != .openAIModels else {
            return RequestFacts(model: nil, stream: false, maxOutputTokens: nil, toolCount: 0, user: nil,
                                estimatedInputTokens: 0, clientRequestedStreamUsage: false)
        }
        let wire = try RequestDecoding.decode(RequestWire.self, from: body, endpoint: endpoint)
        let fields: [TokenEstimator.Field]
        switch endpoint {
        case .openAIChatCompletions: fields = [.text("messages"), .tools("tools"), .tools("functions")]
        case .openAICompletions: fields = [.tokenIDs("prompt"), .text("suffix")]
        case .openAIEmbeddings: fields = [.tokenIDs("input")]
        case .openAIResponses: fields = [.text("input"), .text("instructions"), .tools("tools")]
        default: fields = []
        }
        return RequestFacts(
            model: wire.model, stream: wire.stream, maxOutputTokens: wire.maxOutputTokens, toolCount: wire.toolCount,
            user: wire.user, estimatedInputTokens: TokenEstimator.inputTokens(body: body, fields: fields),
            clientRequestedStreamUsage: wire.includeUsage)
    }

    /// What Tollgate reads from a request body; the members read depend on the endpoint.
    private struct RequestWire: Decodable {
        var model: String?
        var stream = false
        var maxOutputTokens: Int?
        var toolCount = 0
        var user: String?
        var includeUsage = false

        init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder)
            let endpoint = fields.endpoint ?? .openAIChatCompletions
            model = try fields.string("model")
            user = try fields.string("user")
            switch endpoint {
            case .openAIChatCompletions:
                _ = try fields.arrayCount("messages")
                stream = try fields.bool("stream") ?? false
                let maxCompletionTokens = try fields.integer("max_completion_tokens")
                let maxTokens = try fields.integer("max_tokens")
                maxOutputTokens = maxCompletionTokens ?? maxTokens
                toolCount = try (fields.arrayCount("tools") ?? 0) + (fields.arrayCount("functions") ?? 0)
                includeUsage = try fields.object("stream_options")?.bool("include_usage") ?? false
            case .openAICompletions:
                stream = try fields.bool("stream") ?? false
                maxOutputTokens = try fields.integer("max_tokens")
                includeUsage = try fields.object("stream_options")?.bool("include_usage") ?? false
            case .openAIResponses:
                stream = try fields.bool("stream") ?? false
                maxOutputTokens = try fields.integer("max_output_tokens")
                toolCount = try fields.arrayCount("tools") ?? 0
            default:
                break
            }
            // The Responses API may take its model from a stored prompt (`prompt.id`).
            if model == nil && endpoint != .openAIResponses {
                throw FieldMissing(field: "model")
            }
        }
    }

    /// Replaces `model` when asked; for streamed Chat Completions and Completions whose client did not ask
    /// for usage (`facts.stream && !facts.clientRequestedStreamUsage`), turns on
    /// `stream_options.include_usage`: a `stream_options` member is added when there is none; when it is
    /// an object, `"include_usage":true` becomes its first member, or an existing `include_usage` value
    /// becomes `true`; a `null` one becomes `{"include_usage":true}`.
    public static func upstreamBody(endpoint: Endpoint, body: Data, facts: RequestFacts, model: String?) -> Data {
        guard endpoint != .openAIModels else { return body }
        let injectUsage = (endpoint == .openAIChatCompletions || endpoint == .openAICompletions)
            && facts.stream && !facts.clientRequestedStreamUsage
        guard model != nil || injectUsage else { return body }
        return BodyRewrite.rewrite(body) { scanner, root in
            var edits: [ByteEdit] = []
            if let model {
                edits += BodyRewrite.setModel(model, scanner: scanner, root: root)
            }
            if injectUsage {
                edits += includeUsageEdits(scanner: scanner, root: root)
            }
            return edits
        }
    }

    private static func includeUsageEdits(scanner: JSONScanner, root: JSONObjectLayout) -> [ByteEdit] {
        let includeUsage = Array("\"include_usage\":true".utf8)
        let options = scanner.members(of: root, named: "stream_options")
        if options.isEmpty {
            return [BodyRewrite.append(Array("\"stream_options\":{".utf8) + includeUsage + [.closeBrace], to: root)]
        }
        var edits: [ByteEdit] = []
        for member in options {
            switch scanner.firstByte(of: member.valueRange) {
            case .openBrace?:
                guard let object = scanner.object(at: member.valueRange.lowerBound) else { continue }
                let existing = scanner.members(of: object, named: "include_usage")
                if existing.isEmpty {
                    edits.append(BodyRewrite.prepend(includeUsage, to: object))
                } else {
                    for value in existing where !scanner.isTrue(value.valueRange) {
                        edits.append(ByteEdit(range: value.valueRange, replacement: Array("true".utf8)))
                    }
                }
            case UInt8(ascii: "n")?:
                edits.append(ByteEdit(range: member.valueRange, replacement: [.openBrace] + includeUsage + [.closeBrace]))
            default:
                continue
            }
        }
        return edits
    }

    // MARK: Responses

    public static func usage(endpoint: Endpoint, responseBody: Data) -> TokenUsage? {
        guard endpoint != .openAIModels else { return nil }
        return ResponseDecoding.decode(ResponseWire.self, from: responseBody, keeping: ResponseWire.members)?
            .usage?.tokenUsage
    }

    public static func servedModel(endpoint: Endpoint, responseBody: Data) -> String? {
        guard endpoint != .openAIModels else { return nil }
        return ResponseDecoding.decode(ResponseWire.self, from: responseBody, keeping: ResponseWire.members)?.model
    }

    public static func responseSummary(endpoint: Endpoint, responseBody: Data) -> ResponseSummary {
        guard endpoint != .openAIModels,
              let wire = ResponseDecoding.decode(ResponseWire.self, from: responseBody, keeping: ResponseWire.members)
        else { return ResponseSummary(usage: nil, servedModel: nil) }
        return ResponseSummary(usage: wire.usage?.tokenUsage, servedModel: wire.model)
    }

    /// A complete response (`chat.completion`, `text_completion`, embeddings `list`, `response`).
    private struct ResponseWire: Decodable {
        /// The only members read: the rest (choices, output, data) is skipped unparsed.
        static let members = ["model", "usage"]

        var model: String?
        var usage: UsageWire?
    }

    /// Usage in either of OpenAI's two shapes: `prompt_tokens`/`completion_tokens` (Chat Completions,
    /// Completions, Embeddings) or `input_tokens`/`output_tokens` (Responses).
    struct UsageWire: Decodable, Sendable {
        var promptTokens: Int64?
        var completionTokens: Int64?
        var promptTokensDetails: Details?
        var completionTokensDetails: Details?
        var inputTokens: Int64?
        var outputTokens: Int64?
        var inputTokensDetails: Details?
        var outputTokensDetails: Details?

        struct Details: Decodable, Sendable {
            var cachedTokens: Int64?
            var audioTokens: Int64?
            var reasoningTokens: Int64?

            enum CodingKeys: String, CodingKey {
                case cachedTokens = "cached_tokens"
                case audioTokens = "audio_tokens"
                case reasoningTokens = "reasoning_tokens"
            }
        }

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case promptTokensDetails = "prompt_tokens_details"
            case completionTokensDetails = "completion_tokens_details"
            case inputTokens = "input_tokens"
            case outputTokens = "output_tokens"
            case inputTokensDetails = "input_tokens_details"
            case outputTokensDetails = "output_tokens_details"
        }

        /// The usage by Tollgate token class (see the table on ``OpenAIDialect``).
        var tokenUsage: TokenUsage? {
            if promptTokens != nil || completionTokens != nil {
                let cached = TokenCount.clamp(promptTokensDetails?.cachedTokens)
                let audioIn = TokenCount.clamp(promptTokensDetails?.audioTokens)
                let reasoning = TokenCount.clamp(completionTokensDetails?.reasoningTokens)
                let audioOut = TokenCount.clamp(completionTokensDetails?.audioTokens)
                return TokenUsage(
                    inputTokens: TokenCount.remainder(promptTokens, minus: cached, audioIn),
                    cachedInputReadTokens: cached,
                    outputTokens: TokenCount.remainder(completionTokens, minus: reasoning, audioOut),
                    reasoningTokens: reasoning,
                    audioInputTokens: audioIn,
                    audioOutputTokens: audioOut)
            }
            if inputTokens != nil || outputTokens != nil {
                let cached = TokenCount.clamp(inputTokensDetails?.cachedTokens)
                let reasoning = TokenCount.clamp(outputTokensDetails?.reasoningTokens)
                return TokenUsage(
                    inputTokens: TokenCount.remainder(inputTokens, minus: cached),
                    cachedInputReadTokens: cached,
                    outputTokens: TokenCount.remainder(outputTokens, minus: reasoning),
                    reasoningTokens: reasoning)
            }
            return nil
        }
    }

    // MARK: Streams

    public static func meter(endpoint: Endpoint, facts: RequestFacts) -> Meter {
        Meter(endpoint: endpoint,
              dropsUsageChunk: (endpoint == .openAIChatCompletions || endpoint == .openAICompletions)
                  && !facts.clientRequestedStreamUsage)
    }

    /// Meters an OpenAI stream.
    ///
    /// - Chat Completions and Completions: every `data:` line is a chunk; usage comes in a last chunk
    ///   whose `choices` is empty; `data: [DONE]` ends the stream. When Tollgate added
    ///   `include_usage` itself, that usage chunk is dropped and nothing else.
    /// - Responses: typed events; `response.completed`, `response.incomplete` and `response.failed` carry
    ///   the final `response` with its `usage` and end the stream.
    ///
    /// ``outputCharacters`` counts the UTF-8 bytes of generated text: content, refusals and tool-call
    /// arguments.
    public struct Meter: StreamMeter {
        public let endpoint: Endpoint
        /// Tollgate asked for usage on the client's behalf: the usage chunk is not the client's.
        public let dropsUsageChunk: Bool
        public private(set) var usage: TokenUsage?
        public private(set) var servedModel: String?
        public private(set) var completed = false
        public private(set) var outputCharacters = 0

        public init(endpoint: Endpoint, dropsUsageChunk: Bool) {
            self.endpoint = endpoint
            self.dropsUsageChunk = dropsUsageChunk
        }

        public mutating func observe(_ event: SSEEvent) -> StreamDecision {
            switch endpoint {
            case .openAIChatCompletions, .openAICompletions:
                return observeChunk(event)
            case .openAIResponses:
                observeResponseEvent(event)
                return .forward
            default:
                return .forward
            }
        }

        private mutating func observeChunk(_ event: SSEEvent) -> StreamDecision {
            guard !event.data.isEmpty else { return .forward }
            if event.data.trimmingCharacters(in: .whitespaces) == "[DONE]" {
                completed = true
                return .forward
            }
            guard let chunk = ResponseDecoding.decode(ChunkWire.self, from: event.data) else { return .forward }
            if let model = chunk.model, !model.isEmpty { servedModel = model }
            for choice in chunk.choices ?? [] {
                outputCharacters += choice.text?.utf8.count ?? 0
                guard let delta = choice.delta else { continue }
                outputCharacters += delta.content?.utf8.count ?? 0
                outputCharacters += delta.refusal?.utf8.count ?? 0
                outputCharacters += delta.functionCall?.arguments?.utf8.count ?? 0
                for call in delta.toolCalls ?? [] {
                    outputCharacters += call.function?.arguments?.utf8.count ?? 0
                }
            }
            guard let reported = chunk.usage?.tokenUsage else { return .forward }
            usage = reported
            let isUsageChunk = chunk.choices?.isEmpty ?? true
            return dropsUsageChunk && isUsageChunk ? .drop : .forward
        }

        private mutating func observeResponseEvent(_ event: SSEEvent) {
            guard let wire = ResponseDecoding.decode(ResponseEventWire.self, from: event.data) else { return }
            let type = wire.type ?? event.event ?? ""
            if let model = wire.response?.model, !model.isEmpty { servedModel = model }
            if let reported = wire.response?.usage?.tokenUsage { usage = reported }
            switch type {
            case "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
                 "response.custom_tool_call_input.delta":
                outputCharacters += wire.delta?.utf8.count ?? 0
            case "response.completed", "response.incomplete", "response.failed":
                completed = true
            default:
                break
            }
        }
    }

    /// A `chat.completion.chunk` or a streamed `text_completion`.
    private struct ChunkWire: Decodable {
        var model: String?
        var choices: [Choice]?
        var usage: UsageWire?

        struct Choice: Decodable {
            var delta: Delta?
            var text: String?
        }

        struct Delta: Decodable {
            var content: String?
            var refusal: String?
            var toolCalls: [ToolCall]?
            var functionCall: Function?

            enum CodingKeys: String, CodingKey {
                case content, refusal
                case toolCalls = "tool_calls"
                case functionCall = "function_call"
            }
        }

        struct ToolCall: Decodable {
            var function: Function?
        }

        struct Function: Decodable {
            var arguments: String?
        }
    }

    /// A Responses API stream event; `delta` and `response` are read only when they have the expected shape.
    private struct ResponseEventWire: Decodable {
        var type: String?
        var delta: String?
        var response: ResponseWire?

        enum CodingKeys: String, CodingKey {
            case type, delta, response
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            type = try? container.decodeIfPresent(String.self, forKey: .type)
            delta = try? container.decodeIfPresent(String.self, forKey: .delta)
            response = try? container.decodeIfPresent(ResponseWire.self, forKey: .response)
        }
    }

    // MARK: Errors

    /// `{"error":{"message":…,"type":…,"param":null,"code":…}}`, the shape the OpenAI SDKs read
    /// (`APIError.message`, `.type`, `.param`, `.code` from the body's `error` object).
    ///
    /// | kind | status | type | code |
    /// |---|---|---|---|
    /// | unauthenticated | 401 | invalid_request_error | invalid_api_key |
    /// | permissionDenied | 403 | invalid_request_error | model_not_found |
    /// | invalidRequest | 400 | invalid_request_error | null |
    /// | requestTooLarge | 413 | invalid_request_error | request_too_large |
    /// | notFound | 404 | invalid_request_error | unknown_url |
    /// | quotaExceeded | 429 | insufficient_quota | budget_exceeded |
    /// | upstreamUnavailable | 502 | server_error | null |
    /// | upstreamTimeout | 504 | server_error | timeout |
    /// | internalError | 500 | server_error | null |
    public static func errorResponse(_ kind: GatewayErrorKind, message: String) -> ErrorResponse {
        let (type, code): (String, String?)
        switch kind {
        case .unauthenticated: (type, code) = ("invalid_request_error", "invalid_api_key")
        case .permissionDenied: (type, code) = ("invalid_request_error", "model_not_found")
        case .invalidRequest: (type, code) = ("invalid_request_error", nil)
        case .requestTooLarge: (type, code) = ("invalid_request_error", "request_too_large")
        case .notFound: (type, code) = ("invalid_request_error", "unknown_url")
        case .quotaExceeded: (type, code) = ("insufficient_quota", "budget_exceeded")
        case .upstreamUnavailable: (type, code) = ("server_error", nil)
        case .upstreamTimeout: (type, code) = ("server_error", "timeout")
        case .internalError: (type, code) = ("server_error", nil)
        }
        let body = "{\"error\":{\"message\":\(JSONText.string(message)),\"type\":\(JSONText.string(type)),"
            + "\"param\":null,\"code\":\(JSONText.stringOrNull(code))}}"
        return ErrorResponse(status: kind.status, body: Data(body.utf8))
    }

    /// `error.code` when it is a non-empty string or a number (more specific: `rate_limit_exceeded`,
    /// `context_length_exceeded`, `invalid_api_key`), otherwise `error.type`.
    public static func errorType(status: Int, responseBody: Data) -> String? {
        guard let error = ResponseDecoding.decode(ErrorWire.self, from: responseBody)?.error else { return nil }
        if let code = error.code, !code.isEmpty { return code }
        if let type = error.type, !type.isEmpty { return type }
        return nil
    }

    private struct ErrorWire: Decodable {
        var error: Detail?

        struct Detail: Decodable {
            var type: String?
            var code: String?

            enum CodingKeys: String, CodingKey { case type, code }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                type = try? container.decodeIfPresent(String.self, forKey: .type)
                if let text = try? container.decodeIfPresent(String.self, forKey: .code) {
                    code = text
                } else if let number = try? container.decodeIfPresent(Int64.self, forKey: .code) {
                    code = String(number)
                }
            }
        }
    }
}
