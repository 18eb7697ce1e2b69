public import Metrics
public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// Where an event publisher hands its batches.
public protocol EventSink: Sendable {
    /// Makes the messages durable (in the log itself, or in a local spool on their way to it), in order.
    func append(_ messages: [OutgoingMessage]) async throws
}

/// Writes straight to a message log: right for the embedded log, which is local and durable.
public struct LogSink: EventSink {
    public let log: any MessageLog

    public init(log: any MessageLog) {
        self.log = log
    }

    public func append(_ messages: [OutgoingMessage]) async throws {
        _ = try await log.produce(messages)
    }
}

/// A durable local outbox in front of a remote log (Kafka).
///
/// ``append(_:)`` writes to an ``EmbeddedLog`` on local disk (one partition, so one total order) and
/// returns once the messages are durable there, whatever the state of the remote log. ``run()`` forwards
/// them to the target in that order, in batches, and deletes them locally once the target acknowledged
/// them; while the target is unreachable, slow or refusing, it retries with back-off and the spool grows.
/// A crash between the target's acknowledgement and the local delete forwards a batch again: delivery is
/// at least once, in order per key.
///
/// The spool is bounded (``Configuration/maxMessages``, ``Configuration/maxBytes``): when it is full,
/// ``append(_:)`` throws ``SpoolError/full(messages:bytes:)`` and logs an error once per episode, so the
/// caller can count and report what it cannot keep instead of growing without limit.
///
/// ```swift
/// let spool = try await Spool.open(Spool.Configuration(directory: "data/spool"), target: kafka, logger: logger)
/// try await spool.append(messages)        // durable locally
/// // services: spool (forwards to Kafka until graceful shutdown)
/// ```
public final class Spool: EventSink, Service {
    public struct Configuration: Sendable {
        /// The spool's directory (an embedded log of its own).
        public var directory: String
        /// Most messages waiting for the target. Default 1,000,000.
        public var maxMessages: Int64 = 1_000_000
        /// Most bytes (keys, values and headers) waiting for the target. Default 1 GiB.
        public var maxBytes: Int64 = 1 << 30
        /// Messages forwarded per produce call. Default 5,000.
        public var batchSize: Int = 5_000
        /// First wait after the target refused a batch; doubles up to ``maxBackoff``. Default 50 ms.
        public var initialBackoff: Duration = .milliseconds(50)
        /// Longest wait between retries. Default 2 s.
        public var maxBackoff: Duration = .seconds(2)
        /// How long graceful shutdown waits for the batch in flight before leaving it to the next start.
        /// Default 5 s.
        public var shutdownGrace: Duration = .seconds(5)

        public init(directory: String) {
            self.directory = directory
        }
    }

    /// Why the spool did not take messages.
    public enum SpoolError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The spool holds as many messages or bytes as it may.
        case full(messages: Int64, bytes: Int64)

