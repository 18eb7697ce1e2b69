import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization

/// The logic of a consumer: how to decode a message, and a pure fold of inputs into state and outputs.
///
/// The fold does no I/O; ``ConsumerRunner`` does it all (poll, publish, commit), so a fold is tested with
/// plain values.
///
/// ```swift
/// struct Count: EventFold {
///     func decode(_ message: ConsumedMessage) throws -> Int { ... }
///     func fold(_ state: inout [String: Int], _ input: Int, _ message: ConsumedMessage) -> [OutgoingMessage] { ... }
/// }
/// ```
public protocol EventFold: Sendable {
    associatedtype Input: Sendable
    associatedtype State: Sendable

    /// Decodes a message. A thrown error sends the message to the dead-letter topic with the error as
    /// its reason; the consumer goes on with the next message.
    func decode(_ message: ConsumedMessage) throws -> Input

    /// Applies one input to the state; returns the messages to publish because of it.
    func fold(_ state: inout State, _ input: Input, _ message: ConsumedMessage) -> [OutgoingMessage]

    /// Called after every message of a batch was folded; returns messages to publish once per batch
    /// (for example one summary per key touched). Default: none.
    func finishBatch(_ state: inout State) -> [OutgoingMessage]
}

extension EventFold {
    public func finishBatch(_ state: inout State) -> [OutgoingMessage] { [] }
}

/// Runs an ``EventFold`` against a ``MessageLog``: poll a batch, decode, fold, publish the outputs (and
/// dead letters), then commit the batch's offsets.
///
/// Offsets are committed only after every output of the batch is acknowledged, so a crash at any point
/// reprocesses the uncommitted batch: delivery is at least once, and consumers downstream drop duplicates
/// by event id. A message that cannot be decoded never stops the consumer and is never dropped silently:
/// it goes to the dead-letter topic with headers saying why and where it came from
/// (``DeadLetter``). When publishing fails, the runner retries with exponential back-off and does not
/// commit; on graceful shutdown it finishes the batch in hand, commits, and leaves the group.
///
/// The runner is pipelined: while one batch's outputs are published and its offsets committed, the next
/// batch is polled and folded, so the fold (CPU) and the log's writes overlap. Batches are still published
/// and committed strictly one after the other, in poll order: a batch's outputs are produced only once the
/// previous batch's offsets are committed, so outputs keep the order of their inputs within a partition,
/// and a batch that fails for good stops the runner before any later batch is published or committed.
public struct ConsumerRunner<Fold: EventFold>: Service {
    /// Settings of a runner.
    public struct Configuration: Sendable {
        /// The consumer group (one per service).
        public var group: String
        /// Topics to consume.
        public var topics: [String]
        /// Where undecodable messages go.
        public var deadLetterTopic: String
        /// Most messages per batch. Default 500.
        public var batchSize: Int = 500
        /// How long a poll waits for the first message; also bounds how long shutdown waits for an idle
        /// poll. Default 100 ms.
        public var pollTimeout: Duration = .milliseconds(100)
        /// First retry delay when publishing or committing fails; doubles up to ``maxBackoff``. Default 50 ms.
        public var initialBackoff: Duration = .milliseconds(50)
        /// Default 5 s.
        public var maxBackoff: Duration = .seconds(5)
        /// Consumer settings (instance id, session timeout, offset reset).
        public var consumer: ConsumerConfiguration
        /// How often the lag of the assigned partitions (high watermark − committed offset) is measured
        /// and recorded as the `tollgate_consumer_lag` gauge. Default 5 s.
        public var lagInterval: Duration = .seconds(5)

        public init(group: String, topics: [String], deadLetterTopic: String,
                    consumer: ConsumerConfiguration? = nil) {
            self.group = group
            self.topics = topics
            self.deadLetterTopic = deadLetterTopic
            self.consumer = consumer ?? ConsumerConfiguration(group: group)
            self.consumer.group = group
        }
    }

