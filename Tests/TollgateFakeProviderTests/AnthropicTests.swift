import HTTPTypes
import HummingbirdTesting
import Testing
import TollgateFakeProvider

@Suite struct AnthropicTests {
    @Test func nonStreamingShapeAndUsage() async throws {
        try await withFake { client in
            // "Be nice." 8 bytes + "Hello, Claude" 13 bytes = 21 bytes = 6 tokens.
            let body = #"{"model":"claude-sonnet-4-5","max_tokens":100,"system":"Be nice.","messages":[{"role":"user","content":"Hello, Claude"}]}"#
            let response = try await client.post("/v1/messages", body, headers: Auth.anthropic)
            #expect(response.status == .ok)
            #expect(response.headers[HTTPField.Name("request-id")!] != nil)
            let json = response.json
            #expect(json["type"] == "message")
            #expect(json["role"] == "assistant")
            #expect(json["id"]?.stringValue?.hasPrefix("msg_") == true)
            #expect(json["model"] == "claude-sonnet-4-5")
            #expect(json["content"] == [.object([("type", "text"), ("text", "Echo: Hello, Claude")])])
            #expect(json["stop_reason"] == "end_turn")
            #expect(json["stop_sequence"] == .null)
            #expect(json.at("usage", "input_tokens") == 6)
            #expect(json.at("usage", "output_tokens") == 3)
            #expect(json.at("usage", "cache_creation_input_tokens") == 0)
            #expect(json.at("usage", "cache_read_input_tokens") == 0)
            #expect(json.at("usage", "cache_creation", "ephemeral_5m_input_tokens") == 0)
            #expect(json.at("usage", "cache_creation", "ephemeral_1h_input_tokens") == 0)
        }
    }

