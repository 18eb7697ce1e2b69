import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization
public import TollgateEvents
public import TollgateLog

/// Publishes events to the log without ever making the caller wait.
///
/// ``publish(_:)`` appends to an in-memory queue and returns at once; ``run()`` drains the queue to its
/// sink in batches, retrying with back-off while the sink refuses. The sink is the log itself for the
/// embedded log, and a durable local ``Spool`` in front of Kafka, so a broker outage only grows the spool.
/// The queue is bounded (``capacity``): when it is full (the sink has refused for that long) the event is
/// dropped and counted (``dropped``) — never blocking a request. Dropping is loud: an error log when an
/// episode starts, and once events flow again, a summary log and an `alert.v1` event of kind
/// `events_dropped` saying how many were lost. On graceful shutdown the queue is flushed before ``run()``
/// returns.
public final class EventPublisher: Service, Sendable {
    private struct State {
        var queue: [OutgoingMessage] = []
        var waiter: CheckedContinuation<Void, Never>?
        var stopping = false
        var dropped = 0
        var published = 0
        /// Drops not yet reported by an alert, and when the first of them happened.
        var unreportedDrops = 0
        var firstUnreportedDrop: Date?

        /// Counts dropped events; returns whether they start a new episode (the first since the last report).
        mutating func recordDrops(_ count: Int) -> Bool {
            dropped += count
            unreportedDrops += count
            if firstUnreportedDrop == nil {
                firstUnreportedDrop = Date()
                return true
            }
            return false
        }
    }

    public let sink: any EventSink
    public let capacity: Int
    /// Prefix of the topics this publisher's own alerts go to.
    public let topicPrefix: String
    private let logger: Logger
    private let state = Mutex(State())
    private let flushed = ChangeNotifier()
    private let publishedCounter: Counter
    private let droppedCounter: Counter
    private let queueDepth: Gauge

    /// A publisher writing to `sink` (a ``Spool`` in front of a remote log, or ``LogSink``).
    ///
    /// Metrics: `tollgate_events_published_total`, `tollgate_events_dropped_total` (counters) and
    /// `tollgate_event_queue_depth` (gauge, sampled per batch).
    public init(sink: any EventSink, capacity: Int = 100_000, topicPrefix: String = TopicCatalog.defaultPrefix,
                logger: Logger, metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.sink = sink
        self.capacity = capacity
        self.topicPrefix = topicPrefix
        self.logger = logger
        publishedCounter = Counter(label: "tollgate_events_published_total", factory: metricsFactory)
        droppedCounter = Counter(label: "tollgate_events_dropped_total", factory: metricsFactory)
        queueDepth = Gauge(label: "tollgate_event_queue_depth", factory: metricsFactory)
    }

    /// A publisher writing straight to `log`.
    public convenience init(log: any MessageLog, capacity: Int = 100_000,
                            topicPrefix: String = TopicCatalog.defaultPrefix, logger: Logger,
                            metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.init(sink: LogSink(log: log), capacity: capacity, topicPrefix: topicPrefix, logger: logger,
                  metricsFactory: metricsFactory)
    }

