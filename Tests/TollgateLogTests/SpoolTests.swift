import Foundation
import MetricsTestKit
import Synchronization
import Testing
@testable import TollgateLog

/// A target log that can be switched off: while down, every produce fails as an unreachable broker does.
final class SwitchableLog: MessageLog {
    let base: EmbeddedLog
    private let down = Mutex(false)
    private let attempts = Atomic<Int>(0)

    init(base: EmbeddedLog) { self.base = base }

    func setDown(_ value: Bool) { down.withLock { $0 = value } }
    var produceAttempts: Int { attempts.load(ordering: .relaxed) }

    func provision(_ topics: [TopicSpec]) async throws { try await base.provision(topics) }
    func topics() async throws -> [TopicSpec] { try await base.topics() }
    func watermarks(topic: String) async throws -> [Int: PartitionWatermarks] { try await base.watermarks(topic: topic) }
    func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer {
        try await base.makeConsumer(configuration)
    }

    func produce(_ messages: [OutgoingMessage]) async throws -> [DeliveryAck] {
        attempts.add(1, ordering: .relaxed)
        if down.withLock({ $0 }) { throw LogError.storage("broker unreachable (test)") }
        return try await base.produce(messages)
    }
}

@Suite("Spool")
final class SpoolTests: Sendable {
    /// One per test (Swift Testing makes an instance per test), removed after it.
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-spool-\(UUID())").path

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func makeTarget() async throws -> SwitchableLog {
        let base = try EmbeddedLog.open(directory: directory + "/target")
        try await base.provision([TopicSpec(name: "events", partitions: 3),
                                  TopicSpec(name: "table", partitions: 2, cleanupPolicy: .compact)])
        return SwitchableLog(base: base)
    }

    func spoolConfiguration() -> Spool.Configuration {
        var configuration = Spool.Configuration(directory: directory + "/spool")
        configuration.initialBackoff = .milliseconds(5)
        configuration.maxBackoff = .milliseconds(50)
        return configuration
    }

