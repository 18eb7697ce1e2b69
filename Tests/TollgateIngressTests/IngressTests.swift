import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TollgateEvents
@testable import TollgateIngress

@Suite("Ingress", .serialized)
struct IngressTests {
    static var chat: [String: Any] { ["model": "gpt-4o-mini",
                                      "messages": [["role": "user", "content": "hello there my friend"]]] }

    @Test("a non-streamed OpenAI call passes through and its event carries the provider's usage")
    func openAIPassThrough() async throws {
        let harness = try await IngressHarness()
        let key = try await harness.createKey()
        let reply = try await harness.call("/v1/chat/completions", headers: [("authorization", "Bearer \(key.secret)"),
                                                                              ("x-tollgate-customer", "acme"),
                                                                              ("x-tollgate-tags", "feature=search, env=prod")],
                                           json: Self.chat)
        #expect(reply.status == 200)
        let requestID = try #require(reply.headers.first(name: "x-tollgate-request-id"))
        let usage = try #require(reply.json?["usage"] as? [String: Any])
        let event = try await harness.responseEvent(requestID)
        #expect(event.usage.inputTokens == usage["prompt_tokens"] as? Int64)
        #expect(event.usage.outputTokens == usage["completion_tokens"] as? Int64)
        #expect(event.usageSource == .provider)
        #expect(event.outcome == .success)
        #expect(event.customer == "acme")
        #expect(event.tags == ["feature": "search", "env": "prod"])
        #expect(event.team == "search" && event.project == "answers" && event.keyID == key.data.keyID)
        #expect(event.servedModel == "gpt-4o-mini")
        // The request event came first.
        let requests = try await harness.events("tollgate.requests")
        #expect(try requests.map { try EventCoding.decode(RequestData.self, from: $0).data.requestID }.contains(requestID))
        await harness.shutdown()
    }

