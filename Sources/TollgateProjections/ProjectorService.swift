public import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization
import TollgateEvents
public import TollgateLog

/// The projector: reads `usage`, `budget-decisions`, `alerts` and `control` from the log and applies
/// each batch to the ``ProjectionStore`` together with its offsets, in one transaction.
///
/// The database's offsets are the truth: the log's committed offsets (for the database's own consumer
/// group) only decide where reading resumes, and any message below the database's offset is skipped. So
/// a crash between the write and the log commit, a replay, or a duplicate changes nothing.
public struct ProjectorService: Service {
    public struct Configuration: Sendable {
        public var batchSize = 20_000
        public var pollTimeout: Duration = .milliseconds(100)
        public var lagInterval: Duration = .seconds(5)
        public var maxBackoff: Duration = .seconds(5)
        /// Return once everything in the log at start has been applied (a replay), instead of following it.
        public var stopWhenCaughtUp = false

        public init() {}
    }

    /// Progress reported after each batch: what the batch did, and how far the database has read.
    public struct Progress: Sendable {
        public var report: ProjectionStore.ApplyReport
        public var batchMessages: Int
        public var caughtUp: Bool
    }

    public let log: any MessageLog
    public let store: ProjectionStore
    public let configuration: Configuration
    private let logger: Logger
    private let metricsFactory: any MetricsFactory
    private let onCaughtUp: (@Sendable () -> Void)?
    private let onBatch: (@Sendable (Progress) async -> Void)?

