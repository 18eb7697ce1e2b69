import HTTPTypes
import HummingbirdTesting
import Testing
import TollgateFakeProvider

@Suite struct FailureModeTests {
    static let openAIBody = #"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"one two three four five six"}]}"#
    static let anthropicBody = #"{"model":"claude-haiku-4-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"one two three four"}]}"#
    static let geminiBody = #"{"contents":[{"parts":[{"text":"one two three four"}]}]}"#

    @Test func rateLimitInEachProvidersShape() async throws {
        try await withFake { client in
            var response = try await client.post(
                "/v1/chat/completions", Self.openAIBody, headers: Auth.openAI.adding("x-fake-mode", "rate_limit"))
            #expect(response.status == .tooManyRequests)
            #expect(response.headers[.retryAfter] == "1")
            #expect(response.json.at("error", "code") == "rate_limit_exceeded")

            response = try await client.post(
                "/v1/messages", Self.anthropicBody, headers: Auth.anthropic.adding("x-fake-mode", "rate_limit"))
            #expect(response.status == .tooManyRequests)
            #expect(response.headers[.retryAfter] == "1")
            #expect(response.json.at("error", "type") == "rate_limit_error")

            response = try await client.post(
                "/v1beta/models/gemini-2.5-flash:generateContent", Self.geminiBody,
                headers: Auth.gemini.adding("x-fake-mode", "rate_limit"))
            #expect(response.status == .tooManyRequests)
            #expect(response.json.at("error", "status") == "RESOURCE_EXHAUSTED")
            #expect(response.json.at("error", "code") == 429)
        }
    }

    @Test func serverErrorsAndOverload() async throws {
        try await withFake { client in
            var response = try await client.post(
                "/v1/chat/completions", Self.openAIBody, headers: Auth.openAI.adding("x-fake-mode", "server_error"))
            #expect(response.status == .internalServerError)
            #expect(response.json.at("error", "type") == "server_error")

            response = try await client.post(
                "/v1/messages", Self.anthropicBody, headers: Auth.anthropic.adding("x-fake-mode", "overloaded"))
            #expect(response.status.code == 529)
            #expect(response.json.at("error", "type") == "overloaded_error")

            response = try await client.post(
                "/v1/messages", Self.anthropicBody, headers: Auth.anthropic.adding("x-fake-mode", "server_error"))
            #expect(response.status == .internalServerError)
            #expect(response.json.at("error", "type") == "api_error")

            response = try await client.post(
                "/v1/models/gemini-2.5-flash:generateContent", Self.geminiBody,
                headers: Auth.gemini.adding("x-fake-mode", "overloaded"))
            #expect(response.status == .serviceUnavailable)
            #expect(response.json.at("error", "status") == "UNAVAILABLE")
        }
    }

    @Test func serverWideDefaultModeAndHeaderOverride() async throws {
        try await withFake(.init(mode: .serverError)) { client in
            let failing = try await client.post("/v1/chat/completions", Self.openAIBody, headers: Auth.openAI)
            #expect(failing.status == .internalServerError)
            let fine = try await client.post(
                "/v1/chat/completions", Self.openAIBody, headers: Auth.openAI.adding("x-fake-mode", "none"))
            #expect(fine.status == .ok)
        }
    }

    @Test func unknownModeIs400() async throws {
        try await withFake { client in
            let response = try await client.post(
                "/v1/chat/completions", Self.openAIBody, headers: Auth.openAI.adding("x-fake-mode", "explode"))
            #expect(response.status == .badRequest)
            #expect(response.json.at("error", "message")?.stringValue?.contains("x-fake-mode") == true)
        }
    }

    @Test func slowStreamWaitsBetweenChunks() async throws {
        try await withFake { client in
            let headers = Auth.openAI.adding("x-fake-mode", "slow_stream").adding("x-fake-delay-ms", "30")
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await client.post("/v1/chat/completions", Self.openAIBody, headers: headers)
            let elapsed = clock.now - start
            // 10 frames (role, 7 words, finish, [DONE]): 9 gaps of 30 ms.
            #expect(response.events.count == 10)
            #expect(elapsed >= .milliseconds(270))
            #expect(response.events.last?.data == "[DONE]")
        }
    }

    @Test func slowModeDelaysANonStreamingAnswerOnce() async throws {
        try await withFake { client in
            let body = #"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#
            let headers = Auth.openAI.adding("x-fake-mode", "slow_stream").adding("x-fake-delay-ms", "150")
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await client.post("/v1/chat/completions", body, headers: headers)
            #expect(clock.now - start >= .milliseconds(150))
            #expect(response.json.at("choices", 0, "message", "content") == "Echo: hi")
        }
    }

    @Test func badDelayIs400() async throws {
        try await withFake { client in
            let headers = Auth.openAI.adding("x-fake-mode", "slow_stream").adding("x-fake-delay-ms", "soon")
            let response = try await client.post("/v1/chat/completions", Self.openAIBody, headers: headers)
            #expect(response.status == .badRequest)
        }
    }

    @Test func timeoutHangsThenAnswers504() async throws {
        try await withFake(.init(maximumHang: .milliseconds(300))) { client in
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await client.post(
                "/v1/messages", Self.anthropicBody, headers: Auth.anthropic.adding("x-fake-mode", "timeout"))
            #expect(clock.now - start >= .milliseconds(300))
            #expect(response.status == .gatewayTimeout)
            #expect(response.json.at("error", "type") == "timeout_error")
        }
    }

    @Test func cutStreamDropsTheConnectionBeforeTheEnd() async throws {
        // Through the router the cut surfaces as the body writer's error.
        try await withFake { client in
            await #expect(throws: (any Error).self) {
                try await client.post(
                    "/v1/messages", Self.anthropicBody, headers: Auth.anthropic.adding("x-fake-mode", "cut_stream"))
            }
        }
        // On a real socket the client sees the connection close mid-body, streaming or not.
        try await withLiveFake { client in
            let body = #"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#
            await #expect(throws: (any Error).self) {
                try await client.post("/v1/chat/completions", body, headers: Auth.openAI.adding("x-fake-mode", "cut_stream"))
            }
        }
        try await withLiveFake { client in
            await #expect(throws: (any Error).self) {
                try await client.post(
                    "/v1/chat/completions", Self.openAIBody, headers: Auth.openAI.adding("x-fake-mode", "cut_stream"))
            }
        }
    }

    @Test func liveServerStreamsEveryProvider() async throws {
        try await withLiveFake { client in
            let openAI = try await client.post("/v1/chat/completions", Self.openAIBody, headers: Auth.openAI)
            #expect(openAI.events.last?.data == "[DONE]")
            let anthropic = try await client.post("/v1/messages", Self.anthropicBody, headers: Auth.anthropic)
            #expect(anthropic.events.last?.event == "message_stop")
            let gemini = try await client.post(
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", Self.geminiBody, headers: Auth.gemini)
            #expect(gemini.events.last?.json.at("candidates", 0, "finishReason") == "STOP")
        }
    }
}
