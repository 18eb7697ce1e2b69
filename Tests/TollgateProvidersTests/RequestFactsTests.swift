import Foundation
import Testing
import TollgateEvents
@testable import TollgateProviders

@Suite("Request facts")
struct RequestFactsTests {
    private func facts(_ dialect: any ProviderDialect.Type, _ endpoint: Endpoint, _ path: String,
                       pathModel: String? = nil) throws -> RequestFacts
    {
        try dialect.requestFacts(endpoint: endpoint, body: try Fixture.data(path), pathModel: pathModel)
    }

    // Estimates below were computed independently (a Python script applying the rules documented on
    // `TokenEstimator`) from the fixture files.

    @Test("OpenAI chat: model, max_completion_tokens over max_tokens, tools, user, estimate")
    func openAIChat() throws {
        #expect(try facts(OpenAIDialect.self, .openAIChatCompletions, "openai/chat-request.json") == RequestFacts(
            model: "gpt-4o-2024-08-06", stream: false, maxOutputTokens: 512, toolCount: 2, user: "customer-42",
            estimatedInputTokens: 110, clientRequestedStreamUsage: false))
        #expect(try facts(OpenAIDialect.self, .openAIChatCompletions, "openai/chat-stream-request.json") == RequestFacts(
            model: "gpt-4o-mini", stream: true, maxOutputTokens: nil, toolCount: 0, user: nil,
            estimatedInputTokens: 4, clientRequestedStreamUsage: false))
    }

    @Test("OpenAI completions, embeddings and responses")
    func openAIOthers() throws {
        #expect(try facts(OpenAIDialect.self, .openAICompletions, "openai/completions-request.json") == RequestFacts(
            model: "gpt-3.5-turbo-instruct", stream: true, maxOutputTokens: 64, toolCount: 0, user: "batch-7",
            estimatedInputTokens: 10, clientRequestedStreamUsage: true))
        #expect(try facts(OpenAIDialect.self, .openAIEmbeddings, "openai/embeddings-request.json") == RequestFacts(
            model: "text-embedding-3-small", stream: false, maxOutputTokens: nil, toolCount: 0, user: "search-indexer",
            estimatedInputTokens: 19, clientRequestedStreamUsage: false))
        #expect(try facts(OpenAIDialect.self, .openAIResponses, "openai/responses-request.json") == RequestFacts(
            model: "o4-mini", stream: true, maxOutputTokens: 2048, toolCount: 2, user: "pirate-fan",
            estimatedInputTokens: 57, clientRequestedStreamUsage: false))
        #expect(try OpenAIDialect.requestFacts(endpoint: .openAIModels, body: Data(), pathModel: nil).model == nil)
    }

    @Test("Anthropic messages and count_tokens")
    func anthropic() throws {
        #expect(try facts(AnthropicDialect.self, .anthropicMessages, "anthropic/messages-request.json") == RequestFacts(
            model: "claude-sonnet-4-5-20250929", stream: false, maxOutputTokens: 1024, toolCount: 1, user: nil,
            estimatedInputTokens: 86, clientRequestedStreamUsage: false))
        #expect(try facts(AnthropicDialect.self, .anthropicCountTokens, "anthropic/count-tokens-request.json") == RequestFacts(
            model: "claude-sonnet-4-5", stream: false, maxOutputTokens: nil, toolCount: 1, user: nil,
            estimatedInputTokens: 32, clientRequestedStreamUsage: false))
    }

    @Test("Gemini: model from the path, stream from the method, generationConfig, tools")
    func gemini() throws {
        #expect(try facts(GeminiDialect.self, .geminiGenerateContent, "gemini/generate-request.json",
                          pathModel: "models/gemini-2.5-flash") == RequestFacts(
            model: "gemini-2.5-flash", stream: false, maxOutputTokens: 2048, toolCount: 3, user: nil,
            estimatedInputTokens: 73, clientRequestedStreamUsage: false))
        let streamed = try facts(GeminiDialect.self, .geminiStreamGenerateContent, "gemini/generate-request.json",
                                 pathModel: "gemini-2.5-pro")
        #expect(streamed.stream && streamed.model == "gemini-2.5-pro")
        #expect(try facts(GeminiDialect.self, .geminiCountTokens, "gemini/count-tokens-request.json",
                          pathModel: "models/gemini-2.0-flash").estimatedInputTokens == 12)
        #expect(try facts(GeminiDialect.self, .geminiEmbedContent, "gemini/embed-request.json",
                          pathModel: "models/text-embedding-004") == RequestFacts(
            model: "text-embedding-004", stream: false, maxOutputTokens: nil, toolCount: 0, user: nil,
            estimatedInputTokens: 7, clientRequestedStreamUsage: false))
        let snake = Data(#"{"contents":[],"generation_config":{"max_output_tokens":99},"tools":[{"function_declarations":[{},{}]}]}"#.utf8)
        let snakeFacts = try GeminiDialect.requestFacts(endpoint: .geminiGenerateContent, body: snake, pathModel: "tunedModels/t1")
        #expect(snakeFacts.maxOutputTokens == 99 && snakeFacts.toolCount == 2 && snakeFacts.model == "tunedModels/t1")
        #expect(GeminiDialect.model(fromPath: "models/") == nil)
    }

    @Test("null members are absent; integral numbers are integers; Responses may omit model")
    func lenientReads() throws {
        let body = Data(#"{"model":"m","stream":null,"max_tokens":100.0,"user":null,"tools":null,"messages":[]}"#.utf8)
        let facts = try OpenAIDialect.requestFacts(endpoint: .openAIChatCompletions, body: body, pathModel: nil)
        #expect(facts.stream == false && facts.maxOutputTokens == 100 && facts.user == nil && facts.toolCount == 0)
        let prompt = Data(#"{"prompt":{"id":"pmpt_123"},"input":"hi"}"#.utf8)
        #expect(try OpenAIDialect.requestFacts(endpoint: .openAIResponses, body: prompt, pathModel: nil).model == nil)
    }

    struct BadBody: Sendable, CustomTestStringConvertible {
        var endpoint: Endpoint
        var body: [UInt8]
        var error: RequestError
        var testDescription: String { "\(endpoint.rawValue) \(String(decoding: body, as: UTF8.self)) → \(error)" }

        init(_ endpoint: Endpoint, _ body: String, _ error: RequestError) {
            self.init(endpoint, Array(body.utf8), error)
        }

        init(_ endpoint: Endpoint, _ body: [UInt8], _ error: RequestError) {
            self.endpoint = endpoint
            self.body = body
            self.error = error
        }
    }

    static let badBodies: [BadBody] = [
        BadBody(.openAIChatCompletions, Array(#"{"model":"gpt-4o","messages":[{"content":""#.utf8) + [0xFF] + Array(#""}]}"#.utf8), .invalidUTF8),
        BadBody(.anthropicMessages, Array(#"{"model":""#.utf8) + [0xC0, 0xAF] + Array(#""}"#.utf8), .invalidUTF8),  // overlong
        BadBody(.geminiGenerateContent, Array(#"{"contents":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8), .invalidUTF8),  // surrogate
        BadBody(.openAIEmbeddings, [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], .invalidUTF8),  // above U+10FFFF
        BadBody(.openAIChatCompletions, "[]", .notAnObject),
        BadBody(.openAIResponses, "\"hello\"", .notAnObject),
        BadBody(.anthropicMessages, "42", .notAnObject),
        BadBody(.anthropicCountTokens, "null", .notAnObject),
        BadBody(.geminiGenerateContent, "true", .notAnObject),
        BadBody(.openAIChatCompletions, #"{"model":42,"messages":[]}"#, .wrongType(field: "model", expected: "a string")),
        BadBody(.openAIChatCompletions, #"{"model":"m","stream":"yes"}"#, .wrongType(field: "stream", expected: "a boolean")),
        BadBody(.openAIChatCompletions, #"{"model":"m","max_tokens":1.5}"#, .wrongType(field: "max_tokens", expected: "an integer")),
        BadBody(.openAIChatCompletions, #"{"model":"m","max_completion_tokens":"100"}"#, .wrongType(field: "max_completion_tokens", expected: "an integer")),
        BadBody(.openAIChatCompletions, #"{"model":"m","messages":{"role":"user"}}"#, .wrongType(field: "messages", expected: "an array")),
        BadBody(.openAIChatCompletions, #"{"model":"m","tools":{}}"#, .wrongType(field: "tools", expected: "an array")),
        BadBody(.openAIChatCompletions, #"{"model":"m","user":7}"#, .wrongType(field: "user", expected: "a string")),
        BadBody(.openAIChatCompletions, #"{"model":"m","stream_options":"on"}"#, .wrongType(field: "stream_options", expected: "an object")),
        BadBody(.openAIChatCompletions, #"{"model":"m","stream_options":{"include_usage":1}}"#, .wrongType(field: "stream_options.include_usage", expected: "a boolean")),
        BadBody(.openAICompletions, #"{"model":"m","max_tokens":true}"#, .wrongType(field: "max_tokens", expected: "an integer")),
        BadBody(.openAIResponses, #"{"model":"m","max_output_tokens":"lots"}"#, .wrongType(field: "max_output_tokens", expected: "an integer")),
        BadBody(.openAIResponses, #"{"model":"m","stream":0}"#, .wrongType(field: "stream", expected: "a boolean")),
        BadBody(.openAIEmbeddings, #"{"model":["a"]}"#, .wrongType(field: "model", expected: "a string")),
        BadBody(.anthropicMessages, #"{"model":"c","max_tokens":"1024","messages":[]}"#, .wrongType(field: "max_tokens", expected: "an integer")),
        BadBody(.anthropicMessages, #"{"model":"c","messages":"hi"}"#, .wrongType(field: "messages", expected: "an array")),
        BadBody(.anthropicMessages, #"{"model":"c","stream":"true","messages":[]}"#, .wrongType(field: "stream", expected: "a boolean")),
        BadBody(.anthropicCountTokens, #"{"model":"c","tools":"none"}"#, .wrongType(field: "tools", expected: "an array")),
        BadBody(.geminiGenerateContent, #"{"contents":{}}"#, .wrongType(field: "contents", expected: "an array")),
        BadBody(.geminiGenerateContent, #"{"contents":[],"generationConfig":{"maxOutputTokens":"x"}}"#, .wrongType(field: "generationConfig.maxOutputTokens", expected: "an integer")),
        BadBody(.geminiStreamGenerateContent, #"{"contents":[],"generationConfig":[]}"#, .wrongType(field: "generationConfig", expected: "an object")),
        BadBody(.geminiGenerateContent, #"{"contents":[],"tools":{"googleSearch":{}}}"#, .wrongType(field: "tools", expected: "an array")),
        BadBody(.openAIChatCompletions, #"{"messages":[]}"#, .missingField("model")),
        BadBody(.openAIEmbeddings, #"{"model":null,"input":"x"}"#, .missingField("model")),
        BadBody(.anthropicMessages, #"{"max_tokens":10,"messages":[]}"#, .missingField("model")),
    ]

    @Test("bad bodies are refused with the matching RequestError", arguments: badBodies)
    func badBody(_ bad: BadBody) {
        #expect(throws: bad.error) {
            try bad.endpoint.dialect.requestFacts(endpoint: bad.endpoint, body: Data(bad.body), pathModel: "models/g")
        }
    }

    @Test("malformed JSON is refused with a detail", arguments: [
        "", "{", #"{"model": "m",}"#, #"{"model": 'm'}"#, "{\"a\":1} trailing", #"{"model": "m"#,
    ])
    func malformedJSON(_ text: String) {
        for endpoint in [Endpoint.openAIChatCompletions, .anthropicMessages, .geminiGenerateContent] {
            do {
                _ = try endpoint.dialect.requestFacts(endpoint: endpoint, body: Data(text.utf8), pathModel: "g")
                Issue.record("accepted \(text)")
            } catch {
                guard case .malformedJSON(let detail) = error else {
                    Issue.record("\(text): \(error)")
                    continue
                }
                #expect(!detail.isEmpty)
            }
        }
    }

    @Test("every endpoint has the dialect of its provider")
    func dialects() {
        for endpoint in Endpoint.allCases {
            #expect(endpoint.dialect.provider == endpoint.provider)
        }
    }
}

@Suite("Token estimator")
struct TokenEstimatorTests {
    @Test("ceil(bytes / 4)")
    func rounding() {
        #expect([0, 1, 3, 4, 5, 8, 9, -3].map { TokenEstimator.tokens(utf8Count: $0) } == [0, 1, 1, 1, 2, 2, 3, 0])
        #expect(TokenEstimator.tokens(for: "Hello, world!") == 4)
        #expect(TokenEstimator.tokens(for: "日本語") == 3)  // 9 bytes
    }

    @Test("text in the named members only; media and keys skipped; escapes decoded; token ids counted")
    func requestText() {
        let body = Data(#"""
        {"model":"ignored-model-name","messages":[{"role":"user","content":[
          {"type":"text","text":"caf\u00e9 \ud83d\ude00"},
          {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAAAAAAAAAAAAAAAAAAAAAA"}},
          {"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZFZm10","format":"wav"}}]}],
         "tools":[{"name":"ab"}],"prompt":[1,2,3,"four"]}
        """#.utf8)
        // messages: user(4) text(4) "café 😀"(10) image_url(9) input_audio(11) wav(3) = 41 bytes
        #expect(TokenEstimator.inputTokens(body: body, fields: [.text("messages")]) == 11)
        // tools with keys: name(4) ab(2) = 6 bytes
        #expect(TokenEstimator.inputTokens(body: body, fields: [.tools("tools")]) == 2)
        // prompt: three token ids + "four"
        #expect(TokenEstimator.inputTokens(body: body, fields: [.tokenIDs("prompt")]) == 4)
        #expect(TokenEstimator.inputTokens(body: Data("[]".utf8), fields: [.text("messages")]) == 0)
    }
}
