import Foundation
import Testing
import TollgateEvents
@testable import TollgateProviders

@Suite("Stream meters")
struct MeterTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var provider: Provider
        var endpoint: Endpoint
        var path: String
        var clientRequestedStreamUsage = false
        var expected: MeterOutcome
        /// Text whose line completes the stream (`[DONE]`, `message_stop`, …): a cut before it is incomplete.
        var completionMarker: String
        var testDescription: String { path + (clientRequestedStreamUsage ? " (client asked for usage)" : "") }
    }

    static let cases: [Case] = [
        Case(provider: .openai, endpoint: .openAIChatCompletions, path: "openai/chat-stream-text.sse",
             expected: MeterOutcome(usage: TokenUsage(inputTokens: 19, outputTokens: 10), servedModel: "gpt-4o-mini-2024-07-18",
                                    completed: true, outputCharacters: 23, dropped: [4]),
             completionMarker: "data: [DONE]"),
        Case(provider: .openai, endpoint: .openAIChatCompletions, path: "openai/chat-stream-text.sse",
             clientRequestedStreamUsage: true,
             expected: MeterOutcome(usage: TokenUsage(inputTokens: 19, outputTokens: 10), servedModel: "gpt-4o-mini-2024-07-18",
                                    completed: true, outputCharacters: 23, dropped: []),
             completionMarker: "data: [DONE]"),
        Case(provider: .openai, endpoint: .openAIChatCompletions, path: "openai/chat-stream-tools.sse",
             expected: MeterOutcome(usage: TokenUsage(inputTokens: 183, cachedInputReadTokens: 2048, outputTokens: 17),
                                    servedModel: "gpt-4.1-2025-04-14", completed: true, outputCharacters: 16, dropped: [5]),
             completionMarker: "data: [DONE]"),
        Case(provider: .openai, endpoint: .openAIChatCompletions, path: "openai/chat-stream-no-usage.sse",
             expected: MeterOutcome(usage: nil, servedModel: "gpt-4o-mini-2024-07-18", completed: true, outputCharacters: 2),
             completionMarker: "data: [DONE]"),
        Case(provider: .openai, endpoint: .openAICompletions, path: "openai/completions-stream.sse",
             expected: MeterOutcome(usage: TokenUsage(inputTokens: 9, outputTokens: 3),
                                    servedModel: "gpt-3.5-turbo-instruct:20230824-v2", completed: true, outputCharacters: 14,
                                    dropped: [3]),
             completionMarker: "data: [DONE]"),
        Case(provider: .openai, endpoint: .openAIResponses, path: "openai/responses-stream.sse",
             expected: MeterOutcome(usage: TokenUsage(inputTokens: 176, cachedInputReadTokens: 1024, outputTokens: 94,
                                                      reasoningTokens: 256),
                                    servedModel: "o4-mini-2025-04-16", completed: true, outputCharacters: 57),
             completionMarker: "data: {\"type\":\"response.completed\""),
        Case(provider: .anthropic, endpoint: .anthropicMessages, path: "anthropic/messages-stream.sse",
             expected: MeterOutcome(usage: TokenUsage(inputTokens: 472, cachedInputReadTokens: 4096, cacheWrite5mTokens: 1024,
                                                      cacheWrite1hTokens: 1024, outputTokens: 99, reasoningTokens: 120),
                                    servedModel: "claude-opus-4-1-20250805", completed: true, outputCharacters: 92),
             completionMarker: "data: {\"type\":\"message_stop\"}"),
        Case(provider: .anthropic, endpoint: .anthropicMessages, path: "anthropic/messages-stream-legacy.sse",
             expected: MeterOutcome(usage: TokenUsage(inputTokens: 25, cacheWrite5mTokens: 700, outputTokens: 15),
                                    servedModel: "claude-3-5-sonnet-20241022", completed: true, outputCharacters: 6),
             completionMarker: "data: {\"type\":\"message_stop\"}"),
        // 48 bytes of text (thought included) + 47 for the function call's JSON size estimate.
        Case(provider: .gemini, endpoint: .geminiStreamGenerateContent, path: "gemini/stream.sse",
             expected: MeterOutcome(usage: TokenUsage(inputTokens: 42, cachedInputReadTokens: 1024, outputTokens: 220,
                                                      reasoningTokens: 400, audioInputTokens: 320),
                                    servedModel: "gemini-2.5-flash", completed: true, outputCharacters: 95),
             completionMarker: "\"finishReason\": \"STOP\""),
    ]

    private func meter(_ c: Case) -> any StreamMeter {
        c.provider.dialect.meter(endpoint: c.endpoint, facts: streamFacts(clientRequestedStreamUsage: c.clientRequestedStreamUsage))
    }

    @Test("usage, model, completion and characters of each stream fixture", arguments: cases)
    func wholeStream(_ c: Case) throws {
        let bytes = [UInt8](try Fixture.data(c.path))
        #expect(MeterOutcome(meter: meter(c), events: SSEParser.parse(bytes)) == c.expected)
    }

    @Test("the same outcome for every split of the stream into two chunks", arguments: cases)
    func everyChunking(_ c: Case) throws {
        let bytes = [UInt8](try Fixture.data(c.path))
        for cut in 0...bytes.count {
            let outcome = MeterOutcome(meter: meter(c), events: SSEParser.parse(bytes, cuts: [cut]))
            #expect(outcome == c.expected, "split at \(cut)")
            if outcome != c.expected { return }
        }
    }

    @Test("a stream cut before its end is not complete", arguments: cases)
    func cutStreams(_ c: Case) throws {
        let data = try Fixture.data(c.path)
        let bytes = [UInt8](data)
        let text = String(decoding: data, as: UTF8.self)
        let marker = try #require(text.range(of: c.completionMarker, options: .backwards))
        // The end of the line holding the marker, in bytes.
        let lineEnd = text[marker.upperBound...].firstIndex(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) ?? text.endIndex
        let completionOffset = text.utf8.distance(from: text.startIndex, to: lineEnd)
        var random = SplitMix64(seed: 7)
        var lastCompleted = false
        for cutAt in stride(from: 0, through: bytes.count, by: 7) + [completionOffset - 1, completionOffset, bytes.count] {
            let prefix = Array(bytes[0..<cutAt])
            let chunkCut = Int.random(in: 0...prefix.count, using: &random)
            let outcome = MeterOutcome(meter: meter(c), events: SSEParser.parse(prefix, cuts: [chunkCut]))
            if cutAt < completionOffset {
                #expect(!outcome.completed, "cut at \(cutAt)")
            } else {
                #expect(outcome.completed, "cut at \(cutAt)")
            }
            lastCompleted = outcome.completed
        }
        #expect(lastCompleted)
    }

    @Test("OpenAI: the injected usage chunk is dropped, and only that chunk")
    func droppedChunkBytes() throws {
        let data = try Fixture.data("openai/chat-stream-tools.sse")
        let events = SSEParser.parse([UInt8](data))
        var meter = OpenAIDialect.meter(endpoint: .openAIChatCompletions, facts: streamFacts())
        var forwarded = Data()
        var dropped: [SSEEvent] = []
        for event in events {
            if meter.observe(event) == .forward { forwarded += event.raw } else { dropped.append(event) }
        }
        #expect(dropped.count == 1)
        #expect(dropped.first?.data.contains("\"choices\":[],\"usage\":{") == true)
        let text = String(decoding: data, as: UTF8.self)
        let expected = text.replacingOccurrences(of: String(decoding: try #require(dropped.first).raw, as: UTF8.self), with: "")
        #expect(String(decoding: forwarded, as: UTF8.self) == expected)
        #expect(expected.hasSuffix("\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\ndata: [DONE]\n\n"))
        #expect(meter.usage?.cachedInputReadTokens == 2048)
    }

    @Test("OpenAI: a usage chunk that still has choices is forwarded")
    func usageWithChoicesForwarded() {
        var meter = OpenAIDialect.meter(endpoint: .openAIChatCompletions, facts: streamFacts())
        let event = SSEEvent(raw: Data(), event: nil,
                             data: #"{"model":"m","choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#)
        #expect(meter.observe(event) == .forward)
        #expect(meter.usage == TokenUsage(inputTokens: 1, outputTokens: 1))
        #expect(meter.observe(SSEEvent(raw: Data(), event: nil, data: "not json")) == .forward)
        #expect(meter.observe(SSEEvent(raw: Data(), event: nil, data: "")) == .forward)
        #expect(!meter.completed)
    }

    @Test("Anthropic: a stream cut after message_start has the input usage so far")
    func anthropicPartialUsage() throws {
        let data = try Fixture.data("anthropic/messages-stream.sse")
        let text = String(decoding: data, as: UTF8.self)
        let cut = try #require(text.range(of: "event: content_block_stop"))
        let prefix = Array(text[..<cut.lowerBound].utf8)
        let outcome = MeterOutcome(meter: AnthropicDialect.Meter(), events: SSEParser.parse(prefix))
        #expect(outcome.usage == TokenUsage(inputTokens: 472, cachedInputReadTokens: 4096, cacheWrite5mTokens: 1024,
                                             cacheWrite1hTokens: 1024, outputTokens: 2))
        #expect(!outcome.completed)
        #expect(outcome.outputCharacters == 32)  // the thinking delta
    }

    @Test("Responses: response.incomplete and response.failed end the stream")
    func responsesTerminalEvents() {
        for type in ["response.incomplete", "response.failed"] {
            var meter = OpenAIDialect.meter(endpoint: .openAIResponses, facts: streamFacts())
            let event = SSEEvent(raw: Data(), event: type, data: #"{"type":"\#(type)","response":{"model":"gpt-5","usage":{"input_tokens":10,"output_tokens":2,"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}}}}"#)
            #expect(meter.observe(event) == .forward)
            #expect(meter.completed)
            #expect(meter.usage == TokenUsage(inputTokens: 10, outputTokens: 2))
            #expect(meter.servedModel == "gpt-5")
        }
    }
}
