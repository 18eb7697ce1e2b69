import HTTPTypes
import HummingbirdTesting
import Testing
import TollgateFakeProvider

@Suite struct GeminiTests {
    // "Be short." 9 bytes + "What is up" 10 bytes = 19 bytes = 5 tokens.
    static let body = #"""
        {"systemInstruction":{"parts":[{"text":"Be short."}]},
         "contents":[{"role":"user","parts":[{"text":"What is up"}]}]}
        """#

    @Test(arguments: ["v1beta", "v1"])
    func generateContent(version: String) async throws {
        try await withFake { client in
            let response = try await client.post(
                "/\(version)/models/gemini-2.5-flash:generateContent", Self.body, headers: Auth.gemini)
            #expect(response.status == .ok)
            let json = response.json
            #expect(json.at("candidates", 0, "content", "role") == "model")
            #expect(json.at("candidates", 0, "content", "parts", 0, "text") == "Echo: What is up")
            #expect(json.at("candidates", 0, "finishReason") == "STOP")
            #expect(json["modelVersion"] == "gemini-2.5-flash")
            #expect(json["responseId"]?.stringValue?.isEmpty == false)
            #expect(json.at("usageMetadata", "promptTokenCount") == 5)
            #expect(json.at("usageMetadata", "candidatesTokenCount") == 4)
            #expect(json.at("usageMetadata", "totalTokenCount") == 9)
            #expect(json.at("usageMetadata", "thoughtsTokenCount") == nil)
            #expect(json.at("usageMetadata", "promptTokensDetails", 0) == .object([("modality", "TEXT"), ("tokenCount", 5)]))
        }
    }

    @Test func thinkingAndCachedContent() async throws {
        try await withFake { client in
            let body = #"""
                {"contents":[{"parts":[{"text":"Explain"}]}],"cachedContent":"cachedContents/abc",
                 "generationConfig":{"maxOutputTokens":1,"thinkingConfig":{"thinkingBudget":20,"includeThoughts":true}}}
                """#
            let json = try await client.post("/v1beta/models/gemini-2.5-pro:generateContent", body, headers: Auth.gemini).json
            let usage = try #require(json["usageMetadata"])
            #expect(usage["promptTokenCount"] == 1026)  // 7 bytes = 2 tokens + 1024 cached
            #expect(usage["cachedContentTokenCount"] == 1024)
            #expect(usage["candidatesTokenCount"] == 1)
            #expect(usage["thoughtsTokenCount"] == 20)
            #expect(usage["totalTokenCount"] == 1047)
            #expect(json.at("candidates", 0, "content", "parts", 0, "thought") == true)
            #expect(json.at("candidates", 0, "content", "parts", 1, "text") == "Echo:")
            #expect(json.at("candidates", 0, "finishReason") == "MAX_TOKENS")
        }
    }

    @Test func streamWithAltSSE() async throws {
        try await withFake { client in
            let response = try await client.post(
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", Self.body, headers: Auth.gemini)
            #expect(response.headers[.contentType] == "text/event-stream")
            #expect(response.text.contains("\r\n\r\n"))
            let chunks = response.events.map(\.json)
            #expect(chunks.count == 4)
            let text = chunks.compactMap { $0.at("candidates", 0, "content", "parts", 0, "text")?.stringValue }.joined()
            #expect(text == "Echo: What is up")
            #expect(chunks.dropLast().allSatisfy { $0.at("candidates", 0, "finishReason") == nil })
            #expect(chunks.last?.at("candidates", 0, "finishReason") == "STOP")
            #expect(chunks.last?.at("usageMetadata", "candidatesTokenCount") == 4)
            #expect(chunks.last?.at("usageMetadata", "totalTokenCount") == 9)
            #expect(chunks.allSatisfy { $0.at("usageMetadata", "promptTokenCount") == 5 })
        }
    }

    @Test func streamWithoutAltSSEIsAJSONArray() async throws {
        try await withFake { client in
            let response = try await client.post(
                "/v1/models/gemini-2.0-flash:streamGenerateContent", Self.body, headers: Auth.gemini)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            let array = try #require(response.json.arrayValue)
            #expect(array.count == 4)
            #expect(array.last?.at("usageMetadata", "candidatesTokenCount") == 4)
        }
    }

    @Test func functionCall() async throws {
        try await withFake { client in
            let body = #"""
                {"contents":[{"role":"user","parts":[{"text":"lights on"}]}],
                 "tools":[{"functionDeclarations":[{"name":"set_light","parameters":{"type":"OBJECT","properties":{"on":{"type":"BOOLEAN"},"room":{"type":"STRING"}},"required":["on","room"]}},
                                                   {"name":"other","parameters":{"type":"OBJECT"}}]}],
                 "toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["other"]}}}
                """#
            var json = try await client.post("/v1beta/models/gemini-2.5-flash:generateContent", body, headers: Auth.gemini).json
            #expect(json.at("candidates", 0, "content", "parts", 0, "functionCall", "name") == "other")
            let auto = body.replacingOccurrences(of: #","allowedFunctionNames":["other"]"#, with: "")
            json = try await client.post("/v1beta/models/gemini-2.5-flash:generateContent", auto, headers: Auth.gemini).json
            let call = try #require(json.at("candidates", 0, "content", "parts", 0, "functionCall"))
            #expect(call["name"] == "set_light")
            #expect(call["args"] == .object([("on", true), ("room", "fake")]))
            #expect(json.at("usageMetadata", "candidatesTokenCount") == 7)  // {"on":true,"room":"fake"}: 25 bytes
            let none = body.replacingOccurrences(of: "\"ANY\"", with: "\"NONE\"")
            json = try await client.post("/v1beta/models/gemini-2.5-flash:generateContent", none, headers: Auth.gemini).json
            #expect(json.at("candidates", 0, "content", "parts", 0, "text") == "Echo: lights on")
        }
    }

    @Test func countTokensAndEmbeddings() async throws {
        try await withFake { client in
            let count = try await client.post("/v1beta/models/gemini-2.5-flash:countTokens", Self.body, headers: Auth.gemini).json
            #expect(count["totalTokens"] == 5)

            let embed = #"{"content":{"parts":[{"text":"hello"}]},"outputDimensionality":8}"#
            let one = try await client.post("/v1beta/models/gemini-embedding-001:embedContent", embed, headers: Auth.gemini).json
            #expect(one.at("embedding", "values")?.arrayValue?.count == 8)
            #expect(one.at("embedding", "values") == .array(FakeRules.embedding(of: "hello", dimensions: 8).map(JSON.double)))

            let batch = #"{"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"a"}]}},{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"b"}]}}]}"#
            let many = try await client.post("/v1/models/gemini-embedding-001:batchEmbedContents", batch, headers: Auth.gemini).json
            #expect(many["embeddings"]?.arrayValue?.count == 2)
            #expect(many.at("embeddings", 0, "values")?.arrayValue?.count == 16)
        }
    }

    @Test func authenticationAndErrors() async throws {
        try await withFake(.init(requiredKey: "AIza-real")) { client in
            let uri = "/v1beta/models/gemini-2.5-flash:generateContent"
            var response = try await client.post(uri, Self.body, headers: [.contentType: "application/json"])
            #expect(response.status == .forbidden)
            #expect(response.json.at("error", "status") == "PERMISSION_DENIED")
            #expect(response.json.at("error", "code") == 403)

            response = try await client.post(uri, Self.body, headers: Auth.gemini)
            #expect(response.status == .badRequest)
            #expect(response.json.at("error", "details", 0, "reason") == "API_KEY_INVALID")

            response = try await client.post(uri + "?key=AIza-real", Self.body, headers: [.contentType: "application/json"])
            #expect(response.status == .ok)

            let good = Auth.gemini.adding("x-goog-api-key", "AIza-real")
            response = try await client.post(uri, "{]", headers: good)
            #expect(response.status == .badRequest)
            #expect(response.json.at("error", "status") == "INVALID_ARGUMENT")
            response = try await client.post(uri, "{}", headers: good)
            #expect(response.json.at("error", "message")?.stringValue?.contains("contents is not specified") == true)
            response = try await client.post("/v1beta/models/gemini-2.5-flash:fly", "{}", headers: good)
            #expect(response.status == .notFound)
            #expect(response.json.at("error", "status") == "NOT_FOUND")
        }
    }
}
