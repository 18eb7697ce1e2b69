public import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization
public import TollgateEvents
public import TollgateLog
public import TollgateNotify

/// The alerts service: folds `control`, `budget-decisions` and `usage` with ``AlertFold`` in a consumer
/// group of its deliveries database's own (`tollgate-alerts-<uuid>`), publishes each alert as an `alert.v1` event, and queues its deliveries in the
/// ``DeliveryStore``, which a ``Deliverer`` (usually in the same process) sends.
///
/// After a batch that raises alerts, and otherwise at least every ``Configuration/snapshotInterval``, in
/// this order: the alerts are published and acknowledged by the log; then one transaction stores the
/// deliveries (one per alert and channel; an alert queued again is ignored), the fold's state (its
/// snapshot, with the offsets it has folded) and the offsets; then the log's offsets are committed. A crash
/// anywhere in between folds again what came after the saved state: the same alert ids are raised,
/// published again (consumers drop duplicates by id) and queued once. Nothing is lost and no channel gets
/// an alert twice from the store.
///
/// At first start (no saved state) the fold begins from the rules and budgets of the control topic and
/// the ids already on the alerts topic, so that a new or rebuilt service does not raise them again.
public struct AlertsService: Service {
    /// The prefix of the consumer groups: `tollgate-alerts-<uuid>`, one per deliveries database.
    public static let group = "tollgate-alerts"

    public struct Configuration: Sendable {
        public var batchSize = 2_000
        public var pollTimeout: Duration = .milliseconds(20)
        public var maxBackoff: Duration = .seconds(5)
        /// The stable consumer member id (a restarted service takes its partitions back at once).
        public var instanceID: String? = "alerts"
        /// How often the fold's state is saved when no alert was raised (a batch that raises one is always
        /// saved with its deliveries). The log's offsets are committed with each save, so a crash reads again
        /// at most this much; saving every batch cost the proxy's traffic CPU in `tollgate serve`.
        public var snapshotInterval: Duration = .seconds(1)

        public init() {}
    }

    /// What one batch did, for tests and progress.
    public struct BatchReport: Sendable {
        public var messages: Int
        public var alerts: [AlertData]
        public var newDeliveries: Int
    }

    let log: any MessageLog
    let store: DeliveryStore
    let channels: ChannelConfiguration
    let topicPrefix: String
    let configuration: Configuration
    let logger: Logger
    let metricsFactory: any MetricsFactory
    let onCaughtUp: (@Sendable () -> Void)?
    let onBatch: (@Sendable (BatchReport) async -> Void)?