        public var description: String {
            switch self {
            case .full(let messages, let bytes):
                return "the spool is full (\(messages) messages, \(bytes) bytes waiting for the log)"
            }
        }
    }

    /// What the spool has done so far.
    public struct Statistics: Sendable, Hashable {
        /// Messages waiting for the target.
        public var pendingMessages: Int64
        /// Their bytes.
        public var pendingBytes: Int64
        /// Messages the target acknowledged since this process started.
        public var forwarded: Int64
        /// Messages refused because the spool was full, since this process started.
        public var rejected: Int64
        /// Messages the target refused for good (unknown topic and the like) and that were dropped.
        public var undeliverable: Int64
        /// Whether the last attempt to forward failed.
        public var targetUnavailable: Bool
    }

    /// The local topic.
    static let topic = "spool"
    static let group = "spool-forwarder"
    /// Header carrying the target topic of a spooled message.
    static let topicHeader = "tollgate-spool-topic"
    /// Header carrying the explicit target partition, when the message named one.
    static let partitionHeader = "tollgate-spool-partition"

    public let configuration: Configuration
    public let target: any MessageLog
    private let local: EmbeddedLog
    private let logger: Logger
    private let state: Mutex<State>
    private let forwardedSignal = ChangeNotifier()
    private let metrics: SpoolMetrics

    private struct State {
        var pendingMessages: Int64
        var pendingBytes: Int64
        var forwarded: Int64 = 0
        var rejected: Int64 = 0
        var undeliverable: Int64 = 0
        var full = false
        var targetUnavailable = false
        /// Set by graceful shutdown: forwarding stops once the spool is empty or this time has passed.
        var stopBy: ContinuousClock.Instant?
    }

    private init(configuration: Configuration, target: any MessageLog, local: EmbeddedLog, pending: (Int64, Int64),
                 logger: Logger, metricsFactory: any MetricsFactory) {
        self.configuration = configuration
        self.target = target
        self.local = local
        self.logger = logger
        metrics = SpoolMetrics(factory: metricsFactory)
        metrics.limitMessages.record(configuration.maxMessages)
        metrics.limitBytes.record(configuration.maxBytes)
        state = Mutex(State(pendingMessages: pending.0, pendingBytes: pending.1))
        recordPending()
        metrics.targetUp.record(1)
    }

    /// Opens (or creates) the spool in `configuration.directory`. Messages left by a previous run are
    /// forwarded first once ``run()`` starts.
    ///
    /// Metrics (through `metricsFactory`, swift-metrics' global factory by default):
    /// `tollgate_spool_pending_messages` and `tollgate_spool_pending_bytes` (gauges),
    /// `tollgate_spool_forwarded_total`, `tollgate_spool_rejected_total` (refused because full),
    /// `tollgate_spool_undeliverable_total` (refused for good by the target) and
    /// `tollgate_spool_target_up` (1 while the target takes batches, 0 while it fails).
    public static func open(_ configuration: Configuration, target: any MessageLog,
                            logger: Logger = Logger(label: "tollgate.spool"),
                            metricsFactory: any MetricsFactory = MetricsSystem.factory) async throws -> Spool {
        var localConfiguration = EmbeddedLog.Configuration()
        // Appends come from this process and wake the forwarder at once; the interval only matters for
        // another process sharing the directory.
        localConfiguration.crossProcessPollInterval = .milliseconds(100)
        let local = try EmbeddedLog.open(directory: configuration.directory, configuration: localConfiguration,
                                         logger: logger)
        do {
            try await local.provision([TopicSpec(name: topic, partitions: 1)])
            let statistics = try await local.statistics(topic: topic)
            let pending = (statistics.map(\.messages).reduce(0, +), statistics.map(\.bytes).reduce(0, +))
            if pending.0 > 0 {
                logger.notice("spool holds messages from an earlier run: forwarding them first",
                              metadata: ["spool.pending": "\(pending.0)", "spool.bytes": "\(pending.1)"])
            }
            return Spool(configuration: configuration, target: target, local: local, pending: pending, logger: logger,
                         metricsFactory: metricsFactory)
        } catch {
            local.close()
            throw error
        }
    }

    public var statistics: Statistics {
        state.withLock {
            Statistics(pendingMessages: $0.pendingMessages, pendingBytes: $0.pendingBytes, forwarded: $0.forwarded,
                       rejected: $0.rejected, undeliverable: $0.undeliverable, targetUnavailable: $0.targetUnavailable)
        }
    }

    // MARK: Appending

    public func append(_ messages: [OutgoingMessage]) async throws {
        if messages.isEmpty { return }
        let spooled = messages.map(Self.wrap)
        let bytes = spooled.reduce(Int64(0)) { $0 + Self.size(of: $1) }
        let refusal = state.withLock { state -> (SpoolError, Bool)? in
            if state.pendingMessages + Int64(messages.count) > configuration.maxMessages
                || state.pendingBytes + bytes > configuration.maxBytes {
                state.rejected += Int64(messages.count)
                let firstOfEpisode = !state.full
                state.full = true
                return (.full(messages: state.pendingMessages, bytes: state.pendingBytes), firstOfEpisode)
            }
            state.pendingMessages += Int64(messages.count)
            state.pendingBytes += bytes
            return nil
        }
        if let (error, firstOfEpisode) = refusal {
            metrics.rejected.increment(by: Int64(messages.count))
            if firstOfEpisode {
                logger.error("spool full: refusing events until the log takes some", metadata: [
                    "spool.pending": "\(configuration.maxMessages)", "spool.error": "\(error)",
                ])
            }
            throw error
        }
        do {
            _ = try await local.produce(spooled)
        } catch {
            state.withLock {
                $0.pendingMessages -= Int64(messages.count)
                $0.pendingBytes -= bytes
            }
            recordPending()
            throw error
        }
        recordPending()
    }

    private func recordPending() {
        let (messages, bytes) = state.withLock { ($0.pendingMessages, $0.pendingBytes) }
        metrics.pendingMessages.record(messages)
        metrics.pendingBytes.record(bytes)
    }

    private func countUndeliverable(_ count: Int64) {
        state.withLock { $0.undeliverable += count }
        metrics.undeliverable.increment(by: count)
    }

    /// Waits until nothing is waiting for the target, up to `timeout`. Returns whether the spool is empty.
    public func drained(timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        while true {
            let version = forwardedSignal.version
            if statistics.pendingMessages == 0 { return true }
            let now = clock.now
            if now >= end { return false }
            await forwardedSignal.wait(since: version, timeout: min(end - now, .milliseconds(200)))
        }
    }

    static func wrap(_ message: OutgoingMessage) -> OutgoingMessage {
        var headers = [MessageHeader(topicHeader, message.topic)]
        if let partition = message.partition { headers.append(MessageHeader(partitionHeader, "\(partition)")) }
        headers.append(contentsOf: message.headers)
        return OutgoingMessage(topic: topic, key: message.key, value: message.value, headers: headers, partition: 0)
    }

    /// The original message, or nil when the spooled one lacks the target topic (never written so).
    static func unwrap(_ message: ConsumedMessage) -> OutgoingMessage? {
        guard message.headers.first?.name == topicHeader,
              let topic = message.headers.first.map({ String(decoding: $0.value, as: UTF8.self) }) else { return nil }
        var headers = message.headers.dropFirst()
        var partition: Int?
        if headers.first?.name == partitionHeader {
            partition = headers.first.flatMap { Int(String(decoding: $0.value, as: UTF8.self)) }
            headers = headers.dropFirst()
        }
        return OutgoingMessage(topic: topic, key: message.key, value: message.value, headers: Array(headers),
                               partition: partition)
    }

    static func size(of message: OutgoingMessage) -> Int64 {
        Int64((message.key?.count ?? 0) + (message.value?.count ?? 0)
              + message.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.count })
    }

    // MARK: Forwarding

    /// Forwards spooled messages to the target until graceful shutdown or cancellation. What is still
    /// spooled then stays on disk for the next start.
    public func run() async throws {
        defer { local.close() }
        let consumer = try await local.makeConsumer(ConsumerConfiguration(group: Self.group, instanceID: "forwarder"))
        try await consumer.subscribe([Self.topic])
        // A crash after a commit but before the delete leaves forwarded messages behind: drop them now.
        let partition = TopicPartition(topic: Self.topic, partition: 0)
        if let committed = try await consumer.committed([partition])[partition] {
            try await local.deleteRecords(topic: Self.topic, before: [0: committed])
            try await refreshPending()
        }
        // Graceful shutdown comes after the publishers have flushed into the spool (they are started
        // after it): forward what is there for up to `shutdownGrace`, then leave the rest on disk.
        await withGracefulShutdownHandler {
            await self.forward(consumer)
        } onGracefulShutdown: {
            self.state.withLock { $0.stopBy = ContinuousClock.now.advanced(by: self.configuration.shutdownGrace) }
        }
        try? await consumer.close()
        let left = statistics.pendingMessages
        if left > 0 {
            logger.notice("spool stopped with events not yet forwarded: they go first at the next start",
                          metadata: ["spool.pending": "\(left)"])
        }
    }

    /// Whether graceful shutdown asked to stop and there is nothing left to do or no time left.
    private var shouldStop: Bool {
        state.withLock { state in
            guard let stopBy = state.stopBy else { return false }
            return state.pendingMessages == 0 || ContinuousClock.now >= stopBy
        }
    }

    private var stopping: Bool { state.withLock { $0.stopBy != nil } }

    private func forward(_ consumer: any LogConsumer) async {
        while !Task.isCancelled && !shouldStop {
            let batch: [ConsumedMessage]
            do {
                batch = try await consumer.poll(maxMessages: configuration.batchSize,
                                                timeout: stopping ? .milliseconds(100) : .seconds(1))
            } catch {
                if Task.isCancelled { return }
                logger.error("spool read failed", metadata: ["spool.error": "\(error)"])
                try? await Task.sleep(for: configuration.maxBackoff)
                continue
            }
            if batch.isEmpty { continue }
            guard await deliver(batch) else { return }
            let next = batch.nextOffsets
            do {
                try await consumer.commit(next)
                try await local.deleteRecords(topic: Self.topic, before: [0: next.values.max() ?? 0])
            } catch {
                // The target has the batch; at worst it is forwarded again after a restart.
                logger.error("spool bookkeeping failed", metadata: ["spool.error": "\(error)"])
            }
            let bytes = batch.reduce(Int64(0)) { total, message in
                total + Int64((message.key?.count ?? 0) + (message.value?.count ?? 0)
                              + message.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.count })
            }
            state.withLock {
                $0.pendingMessages = max(0, $0.pendingMessages - Int64(batch.count))
                $0.pendingBytes = max(0, $0.pendingBytes - bytes)
                $0.forwarded += Int64(batch.count)
                if $0.full, $0.pendingMessages < configuration.maxMessages / 2 { $0.full = false }
            }
            metrics.forwarded.increment(by: Int64(batch.count))
            recordPending()
            forwardedSignal.signal()
        }
    }

    /// Produces the batch to the target, retrying until it is acknowledged. Returns false when cancelled
    /// or out of shutdown time first (the batch stays spooled).
    private func deliver(_ batch: [ConsumedMessage]) async -> Bool {
        var messages: [OutgoingMessage] = []
        messages.reserveCapacity(batch.count)
        for message in batch {
            if let original = Self.unwrap(message) {
                messages.append(original)
            } else {
                countUndeliverable(1)
                logger.error("spooled message without a target topic: dropped",
                             metadata: ["spool.offset": "\(message.offset)"])
            }
        }
        if messages.isEmpty { return true }
        var backoff = configuration.initialBackoff
        var failures = 0
        while true {
            do {
                guard try await produceUnlessStopped(messages) else { return false }
                let wasDown = state.withLock { state -> Bool in
                    defer { state.targetUnavailable = false }
                    return state.targetUnavailable
                }
                if wasDown {
                    metrics.targetUp.record(1)
                    logger.notice("log reachable again: forwarding the spool",
                                  metadata: ["spool.pending": "\(statistics.pendingMessages)"])
                }
                return true
            } catch let error as LogError where !error.isTransient {
                // The target will never take some message as it is (unknown topic and the like). Logs
                // validate a whole batch first, so send one by one and drop only the refused ones.
                if messages.count > 1 {
                    for message in messages {
                        guard await deliverAlone(message) else { return false }
                    }
                    return true
                }
                countUndeliverable(1)
                logger.error("log refused a spooled event for good: dropped", metadata: [
                    "spool.error": "\(error)", "log.topic": "\(messages[0].topic)",
                ])
                return true
            } catch {
                if Task.isCancelled || shouldStop { return false }
                failures += 1
                let firstFailure = state.withLock { state -> Bool in
                    defer { state.targetUnavailable = true }
                    return !state.targetUnavailable
                }
                if firstFailure { metrics.targetUp.record(0) }
                if firstFailure || failures.isMultiple(of: 50) {
                    logger.error("log unavailable: events wait in the spool", metadata: [
                        "spool.error": "\(error)", "spool.pending": "\(statistics.pendingMessages)",
                    ])
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    /// One message of a batch the target refused: delivered, or dropped when refused for good.
    private func deliverAlone(_ message: OutgoingMessage) async -> Bool {
        var backoff = configuration.initialBackoff
        while true {
            do {
                guard try await produceUnlessStopped([message]) else { return false }
                return true
            } catch let error as LogError where !error.isTransient {
                countUndeliverable(1)
                logger.error("log refused a spooled event for good: dropped", metadata: [
                    "spool.error": "\(error)", "log.topic": "\(message.topic)",
                ])
                return true
            } catch {
                if Task.isCancelled || shouldStop { return false }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    /// Produces to the target; returns false without waiting further when the task is cancelled or the
    /// shutdown grace runs out (the target's own produce call may not notice either, for example while a
    /// Kafka broker is down and librdkafka keeps retrying until its delivery timeout).
    private func produceUnlessStopped(_ messages: [OutgoingMessage]) async throws -> Bool {
        let target = self.target
        let produce = Task { try await target.produce(messages) }
        let race = Race<Result<[DeliveryAck], any Error>>()
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<[DeliveryAck], any Error>?, Never>) in
                race.install(continuation)
                Task { race.finish(await produce.result) }
                Task {
                    while !race.isFinished {
                        try? await Task.sleep(for: .milliseconds(50))
                        if self.shouldStop { race.finish(nil) }
                    }
                }
            }
        } onCancel: {
            race.finish(nil)
        }
        guard let outcome else { return false }
        _ = try outcome.get()
        return true
    }

    private func refreshPending() async throws {
        let statistics = try await local.statistics(topic: Self.topic)
        state.withLock {
            $0.pendingMessages = statistics.map(\.messages).reduce(0, +)
            $0.pendingBytes = statistics.map(\.bytes).reduce(0, +)
        }
        recordPending()
    }
}

extension LogError {
    /// Whether the same operation can succeed later without anyone changing anything.
    public var isTransient: Bool {
        switch self {
        case .storage, .closed: return true
        case .unknownTopic, .invalidPartition, .compactedTopicRequiresKey, .partitionCountCannotShrink,
             .invalidTopicSpec, .notSubscribed, .partitionsRevoked, .messageRefused:
            return false
        }
    }
}

/// The first of several sources to finish resumes the continuation; later ones are ignored.
private final class Race<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value?, Never>?
        var result: Value??
    }

    private let state = Mutex(State())

    var isFinished: Bool { state.withLock { $0.result != nil } }

    func install(_ continuation: CheckedContinuation<Value?, Never>) {
        let early = state.withLock { state -> Value?? in
            if let result = state.result { return result }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(returning: early) }
    }

    func finish(_ value: Value?) {
        let continuation = state.withLock { state -> CheckedContinuation<Value?, Never>? in
            guard state.result == nil else { return nil }
            state.result = .some(value)
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: value)
    }
}

/// The spool's meters.
struct SpoolMetrics: Sendable {
    let pendingMessages: Gauge
    let pendingBytes: Gauge
    let forwarded: Counter
    let rejected: Counter
    let undeliverable: Counter
    let targetUp: Gauge
    /// The bounds (`--spool-max-messages`, `--spool-max-bytes`), so alerts can compare the pending
    /// figures with them whatever they were set to.
    let limitMessages: Gauge
    let limitBytes: Gauge

    init(factory: any MetricsFactory) {
        pendingMessages = Gauge(label: "tollgate_spool_pending_messages", factory: factory)
        pendingBytes = Gauge(label: "tollgate_spool_pending_bytes", factory: factory)
        forwarded = Counter(label: "tollgate_spool_forwarded_total", factory: factory)
        rejected = Counter(label: "tollgate_spool_rejected_total", factory: factory)
        undeliverable = Counter(label: "tollgate_spool_undeliverable_total", factory: factory)
        targetUp = Gauge(label: "tollgate_spool_target_up", factory: factory)
        limitMessages = Gauge(label: "tollgate_spool_limit_messages", factory: factory)
        limitBytes = Gauge(label: "tollgate_spool_limit_bytes", factory: factory)
    }
}