    func readAll(_ log: EmbeddedLog, _ topic: String) async throws -> [ConsumedMessage] {
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: "reader-\(UUID())"))
        try await consumer.subscribe([topic])
        var result: [ConsumedMessage] = []
        while true {
            let batch = try await consumer.poll(maxMessages: 10_000, timeout: .milliseconds(50))
            if batch.isEmpty { break }
            result += batch
        }
        try await consumer.close()
        return result
    }

    @Test("messages reach the target exactly as appended: topic, key, value, headers, explicit partition, tombstones")
    func forwardsFaithfully() async throws {
        let target = try await makeTarget()
        let spool = try await Spool.open(spoolConfiguration(), target: target)
        let forwarder = Task { try await spool.run() }
        let messages = [
            OutgoingMessage(topic: "events", key: "a", value: Data("one".utf8), headers: [MessageHeader("h", "1")]),
            OutgoingMessage(topic: "events", key: nil, value: Data("two".utf8), headers: [], partition: 2),
            OutgoingMessage(topic: "table", key: "k", value: nil, headers: [MessageHeader("x", Data([0, 255]))]),
            OutgoingMessage(topic: "events", key: "a", value: Data(), headers: []),
        ]
        try await spool.append(messages)
        #expect(await spool.drained(timeout: .seconds(10)))
        let events = try await readAll(target.base, "events")
        #expect(events.count == 3)
        #expect(Set(events.compactMap(\.value)) == Set([Data("one".utf8), Data(), Data("two".utf8)]))
        let first = try #require(events.first { $0.value == Data("one".utf8) })
        #expect(first.key == Data("a".utf8) && first.headers == [MessageHeader("h", "1")])
        #expect(first.partition == Partitioner.partition(forKey: Data("a".utf8), partitions: 3))
        #expect(events.first { $0.value == Data("two".utf8) }?.partition == 2)
        let table = try await readAll(target.base, "table")
        #expect(table.count == 1 && table[0].value == nil && table[0].headers == [MessageHeader("x", Data([0, 255]))])
        #expect(spool.statistics.forwarded == 4 && spool.statistics.pendingMessages == 0)
        // Forwarded messages are deleted locally.
        let local = try EmbeddedLog.open(directory: directory + "/spool")
        #expect(try await local.statistics(topic: "spool").map(\.messages).reduce(0, +) == 0)
        local.close()
        forwarder.cancel()
        try await forwarder.value
    }

    @Test("while the target is down, appends succeed and wait; once it is back they arrive in order")
    func ridesOutOutage() async throws {
        let target = try await makeTarget()
        target.setDown(true)
        let spool = try await Spool.open(spoolConfiguration(), target: target)
        let forwarder = Task { try await spool.run() }
        for round in 0..<20 {
            try await spool.append((0..<50).map {
                OutgoingMessage(topic: "events", key: "key-\($0 % 5)", value: Data("\(round)-\($0)".utf8))
            })
        }
        #expect(spool.statistics.pendingMessages == 1_000)
        // Wait (event-driven, on the attempt counter) until the forwarder has failed a few times.
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(10))
        while target.produceAttempts < 3 && clock.now < end { await Task.yield() }
        #expect(spool.statistics.targetUnavailable)
        #expect(spool.statistics.forwarded == 0)
        target.setDown(false)
        #expect(await spool.drained(timeout: .seconds(20)))
        let events = try await readAll(target.base, "events")
        #expect(events.count == 1_000)
        for key in 0..<5 {
            let values = events.filter { $0.key == Data("key-\(key)".utf8) }.map { String(decoding: $0.value!, as: UTF8.self) }
            let expected = (0..<20).flatMap { round in (0..<50).filter { $0 % 5 == key }.map { "\(round)-\($0)" } }
            #expect(values == expected)
        }
        #expect(!spool.statistics.targetUnavailable)
        forwarder.cancel()
        try await forwarder.value
    }

    @Test("a full spool refuses loudly with a typed error and takes messages again once it drained")
    func bounded() async throws {
        let target = try await makeTarget()
        target.setDown(true)
        var configuration = spoolConfiguration()
        configuration.maxMessages = 100
        let metrics = TestMetrics()
        let spool = try await Spool.open(configuration, target: target, metricsFactory: metrics)
        #expect(try metrics.expectGauge("tollgate_spool_limit_messages").lastValue == 100)
        #expect(try metrics.expectGauge("tollgate_spool_limit_bytes").lastValue == Double(configuration.maxBytes))
        let forwarder = Task { try await spool.run() }
        try await spool.append((0..<100).map { OutgoingMessage(topic: "events", key: "k", value: Data("\($0)".utf8)) })
        await #expect(throws: Spool.SpoolError.full(messages: 100, bytes: spool.statistics.pendingBytes)) {
            try await spool.append([OutgoingMessage(topic: "events", key: "k", value: Data("late".utf8))])
        }
        #expect(spool.statistics.rejected == 1)
        #expect(try metrics.expectCounter("tollgate_spool_rejected_total").totalValue == 1)
        #expect(try metrics.expectGauge("tollgate_spool_pending_messages").lastValue == 100)
        target.setDown(false)
        #expect(await spool.drained(timeout: .seconds(20)))
        #expect(try metrics.expectCounter("tollgate_spool_forwarded_total").totalValue == 100)
        #expect(try metrics.expectGauge("tollgate_spool_pending_messages").lastValue == 0)
        #expect(try metrics.expectGauge("tollgate_spool_target_up").lastValue == 1)
        try await spool.append([OutgoingMessage(topic: "events", key: "k", value: Data("after".utf8))])
        #expect(await spool.drained(timeout: .seconds(20)))
        #expect(try await readAll(target.base, "events").count == 101)
        forwarder.cancel()
        try await forwarder.value
    }

    @Test("the byte bound holds too")
    func boundedBytes() async throws {
        let target = try await makeTarget()
        target.setDown(true)
        var configuration = spoolConfiguration()
        configuration.maxBytes = 10_000
        let spool = try await Spool.open(configuration, target: target)
        try await spool.append([OutgoingMessage(topic: "events", key: "k", value: Data(count: 9_000))])
        await #expect(throws: Spool.SpoolError.self) {
            try await spool.append([OutgoingMessage(topic: "events", key: "k", value: Data(count: 2_000))])
        }
        try await spool.append([OutgoingMessage(topic: "events", key: "k", value: Data(count: 500))])
    }

    @Test("a message the target refuses for good is dropped and counted, and does not block the rest")
    func poisonDoesNotBlock() async throws {
        let target = try await makeTarget()
        let spool = try await Spool.open(spoolConfiguration(), target: target)
        let forwarder = Task { try await spool.run() }
        try await spool.append([OutgoingMessage(topic: "no-such-topic", key: "k", value: Data("x".utf8))])
        try await spool.append([OutgoingMessage(topic: "events", key: "k", value: Data("fine".utf8))])
        #expect(await spool.drained(timeout: .seconds(10)))
        #expect(spool.statistics.undeliverable == 1)
        #expect(try await readAll(target.base, "events").map(\.value) == [Data("fine".utf8)])
        forwarder.cancel()
        try await forwarder.value
    }

    @Test("on Kafka, a message over the size limit in a spooled batch is dropped alone; the rest land once")
    func oversizedOnKafka() async throws {
        let cluster = try KafkaMockCluster()
        var configuration = cluster.configuration()
        configuration.maximumMessageBytes = 1_000
        let kafka = try KafkaLog(configuration: configuration, mockCluster: cluster)
        try await kafka.provision([TopicSpec(name: "events", partitions: 2)])
        let spool = try await Spool.open(spoolConfiguration(), target: kafka)
        let forwarder = Task { try await spool.run() }
        var batch = (0..<5).map { OutgoingMessage(topic: "events", key: "k\($0)", value: Data("\($0)".utf8)) }
        batch[2].value = Data(count: 5_000)
        try await spool.append(batch)
        #expect(await spool.drained(timeout: .seconds(20)))
        #expect(spool.statistics.undeliverable == 1)
        let marks = try await kafka.watermarks(topic: "events")
        #expect(marks.values.reduce(0) { $0 + $1.high - $1.low } == 4)
        forwarder.cancel()
        try await forwarder.value
    }
}