    public init(log: any MessageLog, store: ProjectionStore, configuration: Configuration = Configuration(),
                logger: Logger, metricsFactory: any MetricsFactory = MetricsSystem.factory,
                onCaughtUp: (@Sendable () -> Void)? = nil,
                onBatch: (@Sendable (Progress) async -> Void)? = nil) {
        self.log = log
        self.store = store
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "tollgate.service"] = "projector"
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.onCaughtUp = onCaughtUp
        self.onBatch = onBatch
    }

    /// The high watermarks of the projector's topics: where "caught up" is.
    public func targets() async throws -> [TopicPartition: Int64] {
        var targets: [TopicPartition: Int64] = [:]
        for topic in store.topics {
            for (partition, marks) in try await log.watermarks(topic: topic) {
                targets[TopicPartition(topic: topic, partition: partition)] = marks.high
            }
        }
        return targets
    }

    public func run() async throws {
        let applied = Counter(label: "tollgate_projector_events_total", factory: metricsFactory)
        let rejected = Counter(label: "tollgate_projector_rejected_total", factory: metricsFactory)
        let duplicates = Counter(label: "tollgate_projector_duplicates_total", factory: metricsFactory)
        let batchTimer = Timer(label: "tollgate_projector_batch_seconds", factory: metricsFactory)

        var group = try store.consumerGroup()
        let stored = try store.offsets()
        let targets = try await targets()
        // The log remembers the group ahead of the database: the database is older than its group (restored
        // from a backup). Read with a fresh group from the beginning; the offsets in the database skip
        // what it already has.
        do {
            let probe = try await log.makeConsumer(ConsumerConfiguration(group: group, autoOffsetReset: .earliest))
            let committed = try await probe.committed(Array(targets.keys))
            try? await probe.close()
            if committed.contains(where: { $0.value > stored[$0.key] ?? 0 }) {
                group = try store.renewConsumerGroup()
                logger.notice("the log's offsets are ahead of the database: reading again with a new group",
                              metadata: ["kafka.group": "\(group)"])
            }
        }
        // One projector per database, so a stable member id: a restarted projector takes its partitions
        // back at once instead of waiting for the dead member's session to expire.
        let consumer = try await log.makeConsumer(ConsumerConfiguration(group: group, instanceID: "projector",
                                                                        autoOffsetReset: .earliest).gatheringBatches())
        try await consumer.subscribe(store.topics)
        logger.info("projector started", metadata: [
            "kafka.topics": "\(store.topics)", "kafka.group": "\(group)", "db.path": "\(store.path)",
        ])

        var position = stored
        var caughtUp = false
        func checkCaughtUp() {
            guard !caughtUp else { return }
            if targets.allSatisfy({ $0.value == 0 || (position[$0.key] ?? 0) >= $0.value }) {
                caughtUp = true
                logger.info("projector caught up with the log")
                onCaughtUp?()
            }
        }
        checkCaughtUp()
        let stopping = Atomic<Bool>(false)
        let clock = ContinuousClock()
        var nextLag = clock.now
        var backoff = Duration.milliseconds(50)
        // The batch being written. The next one is polled and decoded meanwhile (decoding needs no database),
        // so the writer, the one part that cannot run on several cores, is rarely idle.
        var writing: (messages: [ConsumedMessage], task: Task<ProjectionStore.ApplyReport, any Error>,
                      started: ContinuousClock.Instant)?

        /// Waits for the batch being written and accounts for it. When the database refused it (disk full,
        /// locked), nothing of it landed: the reader goes back to the database's offsets for its partitions
        /// and those of `polled` (read after it, now dropped), after a pause, and `false` is returned.
        func settle(polled: [ConsumedMessage]) async throws -> Bool {
            guard let current = writing else { return true }
            writing = nil
            let report: ProjectionStore.ApplyReport
            do {
                report = try await current.task.value
                backoff = .milliseconds(50)
            } catch {
                logger.error("projector could not write a batch; retrying", metadata: [
                    "db.error": "\(error)", "tollgate.messages": "\(current.messages.count)",
                ])
                let partitions = Set((current.messages + polled).map(\.topicPartition))
                let resume = try store.offsets()
                for partition in partitions {
                    try await consumer.seek(.offset(resume[partition] ?? 0), partitions: [partition])
                }
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
                return false
            }
            batchTimer.recordNanoseconds((clock.now - current.started).nanosecondsClamped)
            applied.increment(by: Int64(report.applied))
            if report.rejected > 0 { rejected.increment(by: Int64(report.rejected)) }
            if report.duplicates > 0 { duplicates.increment(by: Int64(report.duplicates)) }
            let next = current.messages.nextOffsets
            for (partition, offset) in next { position[partition] = max(position[partition] ?? 0, offset) }
            do {
                try await consumer.commit(next)
            } catch let error as LogError {
                // The database holds the batch; the log's offset only saves re-reading it.
                logger.notice("projector could not commit offsets to the log", metadata: ["log.error": "\(error)"])
            }
            checkCaughtUp()
            await onBatch?(Progress(report: report, batchMessages: current.messages.count, caughtUp: caughtUp))
            return true
        }

        do {
            try await withGracefulShutdownHandler {
                while !stopping.load(ordering: .relaxed) && !Task.isCancelled
                        && !(caughtUp && configuration.stopWhenCaughtUp) {
                    if clock.now >= nextLag {
                        await reportLag(group: group)
                        nextLag = clock.now.advanced(by: configuration.lagInterval)
                    }
                    let batch = try await consumer.poll(maxMessages: configuration.batchSize,
                                                        timeout: configuration.pollTimeout)
                    if batch.isEmpty {
                        guard try await settle(polled: []) else { continue }
                        // An empty poll after assignment, with nothing being written: whatever was there at
                        // start has been read (on a compacted topic the newest offsets may be gone).
                        if !caughtUp, await !consumer.assignment().isEmpty {
                            position.merge(targets) { max($0, $1) }
                            checkCaughtUp()
                        }
                        continue
                    }
                    let decoded = await Blocking.run { [store] in store.decode(batch) }
                    guard try await settle(polled: batch) else { continue }
                    writing = (batch, Task { [store] in try await Blocking.run { try store.apply(decoded) } }, clock.now)
                }
                _ = try await settle(polled: [])
            } onGracefulShutdown: {
                stopping.store(true, ordering: .relaxed)
            }
        } catch {
            // A write in flight finishes (it is one transaction either way) before the reader closes.
            _ = try? await writing?.task.value
            try? await consumer.close()
            throw error
        }
        try await consumer.close()
        logger.info("projector stopped")
    }

    /// Lag as the database sees it: the high watermark minus the next offset it would apply.
    private func reportLag(group: String) async {
        do {
            let stored = try store.offsets()
            for (partition, high) in try await targets() {
                let lag = max(0, high - (stored[partition] ?? 0))
                Gauge(label: "tollgate_consumer_lag",
                      dimensions: [("group", "tollgate-projector"), ("topic", partition.topic),
                                   ("partition", String(partition.partition))],
                      factory: metricsFactory).record(lag)
            }
        } catch {
            logger.warning("could not measure projector lag", metadata: ["log.error": "\(error)"])
        }
    }
}
