import Foundation
import Testing
@testable import TollgateLog

/// The embedded log's `fetchMinMessages` / `fetchMaxWait` (Kafka's `fetch.min.bytes` / `fetch.wait.max.ms`).
@Suite("Embedded fetch gathering") struct FetchGatheringTests {
    @Test("a gathering poll returns as soon as the minimum has arrived, with everything that arrived")
    func returnsOnceTheMinimumArrives() async throws {
        let fixture = try await LogEngine.embedded.make()
        let topic = try await fixture.topic(partitions: 2)
        let consumer = try await fixture.log.makeConsumer(ConsumerConfiguration(
            group: "g", fetchMinMessages: 5, fetchMaxWait: .seconds(30)))
        try await consumer.subscribe([topic])
        _ = try await fixture.log.produce([OutgoingMessage(topic: topic, key: "k0", value: bytes("0"))])

        let clock = ContinuousClock()
        let started = clock.now
        async let polled = consumer.poll(maxMessages: 100, timeout: .seconds(30))
        // The rest arrives one call at a time, while the poll gathers.
        for index in 1..<5 {
            _ = try await fixture.log.produce([OutgoingMessage(topic: topic, key: "k\(index)", value: bytes("\(index)"))])
        }
        let batch = try await polled
        #expect(batch.count == 5)
        #expect(Set(batch.compactMap { text($0.value) }) == ["0", "1", "2", "3", "4"])
        // Returned when the fifth arrived, not at the 30 s bound.
        #expect(clock.now - started < .seconds(10))
        try await consumer.close()
    }

    @Test("below the minimum, a poll returns what it has once fetchMaxWait has passed")
    func returnsWhatItHasAfterTheWait() async throws {
        let fixture = try await LogEngine.embedded.make()
        let topic = try await fixture.topic(partitions: 2)
        _ = try await fixture.log.produce((0..<3).map { OutgoingMessage(topic: topic, key: "k\($0)", value: bytes("\($0)")) })
        let consumer = try await fixture.log.makeConsumer(ConsumerConfiguration(
            group: "g", fetchMinMessages: 100, fetchMaxWait: .milliseconds(50)))
        try await consumer.subscribe([topic])
        let clock = ContinuousClock()
        let started = clock.now
        let batch = try await consumer.poll(maxMessages: 100, timeout: .seconds(5))
        let elapsed = clock.now - started
        #expect(batch.count == 3)
        #expect(elapsed >= .milliseconds(50))
        // Nothing is lost or repeated: the next poll finds nothing new.
        let next = try await consumer.poll(maxMessages: 100, timeout: .milliseconds(20))
        #expect(next.isEmpty)
        try await consumer.close()
    }

    @Test("maxMessages caps a gathering poll, and the defaults return at once")
    func maxMessagesAndDefaults() async throws {
        let fixture = try await LogEngine.embedded.make()
        let topic = try await fixture.topic(partitions: 1)
        _ = try await fixture.log.produce((0..<4).map { OutgoingMessage(topic: topic, key: "k", value: bytes("\($0)")) })
        let gathering = try await fixture.log.makeConsumer(ConsumerConfiguration(
            group: "g1", fetchMinMessages: 1_000, fetchMaxWait: .seconds(30)))
        try await gathering.subscribe([topic])
        let clock = ContinuousClock()
        var started = clock.now
        let capped = try await gathering.poll(maxMessages: 3, timeout: .seconds(30))
        #expect(capped.map { text($0.value) } == ["0", "1", "2"])
        #expect(clock.now - started < .seconds(10))
        try await gathering.close()

        let plain = try await fixture.log.makeConsumer(ConsumerConfiguration(group: "g2"))
        try await plain.subscribe([topic])
        started = clock.now
        let first = try await plain.poll(maxMessages: 100, timeout: .seconds(30))
        #expect(first.count == 4)
        #expect(clock.now - started < .seconds(10))
        try await plain.close()
    }
}