    static let cachedBody = #"""
        {"model":"claude-sonnet-4-5","max_tokens":50,
         "system":[{"type":"text","text":"0123456789abcdef0123456789abcdef","cache_control":{"type":"ephemeral"}},
                   {"type":"text","text":"0123456789abcdef","cache_control":{"type":"ephemeral","ttl":"1h"}}],
         "messages":[{"role":"user","content":[{"type":"text","text":"question here"}]}]}
        """#

    @Test func cacheControlBlocksAreCacheWrites() async throws {
        try await withFake { client in
            let json = try await client.post("/v1/messages", Self.cachedBody, headers: Auth.anthropic).json
            #expect(json.at("usage", "input_tokens") == 4)  // "question here": 13 bytes
            #expect(json.at("usage", "cache_creation_input_tokens") == 12)  // 32/4 + 16/4
            #expect(json.at("usage", "cache_creation", "ephemeral_5m_input_tokens") == 8)
            #expect(json.at("usage", "cache_creation", "ephemeral_1h_input_tokens") == 4)
            #expect(json.at("usage", "cache_read_input_tokens") == 0)
        }
    }

    @Test func fakeCacheReadHeaderMakesThemReads() async throws {
        try await withFake { client in
            let headers = Auth.anthropic.adding("x-fake-cache", "read")
            let json = try await client.post("/v1/messages", Self.cachedBody, headers: headers).json
            #expect(json.at("usage", "input_tokens") == 4)
            #expect(json.at("usage", "cache_creation_input_tokens") == 0)
            #expect(json.at("usage", "cache_read_input_tokens") == 12)

            let count = try await client.post("/v1/messages/count_tokens", Self.cachedBody, headers: Auth.anthropic).json
            #expect(count == .object([("input_tokens", 16)]))
        }
    }

    @Test func streamEventSequence() async throws {
        try await withFake { client in
            let body = #"{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi there"}]}"#
            let response = try await client.post("/v1/messages", body, headers: Auth.anthropic)
            #expect(response.headers[.contentType] == "text/event-stream; charset=utf-8")
            let events = response.events
            #expect(events.map { $0.event ?? "" } == [
                "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                "content_block_delta", "content_block_stop", "message_delta", "message_stop",
            ])
            for event in events { #expect(event.json["type"]?.stringValue == event.event) }
            #expect(events[0].json.at("message", "content") == [])
            #expect(events[0].json.at("message", "stop_reason") == .null)
            #expect(events[0].json.at("message", "usage", "input_tokens") == 2)
            #expect(events[1].json["content_block"] == .object([("type", "text"), ("text", "")]))
            let text = events.filter { $0.event == "content_block_delta" }.compactMap {
                $0.json.at("delta", "text")?.stringValue
            }.joined()
            #expect(text == "Echo: hi there")
            #expect(events[3].json.at("delta", "type") == "text_delta")
            #expect(events[7].json.at("delta", "stop_reason") == "end_turn")
            #expect(events[7].json.at("usage", "output_tokens") == 3)
            #expect(events[7].json.at("usage", "input_tokens") == 2)
        }
    }

    @Test func toolUseStreamsInputJSONDeltas() async throws {
        try await withFake { client in
            let body = #"""
                {"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,
                 "messages":[{"role":"user","content":"weather in Oslo"}],
                 "tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city","days"]}}]}
                """#
            let events = try await client.post("/v1/messages", body, headers: Auth.anthropic).events
            let startEvent = events.first { $0.event == "content_block_start" }
            let start = try #require(startEvent?.json["content_block"])
            #expect(start["type"] == "tool_use")
            #expect(start["name"] == "get_weather")
            #expect(start["id"]?.stringValue?.hasPrefix("toolu_") == true)
            #expect(start["input"] == .object([]))
            let deltas = events.filter { $0.event == "content_block_delta" }.map(\.json)
            #expect(deltas.count == 4)
            #expect(deltas.allSatisfy { $0.at("delta", "type") == "input_json_delta" })
            let partial = deltas.compactMap { $0.at("delta", "partial_json")?.stringValue }.joined()
            #expect(partial == #"{"city":"fake","days":1}"#)
            // (A closure inside #require is miscompiled by Swift 6.3.1: keep closures out of it.)
            let deltaEvent = events.first { $0.event == "message_delta" }
            let delta = try #require(deltaEvent?.json)
            #expect(delta.at("delta", "stop_reason") == "tool_use")
            #expect(delta.at("usage", "output_tokens") == 6)  // 24 bytes

            let whole = try await client.post(
                "/v1/messages", body.replacingOccurrences(of: #""stream":true,"#, with: ""), headers: Auth.anthropic
            ).json
            #expect(whole.at("content", 0, "input") == .object([("city", "fake"), ("days", 1)]))
            #expect(whole["stop_reason"] == "tool_use")
        }
    }

    @Test func toolResultAndToolChoice() async throws {
        try await withFake { client in
            let tools = #""tools":[{"name":"a","input_schema":{"type":"object"}},{"name":"b","input_schema":{"type":"object"}}]"#
            let named = #"{"model":"m","max_tokens":9,\#(tools),"tool_choice":{"type":"tool","name":"b"},"messages":[{"role":"user","content":"x"}]}"#
            var json = try await client.post("/v1/messages", named, headers: Auth.anthropic).json
            #expect(json.at("content", 0, "name") == "b")
            let none = #"{"model":"m","max_tokens":9,\#(tools),"tool_choice":{"type":"none"},"messages":[{"role":"user","content":"x"}]}"#
            json = try await client.post("/v1/messages", none, headers: Auth.anthropic).json
            #expect(json.at("content", 0, "type") == "text")
            let result = #"""
                {"model":"m","max_tokens":9,\#(tools),"messages":[{"role":"user","content":"x"},
                 {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"a","input":{}}]},
                 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"all good"}]}]}
                """#
            json = try await client.post("/v1/messages", result, headers: Auth.anthropic).json
            #expect(json.at("content", 0, "text") == "Echo: all good")
            #expect(json.at("usage", "input_tokens") == 3)  // 1 + 8 bytes
        }
    }

    @Test func thinkingComesFirstAndCountsInOutput() async throws {
        try await withFake { client in
            let body = #"{"model":"claude-sonnet-4-5","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":1024},"stream":true,"messages":[{"role":"user","content":"hm"}]}"#
            let events = try await client.post("/v1/messages", body, headers: Auth.anthropic).events
            #expect(events[1].json.at("content_block", "type") == "thinking")
            #expect(events[3].json.at("delta", "type") == "thinking_delta")
            #expect(events[4].json.at("delta", "type") == "signature_delta")
            #expect(events[5].event == "content_block_stop")
            #expect(events[6].json["index"] == 1)
            #expect(events[6].json.at("content_block", "type") == "text")
            let deltaEvent = events.first { $0.event == "message_delta" }
            let delta = try #require(deltaEvent?.json)
            #expect(delta.at("usage", "output_tokens") == 66)
        }
    }

    @Test func validationAndAuthentication() async throws {
        try await withFake(.init(requiredKey: "sk-ant-real")) { client in
            let body = #"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#
            var response = try await client.post("/v1/messages", body, headers: [.contentType: "application/json"])
            #expect(response.status == .unauthorized)
            #expect(response.json["type"] == "error")
            #expect(response.json.at("error", "type") == "authentication_error")
            #expect(response.json["request_id"]?.stringValue?.hasPrefix("req_") == true)

            response = try await client.post("/v1/messages", body, headers: Auth.anthropic)
            #expect(response.status == .unauthorized)
            #expect(response.json.at("error", "message") == "invalid x-api-key")

            // Bearer works too (the anthropic SDK sends its api key that way).
            let bearer: HTTPFields = [
                .authorization: "Bearer sk-ant-real", HTTPField.Name("anthropic-version")!: "2023-06-01",
            ]
            #expect(try await client.post("/v1/messages", body, headers: bearer).status == .ok)

            var good = Auth.anthropic
            good[HTTPField.Name("x-api-key")!] = "sk-ant-real"
            response = try await client.post("/v1/messages", #"{"model":"m","messages":[]}"#, headers: good)
            #expect(response.status == .badRequest)
            #expect(response.json.at("error", "type") == "invalid_request_error")
            response = try await client.post("/v1/messages", #"{"model":"m","messages":[{"role":"user","content":"x"}]}"#, headers: good)
            #expect(response.json.at("error", "message") == "max_tokens: Field required")
            response = try await client.post("/v1/messages", "[1,", headers: good)
            #expect(response.status == .badRequest)

            var noVersion = good
            noVersion[HTTPField.Name("anthropic-version")!] = nil
            response = try await client.post("/v1/messages", body, headers: noVersion)
            #expect(response.status == .badRequest)
            #expect(response.json.at("error", "message") == "anthropic-version: header is required")
        }
    }
}