    /// Queues a message for the log. Never blocks.
    public func publish(_ message: OutgoingMessage) {
        // (waiter to wake, dropped, first drop of an episode)
        let (waiter, dropped, firstDrop) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool, Bool) in
            guard state.queue.count < capacity else {
                return (nil, true, state.recordDrops(1))
            }
            state.queue.append(message)
            let waiter = state.waiter
            state.waiter = nil
            return (waiter, false, false)
        }
        if dropped { droppedCounter.increment() }
        if firstDrop {
            logger.error("event queue full: dropping events until the log takes them again",
                         metadata: ["log.topic": "\(message.topic)", "tollgate.queue_capacity": "\(capacity)"])
        }
        waiter?.resume()
    }

    /// Queues an event on its catalog topic under `prefix`.
    public func publish<Payload: EventPayload>(_ event: CloudEvent<Payload>, prefix: String) {
        do {
            publish(Self.message(Payload.self, key: event.data.messageKey, prefix: prefix,
                                 value: try EventCoding.encode(event)))
        } catch {
            logger.error("event could not be encoded", metadata: ["tollgate.event_type": "\(Payload.eventType)",
                                                                  "tollgate.error": "\(error)"])
        }
    }

    /// Queues an event whose type has a canonical JSON writer (request and response events, written on
    /// every call): same bytes as the generic path, a fraction of the CPU.
    public func publish<Payload: EventPayload & CanonicalJSONEncodable>(_ event: CloudEvent<Payload>, prefix: String) {
        publish(Self.message(Payload.self, key: event.data.messageKey, prefix: prefix,
                             value: EventCoding.encodeCanonical(event)))
    }

    static func message<Payload: EventPayload>(_ type: Payload.Type, key: String, prefix: String,
                                               value: Data) -> OutgoingMessage {
        OutgoingMessage(topic: prefix + Payload.topic, key: Data(key.utf8), value: value,
                        headers: [MessageHeader("content-type", "application/cloudevents+json"),
                                  MessageHeader("ce_type", Payload.eventType)])
    }

    /// Events dropped because the queue was full.
    public var dropped: Int { state.withLock { $0.dropped } }
    /// Events acknowledged by the log.
    public var published: Int { state.withLock { $0.published } }
    /// Events waiting for the log.
    public var pending: Int { state.withLock { $0.queue.count } }

    /// Waits until every event queued before this call is acknowledged (for tests and shutdown).
    public func flush(timeout: Duration = .seconds(10)) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        while clock.now < end {
            let version = flushed.version
            if pending == 0 && !isWriting { return true }
            await flushed.wait(since: version, timeout: .milliseconds(50))
        }
        return false
    }

    private let writing = Atomic<Bool>(false)
    private var isWriting: Bool { writing.load(ordering: .acquiring) }

    public func run() async throws {
        // Graceful shutdown and cancellation both stop taking new work and flush what is queued.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await drain()
            } onGracefulShutdown: {
                self.stop()
            }
        } onCancel: {
            self.stop()
        }
    }

    private func stop() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.stopping = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// How long the drain waits after the first event of a small batch for more to join it: one log
    /// write (one SQLite transaction, one wake-up of every in-process consumer) per few milliseconds
    /// instead of one per event at low concurrency. Events are never on a request's path, so this only
    /// delays them. Default 2 ms.
    public static let linger: Duration = .milliseconds(2)
    static let lingerBelow = 256

    private func drain() async {
        var backoff = Duration.milliseconds(20)
        while true {
            var (batch, stopping) = await nextBatch()
            // Held events count as being written (flush waits for them).
            if !batch.isEmpty { writing.store(true, ordering: .releasing) }
            if !stopping && !batch.isEmpty && batch.count < Self.lingerBelow {
                try? await Task.sleep(for: Self.linger)
                let more = state.withLock { state -> [OutgoingMessage] in
                    let count = min(state.queue.count, 5_000 - batch.count)
                    defer { state.queue.removeFirst(count) }
                    return Array(state.queue.prefix(count))
                }
                batch += more
            }
            queueDepth.record(Int64(batch.count + pending))
            if batch.isEmpty {
                if stopping { return }
                continue
            }
            writing.store(true, ordering: .releasing)
            var failures = 0
            while true {
                do {
                    try await sink.append(batch)
                    state.withLock { $0.published += batch.count }
                    publishedCounter.increment(by: Int64(batch.count))
                    backoff = .milliseconds(20)
                    reportDrops()
                    break
                } catch let error as LogError where !error.isTransient {
                    // The log will never take these (unknown topic and the like): count them as dropped.
                    _ = state.withLock { $0.recordDrops(batch.count) }
                    droppedCounter.increment(by: Int64(batch.count))
                    logger.error("events refused by the log: dropped", metadata: ["log.error": "\(error)",
                                                                                   "tollgate.events": "\(batch.count)"])
                    break
                } catch {
                    if Task.isCancelled {
                        _ = state.withLock { $0.recordDrops(batch.count) }
                        droppedCounter.increment(by: Int64(batch.count))
                        logger.error("cancelled while the log is unavailable: events dropped",
                                     metadata: ["tollgate.events": "\(batch.count)"])
                        break
                    }
                    failures += 1
                    if failures == 1 || failures.isMultiple(of: 50) {
                        logger.error("log unavailable: retrying", metadata: ["log.error": "\(error)",
                                                                            "tollgate.attempts": "\(failures)"])
                    }
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(2))
                }
            }
            writing.store(false, ordering: .releasing)
            flushed.signal()
        }
    }

    /// Everything queued (up to 5,000 messages), waiting while the queue is empty.
    private func nextBatch() async -> ([OutgoingMessage], Bool) {
        while true {
            let taken = state.withLock { state -> ([OutgoingMessage], Bool)? in
                if !state.queue.isEmpty {
                    let count = min(state.queue.count, 5_000)
                    let batch = Array(state.queue.prefix(count))
                    state.queue.removeFirst(count)
                    return (batch, state.stopping)
                }
                if state.stopping { return ([], true) }
                return nil
            }
            if let taken { return taken }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if !state.queue.isEmpty || state.stopping { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }
}

extension EventPublisher {
    /// After drops, once the sink takes events again: logs how many were lost and queues an `alert.v1`
    /// event (kind `events_dropped`, severity critical, global scope) so the alerts service reports it.
    private func reportDrops() {
        let report = state.withLock { state -> (Int, Date)? in
            guard state.unreportedDrops > 0, let since = state.firstUnreportedDrop else { return nil }
            defer {
                state.unreportedDrops = 0
                state.firstUnreportedDrop = nil
            }
            return (state.unreportedDrops, since)
        }
        guard let (count, since) = report else { return }
        logger.error("events were dropped while the log refused them", metadata: [
            "tollgate.dropped": "\(count)", "tollgate.since": "\(EventTime.format(since))",
        ])
        let now = Date()
        let alert = AlertData(
            alertID: "events-dropped|\(EventTime.format(since))", ruleID: "events-dropped", kind: .eventsDropped,
            severity: .critical, scope: .global, title: "\(count) events were dropped",
            message: "The event queue overflowed while the log (or its spool) refused events; \(count) events "
                + "since \(EventTime.format(since)) are lost and missing from usage and spend.",
            observed: ["dropped_events": .int(Int64(count))], raisedAt: now)
        let event = CloudEvent(id: UUID().uuidString.lowercased(), source: "tollgate/ingress", time: now, data: alert)
        guard let value = try? EventCoding.encode(event) else { return }
        // Queued even when the queue is full: the report of the loss must not be lost itself.
        let message = Self.message(AlertData.self, key: alert.messageKey, prefix: topicPrefix, value: value)
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.queue.append(message)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}

