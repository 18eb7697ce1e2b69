public import Foundation
public import TollgateEvents

/// The Gemini API (`/v1beta/models/{model}:generateContent` and friends).
///
/// The model is in the URL path, not the body, so the body goes upstream unchanged (a routed or
/// downgraded model is a different path, which the ingress builds). Whether the answer streams is
/// decided by the method: `:streamGenerateContent` (with `alt=sse`, as the Google Gen AI SDKs send it).
///
/// Token classes (see ``TokenUsage``; `usageMetadata` fields; every difference is clamped at 0):
///
/// | Tollgate class | Gemini `usageMetadata` |
/// |---|---|
/// | input | `promptTokenCount` + `toolUsePromptTokenCount` − `cachedContentTokenCount` − audio input |
/// | cached_input_read | `cachedContentTokenCount` |
/// | audio_input | AUDIO of `promptTokensDetails` − AUDIO of `cacheTokensDetails` + AUDIO of `toolUsePromptTokensDetails` |
/// | output | `candidatesTokenCount` − AUDIO of `candidatesTokensDetails` |
/// | reasoning | `thoughtsTokenCount` (not part of `candidatesTokenCount`) |
/// | audio_output | AUDIO of `candidatesTokensDetails` |
///
/// `promptTokenCount` includes the cached content, so cached tokens are subtracted from it; audio
/// tokens that were read from the cache stay in cached_input_read (there is one cached class).
/// `countTokens` answers `totalTokens` (read as `promptTokenCount`) with the same details.
public enum GeminiDialect: ProviderDialect {
    public static var provider: Provider { .gemini }

    // MARK: Requests

    /// The model named by a path segment: `models/gemini-2.5-flash` and `gemini-2.5-flash` are both
    /// `gemini-2.5-flash` (other prefixes, such as `tunedModels/…`, are kept).
    public static func model(fromPath pathModel: String?) -> String? {
        guard var model = pathModel, !model.isEmpty else { return nil }
        if model.hasPrefix("models/") { model.removeFirst("models/".count) }
        return model.isEmpty ? nil : model
    }

    public static func requestFacts(endpoint: Endpoint, body: Data, pathModel: String?) throws(RequestError) -> RequestFacts {
        let wire = try RequestDecoding.decode(RequestWire.self, from: body, endpoint: endpoint)
        let fields: [TokenEstimator.Field]
        switch endpoint {
        case .geminiEmbedContent: fields = [.text("content")]
        case .geminiBatchEmbedContents: fields = [.text("requests")]
        case .geminiCountTokens:
            fields = [.text("contents"), .text("generateContentRequest"), .text("generate_content_request")]
        default:
            fields = [.text("contents"), .text("systemInstruction"), .text("system_instruction"), .tools("tools")]
        }
        return RequestFacts(
            model: model(fromPath: pathModel), stream: endpoint == .geminiStreamGenerateContent,
            maxOutputTokens: wire.maxOutputTokens, toolCount: wire.toolCount, user: nil,
            estimatedInputTokens: TokenEstimator.inputTokens(body: body, fields: fields),
            clientRequestedStreamUsage: false)
    }

    /// Reads camelCase members and, like Google's JSON parser, their snake_case proto names too.
    private struct RequestWire: Decodable {
        var maxOutputTokens: Int?
        var toolCount = 0