    /// What one applied batch did; passed to the `onBatch` observer.
    public struct BatchReport: Sendable {
        public var messages: Int
        public var outputs: Int
        public var deadLetters: Int
        public var committed: [TopicPartition: Int64]
    }

    public let log: any MessageLog
    public let fold: Fold
    public let configuration: Configuration
    private let initialState: Fold.State
    private let onBatch: (@Sendable (Fold.State, BatchReport) async -> Void)?
    private let onCaughtUp: (@Sendable () -> Void)?
    private let logger: Logger
    private let metricsFactory: any MetricsFactory
    private let processedCounter: Counter
    private let deadLetterCounter: Counter
    private let batchTimer: Timer

    /// - Parameters:
    ///   - onCaughtUp: called once, when the partitions assigned to this member have been read up to where
    ///     they were at start (or a poll finds nothing new): the service's readiness.
    ///   - onBatch: called after each batch is committed, with the state after it (for example to publish
    ///     the state to readers in the same process, or for metrics).
    ///   - metricsFactory: where `tollgate_consumer_messages_total`, `tollgate_consumer_dead_letters_total`
    ///     (counters, by group), `tollgate_consumer_batch_seconds` (histogram of the time to fold, publish
    ///     and commit a batch, by group) and `tollgate_consumer_lag` (gauge, by group, topic and partition) go.
    public init(log: any MessageLog, fold: Fold, initialState: Fold.State, configuration: Configuration,
                logger: Logger = Logger(label: "tollgate.consumer"),
                metricsFactory: any MetricsFactory = MetricsSystem.factory,
                onCaughtUp: (@Sendable () -> Void)? = nil,
                onBatch: (@Sendable (Fold.State, BatchReport) async -> Void)? = nil) {
        self.onCaughtUp = onCaughtUp
        self.metricsFactory = metricsFactory
        processedCounter = Counter(label: "tollgate_consumer_messages_total",
                                   dimensions: [("group", configuration.group)], factory: metricsFactory)
        deadLetterCounter = Counter(label: "tollgate_consumer_dead_letters_total",
                                    dimensions: [("group", configuration.group)], factory: metricsFactory)
        batchTimer = Timer(label: "tollgate_consumer_batch_seconds", dimensions: [("group", configuration.group)],
                           preferredDisplayUnit: .seconds, factory: metricsFactory)
        self.log = log
        self.fold = fold
        self.initialState = initialState
        self.configuration = configuration
        self.onBatch = onBatch
        var logger = logger
        logger[metadataKey: "tollgate.consumer_group"] = "\(configuration.group)"
        self.logger = logger
    }

