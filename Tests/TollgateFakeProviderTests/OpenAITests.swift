import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
import TollgateFakeProvider

@Suite struct OpenAIChatTests {
    // "You are terse." (14 bytes) + "Hello there, how are you?" (25 bytes) = 39 bytes = 10 tokens.
    static let body = #"""
        {"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},
         {"role":"user","content":[{"type":"text","text":"Hello there, how are you?"}]}]}
        """#

    @Test func nonStreamingShapeAndUsage() async throws {
        try await withFake { client in
            let response = try await client.post("/v1/chat/completions", Self.body, headers: Auth.openAI)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            #expect(response.headers[HTTPField.Name("x-request-id")!]?.hasPrefix("req_") == true)
            let json = response.json
            #expect(json["object"] == "chat.completion")
            #expect(json["id"]?.stringValue?.hasPrefix("chatcmpl-") == true)
            #expect(json["model"] == "gpt-4o-mini")
            #expect(json["created"]?.intValue != nil)
            #expect(json.at("choices", 0, "index") == 0)
            #expect(json.at("choices", 0, "message", "role") == "assistant")
            #expect(json.at("choices", 0, "message", "content") == "Echo: Hello there, how are you?")
            #expect(json.at("choices", 0, "finish_reason") == "stop")
            #expect(json.at("usage", "prompt_tokens") == 10)
            #expect(json.at("usage", "completion_tokens") == 6)
            #expect(json.at("usage", "total_tokens") == 16)
            #expect(json.at("usage", "prompt_tokens_details", "cached_tokens") == 0)
            #expect(json.at("usage", "completion_tokens_details", "reasoning_tokens") == 0)
        }
    }

    @Test func maxTokensTruncatesWithLength() async throws {
        try await withFake { client in
            let body = #"{"model":"gpt-4o","max_completion_tokens":3,"messages":[{"role":"user","content":"a b c d e"}]}"#
            let json = try await client.post("/v1/chat/completions", body, headers: Auth.openAI).json
            #expect(json.at("choices", 0, "message", "content") == "Echo: a b")
            #expect(json.at("choices", 0, "finish_reason") == "length")
            #expect(json.at("usage", "completion_tokens") == 3)
        }
    }

    @Test func streamWithoutUsageHasNoUsageChunk() async throws {
        try await withFake { client in
            let body = #"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi you"}]}"#
            let response = try await client.post("/v1/chat/completions", body, headers: Auth.openAI)
            #expect(response.headers[.contentType] == "text/event-stream; charset=utf-8")
            let events = response.events
            #expect(events.allSatisfy { $0.event == nil })
            #expect(events.last?.data == "[DONE]")
            let chunks = events.dropLast().map(\.json)
            #expect(chunks.count == 5)  // role, 3 words, finish
            #expect(chunks.allSatisfy { $0["object"] == "chat.completion.chunk" && $0["usage"] == nil })
            #expect(Set(chunks.compactMap { $0["id"]?.stringValue }).count == 1)
            #expect(chunks[0].at("choices", 0, "delta", "role") == "assistant")
            #expect(chunks[0].at("choices", 0, "delta", "content") == "")
            let text = chunks.compactMap { $0.at("choices", 0, "delta", "content")?.stringValue }.joined()
            #expect(text == "Echo: hi you")
            #expect(chunks.last?.at("choices", 0, "finish_reason") == "stop")
            #expect(chunks.dropLast().allSatisfy { $0.at("choices", 0, "finish_reason") == .null })
        }
    }

    @Test func streamWithIncludeUsageEndsWithUsageChunk() async throws {
        try await withFake { client in
            let body = #"""
                {"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},
                 "messages":[{"role":"user","content":"hi you"}]}
                """#
            let events = try await client.post("/v1/chat/completions", body, headers: Auth.openAI).events
            #expect(events.last?.data == "[DONE]")
            let chunks = events.dropLast().map(\.json)
            let final = try #require(chunks.last)
            #expect(final["choices"] == [])
            #expect(final.at("usage", "prompt_tokens") == 2)
            #expect(final.at("usage", "completion_tokens") == 3)
            #expect(final.at("usage", "total_tokens") == 5)
            // Every other chunk says `"usage": null`, as OpenAI does.
            #expect(chunks.dropLast().allSatisfy { $0["usage"] == .null })
        }
    }

    @Test func streamOptionsWithoutStreamIs400() async throws {
        try await withFake { client in
            let body = #"{"model":"gpt-4o","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}"#
            let response = try await client.post("/v1/chat/completions", body, headers: Auth.openAI)
            #expect(response.status == .badRequest)
            #expect(response.json.at("error", "param") == "stream_options")
        }
    }

    static let toolBody = #"""
        {"model":"gpt-4o","messages":[{"role":"user","content":"Weather in Paris?"}],
         "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
           "properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city","unit"]}}},
          {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}]
        """#

    @Test func toolCallNonStreaming() async throws {
        try await withFake { client in
            let json = try await client.post("/v1/chat/completions", Self.toolBody + "}", headers: Auth.openAI).json
            let message = try #require(json.at("choices", 0, "message"))
            #expect(message["content"] == .null)
            #expect(message.at("tool_calls", 0, "type") == "function")
            #expect(message.at("tool_calls", 0, "id")?.stringValue?.hasPrefix("call_") == true)
            #expect(message.at("tool_calls", 0, "function", "name") == "get_weather")
            #expect(message.at("tool_calls", 0, "function", "arguments") == #"{"city":"fake","unit":"c"}"#)
            #expect(json.at("choices", 0, "finish_reason") == "tool_calls")
            #expect(json.at("usage", "completion_tokens") == 7)  // 26 bytes of arguments
        }
    }

    @Test func toolChoiceNamesAToolOrForbidsTools() async throws {
        try await withFake { client in
            let named = Self.toolBody + #","tool_choice":{"type":"function","function":{"name":"get_time"}}}"#
            let json = try await client.post("/v1/chat/completions", named, headers: Auth.openAI).json
            #expect(json.at("choices", 0, "message", "tool_calls", 0, "function", "name") == "get_time")
            #expect(json.at("choices", 0, "message", "tool_calls", 0, "function", "arguments") == "{}")

            let none = Self.toolBody + #","tool_choice":"none"}"#
            let text = try await client.post("/v1/chat/completions", none, headers: Auth.openAI).json
            #expect(text.at("choices", 0, "message", "content") == "Echo: Weather in Paris?")

            let missing = Self.toolBody + #","tool_choice":{"type":"function","function":{"name":"nope"}}}"#
            #expect(try await client.post("/v1/chat/completions", missing, headers: Auth.openAI).status == .badRequest)
        }
    }

    @Test func toolResultGetsATextAnswer() async throws {
        try await withFake { client in
            let body = #"""
                {"model":"gpt-4o","messages":[{"role":"user","content":"Weather?"},
                 {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
                 {"role":"tool","tool_call_id":"call_1","content":"Sunny and warm"}],
                 "tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]}
                """#
            let json = try await client.post("/v1/chat/completions", body, headers: Auth.openAI).json
            #expect(json.at("choices", 0, "message", "content") == "Echo: Sunny and warm")
            #expect(json.at("choices", 0, "finish_reason") == "stop")
            #expect(json.at("usage", "prompt_tokens") == 6)  // 8 + 14 bytes
        }
    }

    @Test func toolCallStreaming() async throws {
        try await withFake { client in
            let body = Self.toolBody + #","stream":true,"stream_options":{"include_usage":true}}"#
            let events = try await client.post("/v1/chat/completions", body, headers: Auth.openAI).events
            let chunks = events.dropLast().map(\.json)
            let first = try #require(chunks.first?.at("choices", 0, "delta", "tool_calls", 0))
            #expect(first["index"] == 0)
            #expect(first["id"]?.stringValue?.hasPrefix("call_") == true)
            #expect(first.at("function", "name") == "get_weather")
            #expect(first.at("function", "arguments") == "")
            let arguments = chunks.dropFirst().compactMap {
                $0.at("choices", 0, "delta", "tool_calls", 0, "function", "arguments")?.stringValue
            }.joined()
            #expect(arguments == #"{"city":"fake","unit":"c"}"#)
            #expect(chunks.dropFirst().allSatisfy { $0.at("choices", 0, "delta", "tool_calls", 0, "id") == nil })
            #expect(chunks[chunks.count - 2].at("choices", 0, "finish_reason") == "tool_calls")
            #expect(chunks.last?.at("usage", "completion_tokens") == 7)
        }
    }

    @Test func reasoningEffortAndReasoningModels() async throws {
        try await withFake { client in
            let high = #"{"model":"gpt-5","reasoning_effort":"high","messages":[{"role":"user","content":"why"}]}"#
            var json = try await client.post("/v1/chat/completions", high, headers: Auth.openAI).json
            #expect(json.at("usage", "completion_tokens_details", "reasoning_tokens") == 128)
            #expect(json.at("usage", "completion_tokens") == 130)
            #expect(json.at("choices", 0, "message", "content") == "Echo: why")

            let o3 = #"{"model":"o3-mini","messages":[{"role":"user","content":"why"}]}"#
            json = try await client.post("/v1/chat/completions", o3, headers: Auth.openAI).json
            #expect(json.at("usage", "completion_tokens_details", "reasoning_tokens") == 64)
            #expect(json.at("usage", "completion_tokens") == 66)
        }
    }

    @Test func promptCacheKeyCachesLongPrompts() async throws {
        try await withFake { client in
            let long = String(repeating: "abcd ", count: 1000)  // 5000 bytes = 1250 tokens
            let body = #"{"model":"gpt-4o","prompt_cache_key":"k","messages":[{"role":"user","content":"\#(long)"}]}"#
            let json = try await client.post("/v1/chat/completions", body, headers: Auth.openAI).json
            #expect(json.at("usage", "prompt_tokens") == 1250)
            #expect(json.at("usage", "prompt_tokens_details", "cached_tokens") == 1152)
            let uncached = body.replacingOccurrences(of: #""prompt_cache_key":"k","#, with: "")
            let plain = try await client.post("/v1/chat/completions", uncached, headers: Auth.openAI).json
            #expect(plain.at("usage", "prompt_tokens_details", "cached_tokens") == 0)
        }
    }

    @Test func badRequests() async throws {
        try await withFake { client in
            var response = try await client.post("/v1/chat/completions", "{not json", headers: Auth.openAI)
            #expect(response.status == .badRequest)
            #expect(response.json.at("error", "type") == "invalid_request_error")
            #expect(response.json.at("error", "message")?.stringValue?.contains("could not parse the JSON body") == true)

            response = try await client.post("/v1/chat/completions", #"{"messages":[]}"#, headers: Auth.openAI)
            #expect(response.status == .badRequest)
            #expect(response.json.at("error", "message") == "you must provide a model parameter")

            response = try await client.post("/v1/chat/completions", #"{"model":"m"}"#, headers: Auth.openAI)
            #expect(response.json.at("error", "code") == "missing_required_parameter")

            response = try await client.post("/v1/chat/completions", #"{"model":"m","messages":[]}"#, headers: Auth.openAI)
            #expect(response.json.at("error", "code") == "empty_array")
        }
    }

    @Test func authentication() async throws {
        try await withFake(.init(requiredKey: "sk-real")) { client in
            let body = Self.body
            var response = try await client.post("/v1/chat/completions", body, headers: [.contentType: "application/json"])
            #expect(response.status == .unauthorized)
            #expect(response.json.at("error", "type") == "invalid_request_error")
            #expect(response.json.at("error", "code") == .null)

            response = try await client.post("/v1/chat/completions", body, headers: Auth.openAI)
            #expect(response.status == .unauthorized)
            #expect(response.json.at("error", "code") == "invalid_api_key")
            #expect(!response.text.contains("sk-test"), "the refused key is not echoed")

            var good = Auth.openAI
            good[.authorization] = "Bearer sk-real"
            #expect(try await client.post("/v1/chat/completions", body, headers: good).status == .ok)
        }
    }

    @Test func unknownPathIsOpenAIShaped404() async throws {
        try await withFake { client in
            let response = try await client.post("/v1/nothing", "{}", headers: Auth.openAI)
            #expect(response.status == .notFound)
            #expect(response.json.at("error", "message") == "Invalid URL (POST /v1/nothing)")
        }
    }
}

@Suite struct OpenAIOtherEndpointTests {
    @Test func legacyCompletions() async throws {
        try await withFake { client in
            let body = #"{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test"}"#
            let json = try await client.post("/v1/completions", body, headers: Auth.openAI).json
            #expect(json["object"] == "text_completion")
            #expect(json.at("choices", 0, "text") == "Echo: Say this is a test")
            #expect(json.at("choices", 0, "finish_reason") == "stop")
            #expect(json.at("usage", "prompt_tokens") == 5)
            #expect(json.at("usage", "completion_tokens") == 6)

            // max_tokens defaults to 16 here, as on the real API.
            let long = #"{"model":"m","prompt":"\#((1...30).map(String.init).joined(separator: " "))"}"#
            let cut = try await client.post("/v1/completions", long, headers: Auth.openAI).json
            #expect(cut.at("choices", 0, "finish_reason") == "length")
            #expect(cut.at("usage", "completion_tokens") == 16)

            let stream = #"{"model":"m","prompt":"a b","stream":true,"stream_options":{"include_usage":true}}"#
            let events = try await client.post("/v1/completions", stream, headers: Auth.openAI).events
            #expect(events.last?.data == "[DONE]")
            let chunks = events.dropLast().map(\.json)
            #expect(chunks.compactMap { $0.at("choices", 0, "text")?.stringValue }.joined() == "Echo: a b")
            #expect(chunks.last?["choices"] == [])
            #expect(chunks.last?.at("usage", "completion_tokens") == 3)
        }
    }

    @Test func embeddingsFloatAndBase64() async throws {
        try await withFake { client in
            let body = #"{"model":"text-embedding-3-small","input":["hello world","second"],"encoding_format":"float"}"#
            let json = try await client.post("/v1/embeddings", body, headers: Auth.openAI).json
            #expect(json["object"] == "list")
            #expect(json.at("data", 0, "object") == "embedding")
            #expect(json.at("data", 1, "index") == 1)
            let vector = try #require(json.at("data", 0, "embedding")?.arrayValue)
            #expect(vector.count == 16)
            #expect(json.at("usage", "prompt_tokens") == 5)  // 11 + 6 bytes
            #expect(json.at("usage", "total_tokens") == 5)

            let base64Body = #"{"model":"text-embedding-3-small","input":"hello world","encoding_format":"base64","dimensions":4}"#
            let encoded = try await client.post("/v1/embeddings", base64Body, headers: Auth.openAI).json
            let text = try #require(encoded.at("data", 0, "embedding")?.stringValue)
            let data = try #require(Data(base64Encoded: text))
            #expect(data.count == 16)
            let floats = data.withUnsafeBytes { raw in
                (0..<4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
            let expected = FakeRules.embedding(of: "hello world", dimensions: 4)
            #expect(floats.map(Double.init) == expected)
            #expect(vector == FakeRules.embedding(of: "hello world", dimensions: 16).map(JSON.double))
        }
    }

    @Test func modelsList() async throws {
        try await withFake { client in
            let json = try await client.get("/v1/models", headers: Auth.openAI).json
            #expect(json["object"] == "list")
            #expect(json.at("data", 0, "object") == "model")
            let anthropic = try await client.get("/v1/models", headers: Auth.anthropic).json
            #expect(anthropic.at("data", 0, "type") == "model")
            #expect(anthropic["has_more"] == false)
        }
    }
}
