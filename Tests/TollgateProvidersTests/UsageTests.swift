import Foundation
import Testing
import TollgateEvents
@testable import TollgateProviders

@Suite("Usage of complete responses")
struct UsageTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var provider: Provider
        var endpoint: Endpoint
        var path: String
        var usage: TokenUsage?
        var model: String?
        var testDescription: String { path }
    }

    static let cases: [Case] = [
        // prompt 2006 incl. 1920 cached; completion 18.
        Case(provider: .openai, endpoint: .openAIChatCompletions, path: "openai/chat-response-cached.json",
             usage: TokenUsage(inputTokens: 86, cachedInputReadTokens: 1920, outputTokens: 18), model: "gpt-4o-2024-08-06"),
        // prompt 1117 incl. 1024 cached; completion 1850 incl. 1536 reasoning.
        Case(provider: .openai, endpoint: .openAIChatCompletions, path: "openai/chat-response-reasoning.json",
             usage: TokenUsage(inputTokens: 93, cachedInputReadTokens: 1024, outputTokens: 314, reasoningTokens: 1536),
             model: "o4-mini-2025-04-16"),
        // prompt 67 incl. 40 audio; completion 180 incl. 150 audio.
        Case(provider: .openai, endpoint: .openAIChatCompletions, path: "openai/chat-response-audio.json",
             usage: TokenUsage(inputTokens: 27, outputTokens: 30, audioInputTokens: 40, audioOutputTokens: 150),
             model: "gpt-4o-audio-preview-2024-12-17"),
        Case(provider: .openai, endpoint: .openAICompletions, path: "openai/completions-response.json",
             usage: TokenUsage(inputTokens: 5, outputTokens: 7), model: "gpt-3.5-turbo-instruct"),
        Case(provider: .openai, endpoint: .openAIEmbeddings, path: "openai/embeddings-response.json",
             usage: TokenUsage(inputTokens: 19), model: "text-embedding-3-small"),
        // input 1200 incl. 1024 cached; output 350 incl. 256 reasoning.
        Case(provider: .openai, endpoint: .openAIResponses, path: "openai/responses-response.json",
             usage: TokenUsage(inputTokens: 176, cachedInputReadTokens: 1024, outputTokens: 94, reasoningTokens: 256),
             model: "o4-mini-2025-04-16"),
        // input 21 (excl. cache), read 1800, writes 1000 (5m) + 2000 (1h), output 512 incl. 300 thinking.
        Case(provider: .anthropic, endpoint: .anthropicMessages, path: "anthropic/messages-response.json",
             usage: TokenUsage(inputTokens: 21, cachedInputReadTokens: 1800, cacheWrite5mTokens: 1000,
                               cacheWrite1hTokens: 2000, outputTokens: 212, reasoningTokens: 300),
             model: "claude-sonnet-4-5-20250929"),
        // No cache_creation breakdown: every cache write is a 5-minute one.
        Case(provider: .anthropic, endpoint: .anthropicMessages, path: "anthropic/messages-response-legacy.json",
             usage: TokenUsage(inputTokens: 12, cacheWrite5mTokens: 1500, outputTokens: 6), model: "claude-3-5-haiku-20241022"),
        Case(provider: .anthropic, endpoint: .anthropicCountTokens, path: "anthropic/count-tokens-response.json",
             usage: TokenUsage(inputTokens: 2095), model: nil),
        // prompt 1350 incl. 1024 cached and 320 audio, + 36 tool-use prompt; candidates 220; thoughts 400.
        Case(provider: .gemini, endpoint: .geminiGenerateContent, path: "gemini/generate-response.json",
             usage: TokenUsage(inputTokens: 42, cachedInputReadTokens: 1024, outputTokens: 220, reasoningTokens: 400,
                               audioInputTokens: 320),
             model: "gemini-2.5-flash"),
        Case(provider: .gemini, endpoint: .geminiGenerateContent, path: "gemini/generate-response-audio-out.json",
             usage: TokenUsage(inputTokens: 12, outputTokens: 0, audioOutputTokens: 530), model: "gemini-2.5-flash-preview-tts"),
        // totalTokens 31 incl. 10 cached and 6 audio.
        Case(provider: .gemini, endpoint: .geminiCountTokens, path: "gemini/count-tokens-response.json",
             usage: TokenUsage(inputTokens: 15, cachedInputReadTokens: 10, audioInputTokens: 6), model: nil),
        Case(provider: .gemini, endpoint: .geminiEmbedContent, path: "gemini/embed-response.json", usage: nil, model: nil),
    ]

    @Test("usage by token class and served model", arguments: cases)
    func usage(_ c: Case) throws {
        let body = try Fixture.data(c.path)
        let dialect = c.provider.dialect
        #expect(dialect.usage(endpoint: c.endpoint, responseBody: body) == c.usage)
        #expect(dialect.servedModel(endpoint: c.endpoint, responseBody: body) == c.model)
    }

    @Test("the classes of a fixture sum to the provider's total")
    func disjoint() throws {
        let openAI = try #require(OpenAIDialect.usage(endpoint: .openAIChatCompletions,
                                                      responseBody: try Fixture.data("openai/chat-response-reasoning.json")))
        #expect(openAI.totalTokens == 2967)
        let gemini = try #require(GeminiDialect.usage(endpoint: .geminiGenerateContent,
                                                      responseBody: try Fixture.data("gemini/generate-response.json")))
        #expect(gemini.totalTokens == 2006)
        let anthropic = try #require(AnthropicDialect.usage(endpoint: .anthropicMessages,
                                                            responseBody: try Fixture.data("anthropic/messages-response.json")))
        #expect(anthropic.totalTokens == 21 + 3000 + 1800 + 512)
    }

    @Test("inconsistent reports never give negative counts")
    func clamped() {
        let openAI = Data(#"{"model":"m","usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":30,"audio_tokens":4},"completion_tokens_details":{"reasoning_tokens":9}}}"#.utf8)
        #expect(OpenAIDialect.usage(endpoint: .openAIChatCompletions, responseBody: openAI)
            == TokenUsage(inputTokens: 0, cachedInputReadTokens: 30, outputTokens: 0, reasoningTokens: 9, audioInputTokens: 4))
        let negative = Data(#"{"usage":{"prompt_tokens":-5,"completion_tokens":3}}"#.utf8)
        #expect(OpenAIDialect.usage(endpoint: .openAIChatCompletions, responseBody: negative) == TokenUsage(outputTokens: 3))
        let anthropic = Data(#"{"usage":{"input_tokens":3,"output_tokens":10,"cache_creation_input_tokens":100,"cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":50},"output_tokens_details":{"thinking_tokens":40}}}"#.utf8)
        // 30 write tokens not covered by the breakdown are counted as 5-minute writes.
        #expect(AnthropicDialect.usage(endpoint: .anthropicMessages, responseBody: anthropic)
            == TokenUsage(inputTokens: 3, cacheWrite5mTokens: 50, cacheWrite1hTokens: 50, outputTokens: 0, reasoningTokens: 10))
        let gemini = Data(#"{"usageMetadata":{"promptTokenCount":5,"cachedContentTokenCount":9,"candidatesTokenCount":1}}"#.utf8)
        #expect(GeminiDialect.usage(endpoint: .geminiGenerateContent, responseBody: gemini)
            == TokenUsage(inputTokens: 0, cachedInputReadTokens: 9, outputTokens: 1))
    }

    @Test("no usage, or no JSON, gives nil")
    func noUsage() {
        for body in ["{}", "not json", "", "[]", #"{"usage":null}"#, #"{"usage":{}}"#] {
            let data = Data(body.utf8)
            #expect(OpenAIDialect.usage(endpoint: .openAIChatCompletions, responseBody: data) == nil)
            #expect(AnthropicDialect.usage(endpoint: .anthropicCountTokens, responseBody: data) == nil)
            #expect(GeminiDialect.usage(endpoint: .geminiCountTokens, responseBody: data) == nil)
            #expect(GeminiDialect.usage(endpoint: .geminiBatchEmbedContents, responseBody: data) == nil)
        }
        #expect(OpenAIDialect.usage(endpoint: .openAIModels, responseBody: Data(#"{"object":"list","data":[]}"#.utf8)) == nil)
    }

    @Test("Gemini: an embedding answer with usageMetadata, and a non-SSE stream (JSON array)")
    func geminiVariants() {
        let embed = Data(#"{"embeddings":[{"values":[0.1]}],"usageMetadata":{"promptTokenCount":8}}"#.utf8)
        #expect(GeminiDialect.usage(endpoint: .geminiBatchEmbedContents, responseBody: embed) == TokenUsage(inputTokens: 8))
        let array = Data(#"[{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":{"promptTokenCount":4},"modelVersion":"gemini-2.0-flash"},{"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2},"modelVersion":"gemini-2.0-flash-001"}]"#.utf8)
        #expect(GeminiDialect.usage(endpoint: .geminiStreamGenerateContent, responseBody: array)
            == TokenUsage(inputTokens: 4, outputTokens: 2))
        #expect(GeminiDialect.servedModel(endpoint: .geminiStreamGenerateContent, responseBody: array) == "gemini-2.0-flash-001")
    }
}
