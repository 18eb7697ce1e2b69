public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization
public import TollgateEvents
public import TollgateLog

/// Folds the control topic (keys, budgets, routes, alert rules) into this process's view of them.
///
/// Every process reads the whole control topic from the beginning at start, as a member of a group of
/// its own (so every replica sees every event), and never commits. It is ready once it has read up to the
/// high watermark it saw at start. A key revoked anywhere stops working here as soon as the event arrives:
/// milliseconds on the embedded log.
public final class ControlPlane: Service, Sendable {
    public let log: any MessageLog
    public let topic: String
    private let logger: Logger
    private let table = Mutex(KeyTable())
    private let alertRuleSets = Mutex<[String: AlertRuleSetData]>([:])
    private let changed = ChangeNotifier()
    private let ready = Atomic<Bool>(false)
    private let onReady: @Sendable () -> Void
    private let observers = Mutex<[@Sendable ([AnyControlEvent]) -> Void]>([])

    public init(log: any MessageLog, topicPrefix: String, logger: Logger, onReady: @escaping @Sendable () -> Void = {}) {
        self.log = log
        self.topic = topicPrefix + "control"
        self.logger = logger
        self.onReady = onReady
    }

    /// Calls `observer` with every batch of control events applied from now on (budgets, routes).
    public func observe(_ observer: @escaping @Sendable ([AnyControlEvent]) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    /// The keys as of the last applied control event.
    public var keys: KeyTable { table.withLock { $0 } }

    /// The alert rules set on the control topic (and not deleted), by id; the built-in rules are not here.
    public var alertRules: [String: AlertRuleSetData] { alertRuleSets.withLock { $0 } }

    /// Whether the control topic has been read up to where it was at start.
    public var isReady: Bool { ready.load(ordering: .acquiring) }

    /// Applies events directly (tests, and processes that just wrote them).
    public func apply(_ events: [AnyControlEvent]) {
        table.withLock { table in
            for event in events { table.apply(event) }
        }
        alertRuleSets.withLock { rules in
            for event in events {
                if case .alertRuleSet(let set) = event { rules[set.data.ruleID] = set.data }
                if case .alertRuleDeleted(let deleted) = event { rules[deleted.data.ruleID] = nil }
            }
        }
        for observer in observers.withLock({ $0 }) { observer(events) }
        changed.signal()
    }

    /// Waits until `condition` holds for the key table, or `timeout` passes. Returns whether it holds.
    public func wait(timeout: Duration, until condition: (KeyTable) -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        while true {
            let version = changed.version
            if condition(keys) { return true }
            let now = clock.now
            if now >= end { return false }
            await changed.wait(since: version, timeout: end - now)
        }
    }

    public func run() async throws {
        try await TopicFollower(log: log, topic: topic, groupPrefix: "control-reader").run(onCaughtUp: {
            ready.store(true, ordering: .releasing)
            logger.info("control topic loaded", metadata: ["tollgate.keys": "\(keys.entries.count)"])
            onReady()
            changed.signal()
        }) { batch in
            var events: [AnyControlEvent] = []
            for message in batch {
                guard let value = message.value else { continue }  // a compaction tombstone
                do {
                    events.append(try AnyControlEvent.decode(from: value))
                } catch {
                    logger.error("control event ignored: it does not decode", metadata: [
                        "kafka.topic": "\(message.topic)", "kafka.offset": "\(message.offset)",
                        "tollgate.error": "\(error)",
                    ])
                }
            }
            apply(events)
        }
    }
}

/// Writes control events (the admin API and the CLI use it).
public struct ControlWriter: Sendable {
    public let log: any MessageLog
    public let topic: String
    public let source: String

    public init(log: any MessageLog, topicPrefix: String, source: String) {
        self.log = log
        self.topic = topicPrefix + "control"
        self.source = source
    }

    /// Appends a control event and returns once the log has it.
    @discardableResult
    public func write<Payload: ControlPayload>(_ data: Payload, now: Date = Date()) async throws -> AnyControlEvent {
        let event = CloudEvent(id: "\(data.entityKey):\(UUID().uuidString.lowercased())", source: source, time: now,
                               subject: data.entityKey, data: data)
        _ = try await log.produce(OutgoingMessage(
            topic: topic, key: Data(data.entityKey.utf8), value: try EventCoding.encode(event),
            headers: [MessageHeader("content-type", "application/cloudevents+json"),
                      MessageHeader("ce_type", Payload.eventType)]))
        return try AnyControlEvent.decode(from: EventCoding.encode(event))
    }

    /// Every control event in the log, in order (compaction may have removed superseded ones).
    public func readAll() async throws -> [AnyControlEvent] {
        try await log.readToEnd(topic: topic).compactMap { message in
            message.value.flatMap { try? AnyControlEvent.decode(from: $0) }
        }
    }
}
