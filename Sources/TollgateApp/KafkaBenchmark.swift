import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import Logging
import TollgateLog

/// `tollgate bench kafka`: produce and consume throughput of the Kafka engine (``KafkaLog`` and its
/// consumer) against librdkafka's in-process mock cluster, next to raw librdkafka loops measured the
/// same way (``RawKafkaBenchmark``).
///
/// Each phase runs `rounds` times, raw and Swift alternating, and reports its median round, with the best
/// next to it (the machine may be busy with other work, and one lucky round can be far from the others).
/// One fresh mock broker per round, one topic per producer of `partitions` partitions, values of
/// `valueBytes` bytes drawn from 1,000 distinct random strings, `keys` distinct keys. Both producers use
/// ``KafkaLog``'s producer settings (idempotent, `acks=all`, lz4, 5 ms linger). The wrapper is driven the
/// way services drive it: `produce` calls of `batchSize` messages, `inFlight` of them at a time; its
/// consumer with `poll(maxMessages:)`. Consumers read, in fresh groups, what the wrapper produced.
///
/// Producing is bounded by how many messages await acknowledgement: a `produce` call returns once all of
/// its messages are acknowledged, and an acknowledgement takes the linger, a broker round trip and the
/// report (about 20 ms here under load). The raw loop keeps up to `queue.buffering.max.messages`
/// (100,000) messages in librdkafka's queue; by default the wrapper has as many in flight (20 calls of
/// 5,000), so both are measured with the same window. With fewer in flight the wrapper is bounded by the
/// window, not by its own cost: 4 calls of 5,000 give about half the rate at the same CPU per message.
///
/// Reading consume figures on librdkafka 2.0.2: once its prefetch queue holds `queued.min.messages` when
/// the fetcher decides on the next fetch, the fetcher sleeps until its broker thread's next one-second
/// wake-up (2.2.0 added `fetch.queue.backoff.ms` for this). At librdkafka's default of 100,000, a consumer
/// that drains that queue more slowly than the broker thread fills it met that stall once a second, and a
/// small difference in CPU per message showed as a large one in messages per second. Both sides now run
/// with ``KafkaConfiguration/prefetchMessages`` (a million), where the count is never the limit.
public enum KafkaBenchmark {
    public struct Options: Sendable {
        /// Messages per produce phase (the consume phases read what was produced).
        public var messages = 1_000_000
        public var valueBytes = 200
        public var keys = 1_000
        public var partitions = 64
        /// Messages per `KafkaLog.produce` call.
        public var batchSize = 5_000
        /// `produce` calls awaiting acknowledgement at once. With `batchSize`, 100,000 messages: the most the
        /// raw loop keeps queued (librdkafka's `queue.buffering.max.messages`).
        public var inFlight = 20
        /// Longest any one phase may run; a phase cut short reports what it did.
        public var timeLimit: Duration = .seconds(60)
        /// Rounds of the four phases; each phase reports its median round (and its best).
        public var rounds = 3
        /// Whether to run the consume phases too (off: produce only, for profiling the producers).
        public var consume = true

        public init() {}
    }

    /// One measured phase.
    public struct Result: Sendable, Codable, Hashable {
        /// `produce` or `consume`.
        public var phase: String
        /// `swift` (KafkaLog / its consumer) or `raw` (librdkafka alone).
        public var engine: String
        public var messages: Int
        public var seconds: Double
        /// The median round's rate (the lower middle one for an even number of rounds); `messages`,
        /// `seconds`, `megabytesPerSecond` and `cpuMicrosecondsPerMessage` are that round's too.
        public var messagesPerSecond: Double
        /// The best round's rate.
        public var bestMessagesPerSecond: Double
        /// Every round's rate, in order.
        public var roundsMessagesPerSecond: [Double]
        /// Value bytes per second, in megabytes (10⁶ bytes).
        public var megabytesPerSecond: Double
        /// Swift's median over raw's median of the same phase (on the Swift rows).
        public var ratioToRaw: Double?
        /// Swift's best over raw's best.
        public var bestRatioToRaw: Double?
        /// CPU time of the whole process during the phase (all threads, the mock broker's included), per
        /// message, in microseconds: less sensitive to other load on the machine than the rates.
        public var cpuMicrosecondsPerMessage: Double
        /// Whether the phase hit the time limit before finishing its messages.
        public var truncated: Bool
    }

    public struct Report: Sendable, Codable, Hashable {
        public var messages: Int
        public var valueBytes: Int
        public var keys: Int
        public var partitions: Int
        public var batchSize: Int
        public var inFlight: Int
        public var rounds: Int
        public var results: [Result]
    }

