import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import Testing
import TollgateEvents
import TollgateFakeProvider
@testable import TollgateIngress
import TollgateLog

/// A fake provider and an ingress, both listening on 127.0.0.1, over a fresh embedded log — or, with
/// `kafka: true`, over a KafkaLog on a fresh librdkafka mock cluster with the events going through a spool.
final class IngressHarness: Sendable {
    static let upstreamSecret = "sk-upstream-test-secret-123"

    let directory: String
    let log: any MessageLog
    /// With `kafka: true`: the mock cluster (for fault injection) and the spool in front of it.
    let cluster: KafkaMockCluster?
    let spool: Spool?
    private let closeLog: @Sendable () -> Void
    let ingress: Ingress
    let ingressPort: Int
    let fakePort: Int
    let client: HTTPClient
    private let task: Task<Void, any Error>
    private let group: ServiceGroup
    private let fakeTask: Task<Void, any Error>
    private let fakeGroup: ServiceGroup

    /// - Parameter upstreamBase: override the providers' base URL (for unreachable upstreams).
    init(configure: (inout IngressConfiguration) -> Void = { _ in }, upstreamBase: String? = nil,
         kafka: Bool = false) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-ingress-\(UUID())").path
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let specs = TopicCatalog.all.map {
            TopicSpec(name: $0.fullName(), partitions: $0.partitions, cleanupPolicy: $0.cleanupPolicy == .compact ? .compact : .delete)
        }
        if kafka {
            let cluster = try KafkaMockCluster()
            var configuration = cluster.configuration()
            // Reconnect soon after a broker comes back (librdkafka backs off up to 10 s by default).
            configuration.properties["reconnect.backoff.max.ms"] = "500"
            let kafkaLog = try KafkaLog(configuration: configuration, mockCluster: cluster, logger: logger)
            try await kafkaLog.provision(specs)
            let spool = try await Spool.open(Spool.Configuration(directory: directory + "/spool"), target: kafkaLog,
                                             logger: logger)
            self.cluster = cluster
            self.spool = spool
            log = kafkaLog
            closeLog = {}
        } else {
            let embedded = try EmbeddedLog.open(directory: directory)
            try await embedded.provision(specs)
            cluster = nil
            spool = nil
            log = embedded
            closeLog = { embedded.close() }
        }

        let fakeReady = PortBox()
        let fake = FakeProvider(configuration: .init(requiredKey: Self.upstreamSecret), logger: logger)
            .buildApplication(host: "127.0.0.1", port: 0) { fakeReady.set($0) }
        let fakeGroup = ServiceGroup(configuration: .init(services: [.init(service: fake)], logger: logger))
        fakeTask = Task { try await fakeGroup.run() }
        self.fakeGroup = fakeGroup
        fakePort = try await fakeReady.wait()

        let base = upstreamBase ?? "http://127.0.0.1:\(fakePort)"
        var configuration = IngressConfiguration(upstreams: [
            .openai: .init(baseURL: base, apiKey: Self.upstreamSecret),
            .anthropic: .init(baseURL: base, apiKey: Self.upstreamSecret),
            .gemini: .init(baseURL: base, apiKey: Self.upstreamSecret),
        ])
        configuration.adminKey = "admin-test-key"
        configure(&configuration)
        ingress = Ingress(configuration: configuration, log: log, eventSink: spool, logger: logger)
        let router = Router()
        ingress.addRoutes(to: router)
        let ingressReady = PortBox()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { ingressReady.set($0.localAddress?.port ?? 0) }, logger: logger)
        group = ServiceGroup(configuration: .init(
            services: (spool.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                + ingress.services.map { .init(service: $0) } + [.init(service: app)],
            logger: logger))
        let group = self.group
        task = Task { try await group.run() }
        ingressPort = try await ingressReady.wait()
        client = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    func shutdown() async {
        try? await client.shutdown()
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        await fakeGroup.triggerGracefulShutdown()
        _ = try? await fakeTask.value
        closeLog()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A key created through the control topic, as `tollgate keys create` would.
    func createKey(models: [String] = [], tags: [String: String] = [:], customer: String? = nil) async throws
        -> (secret: String, data: KeyCreatedData) {
        let created = VirtualKeys.create(team: "search", project: "answers", customer: customer, tags: tags,
                                         models: models)
        let event = try await ingress.writer.write(created.data)
        ingress.control.apply([event])
        return created
    }

    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: Data
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func call(_ method: HTTPMethod = .POST, _ path: String, headers: [(String, String)] = [], body: Data? = nil,
              timeout: Duration = .seconds(30)) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(ingressPort)\(path)")
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(data: body)) }
        let response = try await client.execute(request, timeout: .seconds(timeout.components.seconds))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Data(buffer: bytes))
    }

    func call(_ path: String, headers: [(String, String)] = [], json: [String: Any]) async throws -> Reply {
        try await call(.POST, path, headers: headers + [("content-type", "application/json")],
                       body: try JSONSerialization.data(withJSONObject: json))
    }

    /// Waits until every event published so far is in the log (through the spool on Kafka).
    func flushEvents() async {
        #expect(await ingress.events.flush())
        if let spool { #expect(await spool.drained(timeout: .seconds(60))) }
    }

    /// A consumer in a fresh group (with the mock cluster's short session timeout on Kafka).
    func reader() async throws -> any LogConsumer {
        var configuration = ConsumerConfiguration(group: "reader-\(UUID())")
        if cluster != nil {
            configuration.sessionTimeout = .seconds(3)
            configuration.heartbeatInterval = .milliseconds(500)
        }
        return try await log.makeConsumer(configuration)
    }

    /// The response event of a request id, waiting for the publisher to write it.
    func responseEvent(_ requestID: String) async throws -> ResponseData {
        await flushEvents()
        let consumer = try await reader()
        try await consumer.subscribe(["tollgate.responses"])
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(10))
        while clock.now < end {
            for message in try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(100)) {
                let event = try EventCoding.decode(ResponseData.self, from: message.value ?? Data())
                if event.data.requestID == requestID {
                    try await consumer.close()
                    return event.data
                }
            }
        }
        try await consumer.close()
        throw HarnessError("no response event for \(requestID)")
    }

    /// Every event of a topic written so far.
    func events(_ topic: String) async throws -> [Data] {
        try await messages(topic).compactMap(\.value)
    }

    /// Every message of a topic written so far, read up to the high watermarks.
    func messages(_ topic: String) async throws -> [ConsumedMessage] {
        await flushEvents()
        let high = try await log.watermarks(topic: topic)
        let consumer = try await reader()
        try await consumer.subscribe([topic])
        var messages: [ConsumedMessage] = []
        var next: [Int: Int64] = [:]
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(30))
        while high.contains(where: { partition, marks in (next[partition] ?? marks.low) < marks.high }) {
            guard clock.now < end else { throw HarnessError("timed out reading \(topic)") }
            for message in try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(100)) {
                messages.append(message)
                next[message.partition] = message.offset + 1
            }
        }
        try await consumer.close()
        return messages
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A port number handed from a server callback to the test.
final class PortBox: Sendable {
    private let stream: AsyncStream<Int>
    private let continuation: AsyncStream<Int>.Continuation

    init() { (stream, continuation) = AsyncStream.makeStream(of: Int.self) }

    func set(_ port: Int) { continuation.yield(port) }

    func wait() async throws -> Int {
        for await port in stream { return port }
        throw HarnessError("server did not start")
    }
}
