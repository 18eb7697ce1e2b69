import Foundation
import ServiceLifecycle
import Logging
import MetricsTestKit
import Testing
@testable import TollgateLog

/// Sums integers per key and publishes each new total: a fold small enough to check by hand.
struct SumFold: EventFold {
    struct NotANumber: Error, CustomStringConvertible {
        var text: String
        var description: String { "not a number: '\(text)'" }
    }

    var output: String

    func decode(_ message: ConsumedMessage) throws -> Int {
        let text = String(decoding: message.value ?? Data(), as: UTF8.self)
        guard let number = Int(text) else { throw NotANumber(text: text) }
        return number
    }

    func fold(_ state: inout [String: Int], _ input: Int, _ message: ConsumedMessage) -> [OutgoingMessage] {
        let key = String(decoding: message.key ?? Data(), as: UTF8.self)
        state[key, default: 0] += input
        return [OutgoingMessage(topic: output, key: key, value: Data("\(state[key]!)".utf8))]
    }
}

@Suite("ConsumerRunner")
struct ConsumerRunnerTests {
    @Test("the fold is pure: plain values in, state and outputs out")
    func foldAsValues() throws {
        let fold = SumFold(output: "out")
        var state: [String: Int] = [:]
        let message = ConsumedMessage(topic: "in", partition: 0, offset: 0, timestampMilliseconds: 0,
                                      key: Data("a".utf8), value: Data("5".utf8), headers: [])
        let outputs = fold.fold(&state, try fold.decode(message), message)
        #expect(state == ["a": 5])
        #expect(outputs.map { String(decoding: $0.value!, as: UTF8.self) } == ["5"])
        #expect(throws: SumFold.NotANumber.self) {
            try fold.decode(ConsumedMessage(topic: "in", partition: 0, offset: 1, timestampMilliseconds: 0,
                                            key: nil, value: Data("x".utf8), headers: []))
        }
    }

    @Test("poison messages go to the dead-letter topic with the reason; the rest is folded and committed")
    func poisonMessages() async throws {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        try await log.provision([TopicSpec(name: "in", partitions: 2), TopicSpec(name: "out", partitions: 2),
                                 TopicSpec(name: "dlq", partitions: 1)])
        let inputs = ["1", "2", "oops", "3", "", "4"]
        _ = try await log.produce(inputs.map {
            OutgoingMessage(topic: "in", key: "a", value: Data($0.utf8), headers: [MessageHeader("origin", "test")])
        })
        let (batches, batchSink) = AsyncStream.makeStream(of: [String: Int].self)
        let runner = ConsumerRunner(
            log: log, fold: SumFold(output: "out"), initialState: [:],
            configuration: .init(group: "sum", topics: ["in"], deadLetterTopic: "dlq"),
            onBatch: { state, _ in batchSink.yield(state) })
        let group = ServiceGroup(services: [runner], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for await state in batches where state["a"] == 10 { break }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }

        let reader = try await log.makeConsumer(ConsumerConfiguration(group: "reader"))
        try await reader.subscribe(["out", "dlq"])
        let read = try await drain(reader, count: 6)
        let totals = read.filter { $0.topic == "out" }.compactMap { text($0.value) }
        #expect(totals == ["1", "3", "6", "10"])
        let dead = read.filter { $0.topic == "dlq" }
        #expect(dead.map { text($0.value) } == ["oops", ""])
        let first = try #require(dead.first)
        #expect(text(first.header(DeadLetter.reasonHeader)) == "not a number: 'oops'")
        #expect(text(first.header(DeadLetter.topicHeader)) == "in")
        #expect(text(first.header(DeadLetter.offsetHeader)) == "2")
        #expect(text(first.header(DeadLetter.groupHeader)) == "sum")
        #expect(text(first.header("origin")) == "test")
        #expect(text(first.key) == "in:\(first.header(DeadLetter.partitionHeader).flatMap(text) ?? "?")")

        // Everything was committed: a restarted runner has nothing left to do.
        let check = try await log.makeConsumer(ConsumerConfiguration(group: "sum"))
        try await check.subscribe(["in"])
        #expect(try await check.poll(maxMessages: 10, timeout: .milliseconds(100)).isEmpty)
        let partition = Partitioner.partition(forKey: Data("a".utf8), partitions: 2)
        #expect(try await check.committed([TopicPartition(topic: "in", partition: partition)])
                == [TopicPartition(topic: "in", partition: partition): 6])
        try await check.close()
        try await reader.close()
    }

    @Test("the runner reports its lag per partition, and counts what it processed")
    func lagMetric() async throws {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        try await log.provision([TopicSpec(name: "in", partitions: 1), TopicSpec(name: "out", partitions: 1),
                                 TopicSpec(name: "dlq", partitions: 1)])
        _ = try await log.produce((1...40).map { OutgoingMessage(topic: "in", key: "a", value: Data("\($0)".utf8)) })
        let metrics = TestMetrics()
        var configuration = ConsumerRunner<SumFold>.Configuration(group: "sum", topics: ["in"], deadLetterTopic: "dlq")
        configuration.batchSize = 10
        configuration.lagInterval = .milliseconds(1)
        let (batches, batchSink) = AsyncStream.makeStream(of: [String: Int].self)
        let runner = ConsumerRunner(log: log, fold: SumFold(output: "out"), initialState: [:],
                                    configuration: configuration, metricsFactory: metrics,
                                    onBatch: { state, _ in batchSink.yield(state) })
        let group = ServiceGroup(services: [runner], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // After the last batch, the next loop turn measures the lag again: wait for that batch's
            // successor poll by producing nothing more and waiting for one more report (bounded).
            for await state in batches where state["a"] == 820 { break }
            let lag = try metrics.expectGauge("tollgate_consumer_lag", [("group", "sum"), ("topic", "in"), ("partition", "0")])
            let clock = ContinuousClock()
            let end = clock.now.advanced(by: .seconds(10))
            while lag.lastValue != 0 && clock.now < end { await Task.yield() }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            // Measured while behind (the first report comes once partitions are assigned, before or after
            // the first batch), then shrinking to 0.
            #expect((1...40).contains(lag.values.first ?? 0))
            #expect(lag.lastValue == 0)
            #expect(lag.values == lag.values.sorted(by: >))
        }
        #expect(try metrics.expectCounter("tollgate_consumer_messages_total", [("group", "sum")]).totalValue == 40)
    }

    @Test("outputs to a missing topic stop the runner with the error and commit nothing")
    func unrecoverablePublishFailure() async throws {
        let directory = try TemporaryDirectory()
        let log = try EmbeddedLog.open(directory: directory.path)
        try await log.provision([TopicSpec(name: "in", partitions: 1), TopicSpec(name: "dlq", partitions: 1)])
        _ = try await log.produce(OutgoingMessage(topic: "in", key: "a", value: Data("1".utf8)))
        let runner = ConsumerRunner(log: log, fold: SumFold(output: "missing"), initialState: [:],
                                    configuration: .init(group: "sum", topics: ["in"], deadLetterTopic: "dlq"))
        await #expect(throws: LogError.unknownTopic("missing")) {
            try await runner.run()
        }
        let check = try await log.makeConsumer(ConsumerConfiguration(group: "sum"))
        try await check.subscribe(["in"])
        #expect(try await check.committed([TopicPartition(topic: "in", partition: 0)]).isEmpty)
        #expect(try await drain(check, count: 1).count == 1)
        try await check.close()
    }
}
