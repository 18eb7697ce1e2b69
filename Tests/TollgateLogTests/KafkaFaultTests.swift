import Foundation
import Synchronization
import Testing
@testable import TollgateLog

/// The producer rides out broker failures injected through librdkafka's mock API.
@Suite("Kafka faults")
struct KafkaFaultTests {
    private func makeLog(deliveryTimeout: Duration = .seconds(30)) throws -> (KafkaMockCluster, KafkaLog) {
        let cluster = try KafkaMockCluster()
        var configuration = cluster.configuration()
        configuration.deliveryTimeout = deliveryTimeout
        configuration.requestTimeout = .seconds(2)
        // Come back soon after a broker does (librdkafka backs off up to 10 s by default).
        configuration.properties["reconnect.backoff.max.ms"] = "300"
        return (cluster, try KafkaLog(configuration: configuration, mockCluster: cluster))
    }

    /// Every message of `topic`, in partition order, read by a fresh group.
    private func readAll(_ log: KafkaLog, _ topic: String, count: Int) async throws -> [ConsumedMessage] {
        let consumer = try await log.makeConsumer(ConsumerConfiguration(
            group: "reader-\(UUID())", sessionTimeout: .seconds(3), heartbeatInterval: .milliseconds(500)))
        try await consumer.subscribe([topic])
        var messages: [ConsumedMessage] = []
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(30))
        while messages.count < count && clock.now < end {
            messages += try await consumer.poll(maxMessages: 10_000, timeout: .milliseconds(200))
        }
        // Nothing beyond what was produced (no duplicates from the retries).
        messages += try await consumer.poll(maxMessages: 10_000, timeout: .milliseconds(300))
        try await consumer.close()
        return messages
    }

    @Test("retriable produce errors (leader moved, timeouts) are retried: everything lands once, in order",
          .timeLimit(.minutes(2)))
    func retriableErrors() async throws {
        let (cluster, log) = try makeLog()
        try await log.provision([TopicSpec(name: "flaky", partitions: 4)])
        // NOT_LEADER_OR_FOLLOWER (6), REQUEST_TIMED_OUT (7), NOT_ENOUGH_REPLICAS (19): all retriable.
        for code: Int32 in [6, 7, 19, 6, 7] { cluster.failNextProduceRequests(1, errorCode: code) }
        let messages = (0..<2_000).map {
            OutgoingMessage(topic: "flaky", key: "key-\($0 % 13)", value: Data("m\($0)".utf8))
        }
        var acks: [DeliveryAck] = []
        for chunk in stride(from: 0, to: messages.count, by: 250) {
            acks += try await log.produce(Array(messages[chunk..<chunk + 250]))
        }
        #expect(acks.count == messages.count)
        let read = try await readAll(log, "flaky", count: messages.count)
        #expect(read.count == messages.count, "idempotent producer: no duplicates, nothing lost")
        for key in 0..<13 {
            let values = read.filter { $0.key == Data("key-\(key)".utf8) }.sorted { $0.offset < $1.offset }
                .map { String(decoding: $0.value ?? Data(), as: UTF8.self) }
            #expect(values == messages.filter { $0.key == Data("key-\(key)".utf8) }
                .map { String(decoding: $0.value!, as: UTF8.self) })
        }
    }

    @Test("a produce call made while the broker is down completes once it is back", .timeLimit(.minutes(2)))
    func brokerDownThenUp() async throws {
        let (cluster, log) = try makeLog()
        try await log.provision([TopicSpec(name: "outage", partitions: 2)])
        _ = try await log.produce(OutgoingMessage(topic: "outage", key: "k", value: Data("before".utf8)))
        cluster.setBrokerDown()
        let finished = Atomic<Bool>(false)
        let pending = Task {
            defer { finished.store(true, ordering: .releasing) }
            return try await log.produce((0..<100).map {
                OutgoingMessage(topic: "outage", key: "k", value: Data("during-\($0)".utf8))
            })
        }
        // A request to the broker fails (after its 2 s timeout) while the produce call is still waiting.
        await #expect(throws: LogError.self) {
            _ = try await log.watermarks(topic: "outage")
        }
        let finishedDuringOutage = finished.load(ordering: .acquiring)
        #expect(!finishedDuringOutage, "delivered with the broker down?")
        cluster.setBrokerUp()
        let acks = try await pending.value
        #expect(acks.count == 100)
        let read = try await readAll(log, "outage", count: 101)
        #expect(read.map { String(decoding: $0.value ?? Data(), as: UTF8.self) }
            == ["before"] + (0..<100).map { "during-\($0)" })
    }

    @Test("when the broker stays down past the delivery timeout, the call fails with a retriable LogError",
          .timeLimit(.minutes(1)))
    func deliveryTimeout() async throws {
        let (cluster, log) = try makeLog(deliveryTimeout: .seconds(2))
        try await log.provision([TopicSpec(name: "gone", partitions: 1)])
        cluster.setBrokerDown()
        do {
            _ = try await log.produce(OutgoingMessage(topic: "gone", key: "k", value: Data("lost?".utf8)))
            Issue.record("the produce call succeeded with the broker down")
        } catch let error as LogError {
            // Transient: the spool keeps the message and tries again.
            #expect(error.isTransient, "\(error)")
        }
        cluster.setBrokerUp()
    }
}