    public init(log: any MessageLog, store: DeliveryStore, channels: ChannelConfiguration,
                topicPrefix: String = TopicCatalog.defaultPrefix, configuration: Configuration = Configuration(),
                logger: Logger, metricsFactory: any MetricsFactory = MetricsSystem.factory,
                onCaughtUp: (@Sendable () -> Void)? = nil,
                onBatch: (@Sendable (BatchReport) async -> Void)? = nil) {
        self.log = log
        self.store = store
        self.channels = channels
        self.topicPrefix = topicPrefix
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "tollgate.service"] = "alerts"
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.onCaughtUp = onCaughtUp
        self.onBatch = onBatch
    }

    /// The fold's state to begin with: the saved snapshot, or one built from the log.
    func restore(fold: AlertFold) async throws -> AlertFold.State {
        let saved = try await Blocking.run { [store] in try store.loadState() }
        if let data = saved.state {
            do {
                return try JSONDecoder().decode(AlertFold.State.self, from: data)
            } catch {
                logger.error("the saved alerts state does not decode; rebuilding it from the log", metadata: [
                    "tollgate.error": "\(error)",
                ])
            }
        }
        let control = try await log.readToEnd(topic: topicPrefix + "control").compactMap { message in
            message.value.flatMap { try? AnyControlEvent.decode(from: $0) }
        }
        let raised = try await log.readToEnd(topic: fold.alertsTopic).compactMap { message in
            message.key.map { String(decoding: $0, as: UTF8.self) }
        }
        return AlertFold.State(control: control, raisedAlertIDs: raised)
    }

    /// The deliveries of an alert: to the rule's channels when it names some (those configured), else to
    /// every channel whose scopes and minimum severity take it.
    func deliveries(_ event: AlertEvent, rule: AlertRule?) throws -> [NewDelivery] {
        guard let named = rule?.channels, !named.isEmpty else { return try channels.deliveries(for: event) }
        let known = named.filter { channels.channels[$0] != nil }
        if known.count < named.count {
            logger.warning("an alert rule names channels that are not configured", metadata: [
                "tollgate.rule": "\(rule?.id ?? "")",
                "tollgate.channels": "\(named.filter { channels.channels[$0] == nil })",
            ])
        }
        let json = try EventCoding.encode(event)
        return Set(known).sorted().map { NewDelivery(event: event, json: json, channel: $0) }
    }

    public func run() async throws {
        let fold = AlertFold(topicPrefix: topicPrefix)
        var state = try await restore(fold: fold)
        let raisedCounter = { (kind: AlertData.Kind) in
            Counter(label: "tollgate_alerts_raised_total", dimensions: [("kind", kind.rawValue)], factory: metricsFactory)
        }
        let eventsCounter = Counter(label: "tollgate_alerts_events_total", factory: metricsFactory)
        let rejected = Counter(label: "tollgate_alerts_rejected_total", factory: metricsFactory)
        let batchTimer = Timer(label: "tollgate_alerts_batch_seconds", factory: metricsFactory)

        var targets: [TopicPartition: Int64] = [:]
        for topic in fold.inputTopics {
            for (partition, marks) in try await log.watermarks(topic: topic) {
                targets[TopicPartition(topic: topic, partition: partition)] = marks.high
            }
        }
        // Each deliveries database reads with a group of its own. If the log's offsets for it are ahead of the
        // database's (the database was restored from a backup), a new group reads again what it lacks; the
        // fold's own watermarks skip what its state already holds.
        var group = try await Blocking.run { [store] in try store.consumerGroup(prefix: Self.group) }
        do {
            let saved = try await Blocking.run { [store] in try store.loadState().offsets }
            let probe = try await log.makeConsumer(ConsumerConfiguration(group: group, autoOffsetReset: .earliest))
            let committed = try await probe.committed(Array(targets.keys))
            try? await probe.close()
            if committed.contains(where: { $0.value > saved[OffsetKey(topic: $0.key.topic, partition: $0.key.partition)] ?? 0 }) {
                group = try await Blocking.run { [store] in try store.renewConsumerGroup(prefix: Self.group) }
                logger.notice("the log's offsets are ahead of the deliveries database: reading again with a new group",
                              metadata: ["kafka.group": "\(group)"])
            }
        }
        let consumer = try await log.makeConsumer(ConsumerConfiguration(
            group: group, instanceID: configuration.instanceID, autoOffsetReset: .earliest).gatheringBatches())
        try await consumer.subscribe(fold.inputTopics)
        logger.info("alerts service started", metadata: [
            "kafka.topics": "\(fold.inputTopics)", "kafka.group": "\(group)", "tollgate.rules": "\(state.rules.count)",
            "tollgate.channels": "\(channels.channels.keys.sorted())", "db.path": "\(store.path)",
        ])

        var position: [TopicPartition: Int64] = [:]
        var caughtUp = false
        func checkCaughtUp() {
            guard !caughtUp else { return }
            if targets.allSatisfy({ $0.value == 0 || (position[$0.key] ?? 0) >= $0.value }) {
                caughtUp = true
                logger.info("alerts service caught up with the log")
                onCaughtUp?()
            }
        }
        checkCaughtUp()
        let stopping = Atomic<Bool>(false)
        let clock = ContinuousClock()
        var nextLag = clock.now
        // Offsets folded into `state` but not saved yet, and when the state was last saved.
        var pending: [TopicPartition: Int64] = [:]
        var lastSaved = clock.now

        /// Saves the state, the deliveries and the offsets `through` in one transaction.
        func save(_ state: AlertFold.State, deliveries: [NewDelivery], through: [TopicPartition: Int64]) async throws -> Int {
            let snapshot = try JSONEncoder().encode(state)
            let offsets = Dictionary(through.map { (OffsetKey(topic: $0.key.topic, partition: $0.key.partition), $0.value) },
                                     uniquingKeysWith: max)
            return try await Blocking.run { [store] in
                try store.commit(deliveries: deliveries, state: snapshot, offsets: offsets)
            }
        }

        func commitLog(_ offsets: [TopicPartition: Int64]) async {
            do {
                try await consumer.commit(offsets)
            } catch {
                // The store holds the batch; the log's offset only saves re-reading it.
                logger.notice("alerts could not commit offsets to the log", metadata: ["log.error": "\(error)"])
            }
        }
        do {
            try await withGracefulShutdownHandler {
                var backoff = Duration.milliseconds(50)
                while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                    if clock.now >= nextLag {
                        await reportLag(topics: fold.inputTopics)
                        nextLag = clock.now.advanced(by: .seconds(5))
                    }
                    let batch = try await consumer.poll(maxMessages: configuration.batchSize,
                                                        timeout: configuration.pollTimeout)
                    if batch.isEmpty {
                        if !caughtUp, await !consumer.assignment().isEmpty {
                            position.merge(targets) { max($0, $1) }
                            checkCaughtUp()
                        }
                        continue
                    }
                    let started = clock.now
                    // Fold a copy: if publishing or storing fails, the batch is folded again from `state`.
                    var next = state
                    var raised: [AlertData] = []
                    for message in batch {
                        let input: AlertFold.Input
                        do {
                            input = try fold.decode(message)
                        } catch {
                            rejected.increment()
                            logger.error("alerts: message does not decode; skipped", metadata: [
                                "kafka.topic": "\(message.topic)", "kafka.partition": "\(message.partition)",
                                "kafka.offset": "\(message.offset)", "tollgate.error": "\("\(error)".prefix(500))",
                            ])
                            continue
                        }
                        raised += fold.alerts(&next, input, message)
                    }
                    _ = fold.finishBatch(&next)
                    let events = raised.map { alert in
                        CloudEvent(id: "alert:" + alert.alertID, source: fold.source, time: alert.raisedAt,
                                   subject: alert.scope.description, data: alert)
                    }
                    let through = pending.merging(batch.nextOffsets, uniquingKeysWith: max)
                    if raised.isEmpty, clock.now - lastSaved < configuration.snapshotInterval {
                        // Nothing to deliver: keep the state in memory; it is saved (with the offsets) soon.
                        state = next
                        pending = through
                        for (partition, offset) in batch.nextOffsets { position[partition] = max(position[partition] ?? 0, offset) }
                        eventsCounter.increment(by: Int64(batch.count))
                        batchTimer.recordNanoseconds((clock.now - started).nanosecondsClamped)
                        await onBatch?(BatchReport(messages: batch.count, alerts: [], newDeliveries: 0))
                        checkCaughtUp()
                        continue
                    }
                    do {
                        let outgoing = raised.compactMap(fold.outgoing)
                        if !outgoing.isEmpty { _ = try await log.produce(outgoing) }
                        let rules = Dictionary(next.rules.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                        var deliveries: [NewDelivery] = []
                        for event in events {
                            deliveries += try self.deliveries(event, rule: rules[event.data.ruleID])
                        }
                        let queued = try await save(next, deliveries: deliveries, through: through)
                        state = next
                        pending = [:]
                        lastSaved = clock.now
                        backoff = .milliseconds(50)
                        for alert in raised {
                            raisedCounter(alert.kind).increment()
                            logger.notice("alert raised", metadata: [
                                "tollgate.alert_id": "\(alert.alertID)", "tollgate.kind": "\(alert.kind.rawValue)",
                                "tollgate.severity": "\(alert.severity.rawValue)", "tollgate.scope": "\(alert.scope)",
                                "tollgate.title": "\(alert.title)",
                            ])
                        }
                        eventsCounter.increment(by: Int64(batch.count))
                        batchTimer.recordNanoseconds((clock.now - started).nanosecondsClamped)
                        await onBatch?(BatchReport(messages: batch.count, alerts: raised, newDeliveries: queued))
                    } catch {
                        // Nothing of the batch is stored: read it again after a pause.
                        logger.error("alerts could not publish or store a batch; retrying", metadata: [
                            "tollgate.error": "\(error)", "tollgate.messages": "\(batch.count)",
                        ])
                        for (partition, offset) in Self.firstOffsets(batch) {
                            try await consumer.seek(.offset(offset), partitions: [partition])
                        }
                        try await Task.sleep(for: backoff)
                        backoff = min(backoff * 2, configuration.maxBackoff)
                        continue
                    }
                    for (partition, offset) in batch.nextOffsets { position[partition] = max(position[partition] ?? 0, offset) }
                    await commitLog(through)
                    checkCaughtUp()
                }
                // What was folded since the last save is saved before stopping.
                if !pending.isEmpty {
                    _ = try await save(state, deliveries: [], through: pending)
                    await commitLog(pending)
                }
            } onGracefulShutdown: {
                stopping.store(true, ordering: .relaxed)
            }
        } catch {
            try? await consumer.close()
            throw error
        }
        try await consumer.close()
        logger.info("alerts service stopped")
    }

    /// `tollgate_consumer_lag{group="tollgate-alerts",topic,partition}`: the high watermarks minus the offsets
    /// the deliveries database has folded (the group label is the fixed prefix, not the per-database group,
    /// so dashboards and alert rules can name it).
    private func reportLag(topics: [String]) async {
        do {
            let saved = try await Blocking.run { [store] in try store.loadState().offsets }
            for topic in topics {
                for (partition, marks) in try await log.watermarks(topic: topic) {
                    let lag = max(0, marks.high - (saved[OffsetKey(topic: topic, partition: partition)] ?? marks.low))
                    Gauge(label: "tollgate_consumer_lag",
                          dimensions: [("group", Self.group), ("topic", topic), ("partition", String(partition))],
                          factory: metricsFactory).record(lag)
                }
            }
        } catch {
            logger.warning("could not measure the alerts service's lag", metadata: ["log.error": "\(error)"])
        }
    }

    /// The first offset of each partition in a batch: where to read it again from.
    static func firstOffsets(_ batch: [ConsumedMessage]) -> [TopicPartition: Int64] {
        var first: [TopicPartition: Int64] = [:]
        for message in batch {
            first[message.topicPartition] = min(first[message.topicPartition] ?? message.offset, message.offset)
        }
        return first
    }
}