    @Test("OpenAI streams: Tollgate asks for usage and hides that chunk unless the client asked for it")
    func openAIStreamUsage() async throws {
        let harness = try await IngressHarness()
        let key = try await harness.createKey()
        var streaming = Self.chat
        streaming["stream"] = true
        let hidden = try await harness.call("/v1/chat/completions", headers: [("authorization", "Bearer \(key.secret)")],
                                            json: streaming)
        #expect(hidden.status == 200)
        #expect(hidden.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
        #expect(!hidden.text.contains("\"usage\":{"))
        #expect(hidden.text.hasSuffix("data: [DONE]\n\n"))
        let hiddenEvent = try await harness.responseEvent(try #require(hidden.headers.first(name: "x-tollgate-request-id")))
        #expect(hiddenEvent.usageSource == .provider)
        #expect(hiddenEvent.usage.inputTokens > 0 && hiddenEvent.usage.outputTokens > 0)

        streaming["stream_options"] = ["include_usage": true]
        let shown = try await harness.call("/v1/chat/completions", headers: [("authorization", "Bearer \(key.secret)")],
                                           json: streaming)
        #expect(shown.text.contains("\"usage\":{"))
        let shownEvent = try await harness.responseEvent(try #require(shown.headers.first(name: "x-tollgate-request-id")))
        #expect(shownEvent.usage == hiddenEvent.usage)
        await harness.shutdown()
    }

    @Test("keys: missing, unknown, revoked and model-restricted keys get the provider's error shapes")
    func keyErrors() async throws {
        let harness = try await IngressHarness()
        let limited = try await harness.createKey(models: ["gpt-4o-mini"])

        let missing = try await harness.call("/v1/chat/completions", json: Self.chat)
        #expect(missing.status == 401)
        #expect((missing.json?["error"] as? [String: Any])?["code"] as? String == "invalid_api_key")

        let unknown = try await harness.call("/v1/messages", headers: [("x-api-key", "tg-nope"),
                                                                        ("anthropic-version", "2023-06-01")],
                                             json: ["model": "claude-sonnet-4-5", "max_tokens": 10,
                                                    "messages": [["role": "user", "content": "hi"]]])
        #expect(unknown.status == 401)
        #expect(unknown.json?["type"] as? String == "error")
        #expect((unknown.json?["error"] as? [String: Any])?["type"] as? String == "authentication_error")

        let gemini = try await harness.call("/v1beta/models/gemini-2.5-flash:generateContent?key=wrong",
                                            json: ["contents": [["parts": [["text": "hi"]]]]])
        #expect(gemini.status == 401)
        #expect((gemini.json?["error"] as? [String: Any])?["status"] as? String == "UNAUTHENTICATED")

        var other = Self.chat
        other["model"] = "gpt-4o"
        let forbidden = try await harness.call("/v1/chat/completions",
                                               headers: [("authorization", "Bearer \(limited.secret)")], json: other)
        #expect(forbidden.status == 403)
        let forbiddenEvent = try await harness.responseEvent(
            try #require(forbidden.headers.first(name: "x-tollgate-request-id")))
        #expect(forbiddenEvent.outcome == .gatewayError && forbiddenEvent.status == 403)

        // The key's model list is what /v1/models shows.
        let models = try await harness.call(.GET, "/v1/models", headers: [("authorization", "Bearer \(limited.secret)")])
        #expect((models.json?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["gpt-4o-mini"])

        // Revoked through the admin API: refused at once.
        let ok = try await harness.call("/v1/chat/completions", headers: [("authorization", "Bearer \(limited.secret)")],
                                        json: Self.chat)
        #expect(ok.status == 200)
        let revoke = try await harness.call(.DELETE, "/admin/keys/\(limited.data.keyID)",
                                            headers: [("authorization", "Bearer admin-test-key")])
        #expect(revoke.status == 200)
        let revoked = try await harness.call("/v1/chat/completions",
                                             headers: [("authorization", "Bearer \(limited.secret)")], json: Self.chat)
        #expect(revoked.status == 401)
        #expect(revoked.text.contains("revoked"))
        await harness.shutdown()
    }

    @Test("the admin API creates keys that work at once and never lists secrets")
    func adminAPI() async throws {
        let harness = try await IngressHarness()
        let denied = try await harness.call(.GET, "/admin/keys", headers: [("authorization", "Bearer wrong")])
        #expect(denied.status == 401)
        let body = try JSONSerialization.data(withJSONObject: ["team": "t1", "project": "p1", "models": ["gpt-4o-mini"]])
        let created = try await harness.call(.POST, "/admin/keys", headers: [("authorization", "Bearer admin-test-key")],
                                             body: body)
        #expect(created.status == 201)
        let secret = try #require(created.json?["secret"] as? String)
        let call = try await harness.call("/v1/chat/completions", headers: [("authorization", "Bearer \(secret)")],
                                          json: Self.chat)
        #expect(call.status == 200)
        let listed = try await harness.call(.GET, "/admin/keys", headers: [("x-api-key", "admin-test-key")])
        #expect(listed.status == 200)
        #expect(!listed.text.contains(secret))
        #expect(!listed.text.contains(VirtualKeys.sha256Hex(secret)))
        let bad = try await harness.call(.POST, "/admin/keys", headers: [("authorization", "Bearer admin-test-key")],
                                         body: Data("{\"team\": 5}".utf8))
        #expect(bad.status == 400)
        // The control topic has the hash, never the secret.
        let control = try await harness.events("tollgate.control")
        #expect(control.contains { String(decoding: $0, as: UTF8.self).contains(VirtualKeys.sha256Hex(secret)) })
        #expect(!control.contains { String(decoding: $0, as: UTF8.self).contains(secret) })
        await harness.shutdown()
    }

    @Test("bad bodies: malformed JSON, wrong types, invalid UTF-8, too large; unknown paths")
    func badInput() async throws {
        let harness = try await IngressHarness { $0.maxRequestBytes = 4_096 }
        let key = try await harness.createKey()
        let auth = [("authorization", "Bearer \(key.secret)"), ("content-type", "application/json")]
        let malformed = try await harness.call(.POST, "/v1/chat/completions", headers: auth, body: Data("{\"model\":".utf8))
        #expect(malformed.status == 400)
        #expect((malformed.json?["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
        let wrongType = try await harness.call(.POST, "/v1/chat/completions", headers: auth,
                                               body: Data(#"{"model": 42, "messages": []}"#.utf8))
        #expect(wrongType.status == 400)
        let invalidUTF8 = try await harness.call(.POST, "/v1/chat/completions", headers: auth,
                                                 body: Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D]))
        #expect(invalidUTF8.status == 400)
        let large = try await harness.call(.POST, "/v1/chat/completions", headers: auth,
                                           body: Data(repeating: UInt8(ascii: " "), count: 10_000))
        #expect(large.status == 413)
        let anthropicLarge = try await harness.call(.POST, "/v1/messages",
                                                    headers: [("x-api-key", key.secret), ("anthropic-version", "2023-06-01")],
                                                    body: Data(repeating: UInt8(ascii: " "), count: 10_000))
        #expect(anthropicLarge.status == 413)
        #expect((anthropicLarge.json?["error"] as? [String: Any])?["type"] as? String == "request_too_large")
        let unknown = try await harness.call(.POST, "/v1/nothing", headers: auth, body: Data("{}".utf8))
        #expect(unknown.status == 404)
        #expect(unknown.json?["error"] != nil)
        let geminiUnknown = try await harness.call(.POST, "/v1beta/models/gemini-2.5-flash:doSomething",
                                                   headers: [("x-goog-api-key", key.secret)], body: Data("{}".utf8))
        #expect(geminiUnknown.status == 404)
        #expect((geminiUnknown.json?["error"] as? [String: Any])?["status"] as? String == "NOT_FOUND")
        // Each refused call still produced a response event; unknown paths under the path asked for.
        let refused = try await harness.events("tollgate.responses")
            .map { try EventCoding.decode(ResponseData.self, from: $0).data }
        #expect(refused.filter { $0.outcome == .gatewayError }.map(\.status).sorted()
                == [400, 400, 400, 404, 404, 413, 413])
        #expect(refused.contains { $0.status == 404 && $0.endpoint == "/v1/nothing" && $0.provider == .openai })
        #expect(refused.contains { $0.status == 404 && $0.provider == .gemini && $0.keyID == key.data.keyID })
        await harness.shutdown()
    }

    @Test("upstream failures: 429 passed through with retry-after, unreachable is 502, slow is 504")
    func upstreamFailures() async throws {
        let harness = try await IngressHarness { $0.readTimeout = .seconds(1) }
        let key = try await harness.createKey()
        let auth = [("authorization", "Bearer \(key.secret)")]
        let limited = try await harness.call("/v1/chat/completions", headers: auth + [("x-fake-mode", "rate_limit")],
                                             json: Self.chat)
        #expect(limited.status == 429)
        #expect(limited.headers.first(name: "retry-after") == "1")
        let limitedEvent = try await harness.responseEvent(try #require(limited.headers.first(name: "x-tollgate-request-id")))
        #expect(limitedEvent.outcome == .providerError)
        #expect(limitedEvent.errorType != nil)
        let slow = try await harness.call("/v1/chat/completions", headers: auth + [("x-fake-mode", "timeout")],
                                          json: Self.chat)
        #expect(slow.status == 504)
        await harness.shutdown()

        let unreachable = try await IngressHarness(configure: { $0.connectTimeout = .seconds(1) },
                                                   upstreamBase: "http://127.0.0.1:9")
        let other = try await unreachable.createKey()
        let refused = try await unreachable.call("/v1/chat/completions",
                                                 headers: [("authorization", "Bearer \(other.secret)")], json: Self.chat)
        #expect(refused.status == 502)
        #expect((refused.json?["error"] as? [String: Any])?["message"] as? String != nil)
        await unreachable.shutdown()
    }

    @Test("a stream cut by the provider is recorded with estimated usage, never zero")
    func cutStream() async throws {
        let harness = try await IngressHarness()
        let key = try await harness.createKey()
        // The provider breaks the stream off; Tollgate breaks the client's response off too, so the client
        // sees a truncated response (an error), never a clean end.
        await #expect(throws: (any Error).self) {
            _ = try await harness.call(.POST, "/v1/messages",
                                       headers: [("x-api-key", key.secret), ("anthropic-version", "2023-06-01"),
                                                 ("x-fake-mode", "cut_stream"), ("content-type", "application/json")],
                                       body: try JSONSerialization.data(withJSONObject: [
                                           "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
                                           "messages": [["role": "user", "content": "one two three four five six"]]]))
        }
        let events = try await harness.events("tollgate.responses").map { try EventCoding.decode(ResponseData.self, from: $0).data }
        let event = try #require(events.last)
        #expect(event.stream)
        #expect(event.outcome == .providerError)
        #expect(event.errorType == "stream_interrupted")
        // The fake cuts the stream before its usage arrives: the event carries an estimate, never zero.
        #expect(event.usageSource == .estimated)
        #expect(event.usage.inputTokens > 0)
        await harness.shutdown()
    }

    @Test("a client that disconnects mid-stream cancels the upstream call and is recorded as cancelled")
    func clientDisconnect() async throws {
        let harness = try await IngressHarness()
        let key = try await harness.createKey()
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(harness.ingressPort)/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "authorization", value: "Bearer \(key.secret)")
        request.headers.add(name: "content-type", value: "application/json")
        // 32 words at 400 ms per chunk: about 13 s if nobody hangs up.
        request.headers.add(name: "x-fake-mode", value: "slow_stream")
        request.headers.add(name: "x-fake-delay-ms", value: "400")
        request.headers.add(name: "x-tollgate-tags", value: "call=disconnect")
        var streaming = Self.chat
        streaming["stream"] = true
        streaming["messages"] = [["role": "user", "content": (1...40).map(String.init).joined(separator: " ")]]
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: streaming)))
        let started = ContinuousClock.now
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let task = Task {
            let response = try await client.execute(request, timeout: .seconds(30))
            for try await _ in response.body { break }  // the first bytes, then hang up
        }
        _ = try await task.value
        try await client.shutdown()  // closes the connection

        // The event arrives long before the stream would have ended.
        var event: ResponseData?
        while event == nil, ContinuousClock.now - started < .seconds(8) {
            event = try await harness.events("tollgate.responses")
                .map { try EventCoding.decode(ResponseData.self, from: $0).data }
                .first { $0.tags["call"] == "disconnect" }
        }
        let recorded = try #require(event)
        #expect(recorded.outcome == .clientCancelled)
        #expect(recorded.usageSource == .estimated)
        #expect(recorded.usage.inputTokens > 0)
        #expect(ContinuousClock.now - started < .seconds(8))
        await harness.shutdown()
    }
}
