import Foundation
import Testing
import TollgateEvents
@testable import TollgateProviders

@Suite("Error shapes")
struct ErrorShapeTests {
    static let message = "Budget \"team:search\" is exhausted\n(limit $10.00) — ünïcode \u{1}"

    @Test("OpenAI: {error: {message, type, param, code}}", arguments: GatewayErrorKind.allCases)
    func openAI(kind: GatewayErrorKind) throws {
        let response = OpenAIDialect.errorResponse(kind, message: Self.message)
        #expect(response.status == kind.status)
        #expect(response.contentType == "application/json")
        let root = try jsonObject(response.body)
        #expect(Set(root.keys) == ["error"])
        let error = try #require(root["error"] as? [String: Any])
        #expect(Set(error.keys) == ["message", "type", "param", "code"])
        #expect(error["message"] as? String == Self.message)
        #expect(error["param"] is NSNull)
        let expected: (String, String?) = switch kind {
        case .unauthenticated: ("invalid_request_error", "invalid_api_key")
        case .permissionDenied: ("invalid_request_error", "model_not_found")
        case .invalidRequest: ("invalid_request_error", nil)
        case .requestTooLarge: ("invalid_request_error", "request_too_large")
        case .notFound: ("invalid_request_error", "unknown_url")
        case .quotaExceeded: ("insufficient_quota", "budget_exceeded")
        case .upstreamUnavailable, .internalError: ("server_error", nil)
        case .upstreamTimeout: ("server_error", "timeout")
        }
        #expect(error["type"] as? String == expected.0)
        if let code = expected.1 {
            #expect(error["code"] as? String == code)
        } else {
            #expect(error["code"] is NSNull)
        }
        #expect(OpenAIDialect.errorType(status: response.status, responseBody: response.body) == expected.1 ?? expected.0)
    }

    @Test("Anthropic: {type: error, error: {type, message}}", arguments: GatewayErrorKind.allCases)
    func anthropic(kind: GatewayErrorKind) throws {
        let response = AnthropicDialect.errorResponse(kind, message: Self.message)
        #expect(response.status == kind.status)
        let root = try jsonObject(response.body)
        #expect(root["type"] as? String == "error")
        let error = try #require(root["error"] as? [String: Any])
        #expect(Set(error.keys) == ["type", "message"])
        #expect(error["message"] as? String == Self.message)
        let expected = switch kind {
        case .invalidRequest: "invalid_request_error"
        case .unauthenticated: "authentication_error"
        case .permissionDenied: "permission_error"
        case .notFound: "not_found_error"
        case .requestTooLarge: "request_too_large"
        case .quotaExceeded: "rate_limit_error"
        case .internalError, .upstreamUnavailable: "api_error"
        case .upstreamTimeout: "timeout_error"
        }
        #expect(error["type"] as? String == expected)
        #expect(AnthropicDialect.errorType(status: response.status, responseBody: response.body) == expected)
    }

    @Test("Gemini: {error: {code, message, status}}", arguments: GatewayErrorKind.allCases)
    func gemini(kind: GatewayErrorKind) throws {
        let response = GeminiDialect.errorResponse(kind, message: Self.message)
        #expect(response.status == kind.status)
        let error = try #require(try jsonObject(response.body)["error"] as? [String: Any])
        #expect(Set(error.keys) == ["code", "message", "status"])
        #expect(error["code"] as? Int == kind.status)
        #expect(error["message"] as? String == Self.message)
        let expected = switch kind {
        case .invalidRequest, .requestTooLarge: "INVALID_ARGUMENT"
        case .unauthenticated: "UNAUTHENTICATED"
        case .permissionDenied: "PERMISSION_DENIED"
        case .notFound: "NOT_FOUND"
        case .quotaExceeded: "RESOURCE_EXHAUSTED"
        case .internalError: "INTERNAL"
        case .upstreamUnavailable: "UNAVAILABLE"
        case .upstreamTimeout: "DEADLINE_EXCEEDED"
        }
        #expect(error["status"] as? String == expected)
        #expect(GeminiDialect.errorType(status: response.status, responseBody: response.body) == expected)
    }

    @Test("error types of upstream error bodies")
    func upstreamErrorTypes() throws {
        #expect(OpenAIDialect.errorType(status: 429, responseBody: try Fixture.data("openai/error-rate-limit.json")) == "rate_limit_exceeded")
        #expect(OpenAIDialect.errorType(status: 500, responseBody: try Fixture.data("openai/error-server.json")) == "server_error")
        #expect(OpenAIDialect.errorType(status: 429, responseBody: Data(#"{"error":{"type":"requests","code":429}}"#.utf8)) == "429")
        #expect(AnthropicDialect.errorType(status: 529, responseBody: try Fixture.data("anthropic/error-overloaded.json")) == "overloaded_error")
        #expect(GeminiDialect.errorType(status: 429, responseBody: try Fixture.data("gemini/error-quota.json")) == "RESOURCE_EXHAUSTED")
        #expect(GeminiDialect.errorType(status: 400, responseBody: Data(#"[{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT"}}]"#.utf8)) == "INVALID_ARGUMENT")
        for garbage in ["", "<html>502 Bad Gateway</html>", "{}", #"{"error":"string"}"#, #"{"error":{}}"#, "[]"] {
            let data = Data(garbage.utf8)
            #expect(OpenAIDialect.errorType(status: 502, responseBody: data) == nil)
            #expect(AnthropicDialect.errorType(status: 502, responseBody: data) == nil)
            #expect(GeminiDialect.errorType(status: 502, responseBody: data) == nil)
        }
    }
}
