import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Testing
import TollgateFakeProvider
import TollgateIngress

/// The bench's bare forwarder: bodies, statuses and end-to-end headers pass both ways unchanged.
@Suite struct BareForwarderTests {
    @Test func forwardsRequestsAndResponsesUnchanged() async throws {
        let logger = Logger(label: "test.forwarder")
        let secret = "sk-forwarder-test"
        let fakeReady = PortBox()
        let fake = FakeProvider(configuration: .init(requiredKey: secret), logger: logger)
            .buildApplication(host: "127.0.0.1", port: 0) { fakeReady.set($0) }
        let fakeGroup = ServiceGroup(configuration: .init(services: [.init(service: fake)], logger: logger))
        let fakeTask = Task { try await fakeGroup.run() }
        let fakePort = try await fakeReady.wait()

        let forwarderReady = PortBox()
        let forwarder = BareForwarder.application(upstream: "http://127.0.0.1:\(fakePort)", logger: logger) {
            forwarderReady.set($0)
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: forwarder)], logger: logger))
        let task = Task { try await group.run() }
        let forwarderPort = try await forwarderReady.wait()
        let client = HTTPClient(eventLoopGroupProvider: .singleton)

        func call(_ port: Int, key: String, body: String) async throws -> (UInt, [String: String], Data) {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "authorization", value: "Bearer \(key)")
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
            let response = try await client.execute(request, timeout: .seconds(10))
            let bytes = try await response.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for (name, value) in response.headers { headers[name.lowercased()] = value }
            return (response.status.code, headers, Data(buffer: bytes))
        }

        do {
            let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello forwarder"}]}"#
            let direct = try await call(fakePort, key: secret, body: body)
            let forwarded = try await call(forwarderPort, key: secret, body: body)
            #expect(direct.0 == 200)
            #expect(forwarded.0 == 200)
            let directJSON = try #require(JSONSerialization.jsonObject(with: direct.2) as? [String: Any])
            let forwardedJSON = try #require(JSONSerialization.jsonObject(with: forwarded.2) as? [String: Any])
            #expect((forwardedJSON["usage"] as? NSDictionary) == (directJSON["usage"] as? NSDictionary))
            #expect((forwardedJSON["choices"] as? NSArray) == (directJSON["choices"] as? NSArray))
            #expect(forwarded.1["content-type"] == direct.1["content-type"])

            // The upstream's refusal comes back as it was sent.
            let refused = try await call(forwarderPort, key: "sk-wrong", body: body)
            #expect(refused.0 == 401)
            let error = try #require(JSONSerialization.jsonObject(with: refused.2) as? [String: Any])
            #expect(error["error"] is [String: Any])
        } catch {
            try? await client.shutdown()
            await group.triggerGracefulShutdown()
            await fakeGroup.triggerGracefulShutdown()
            throw error
        }
        try await client.shutdown()
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        await fakeGroup.triggerGracefulShutdown()
        _ = try? await fakeTask.value
    }
}