        init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder)
            switch fields.endpoint {
            case .geminiEmbedContent?, .geminiBatchEmbedContents?:
                return
            default:
                break
            }
            _ = try fields.arrayCount("contents")
            let config = try fields.object("generationConfig") ?? fields.object("generation_config")
            let camel = try config?.integer("maxOutputTokens")
            let snake = try config?.integer("max_output_tokens")
            maxOutputTokens = camel ?? snake
            for tool in try fields.objects("tools") ?? [] {
                let camelDeclarations = try tool.arrayCount("functionDeclarations")
                let snakeDeclarations = try tool.arrayCount("function_declarations")
                // A tool without function declarations is one built-in tool (Google Search, code execution…).
                toolCount += camelDeclarations ?? snakeDeclarations ?? 1
            }
        }
    }

    /// The body unchanged: the model is in the path.
    public static func upstreamBody(endpoint: Endpoint, body: Data, facts: RequestFacts, model: String?) -> Data {
        body
    }

    // MARK: Responses

    /// Usage of a `GenerateContentResponse`, of a `countTokens` answer, of an embedding answer that
    /// carries `usageMetadata` (many do not: `nil`, the ingress estimates), or of a
    /// `:streamGenerateContent` answer without `alt=sse` (a JSON array of responses: the last usage).
    public static func usage(endpoint: Endpoint, responseBody: Data) -> TokenUsage? {
        if endpoint == .geminiCountTokens {
            return ResponseDecoding.decode(CountTokensWire.self, from: responseBody)?.usage.tokenUsage
        }
        return responses(in: responseBody).last(where: { $0.usageMetadata != nil })?.usageMetadata?.tokenUsage
    }

    public static func servedModel(endpoint: Endpoint, responseBody: Data) -> String? {
        guard endpoint != .geminiCountTokens else { return nil }
        return responses(in: responseBody).last(where: { $0.modelVersion != nil })?.modelVersion
    }

    public static func responseSummary(endpoint: Endpoint, responseBody: Data) -> ResponseSummary {
        if endpoint == .geminiCountTokens {
            return ResponseSummary(usage: usage(endpoint: endpoint, responseBody: responseBody), servedModel: nil)
        }
        let all = responses(in: responseBody)
        return ResponseSummary(usage: all.last(where: { $0.usageMetadata != nil })?.usageMetadata?.tokenUsage,
                               servedModel: all.last(where: { $0.modelVersion != nil })?.modelVersion)
    }

    private static func responses(in body: Data) -> [ResponseWire] {
        if let one = ResponseDecoding.decode(ResponseWire.self, from: body) { return [one] }
        return ResponseDecoding.decode([ResponseWire].self, from: body) ?? []
    }

    /// A `GenerateContentResponse` (also each streamed chunk), or an embedding answer.
    private struct ResponseWire: Decodable {
        var candidates: [Candidate]?
        var usageMetadata: UsageWire?
        var modelVersion: String?

        struct Candidate: Decodable {
            var content: Content?
            var finishReason: String?

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: AnyKey.self)
                content = try? container.decodeIfPresent(Content.self, forKey: AnyKey("content"))
                finishReason = try? container.decodeIfPresent(String.self, forKey: AnyKey("finishReason"))
            }
        }

        struct Content: Decodable {
            var parts: [Part]?
        }

        struct Part: Decodable {
            var text: String?
            var functionCallSize: Int

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: AnyKey.self)
                text = try? container.decodeIfPresent(String.self, forKey: AnyKey("text"))
                functionCallSize = (try? container.decodeIfPresent(JSONTextSize.self, forKey: AnyKey("functionCall")))?.bytes ?? 0
            }
        }

        enum CodingKeys: String, CodingKey {
            case candidates, usageMetadata, modelVersion
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            candidates = try? container.decodeIfPresent([Candidate].self, forKey: .candidates)
            usageMetadata = try? container.decodeIfPresent(UsageWire.self, forKey: .usageMetadata)
            modelVersion = try? container.decodeIfPresent(String.self, forKey: .modelVersion)
        }
    }

    private struct CountTokensWire: Decodable {
        var usage: UsageWire

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            guard let total = try container.decodeIfPresent(Int64.self, forKey: AnyKey("totalTokens")) else {
                throw FieldMissing(field: "totalTokens")
            }
            usage = UsageWire(
                promptTokenCount: total,
                cachedContentTokenCount: try container.decodeIfPresent(Int64.self, forKey: AnyKey("cachedContentTokenCount")),
                promptTokensDetails: try? container.decodeIfPresent([ModalityCount].self, forKey: AnyKey("promptTokensDetails")),
                cacheTokensDetails: try? container.decodeIfPresent([ModalityCount].self, forKey: AnyKey("cacheTokensDetails")))
        }
    }

    struct ModalityCount: Decodable, Sendable {
        var modality: String?
        var tokenCount: Int64?
    }

    /// `usageMetadata`.
    struct UsageWire: Decodable, Sendable {
        var promptTokenCount: Int64?
        var cachedContentTokenCount: Int64?
        var candidatesTokenCount: Int64?
        var toolUsePromptTokenCount: Int64?
        var thoughtsTokenCount: Int64?
        var promptTokensDetails: [ModalityCount]?
        var cacheTokensDetails: [ModalityCount]?
        var candidatesTokensDetails: [ModalityCount]?
        var toolUsePromptTokensDetails: [ModalityCount]?

        private static func audio(_ details: [ModalityCount]?) -> Int64 {
            var total: Int64 = 0
            for entry in details ?? [] where entry.modality?.uppercased() == "AUDIO" {
                total = TokenCount.sum(total, TokenCount.clamp(entry.tokenCount))
            }
            return total
        }

        /// The usage by Tollgate token class (see the table on ``GeminiDialect``).
        var tokenUsage: TokenUsage {
            let cached = TokenCount.clamp(cachedContentTokenCount)
            let audioIn = TokenCount.sum(
                TokenCount.remainder(Self.audio(promptTokensDetails), minus: Self.audio(cacheTokensDetails)),
                Self.audio(toolUsePromptTokensDetails))
            let allInput = TokenCount.sum(TokenCount.clamp(promptTokenCount), TokenCount.clamp(toolUsePromptTokenCount))
            let audioOut = Self.audio(candidatesTokensDetails)
            return TokenUsage(
                inputTokens: TokenCount.remainder(allInput, minus: cached, audioIn),
                cachedInputReadTokens: cached,
                outputTokens: TokenCount.remainder(candidatesTokenCount, minus: audioOut),
                reasoningTokens: TokenCount.clamp(thoughtsTokenCount),
                audioInputTokens: audioIn,
                audioOutputTokens: audioOut)
        }
    }

    // MARK: Streams

    public static func meter(endpoint: Endpoint, facts: RequestFacts) -> Meter {
        Meter()
    }

    /// Meters a `:streamGenerateContent?alt=sse` stream: every `data:` is a `GenerateContentResponse`.
    ///
    /// Usage is the last `usageMetadata` seen (each chunk repeats the running totals), the served model
    /// is `modelVersion`, and the stream is complete once a candidate has a `finishReason`.
    /// ``outputCharacters`` counts the UTF-8 bytes of text parts (thoughts included) and the approximate
    /// JSON size of function calls. Gemini never needs an event dropped.
    public struct Meter: StreamMeter {
        private var reported: UsageWire?
        public private(set) var servedModel: String?
        public private(set) var completed = false
        public private(set) var outputCharacters = 0

        public init() {}

        public var usage: TokenUsage? { reported?.tokenUsage }

        public mutating func observe(_ event: SSEEvent) -> StreamDecision {
            guard !event.data.isEmpty, let chunk = ResponseDecoding.decode(ResponseWire.self, from: event.data) else {
                return .forward
            }
            if let model = chunk.modelVersion, !model.isEmpty { servedModel = model }
            if let usage = chunk.usageMetadata { reported = usage }
            for candidate in chunk.candidates ?? [] {
                for part in candidate.content?.parts ?? [] {
                    outputCharacters += (part.text?.utf8.count ?? 0) + part.functionCallSize
                }
                if let reason = candidate.finishReason, !reason.isEmpty { completed = true }
            }
            return .forward
        }
    }

    // MARK: Errors

    /// `{"error":{"code":…,"message":…,"status":…}}`, the shape the Google Gen AI SDKs read
    /// (`APIError.code`, `.message`, `.status` from the body's `error` object).
    ///
    /// | kind | HTTP status | error.status |
    /// |---|---|---|
    /// | invalidRequest | 400 | INVALID_ARGUMENT |
    /// | unauthenticated | 401 | UNAUTHENTICATED |
    /// | permissionDenied | 403 | PERMISSION_DENIED |
    /// | notFound | 404 | NOT_FOUND |
    /// | requestTooLarge | 413 | INVALID_ARGUMENT (what Gemini itself answers for a payload over its size limit; google.rpc has no "too large" code) |
    /// | quotaExceeded | 429 | RESOURCE_EXHAUSTED |
    /// | internalError | 500 | INTERNAL |
    /// | upstreamUnavailable | 502 | UNAVAILABLE |
    /// | upstreamTimeout | 504 | DEADLINE_EXCEEDED |
    public static func errorResponse(_ kind: GatewayErrorKind, message: String) -> ErrorResponse {
        let status: String
        switch kind {
        case .invalidRequest, .requestTooLarge: status = "INVALID_ARGUMENT"
        case .unauthenticated: status = "UNAUTHENTICATED"
        case .permissionDenied: status = "PERMISSION_DENIED"
        case .notFound: status = "NOT_FOUND"
        case .quotaExceeded: status = "RESOURCE_EXHAUSTED"
        case .internalError: status = "INTERNAL"
        case .upstreamUnavailable: status = "UNAVAILABLE"
        case .upstreamTimeout: status = "DEADLINE_EXCEEDED"
        }
        let body = "{\"error\":{\"code\":\(kind.status),\"message\":\(JSONText.string(message)),\"status\":\(JSONText.string(status))}}"
        return ErrorResponse(status: kind.status, body: Data(body.utf8))
    }

    /// `error.status` (`RESOURCE_EXHAUSTED`, …), also from the one-element array some streaming errors
    /// come in.
    public static func errorType(status: Int, responseBody: Data) -> String? {
        let error = ResponseDecoding.decode(ErrorWire.self, from: responseBody)?.error
            ?? ResponseDecoding.decode([ErrorWire].self, from: responseBody)?.first?.error
        guard let status = error?.status, !status.isEmpty else { return nil }
        return status
    }

    private struct ErrorWire: Decodable {
        var error: Detail?

        struct Detail: Decodable {
            var status: String?
        }
    }
}

/// The approximate size in bytes of any JSON value written compactly (for function-call arguments,
/// which Gemini streams as objects rather than text).
struct JSONTextSize: Decodable {
    var bytes = 0

    init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            bytes = 2
            for key in object.allKeys {
                bytes += key.stringValue.utf8.count + 4  // quotes, colon, comma
                bytes += (try? object.decode(JSONTextSize.self, forKey: key))?.bytes ?? 0
            }
        } else if var array = try? decoder.unkeyedContainer() {
            bytes = 2
            while !array.isAtEnd {
                let before = array.currentIndex
                bytes += ((try? array.decode(JSONTextSize.self))?.bytes ?? 0) + 1
                guard array.currentIndex > before else { break }
            }
        } else if let text = try? decoder.singleValueContainer().decode(String.self) {
            bytes = text.utf8.count + 2
        } else {
            bytes = 4  // a number or a literal
        }
    }
}
