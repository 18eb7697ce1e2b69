import Foundation
import Synchronization
public import TollgateLog
#if canImport(Glibc)
import Glibc
#endif

/// `tollgate bench log`: produce and consume throughput and end-to-end delivery latency of the embedded
/// log, in one process and across processes.
///
/// Every message carries the monotonic clock reading (`CLOCK_MONOTONIC`, shared by all processes of a
/// machine) at which it was handed to `produce` in its first 8 bytes; the consumer subtracts it from its
/// own reading on receipt. Throughput runs produce as fast as the log acknowledges (8 concurrent
/// producers, 500 messages per call); latency runs pace the producer at a fixed rate.
public enum LogBenchmark {
    /// One measured scenario.
    public struct Result: Sendable, Codable, Hashable {
        public var scenario: String
        public var messageBytes: Int
        public var messages: Int
        /// Messages acknowledged per second (`nil` when the scenario does not measure it).
        public var producePerSecond: Int?
        /// Messages consumed per second, first to last message.
        public var consumePerSecond: Int?
        /// Target produce rate of latency scenarios.
        public var targetRate: Int?
        public var latencyP50Milliseconds: Double?
        public var latencyP99Milliseconds: Double?
        public var latencyMaxMilliseconds: Double?

        public init(scenario: String, messageBytes: Int, messages: Int, producePerSecond: Int? = nil,
                    consumePerSecond: Int? = nil, targetRate: Int? = nil) {
            self.scenario = scenario
            self.messageBytes = messageBytes
            self.messages = messages
            self.producePerSecond = producePerSecond
            self.consumePerSecond = consumePerSecond
            self.targetRate = targetRate
        }
    }

    /// What a consumer measured: receipt latencies (nanoseconds) and the consume rate.
    public struct ConsumerMeasurement: Sendable, Codable {
        public var messages: Int
        public var consumePerSecond: Int
        public var latenciesNanoseconds: [UInt64]
    }

    /// Nanoseconds of the system-wide monotonic clock.
    public static func monotonicNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    static func payload(size: Int) -> Data {
        var data = Data(count: max(size, 8))
        let stamp = monotonicNanoseconds()
        withUnsafeBytes(of: stamp.littleEndian) { data.replaceSubrange(0..<8, with: $0) }
        return data
    }

    static func stamp(of value: Data?) -> UInt64? {
        guard let value, value.count >= 8 else { return nil }
        var stamp: UInt64 = 0
        withUnsafeMutableBytes(of: &stamp) { $0.copyBytes(from: value.prefix(8)) }
        return UInt64(littleEndian: stamp)
    }

    /// A topic for one scenario: 8 partitions, keys spread over them.
    public static func makeTopic(_ log: any MessageLog, name: String) async throws -> String {
        try await log.provision([TopicSpec(name: name, partitions: 8)])
        return name
    }

    /// Produces `count` messages of `size` bytes as fast as acknowledgements come back.
    /// Returns messages per second.
    public static func produceFlat(out log: any MessageLog, topic: String, count: Int, size: Int,
                                   progress: @escaping @Sendable (Int) -> Void = { _ in }) async throws -> Int {
        let producers = 8
        let perCall = 500
        let sent = Counter()
        let start = monotonicNanoseconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var index = producer * perCall
                    while index < count {
                        let upper = min(index + perCall, count)
                        let batch = (index..<upper).map {
                            OutgoingMessage(topic: topic, key: "key-\($0 % 1_000)", value: payload(size: size))
                        }
                        _ = try await log.produce(batch)
                        let total = sent.add(batch.count)
                        progress(total)
                        index += producers * perCall
                    }
                }
            }
            try await group.waitForAll()
        }
        return rate(count, since: start)
    }

    /// Produces `count` messages paced at `perSecond`, without waiting for one acknowledgement before
    /// sending the next (as the ingress does). Returns when all are acknowledged.
    public static func producePaced(to log: any MessageLog, topic: String, count: Int, size: Int,
                                    perSecond: Int) async throws {
        let start = monotonicNanoseconds()
        var sent = 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            while sent < count {
                let elapsed = monotonicNanoseconds() - start
                let due = min(count, Int(elapsed * UInt64(perSecond) / 1_000_000_000) + 1)
                if due > sent {
                    let batch = (sent..<due).map {
                        OutgoingMessage(topic: topic, key: "key-\($0 % 1_000)", value: payload(size: size))
                    }
                    sent = due
                    group.addTask { _ = try await log.produce(batch) }
                }
                try await Task.sleep(for: .microseconds(200))
            }
            try await group.waitForAll()
        }
    }

    /// Consumes `count` messages in a fresh group, recording each one's delivery latency.
    public static func consume(from log: any MessageLog, topic: String, group: String, count: Int,
                               deadline: Duration, ready: @Sendable () async -> Void = {},
                               progress: @escaping @Sendable (Int) -> Void = { _ in }) async throws
        -> ConsumerMeasurement {
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: group, autoOffsetReset: .earliest))
        try await consumer.subscribe([topic])
        _ = try await consumer.poll(maxMessages: 1, timeout: .zero)  // learn the assignment
        try await consumer.seek(.beginning, partitions: nil)
        await ready()
        var latencies: [UInt64] = []
        latencies.reserveCapacity(count)
        var first: UInt64?
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: deadline)
        while latencies.count < count && clock.now < end {
            let batch = try await consumer.poll(maxMessages: 2_000, timeout: .milliseconds(100))
            let now = monotonicNanoseconds()
            if !batch.isEmpty && first == nil { first = now }
            for message in batch {
                if let stamp = stamp(of: message.value) { latencies.append(now &- stamp) }
            }
            if !batch.isEmpty { progress(latencies.count) }
        }
        try await consumer.close()
        let consumeRate = first.map { Self.rate(latencies.count, since: $0) } ?? 0
        return ConsumerMeasurement(messages: latencies.count, consumePerSecond: consumeRate, latenciesNanoseconds: latencies)
    }

    static func rate(_ count: Int, since start: UInt64) -> Int {
        let elapsed = max(monotonicNanoseconds() - start, 1)
        return Int(UInt64(count) * 1_000_000_000 / elapsed)
    }

    /// Fills in the latency percentiles of a result from raw latencies.
    public static func withLatencies(_ result: Result, _ latencies: [UInt64]) -> Result {
        var result = result
        guard !latencies.isEmpty else { return result }
        let sorted = latencies.sorted()
        func milliseconds(_ quantile: Double) -> Double {
            let index = min(sorted.count - 1, Int((Double(sorted.count) * quantile).rounded(.up)) - 1)
            return (Double(sorted[max(index, 0)]) / 10_000).rounded() / 100
        }
        result.latencyP50Milliseconds = milliseconds(0.50)
        result.latencyP99Milliseconds = milliseconds(0.99)
        result.latencyMaxMilliseconds = milliseconds(1.0)
        return result
    }
}

/// A counter shared by concurrent tasks.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)

    /// Adds `amount`; returns the new total.
    func add(_ amount: Int) -> Int {
        value.wrappingAdd(amount, ordering: .relaxed).newValue
    }
}
