import Foundation
import Testing
import TollgateEvents
@testable import TollgateProviders

@Suite("Upstream body rewrites")
struct UpstreamBodyTests {
    private func openAI(_ body: String, endpoint: Endpoint = .openAIChatCompletions, model: String? = nil) throws -> String {
        let data = Data(body.utf8)
        let facts = try OpenAIDialect.requestFacts(endpoint: endpoint, body: data, pathModel: nil)
        let result = OpenAIDialect.upstreamBody(endpoint: endpoint, body: data, facts: facts, model: model)
        _ = try jsonObject(result)  // still JSON
        return String(decoding: result, as: UTF8.self)
    }

    @Test("a stream without stream_options gets include_usage as a new last member; nothing else changes")
    func injectsStreamOptions() throws {
        let original = try Fixture.data("openai/chat-stream-request.json")
        let facts = try OpenAIDialect.requestFacts(endpoint: .openAIChatCompletions, body: original, pathModel: nil)
        #expect(facts.stream && !facts.clientRequestedStreamUsage)
        let result = OpenAIDialect.upstreamBody(endpoint: .openAIChatCompletions, body: original, facts: facts, model: nil)
        let text = String(decoding: original, as: UTF8.self)
        #expect(text.hasSuffix("\"temperature\":0}"))
        let expected = String(text.dropLast()) + ",\"stream_options\":{\"include_usage\":true}}"
        #expect(String(decoding: result, as: UTF8.self) == expected)
        // Byte-identical prefix: everything up to the insertion point.
        #expect(result.prefix(original.count - 1) == original.prefix(original.count - 1))
        let options = try #require(try jsonObject(result)["stream_options"] as? [String: Any])
        #expect(options["include_usage"] as? Bool == true)
    }

    @Test("an existing stream_options object gets include_usage as its first member")
    func extendsStreamOptions() throws {
        #expect(try openAI(#"{"model":"m","stream":true,"stream_options":{"include_obfuscation":false},"messages":[]}"#)
            == #"{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false},"messages":[]}"#)
        #expect(try openAI(#"{"model":"m","stream":true,"stream_options": { } }"#)
            == #"{"model":"m","stream":true,"stream_options": {"include_usage":true } }"#)
    }

    @Test("include_usage false or null becomes true; stream_options null becomes an object")
    func overridesFalse() throws {
        #expect(try openAI(#"{"model":"m","stream":true,"stream_options":{"include_usage": false, "x": 1}}"#)
            == #"{"model":"m","stream":true,"stream_options":{"include_usage": true, "x": 1}}"#)
        #expect(try openAI(#"{"model":"m","stream":true,"stream_options":{"include_usage":null}}"#)
            == #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(try openAI(#"{"model":"m","stream":true,"stream_options":null}"#)
            == #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
    }

    @Test("nothing is added when the client asked for usage, did not stream, or used another endpoint")
    func leavesOtherRequestsAlone() throws {
        let asked = #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
        #expect(try openAI(asked) == asked)
        let notStreamed = #"{"model":"m","stream":false,"messages":[]}"#
        #expect(try openAI(notStreamed) == notStreamed)
        let responses = #"{"model":"m","stream":true,"input":"hi"}"#
        #expect(try openAI(responses, endpoint: .openAIResponses) == responses)
        let completions = #"{"model":"m","stream":true,"prompt":"hi"}"#
        #expect(try openAI(completions, endpoint: .openAICompletions)
            == #"{"model":"m","stream":true,"prompt":"hi","stream_options":{"include_usage":true}}"#)
    }

    @Test("model replacement touches only the top-level model value")
    func replacesModelOnly() throws {
        let original = """
        {
          "messages": [
            {"role": "user", "content": "Use {\\"model\\": \\"gpt-4\\"} and a \\\\ backslash \\u00e9"},
            {"role": "tool", "content": {"model": "nested"}}
          ],
          "tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": {"model": {"type": "string"}}}}}],
          "model" :  "gpt-4o",
          "mod\\u0065l": "escaped-duplicate",
          "temperature": 1.0e0,
          "stream": false
        }
        """
        let result = try openAI(original, model: "gpt-4.1-nano")
        let expected = original
            .replacingOccurrences(of: "\"model\" :  \"gpt-4o\"", with: "\"model\" :  \"gpt-4.1-nano\"")
            .replacingOccurrences(of: "\"mod\\u0065l\": \"escaped-duplicate\"", with: "\"mod\\u0065l\": \"gpt-4.1-nano\"")
        #expect(result != original)
        #expect(result == expected)
    }