    public func run() async throws {
        let stopping = Atomic<Bool>(false)
        let consumer = try await log.makeConsumer(configuration.consumer)
        try await consumer.subscribe(configuration.topics)
        logger.info("consumer started", metadata: ["kafka.topics": "\(configuration.topics)"])
        var state = initialState
        let clock = ContinuousClock()
        var nextLagReport = clock.now
        var reported = Set<TopicPartition>()
        // Where the inputs ended at start, and how far this member has committed: "caught up".
        var targets: [TopicPartition: Int64] = [:]
        for topic in configuration.topics {
            for (partition, marks) in try await log.watermarks(topic: topic) {
                targets[TopicPartition(topic: topic, partition: partition)] = marks.high
            }
        }
        var position: [TopicPartition: Int64] = [:]
        var caughtUp = false
        func checkCaughtUp(idle: Bool) async {
            guard !caughtUp, let onCaughtUp else { return }
            let assigned = await consumer.assignment()
            guard !assigned.isEmpty else { return }
            if idle || assigned.allSatisfy({ (position[$0] ?? 0) >= (targets[$0] ?? 0) }) {
                caughtUp = true
                logger.info("consumer caught up with its inputs")
                onCaughtUp()
            }
        }
        do {
            try await withGracefulShutdownHandler {
                // At most one child: the batch being published and committed while the next one is polled
                // and folded. A child task, so cancelling the runner cancels its retries too.
                try await withThrowingTaskGroup(of: BatchReport.self) { publishing in
                    // The state after the batch in flight (for `onBatch`; `nil` without an observer, so no
                    // copy is kept) and when its fold started.
                    var inFlight: (state: Fold.State?, started: ContinuousClock.Instant)?
                    /// Waits for the batch in flight and accounts for it; rethrows its failure (after retries).
                    func settle() async throws {
                        guard let current = inFlight else { return }
                        inFlight = nil
                        guard let report = try await publishing.next() else { return }
                        batchTimer.recordNanoseconds((clock.now - current.started).nanosecondsClamped)
                        processedCounter.increment(by: Int64(report.messages))
                        if report.deadLetters > 0 { deadLetterCounter.increment(by: Int64(report.deadLetters)) }
                        if let onBatch, let snapshot = current.state { await onBatch(snapshot, report) }
                        for (partition, next) in report.committed {
                            position[partition] = max(position[partition] ?? 0, next)
                        }
                        await checkCaughtUp(idle: false)
                    }
                    while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                        if clock.now >= nextLagReport {
                            reported = await reportLag(consumer, previouslyReported: reported)
                            nextLagReport = clock.now.advanced(by: configuration.lagInterval)
                        }
                        let batch = try await consumer.poll(maxMessages: configuration.batchSize,
                                                            timeout: configuration.pollTimeout)
                        if batch.isEmpty {
                            try await settle()
                            await checkCaughtUp(idle: true)
                            continue
                        }
                        let started = clock.now
                        let folded = foldBatch(batch, into: &state)
                        // Batches are published and committed one after the other, in poll order.
                        try await settle()
                        publishing.addTask { try await publishAndCommit(folded, consumer: consumer) }
                        inFlight = (onBatch == nil ? nil : state, started)
                    }
                    try await settle()
                }
            } onGracefulShutdown: {
                stopping.store(true, ordering: .relaxed)
            }
        } catch {
            try? await consumer.close()
            throw error
        }
        try await consumer.close()
        logger.info("consumer stopped")
    }

    /// Records the lag of every assigned partition: messages between the group's committed offset (the
    /// low watermark when nothing was committed) and the high watermark. Partitions this member reported
    /// before and no longer owns are set to 0 (their new owner reports them). Failures are logged, never
    /// fatal: the lag is an observation.
    private func reportLag(_ consumer: any LogConsumer,
                           previouslyReported: Set<TopicPartition>) async -> Set<TopicPartition> {
        let assigned = await consumer.assignment()
        var reported = Set<TopicPartition>()
        do {
            let committed = assigned.isEmpty ? [:] : try await consumer.committed(Array(assigned))
            var total: Int64 = 0
            for topic in Set(assigned.map(\.topic)) {
                let marks = try await log.watermarks(topic: topic)
                for partition in assigned where partition.topic == topic {
                    guard let mark = marks[partition.partition] else { continue }
                    let lag = max(0, mark.high - max(mark.low, committed[partition] ?? mark.low))
                    lagGauge(partition).record(lag)
                    total += lag
                    reported.insert(partition)
                }
            }
            for partition in previouslyReported.subtracting(reported) { lagGauge(partition).record(0) }
            logger.debug("consumer lag", metadata: ["tollgate.lag": "\(total)", "kafka.partitions": "\(assigned.count)"])
        } catch {
            logger.warning("could not measure consumer lag", metadata: ["log.error": "\(error)"])
            return previouslyReported
        }
        return reported
    }

    private func lagGauge(_ partition: TopicPartition) -> Gauge {
        Gauge(label: "tollgate_consumer_lag",
              dimensions: [("group", configuration.group), ("topic", partition.topic),
                           ("partition", String(partition.partition))],
              factory: metricsFactory)
    }

    /// A folded batch: what to publish, and what to commit once it is published.
    private struct FoldedBatch: Sendable {
        var outputs: [OutgoingMessage]
        var offsets: [TopicPartition: Int64]
        var messages: Int
        var deadLetters: Int
    }

    /// Decodes and folds one batch (no I/O).
    private func foldBatch(_ batch: [ConsumedMessage], into state: inout Fold.State) -> FoldedBatch {
        var outputs: [OutgoingMessage] = []
        outputs.reserveCapacity(batch.count)
        var deadLetters = 0
        for message in batch {
            do {
                let input = try fold.decode(message)
                outputs.append(contentsOf: fold.fold(&state, input, message))
            } catch {
                deadLetters += 1
                logger.warning("message sent to dead letter", metadata: [
                    "kafka.topic": "\(message.topic)", "kafka.partition": "\(message.partition)",
                    "kafka.offset": "\(message.offset)", "tollgate.reason": "\(error)",
                ])
                outputs.append(DeadLetter.message(for: message, reason: "\(error)", group: configuration.group,
                                                  topic: configuration.deadLetterTopic))
            }
        }
        outputs += fold.finishBatch(&state)
        return FoldedBatch(outputs: outputs, offsets: batch.nextOffsets, messages: batch.count,
                           deadLetters: deadLetters)
    }

    /// Publishes a folded batch's outputs, then commits its offsets (each retried until it succeeds or
    /// fails for good).
    private func publishAndCommit(_ batch: FoldedBatch, consumer: any LogConsumer) async throws -> BatchReport {
        if !batch.outputs.isEmpty {
            try await retrying("publish outputs") { _ = try await log.produce(batch.outputs) }
        }
        do {
            try await retrying("commit offsets") { try await consumer.commit(batch.offsets) }
        } catch let LogError.partitionsRevoked(partitions) {
            // Their new owner starts from the last committed offset and reprocesses: at least once.
            logger.notice("partitions revoked before commit", metadata: ["kafka.partitions": "\(partitions)"])
        }
        return BatchReport(messages: batch.messages, outputs: batch.outputs.count - batch.deadLetters,
                           deadLetters: batch.deadLetters, committed: batch.offsets)
    }

    /// Retries `operation` with exponential back-off and jitter until it succeeds, the task is cancelled,
    /// or it fails with an error retrying cannot fix.
    private func retrying(_ what: String, _ operation: () async throws -> Void) async throws {
        var delay = configuration.initialBackoff
        while true {
            do {
                try await operation()
                return
            } catch let error as LogError {
                switch error {
                case .partitionsRevoked, .unknownTopic, .compactedTopicRequiresKey, .invalidPartition,
                     .invalidTopicSpec, .partitionCountCannotShrink, .notSubscribed, .closed, .messageRefused:
                    throw error
                case .storage:
                    break
                }
                try Task.checkCancellation()
                logger.error("retrying after log failure", metadata: ["tollgate.operation": "\(what)",
                                                                      "log.error": "\(error)"])
            }
            let jitter = Double.random(in: 0.5...1.0)
            try await Task.sleep(for: delay * jitter)
            delay = min(delay * 2, configuration.maxBackoff)
        }
    }
}

/// The dead-letter format: the original value and headers, plus headers saying where it came from and why.
public enum DeadLetter {
    public static let reasonHeader = "tollgate-dlq-reason"
    public static let topicHeader = "tollgate-dlq-topic"
    public static let partitionHeader = "tollgate-dlq-partition"
    public static let offsetHeader = "tollgate-dlq-offset"
    public static let groupHeader = "tollgate-dlq-group"

    /// The dead-letter message for `message`, keyed by its source topic and partition.
    public static func message(for message: ConsumedMessage, reason: String, group: String,
                               topic: String) -> OutgoingMessage {
        var headers = message.headers
        headers.append(MessageHeader(reasonHeader, String(reason.prefix(2_000))))
        headers.append(MessageHeader(topicHeader, message.topic))
        headers.append(MessageHeader(partitionHeader, String(message.partition)))
        headers.append(MessageHeader(offsetHeader, String(message.offset)))
        headers.append(MessageHeader(groupHeader, group))
        return OutgoingMessage(topic: topic, key: "\(message.topic):\(message.partition)", value: message.value,
                               headers: headers)
    }
}
