import Foundation
import Testing
import TollgateEvents
@testable import TollgateIngress
import TollgateLog

/// The ingress on Kafka (librdkafka's mock cluster), its events going through the durable spool.
@Suite("Ingress on Kafka", .serialized)
struct KafkaIngressTests {
    @Test("with the broker down, requests keep succeeding as fast, and every event reaches Kafka in order once it is back")
    func brokerOutage() async throws {
        let harness = try await IngressHarness(kafka: true)
        let cluster = try #require(harness.cluster)
        let spool = try #require(harness.spool)
        let key = try await harness.createKey()

        func calls(_ count: Int, tag: String) async throws -> (ids: [String], latencies: [Duration]) {
            var ids: [String] = []
            var latencies: [Duration] = []
            let clock = ContinuousClock()
            for index in 0..<count {
                let start = clock.now
                let reply = try await harness.call(
                    "/v1/chat/completions",
                    headers: [("authorization", "Bearer \(key.secret)"), ("x-tollgate-tags", "phase=\(tag)")],
                    json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "call \(index) \(tag)"]]])
                latencies.append(clock.now - start)
                #expect(reply.status == 200, "call \(index) \(tag): \(reply.text)")
                ids.append(try #require(reply.headers.first(name: "x-tollgate-request-id")))
            }
            return (ids, latencies)
        }

        let before = try await calls(40, tag: "before")
        await harness.flushEvents()

        cluster.setBrokerDown()
        let during = try await calls(80, tag: "during")
        // Every event of the outage is durable in the spool, none yet in Kafka.
        #expect(await harness.ingress.events.flush())
        let stranded = spool.statistics
        #expect(stranded.pendingMessages >= Int64(2 * during.ids.count))
        #expect(harness.ingress.events.dropped == 0)

        cluster.setBrokerUp()
        #expect(await spool.drained(timeout: .seconds(60)))
        let after = try await calls(10, tag: "after")

        // Latency did not move: the outage is invisible to clients (no request waits on the log). The
        // bound is loose on purpose (shared 2-core CI machine); blocking on the log would cost seconds.
        let medianBefore = median(before.latencies)
        let medianDuring = median(during.latencies)
        #expect(medianDuring < medianBefore * 3 + .milliseconds(20),
                "median latency \(medianBefore) before the outage, \(medianDuring) during it")
        #expect(during.latencies.max()! < .seconds(1))

        // Every request and response event is in Kafka, and in call order within the team's partition.
        let expected = before.ids + during.ids + after.ids
        for topic in ["tollgate.requests", "tollgate.responses"] {
            let messages = try await harness.messages(topic)
            var order: [String] = []
            var seen = Set<String>()
            for message in messages.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
                #expect(message.key == Data("search".utf8))
                let id: String
                if topic == "tollgate.requests" {
                    id = try EventCoding.decode(RequestData.self, from: message.value ?? Data()).data.requestID
                } else {
                    id = try EventCoding.decode(ResponseData.self, from: message.value ?? Data()).data.requestID
                }
                // At-least-once: a batch retried after a broker failure may appear twice; order still holds.
                if seen.insert(id).inserted { order.append(id) }
            }
            #expect(order == expected, "\(topic): \(order.count) distinct events of \(expected.count)")
            #expect(Set(messages.map(\.partition)).count == 1)
        }
        await harness.shutdown()
    }

    @Test("events spooled while the broker is down survive a restart of the ingress")
    func spoolSurvivesRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-spool-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cluster = try KafkaMockCluster()
        var configuration = cluster.configuration()
        configuration.properties["reconnect.backoff.max.ms"] = "500"
        configuration.deliveryTimeout = .seconds(2)
        let kafka = try KafkaLog(configuration: configuration, mockCluster: cluster)
        try await kafka.provision([TopicSpec(name: "tollgate.responses", partitions: 4)])
        let messages = (0..<500).map {
            OutgoingMessage(topic: "tollgate.responses", key: "team-\($0 % 7)", value: Data("event \($0)".utf8),
                            headers: [MessageHeader("ce_type", "tollgate.response.v1")])
        }

        // First run: the broker is down; the forwarder keeps failing; the process stops.
        cluster.setBrokerDown()
        do {
            let spool = try await Spool.open(Spool.Configuration(directory: directory), target: kafka)
            let forwarder = Task { try await spool.run() }
            try await spool.append(Array(messages[..<250]))
            try await spool.append(Array(messages[250...]))
            #expect(spool.statistics.pendingMessages == 500)
            forwarder.cancel()
            _ = try? await forwarder.value
        }

        // Second run: the spool still holds all 500 and forwards them once the broker is back.
        cluster.setBrokerUp()
        let spool = try await Spool.open(Spool.Configuration(directory: directory), target: kafka)
        #expect(spool.statistics.pendingMessages == 500)
        let forwarder = Task { try await spool.run() }
        #expect(await spool.drained(timeout: .seconds(60)))
        forwarder.cancel()
        _ = try? await forwarder.value

        let consumer = try await kafka.makeConsumer(ConsumerConfiguration(
            group: "check", sessionTimeout: .seconds(3), heartbeatInterval: .milliseconds(500)))
        try await consumer.subscribe(["tollgate.responses"])
        var received: [String: [String]] = [:]
        var distinct = Set<String>()
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(30))
        while distinct.count < messages.count && clock.now < end {
            for message in try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(200)) {
                let value = String(decoding: message.value ?? Data(), as: UTF8.self)
                let key = String(decoding: message.key ?? Data(), as: UTF8.self)
                #expect(message.header("ce_type") == Data("tollgate.response.v1".utf8))
                if distinct.insert(value).inserted { received[key, default: []].append(value) }
            }
        }
        try await consumer.close()
        #expect(distinct.count == messages.count)
        for (key, values) in received {
            let expected = messages.filter { $0.key == Data(key.utf8) }.map { String(decoding: $0.value!, as: UTF8.self) }
            #expect(values == expected, "order of key \(key)")
        }
    }
}

private func median(_ values: [Duration]) -> Duration {
    values.sorted()[values.count / 2]
}
