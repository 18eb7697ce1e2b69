import Foundation
import ServiceLifecycle
import Logging
import MetricsTestKit
import Synchronization
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

    @Test("failed publishes and commits are retried in batch order: no output lost, skipped or reordered")
    func pipelinedRetries() async throws {
        let directory = try TemporaryDirectory()
        let base = try EmbeddedLog.open(directory: directory.path)
        try await base.provision([TopicSpec(name: "in", partitions: 1), TopicSpec(name: "out", partitions: 1),
                                  TopicSpec(name: "dlq", partitions: 1)])
        _ = try await base.produce((1...30).map { OutgoingMessage(topic: "in", key: "a", value: Data("\($0)".utf8)) })
        // Fails before touching the log: the 2nd, 3rd and 6th publish, the 1st and 4th commit.
        let log = FlakyLog(base: base,
                           failProduce: { [1, 2, 5].contains($0) ? .storage("disk full") : nil },
                           failCommit: { [0, 3].contains($0) ? .storage("database is locked") : nil })
        var configuration = ConsumerRunner<SumFold>.Configuration(group: "sum", topics: ["in"], deadLetterTopic: "dlq")
        configuration.batchSize = 4
        configuration.initialBackoff = .milliseconds(1)
        configuration.maxBackoff = .milliseconds(2)
        let (reports, sink) = AsyncStream.makeStream(of: ([String: Int], Int64).self)
        let runner = ConsumerRunner(
            log: log, fold: SumFold(output: "out"), initialState: [:], configuration: configuration,
            onBatch: { state, report in sink.yield((state, report.committed.values.max() ?? -1)) })
        let group = ServiceGroup(services: [runner], logger: Logger(label: "test"))
        var seen: [([String: Int], Int64)] = []
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for await report in reports {
                seen.append(report)
                if report.1 == 30 { break }
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // Each batch is reported once it is committed, in order, with the state after that batch (not
        // after the one folded meanwhile).
        #expect(seen.map(\.1) == [4, 8, 12, 16, 20, 24, 28, 30])
        for (state, committed) in seen {
            let sum = Int(committed) * Int(committed + 1) / 2
            #expect(state["a"] == sum)
        }
        #expect(log.produceCalls == 8 + 3)

        let reader = try await base.makeConsumer(ConsumerConfiguration(group: "reader"))
        try await reader.subscribe(["out"])
        let totals = try await drain(reader, count: 30).compactMap { text($0.value) }
        let expected: [String] = (1...30).map { (n: Int) -> String in String(n * (n + 1) / 2) }
        #expect(totals == expected)
        #expect(try await reader.poll(maxMessages: 10, timeout: .milliseconds(50)).isEmpty)
        try await reader.close()
        #expect(try await committed(base, group: "sum") == 30)
    }

    @Test("a batch that fails for good stops the runner: the batch folded meanwhile is neither published nor committed")
    func pipelinedFailureStops() async throws {
        let directory = try TemporaryDirectory()
        let base = try EmbeddedLog.open(directory: directory.path)
        try await base.provision([TopicSpec(name: "in", partitions: 1), TopicSpec(name: "out", partitions: 1),
                                  TopicSpec(name: "dlq", partitions: 1)])
        _ = try await base.produce((1...20).map { OutgoingMessage(topic: "in", key: "a", value: Data("\($0)".utf8)) })
        let log = FlakyLog(base: base, failProduce: { $0 == 2 ? .unknownTopic("out") : nil }, failCommit: { _ in nil })
        var configuration = ConsumerRunner<SumFold>.Configuration(group: "sum", topics: ["in"], deadLetterTopic: "dlq")
        configuration.batchSize = 4
        let runner = ConsumerRunner(log: log, fold: SumFold(output: "out"), initialState: [:],
                                    configuration: configuration)
        await #expect(throws: LogError.unknownTopic("out")) {
            try await runner.run()
        }
        #expect(log.produceCalls == 3)
        #expect(try await committed(base, group: "sum") == 8)
        let reader = try await base.makeConsumer(ConsumerConfiguration(group: "reader"))
        try await reader.subscribe(["out"])
        let totals = try await drain(reader, count: 8).compactMap { text($0.value) }
        let expected: [String] = (1...8).map { (n: Int) -> String in String(n * (n + 1) / 2) }
        #expect(totals == expected)
        #expect(try await reader.poll(maxMessages: 10, timeout: .milliseconds(50)).isEmpty)
        try await reader.close()
    }

    private func committed(_ log: EmbeddedLog, group: String) async throws -> Int64? {
        let check = try await log.makeConsumer(ConsumerConfiguration(group: group))
        let partition = TopicPartition(topic: "in", partition: 0)
        let offset = try await check.committed([partition])[partition]
        try await check.close()
        return offset
    }
}

/// A log that fails chosen `produce` and `commit` calls (numbered from 0) before they reach the log
/// underneath, the way a full disk or a lock held too long would.
final class FlakyLog: MessageLog {
    let base: any MessageLog
    let failProduce: @Sendable (Int) -> LogError?
    let failCommit: @Sendable (Int) -> LogError?
    private let calls = Mutex<(produce: Int, commit: Int)>((0, 0))

    init(base: any MessageLog, failProduce: @escaping @Sendable (Int) -> LogError?,
         failCommit: @escaping @Sendable (Int) -> LogError?) {
        self.base = base
        self.failProduce = failProduce
        self.failCommit = failCommit
    }

    var produceCalls: Int { calls.withLock { $0.produce } }

    func nextCommit() -> Int { calls.withLock { calls in defer { calls.commit += 1 }; return calls.commit } }

    func provision(_ topics: [TopicSpec]) async throws { try await base.provision(topics) }
    func topics() async throws -> [TopicSpec] { try await base.topics() }
    func watermarks(topic: String) async throws -> [Int: PartitionWatermarks] {
        try await base.watermarks(topic: topic)
    }

    func produce(_ messages: [OutgoingMessage]) async throws -> [DeliveryAck] {
        let call = calls.withLock { calls in defer { calls.produce += 1 }; return calls.produce }
        if let error = failProduce(call) { throw error }
        return try await base.produce(messages)
    }

    func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer {
        FlakyConsumer(base: try await base.makeConsumer(configuration), log: self)
    }
}

final class FlakyConsumer: LogConsumer {
    let base: any LogConsumer
    let log: FlakyLog

    init(base: any LogConsumer, log: FlakyLog) {
        self.base = base
        self.log = log
    }

    func subscribe(_ topics: [String]) async throws { try await base.subscribe(topics) }
    func poll(maxMessages: Int, timeout: Duration) async throws -> [ConsumedMessage] {
        try await base.poll(maxMessages: maxMessages, timeout: timeout)
    }
    func commit(_ offsets: [TopicPartition: Int64]) async throws {
        if let error = log.failCommit(log.nextCommit()) { throw error }
        try await base.commit(offsets)
    }
    func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        try await base.committed(partitions)
    }
    func seek(_ position: SeekPosition, partitions: [TopicPartition]?) async throws {
        try await base.seek(position, partitions: partitions)
    }
    func assignment() async -> Set<TopicPartition> { await base.assignment() }
    func close() async throws { try await base.close() }
}