    /// Runs `rounds` rounds of four phases (raw produce, Swift produce, raw consume, Swift consume; each
    /// round on fresh topics, so raw and Swift phases alternate under the same machine load) and reports
    /// each phase's median and best round. Progress bars go to standard error when `showProgress`.
    public static func run(_ options: Options, showProgress: Bool, logger: Logger) async throws -> Report {
        let run = UUID().uuidString.prefix(8).lowercased()

        let keys = (0..<options.keys).map { Data("team-\($0)".utf8) }
        var generator = SplitMix64(seed: 0x7011_6a7e)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789{}\":,".utf8)
        let values = (0..<1_000).map { _ in
            Data((0..<options.valueBytes).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
        }

        var rounds: [String: [Measured]] = [:]
        func record(_ key: String, _ measured: Measured) { rounds[key, default: []].append(measured) }
        for round in 1...options.rounds {
            // A fresh mock cluster per round: it keeps every message in memory, and later rounds would
            // otherwise run in an ever larger process.
            let cluster = try KafkaMockCluster(brokers: 1)
            let configuration = cluster.configuration(clientID: "tollgate-bench")
            let log = try KafkaLog(configuration: configuration, mockCluster: cluster, logger: logger)
            let label = options.rounds > 1 ? " (round \(round)/\(options.rounds))" : ""
            func reporter(_ phase: String, _ total: Int) -> ProgressReporter {
                ProgressReporter(label: phase + label, total: total, enabled: showProgress)
            }
            let swiftTopic = "bench-\(run)-\(round)-swift"
            let rawTopic = "bench-\(run)-\(round)-raw"
            try await log.provision([TopicSpec(name: swiftTopic, partitions: options.partitions),
                                     TopicSpec(name: rawTopic, partitions: options.partitions)])

            // Produce: raw, then the wrapper, each into its own topic.
            let rawProgress = reporter("produce raw", options.messages)
            let rawProduce = try await Measured.timing(expected: options.messages) {
                try await RawKafkaBenchmark.produce(
                    configuration: configuration, topic: rawTopic, count: options.messages, keys: keys, values: values,
                    timeLimit: options.timeLimit, progress: { rawProgress.update($0) })
            }
            rawProgress.finish()
            if rawProduce.measurement.failed > 0 {
                throw LogError.storage("raw producer: \(rawProduce.measurement.failed) deliveries failed")
            }
            record("produce raw", rawProduce)

            let swiftProgress = reporter("produce KafkaLog", options.messages)
            record("produce swift", try await Measured.timing(expected: options.messages) {
                try await produce(log: log, topic: swiftTopic, options: options, keys: keys, values: values,
                                  progress: { swiftProgress.update($0) })
            })
            swiftProgress.finish()

            // Consume what the wrapper produced, once with each engine, in fresh groups.
            guard options.consume else { continue }
            let available = try await log.watermarks(topic: swiftTopic).values.reduce(0) { $0 + Int($1.high - $1.low) }
            let rawConsumeProgress = reporter("consume raw", available)
            record("consume raw", try await Measured.timing(expected: available) {
                try await RawKafkaBenchmark.consume(
                    configuration: configuration, topic: swiftTopic, group: "bench-\(run)-\(round)-raw",
                    count: available, timeLimit: options.timeLimit, progress: { rawConsumeProgress.update($0) })
            })
            rawConsumeProgress.finish()

            let swiftConsumeProgress = reporter("consume KafkaConsumer", available)
            record("consume swift", try await Measured.timing(expected: available) {
                try await consume(log: log, topic: swiftTopic, group: "bench-\(run)-\(round)-swift",
                                  count: available, timeLimit: options.timeLimit,
                                  progress: { swiftConsumeProgress.update($0) })
            })
            swiftConsumeProgress.finish()
            withExtendedLifetime(log) {}
        }

        /// The median round (lower middle) and the best round of a phase.
        func pick(_ key: String) -> (median: Measured, best: Measured, all: [Measured])? {
            guard let all = rounds[key], !all.isEmpty else { return nil }
            let sorted = all.sorted { $0.rate < $1.rate }
            return (sorted[(sorted.count - 1) / 2], sorted[sorted.count - 1], all)
        }
        func result(_ phase: String, _ engine: String) -> Result {
            let (measured, best, all) = pick("\(phase) \(engine)")!
            let measurement = measured.measurement
            let raw = engine == "swift" ? pick("\(phase) raw") : nil
            return Result(
                phase: phase, engine: engine, messages: measurement.messages, seconds: measurement.seconds,
                messagesPerSecond: measured.rate, bestMessagesPerSecond: best.rate,
                roundsMessagesPerSecond: all.map(\.rate),
                megabytesPerSecond: measurement.seconds > 0 ? Double(measurement.valueBytes) / measurement.seconds / 1e6 : 0,
                ratioToRaw: raw.flatMap { $0.median.rate > 0 ? measured.rate / $0.median.rate : nil },
                bestRatioToRaw: raw.flatMap { $0.best.rate > 0 ? best.rate / $0.best.rate : nil },
                cpuMicrosecondsPerMessage: measured.cpuMicrosecondsPerMessage,
                truncated: measurement.messages < measured.expected)
        }
        return Report(
            messages: options.messages, valueBytes: options.valueBytes, keys: options.keys,
            partitions: options.partitions, batchSize: options.batchSize, inFlight: options.inFlight,
            rounds: options.rounds,
            results: [result("produce", "raw"), result("produce", "swift")]
                + (options.consume ? [result("consume", "raw"), result("consume", "swift")] : []))
    }

