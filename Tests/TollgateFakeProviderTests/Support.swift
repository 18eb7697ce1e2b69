import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TollgateFakeProvider

/// Runs `body` against a fake provider served through the router (no sockets).
func withFake(
    _ configuration: FakeProvider.Configuration = .init(),
    _ body: @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    let app = Application(router: FakeProvider(configuration: configuration).buildRouter())
    try await app.test(.router) { client in try await body(client) }
}

/// Runs `body` against a fake provider on a real socket.
func withLiveFake(
    _ configuration: FakeProvider.Configuration = .init(),
    _ body: @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    let app = FakeProvider(configuration: configuration).buildApplication(host: "127.0.0.1", port: 0)
    try await app.test(.live) { client in try await body(client) }
}

enum Auth {
    static let openAI: HTTPFields = [.authorization: "Bearer sk-test", .contentType: "application/json"]
    static let anthropic: HTTPFields = [
        HTTPField.Name("x-api-key")!: "sk-ant-test", HTTPField.Name("anthropic-version")!: "2023-06-01",
        .contentType: "application/json",
    ]
    static let gemini: HTTPFields = [HTTPField.Name("x-goog-api-key")!: "AIza-test", .contentType: "application/json"]
}

extension HTTPFields {
    func adding(_ name: String, _ value: String) -> HTTPFields {
        var copy = self
        copy[HTTPField.Name(name)!] = value
        return copy
    }
}

extension TestClientProtocol {
    func post(_ uri: String, _ body: String, headers: HTTPFields) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    func get(_ uri: String, headers: HTTPFields) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }
}

struct SSEEvent: Equatable {
    var event: String?
    var data: String

    var json: JSON { (try? JSON.parse(data)) ?? .null }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body parsed as JSON, checked against Foundation's parser too.
    var json: JSON {
        let bytes = Array(body.readableBytesView)
        #expect((try? JSONSerialization.jsonObject(with: Data(bytes))) != nil, "not valid JSON: \(text)")
        return (try? JSON.parse(bytes)) ?? .null
    }

    /// The body as server-sent events (events separated by a blank line, `\n` or `\r\n` line ends).
    var events: [SSEEvent] {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n")
        #expect(normalized.hasSuffix("\n\n"), "an SSE stream ends with a blank line")
        return normalized.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { block in
            var event: String?
            var data: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                else if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
                else { Issue.record("unexpected SSE line: \(line)") }
            }
            return SSEEvent(event: event, data: data.joined(separator: "\n"))
        }
    }
}

extension JSON {
    /// Follows a path of keys and indices: `json.at("choices", 0, "message")`.
    func at(_ path: PathStep...) -> JSON? {
        var current: JSON? = self
        for element in path {
            switch element {
            case .key(let key): current = current?[key]
            case .index(let index): current = current?[index]
            }
        }
        return current
    }

    var keys: [String] { objectValue?.map(\.0) ?? [] }
}

/// One step of a path into JSON: a key (string literal) or an index (integer literal).
enum PathStep: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case key(String)
    case index(Int)

    init(stringLiteral value: String) { self = .key(value) }
    init(integerLiteral value: Int) { self = .index(value) }
}
