import HTTPTypes
import HummingbirdTesting
import Testing
import TollgateFakeProvider

@Suite struct OpenAIResponsesTests {
    @Test func nonStreaming() async throws {
        try await withFake { client in
            // "Be brief." 9 bytes + "Tell me a joke" 14 bytes = 23 bytes = 6 tokens.
            let body = #"{"model":"gpt-4.1","instructions":"Be brief.","input":[{"role":"user","content":[{"type":"input_text","text":"Tell me a joke"}]}]}"#
            let json = try await client.post("/v1/responses", body, headers: Auth.openAI).json
            #expect(json["object"] == "response")
            #expect(json["id"]?.stringValue?.hasPrefix("resp_") == true)
            #expect(json["status"] == "completed")
            #expect(json["instructions"] == "Be brief.")
            #expect(json.at("output", 0, "type") == "message")
            #expect(json.at("output", 0, "role") == "assistant")
            #expect(json.at("output", 0, "content", 0, "type") == "output_text")
            #expect(json.at("output", 0, "content", 0, "text") == "Echo: Tell me a joke")
            #expect(json.at("usage", "input_tokens") == 6)
            #expect(json.at("usage", "output_tokens") == 5)
            #expect(json.at("usage", "total_tokens") == 11)
            #expect(json.at("usage", "input_tokens_details", "cached_tokens") == 0)
            #expect(json.at("usage", "output_tokens_details", "reasoning_tokens") == 0)
        }
    }

    @Test func streamingEventSequence() async throws {
        try await withFake { client in
            let body = #"{"model":"gpt-4.1","input":"one two","stream":true}"#
            let response = try await client.post("/v1/responses", body, headers: Auth.openAI)
            let events = response.events
            #expect(events.map { $0.event ?? "" } == [
                "response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                "response.output_text.delta", "response.output_text.done", "response.content_part.done",
                "response.output_item.done", "response.completed",
            ])
            for (index, event) in events.enumerated() {
                #expect(event.json["type"]?.stringValue == event.event)
                #expect(event.json["sequence_number"] == .int(index))
            }
            #expect(events[0].json.at("response", "status") == "in_progress")
            #expect(events[0].json.at("response", "usage") == .null)
            let deltas = events.filter { $0.event == "response.output_text.delta" }.compactMap { $0.json["delta"]?.stringValue }
            #expect(deltas.joined() == "Echo: one two")
            #expect(events[7].json["text"] == "Echo: one two")
            let completed = events.last!.json
            #expect(completed.at("response", "status") == "completed")
            #expect(completed.at("response", "output", 0, "content", 0, "text") == "Echo: one two")
            #expect(completed.at("response", "usage", "input_tokens") == 2)
            #expect(completed.at("response", "usage", "output_tokens") == 3)
            let itemID = events[2].json.at("item", "id")
            #expect(events[4].json["item_id"] == itemID)
        }
    }

    @Test func reasoningAddsAReasoningItem() async throws {
        try await withFake { client in
            let body = #"{"model":"gpt-5","input":"why","reasoning":{"effort":"low"},"stream":true}"#
            let events = try await client.post("/v1/responses", body, headers: Auth.openAI).events
            #expect(events[2].event == "response.output_item.added")
            #expect(events[2].json.at("item", "type") == "reasoning")
            #expect(events[3].event == "response.output_item.done")
            #expect(events[4].json["output_index"] == 1)
            let usage = events.last!.json.at("response", "usage")
            #expect(usage?.at("output_tokens_details", "reasoning_tokens") == 32)
            #expect(usage?["output_tokens"] == 34)
        }
    }

    @Test func functionCall() async throws {
        try await withFake { client in
            let body = #"""
                {"model":"gpt-4.1","input":"weather?","stream":true,
                 "tools":[{"type":"function","name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}]}
                """#
            let events = try await client.post("/v1/responses", body, headers: Auth.openAI).events
            #expect(events.map { $0.event ?? "" } == [
                "response.created", "response.in_progress", "response.output_item.added",
                "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done", "response.completed",
            ])
            #expect(events[2].json.at("item", "type") == "function_call")
            #expect(events[2].json.at("item", "name") == "lookup")
            #expect(events[5].json["arguments"] == #"{"q":"fake"}"#)
            let output = events.last!.json.at("response", "output", 0)
            #expect(output?["call_id"]?.stringValue?.hasPrefix("call_") == true)
            #expect(output?["arguments"] == #"{"q":"fake"}"#)
            #expect(events.last!.json.at("response", "usage", "output_tokens") == 3)

            let nonStream = body.replacingOccurrences(of: #""stream":true,"#, with: "")
            let json = try await client.post("/v1/responses", nonStream, headers: Auth.openAI).json
            #expect(json.at("output", 0, "type") == "function_call")
        }
    }

    @Test func maxOutputTokensMakesItIncomplete() async throws {
        try await withFake { client in
            let body = #"{"model":"gpt-4.1","input":"a b c d","max_output_tokens":2,"stream":true}"#
            let events = try await client.post("/v1/responses", body, headers: Auth.openAI).events
            #expect(events.last?.event == "response.incomplete")
            #expect(events.last?.json.at("response", "incomplete_details", "reason") == "max_output_tokens")
            #expect(events.last?.json.at("response", "usage", "output_tokens") == 2)
        }
    }

    @Test func functionCallOutputGetsText() async throws {
        try await withFake { client in
            let body = #"""
                {"model":"gpt-4.1","input":[{"role":"user","content":"weather?"},
                  {"type":"function_call","call_id":"c1","name":"lookup","arguments":"{}"},
                  {"type":"function_call_output","call_id":"c1","output":"rainy"}],
                 "tools":[{"type":"function","name":"lookup","parameters":{}}]}
                """#
            let json = try await client.post("/v1/responses", body, headers: Auth.openAI).json
            #expect(json.at("output", 0, "content", 0, "text") == "Echo: rainy")
            #expect(json.at("usage", "input_tokens") == 4)  // 8 + 5 bytes
        }
    }
}