    /// One phase's measurement with the process's CPU time over the phase.
    struct Measured {
        var measurement: RawKafkaBenchmark.Measurement
        var expected: Int
        /// CPU time of the whole process (every thread: librdkafka's, the mock broker's, Swift's) during the
        /// phase, per message.
        var cpuMicrosecondsPerMessage: Double

        var rate: Double { measurement.seconds > 0 ? Double(measurement.messages) / measurement.seconds : 0 }

        static func timing(expected: Int, _ body: () async throws -> RawKafkaBenchmark.Measurement) async throws
            -> Measured {
            let before = processCPUSeconds()
            let measurement = try await body()
            let cpu = processCPUSeconds() - before
            return Measured(measurement: measurement, expected: expected,
                            cpuMicrosecondsPerMessage: cpu * 1e6 / Double(max(measurement.messages, 1)))
        }
    }

    /// User plus system CPU seconds this process used so far.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Produces through `KafkaLog.produce`: `inFlight` tasks, each sending `batchSize` messages per call
    /// and awaiting its acknowledgements before the next. Timed from the first call to the last
    /// acknowledgement.
    static func produce(log: KafkaLog, topic: String, options: Options, keys: [Data], values: [Data],
                        progress: @escaping @Sendable (Int) -> Void) async throws -> RawKafkaBenchmark.Measurement {
        // Warm-up, not measured, as for the raw producer.
        _ = try await log.produce([OutgoingMessage(topic: topic, key: keys[0], value: values[0])])
        let clock = ContinuousClock()
        let start = clock.now
        let end = start.advanced(by: options.timeLimit)
        let next = Counter()
        let acknowledged = Counter()
        let valueBytes = Counter()
        let count = options.messages
        let batchSize = options.batchSize
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<options.inFlight {
                group.addTask {
                    while clock.now < end {
                        let first = next.add(batchSize) - batchSize
                        if first >= count { break }
                        let upper = min(first + batchSize, count)
                        var bytes = 0
                        let batch = (first..<upper).map { index in
                            let value = values[index % values.count]
                            bytes += value.count
                            return OutgoingMessage(topic: topic, key: keys[index % keys.count], value: value)
                        }
                        let acks = try await log.produce(batch)
                        _ = valueBytes.add(bytes)
                        progress(acknowledged.add(acks.count))
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - start
        return RawKafkaBenchmark.Measurement(messages: acknowledged.add(0), valueBytes: valueBytes.add(0),
                                             seconds: seconds(elapsed))
    }

    /// Consumes `count` messages through a ``KafkaLog`` consumer in a new group, timed from the first
    /// message received to the last.
    static func consume(log: KafkaLog, topic: String, group: String, count: Int, timeLimit: Duration,
                        progress: @escaping @Sendable (Int) -> Void) async throws -> RawKafkaBenchmark.Measurement {
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: group, autoOffsetReset: .earliest))
        try await consumer.subscribe([topic])
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeLimit)
        var first: ContinuousClock.Instant?
        var received = 0
        var valueBytes = 0
        while received < count && clock.now < end {
            let batch = try await consumer.poll(maxMessages: 10_000, timeout: .milliseconds(100))
            if batch.isEmpty { continue }
            if first == nil { first = clock.now }
            received += batch.count
            for message in batch { valueBytes += message.value?.count ?? 0 }
            progress(received)
        }
        let last = clock.now
        try await consumer.close()
        return RawKafkaBenchmark.Measurement(messages: received, valueBytes: valueBytes,
                                             seconds: first.map { seconds(last - $0) } ?? 0)
    }

    static func seconds(_ duration: Duration) -> Double {
        let (whole, attoseconds) = duration.components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}

/// A small deterministic generator for benchmark payloads (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
