import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization
public import TollgateEvents
public import TollgateLog

/// Publishes events to the log without ever making the caller wait.
///
/// ``publish(_:)`` appends to an in-memory queue and returns at once; ``run()`` drains the queue to the log
/// in batches, retrying with back-off while the log refuses. The queue is bounded
/// (``capacity``): when it is full the event is dropped and counted (``dropped``), with an error log —
/// never blocking a request. (A durable local spool that replaces dropping comes with the Kafka engine.)
/// On graceful shutdown the queue is flushed before ``run()`` returns.
public final class EventPublisher: Service, Sendable {
    private struct State {
        var queue: [OutgoingMessage] = []
        var waiter: CheckedContinuation<Void, Never>?
        var stopping = false
        var dropped = 0
        var published = 0
    }

    public let log: any MessageLog
    public let capacity: Int
    private let logger: Logger
    private let state = Mutex(State())
    private let flushed = ChangeNotifier()

    public init(log: any MessageLog, capacity: Int = 100_000, logger: Logger) {
        self.log = log
        self.capacity = capacity
        self.logger = logger
    }

    /// Queues a message for the log. Never blocks.
    public func publish(_ message: OutgoingMessage) {
        let (waiter, accepted) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
            guard state.queue.count < capacity else {
                state.dropped += 1
                return (nil, false)
            }
            state.queue.append(message)
            let waiter = state.waiter
            state.waiter = nil
            return (waiter, true)
        }
        if !accepted {
            logger.error("event queue full: event dropped", metadata: ["kafka.topic": "\(message.topic)"])
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

    private func drain() async {
        var backoff = Duration.milliseconds(20)
        while true {
            let (batch, stopping) = await nextBatch()
            if batch.isEmpty {
                if stopping { return }
                continue
            }
            writing.store(true, ordering: .releasing)
            while true {
                do {
                    _ = try await log.produce(batch)
                    state.withLock { $0.published += batch.count }
                    backoff = .milliseconds(20)
                    break
                } catch let error as LogError where !error.isRetriable {
                    // The log will never take these (unknown topic and the like): count them as dropped.
                    state.withLock { $0.dropped += batch.count }
                    logger.error("events refused by the log", metadata: ["log.error": "\(error)",
                                                                         "tollgate.events": "\(batch.count)"])
                    break
                } catch {
                    if Task.isCancelled {
                        state.withLock { $0.dropped += batch.count }
                        logger.error("cancelled while the log is unavailable: events dropped",
                                     metadata: ["tollgate.events": "\(batch.count)"])
                        break
                    }
                    logger.error("log unavailable: retrying", metadata: ["log.error": "\(error)"])
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

extension LogError {
    /// Whether retrying the same operation can succeed.
    var isRetriable: Bool {
        if case .storage = self { return true }
        return false
    }
}