    @Test("the new model is a correctly escaped JSON string")
    func escapesModel() throws {
        let result = try openAI(#"{"model":"a","messages":[]}"#, model: "we\"ird\\model\n\u{1}é")
        #expect(try jsonObject(Data(result.utf8))["model"] as? String == "we\"ird\\model\n\u{1}é")
        #expect(result == #"{"model":"we\"ird\\model\n\u0001é","messages":[]}"#)
    }

    @Test("both rewrites at once; the model is inserted when the body has none")
    func bothRewrites() throws {
        let data = Data(#"{"stream":true,"messages":[{"role":"user","content":"x"}]}"#.utf8)
        let facts = streamFacts()
        let result = OpenAIDialect.upstreamBody(endpoint: .openAIChatCompletions, body: data, facts: facts, model: "gpt-4o")
        #expect(String(decoding: result, as: UTF8.self)
            == #"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#)
        let empty = OpenAIDialect.upstreamBody(endpoint: .openAIChatCompletions, body: Data("{}".utf8), facts: facts, model: nil)
        #expect(String(decoding: empty, as: UTF8.self) == #"{"stream_options":{"include_usage":true}}"#)
    }

    @Test("a body that is not a JSON object goes up unchanged")
    func invalidBodyUnchanged() {
        for text in ["[1,2]", "{\"model\": ", "not json", "", "{\"a\":\"unterminated}"] {
            let data = Data(text.utf8)
            #expect(OpenAIDialect.upstreamBody(endpoint: .openAIChatCompletions, body: data, facts: streamFacts(), model: "x") == data)
            #expect(AnthropicDialect.upstreamBody(endpoint: .anthropicMessages, body: data, facts: streamFacts(), model: "x") == data)
        }
    }

    @Test("Anthropic: model replaced, nothing added")
    func anthropic() throws {
        let original = try Fixture.data("anthropic/messages-request.json")
        let facts = try AnthropicDialect.requestFacts(endpoint: .anthropicMessages, body: original, pathModel: nil)
        #expect(AnthropicDialect.upstreamBody(endpoint: .anthropicMessages, body: original, facts: facts, model: nil) == original)
        let result = AnthropicDialect.upstreamBody(endpoint: .anthropicMessages, body: original, facts: facts,
                                                   model: "claude-haiku-4-5")
        let expected = String(decoding: original, as: UTF8.self)
            .replacingOccurrences(of: "\"model\": \"claude-sonnet-4-5-20250929\"", with: "\"model\": \"claude-haiku-4-5\"")
        #expect(String(decoding: result, as: UTF8.self) == expected)
        #expect(try jsonObject(result)["model"] as? String == "claude-haiku-4-5")
    }

    @Test("Gemini: the body never changes (the model is in the path)")
    func gemini() throws {
        let original = try Fixture.data("gemini/generate-request.json")
        let facts = try GeminiDialect.requestFacts(endpoint: .geminiStreamGenerateContent, body: original,
                                                   pathModel: "models/gemini-2.5-flash")
        #expect(GeminiDialect.upstreamBody(endpoint: .geminiStreamGenerateContent, body: original, facts: facts,
                                           model: "gemini-2.5-flash-lite") == original)
    }

    @Test("fixture bodies keep every byte outside the rewritten ranges", arguments: [
        "openai/chat-request.json", "openai/completions-request.json", "openai/embeddings-request.json",
        "openai/responses-request.json",
    ])
    func fixtureBytesPreserved(path: String) throws {
        let original = try Fixture.data(path)
        let endpoint: Endpoint = path.contains("completions") ? .openAICompletions
            : path.contains("embeddings") ? .openAIEmbeddings : path.contains("responses") ? .openAIResponses
            : .openAIChatCompletions
        let facts = try OpenAIDialect.requestFacts(endpoint: endpoint, body: original, pathModel: nil)
        let result = OpenAIDialect.upstreamBody(endpoint: endpoint, body: original, facts: facts, model: "routed-model")
        let before = try jsonObject(original)
        let after = try jsonObject(result)
        #expect(after["model"] as? String == "routed-model")
        #expect(Set(after.keys) == Set(before.keys))
        // The bytes before and after the model value are untouched.
        let text = String(decoding: original, as: UTF8.self)
        let model = try #require(before["model"] as? String)
        let range = try #require(text.range(of: "\"model\": \"\(model)\"") ?? text.range(of: "\"model\":\"\(model)\""))
        let resultText = String(decoding: result, as: UTF8.self)
        #expect(resultText.hasPrefix(String(text[..<range.lowerBound])))
        #expect(resultText.hasSuffix(String(text[range.upperBound...])))
    }
}

@Suite("JSON scanner")
struct JSONScannerTests {
    @Test("top-level members and their value ranges")
    func members() {
        let text = #" { "a" : "x\"}{" , "b":[1,{"c":"]"}], "c" : -1.5e3 ,"d":true,"e":null,"f":{} } "#
        let data = Data(text.utf8)
        let values: [String] = JSONScanner.with(data) { scanner in
            guard let root = scanner.rootObject() else { return [] }
            return root.members.map { String(decoding: data[$0.valueRange], as: UTF8.self) }
        }
        #expect(values == [#""x\"}{""#, #"[1,{"c":"]"}]"#, "-1.5e3", "true", "null", "{}"])
    }

    @Test("malformed objects give nil, never trap")
    func malformed() {
        for text in ["", "{", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\" 1}", "{\"a\":1,}", "{1:2}", "[]", "{\"a\":\"\\", "{\"a\":[1,2}"] {
            let data = Data(text.utf8)
            let root = JSONScanner.with(data) { $0.rootObject() }
            #expect(root == nil || text == "{\"a\":[1,2}", "\(text)")
        }
    }

    @Test("escaped keys are compared decoded")
    func escapedKeys() {
        let data = Data(#"{"\u006dodel":1,"m\"x":2,"\ud83d\ude00":3}"#.utf8)
        let names: [Bool] = JSONScanner.with(data) { scanner in
            guard let root = scanner.rootObject() else { return [] }
            return [scanner.key(of: root.members[0], is: "model"), scanner.key(of: root.members[1], is: "m\"x"),
                    scanner.key(of: root.members[2], is: "\u{1F600}"), scanner.key(of: root.members[0], is: "mode")]
        }
        #expect(names == [true, true, true, false])
    }
}
