public import AsyncHTTPClient
public import Foundation
import TollgateLog
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization
import TollgateEvents

/// A channel the deliverer sends to: its name and its sender.
public struct DeliveryChannel: Sendable {
    public var name: String
    public var sender: any AlertSender

    public init(name: String, sender: any AlertSender) {
        self.name = name
        self.sender = sender
    }
}

/// Sends the alerts queued in a ``DeliveryStore`` to their channels, until graceful shutdown.
///
/// The deliverer takes due deliveries from the store (at most ``Configuration/maxInFlightPerChannel`` at
/// once per channel), sends them, and records each outcome:
///
/// - delivered: the row becomes `delivered` and is never sent again;
/// - worth retrying (see ``DeliveryResult``): the row waits for a later attempt, after exponential back-off
///   with full jitter (see ``RetryPolicy``); once the attempts are used up it is dead-lettered;
/// - refused for good: the row is dead-lettered at once.
///
/// A dead letter is never silent: the row keeps the alert and the last error, the counter
/// `tollgate_alert_dead_letters_total{channel}` goes up and an error is logged. Every attempt's outcome is
/// counted in `tollgate_alert_deliveries_total{channel,kind,outcome}` (`outcome` is `delivered`, `retried`,
/// `dead` or `interrupted`); the gauge `tollgate_alert_deliveries_pending` is the number of deliveries not
/// yet delivered or dead.
///
/// The deliverer wakes as soon as the store queues deliveries (in this process) or an attempt finishes;
/// between those it sleeps only until the next retry is due, or ``Configuration/recheckInterval`` to see
/// rows another process queued. An alert therefore reaches a healthy receiver within milliseconds.
///
/// Delivery is at least once: an attempt interrupted by a crash is made again at the next start, since it
/// may or may not have reached the receiver; receivers drop duplicates by delivery id (the webhook's
/// `X-Tollgate-Delivery`, the e-mail's `Message-ID`). On graceful shutdown the deliverer stops taking work
/// and lets attempts in flight finish for up to ``Configuration/shutdownGrace``; attempts still running
/// then are cancelled and made again at the next start, without counting against the retry budget.
///
/// ```swift
/// let channels = try configuration.resolve()
/// let deliverer = Deliverer(store: store, channels: channels, httpClient: .shared, logger: logger)
/// // services: ..., deliverer
/// ```
public final class Deliverer: Service {
    public struct Configuration: Sendable {
        /// Retries and dead-lettering. Default ``RetryPolicy/init(baseDelay:maxDelay:maxAttempts:)``'s defaults.
        public var retry: RetryPolicy
        /// Most attempts in flight at once for one channel. Default 4.
        public var maxInFlightPerChannel: Int
        /// How long graceful shutdown waits for attempts in flight. Default 10 s.
        public var shutdownGrace: Duration
        /// The longest sleep between two looks at the store, for deliveries queued by another process
        /// (this process's commits wake the deliverer at once). Default 5 s.
        public var recheckInterval: Duration

        public init(retry: RetryPolicy = RetryPolicy(), maxInFlightPerChannel: Int = 4,
                    shutdownGrace: Duration = .seconds(10), recheckInterval: Duration = .seconds(5)) {
            self.retry = retry
            self.maxInFlightPerChannel = maxInFlightPerChannel
            self.shutdownGrace = shutdownGrace
            self.recheckInterval = recheckInterval
        }
    }

    /// What happened to one attempt (see ``reports()``).
    public struct Report: Sendable, Hashable {
        public enum Outcome: Sendable, Hashable {
            /// The channel took the alert.
            case delivered
            /// The attempt failed; the next one is due at `nextAttemptAt`.
            case retrying(reason: String, nextAttemptAt: Date)
            /// Dead-lettered.
            case dead(reason: String)
            /// Cancelled by shutdown; made again at the next start.
            case interrupted
        }

        public var alertID: String
        public var channel: String
        public var kind: ChannelKind
        public var attempt: Int
        public var outcome: Outcome
    }

    public let configuration: Configuration
    public let store: DeliveryStore
    private let channels: [String: DeliveryChannel]
    private let logger: Logger
    private let metrics: DeliveryMetrics
    private let state = Mutex(State())

    private struct State {
        var inFlight: [String: Int] = [:]
        var stopping = false
        var deadline: ContinuousClock.Instant?
        var subscribers: [UInt64: AsyncStream<Report>.Continuation] = [:]
        var nextSubscriber: UInt64 = 0
    }

    /// A deliverer over `channels`' senders.
    ///
    /// Metrics go through `metricsFactory` (swift-metrics' global factory by default).
    public init(store: DeliveryStore, channels: [DeliveryChannel], configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "tollgate.notify"),
                metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.store = store
        self.channels = Dictionary(channels.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.configuration = configuration
        self.logger = logger
        metrics = DeliveryMetrics(factory: metricsFactory)
    }

    /// A deliverer over resolved channels: webhook and Slack channels send with `httpClient`, e-mail channels
    /// with libcurl.
    public convenience init(store: DeliveryStore, channels: [ResolvedChannel], httpClient: HTTPClient,
                            configuration: Configuration = Configuration(),
                            logger: Logger = Logger(label: "tollgate.notify"),
                            metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.init(store: store,
                  channels: channels.map { DeliveryChannel(name: $0.name, sender: $0.makeSender(httpClient: httpClient)) },
                  configuration: configuration, logger: logger, metricsFactory: metricsFactory)
    }

    /// Looks at the store now (for deliveries queued through another ``DeliveryStore`` instance).
    public func wake() {
        store.wakeup.signal()
    }

    /// A stream of every attempt's outcome from now on, for tests and diagnostics. It ends when ``run()``
    /// returns.
    public func reports() -> AsyncStream<Report> {
        let (stream, continuation) = AsyncStream.makeStream(of: Report.self)
        let id = state.withLock { state -> UInt64 in
            state.nextSubscriber += 1
            state.subscribers[state.nextSubscriber] = continuation
            return state.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    // MARK: Running

    /// Delivers until graceful shutdown (then lets attempts in flight finish, up to the grace) or
    /// cancellation.
    public func run() async throws {
        defer {
            let subscribers = state.withLock { state in
                defer { state.subscribers.removeAll() }
                return Array(state.subscribers.values)
            }
            for subscriber in subscribers { subscriber.finish() }
        }
        let store = self.store
        let recovered = try await Blocking.run { try store.recoverInterrupted(now: Date()) }
        if recovered > 0 {
            logger.notice("alert deliveries interrupted by the last stop are sent again",
                          metadata: ["tollgate.deliveries": "\(recovered)"])
        }
        if let waiting = try? await Blocking.run({ try store.pendingChannels() }) {
            for (channel, count) in waiting.sorted(by: { $0.key < $1.key }) where channels[channel] == nil {
                logger.warning("alert deliveries wait for a channel that is not configured: they stay queued",
                               metadata: ["tollgate.channel": "\(channel)", "tollgate.deliveries": "\(count)"])
            }
        }
        logger.info("alert deliverer started", metadata: [
            "tollgate.channels": "\(channels.keys.sorted().joined(separator: ","))",
        ])
        let grace = configuration.shutdownGrace
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                await self.loop(&group)
            }
        } onGracefulShutdown: { [self] in
            state.withLock { state in
                if !state.stopping {
                    state.stopping = true
                    state.deadline = ContinuousClock.now.advanced(by: grace)
                }
            }
            self.store.wakeup.signal()
        }
        await updatePendingGauge()
        logger.info("alert deliverer stopped")
    }

    private func loop(_ group: inout DiscardingTaskGroup) async {
        let store = self.store
        var storeFailures = 0
        while !Task.isCancelled {
            let version = store.wakeup.version
            let (stopping, deadline, inFlight) = state.withLock { ($0.stopping, $0.deadline, $0.inFlight) }
            if stopping {
                if inFlight.values.reduce(0, +) == 0 { return }
                let now = ContinuousClock.now
                if let deadline, now >= deadline {
                    logger.warning("shutdown grace over: interrupting alert deliveries in flight (sent again at the next start)",
                                   metadata: ["tollgate.deliveries": "\(inFlight.values.reduce(0, +))"])
                    group.cancelAll()
                    return
                }
                await store.wakeup.wait(since: version, timeout: deadline.map { $0 - now })
                continue
            }

            var slots: [String: Int] = [:]
            for name in channels.keys {
                slots[name] = max(configuration.maxInFlightPerChannel - (inFlight[name] ?? 0), 0)
            }
            let claimed: [ClaimedDelivery]
            do {
                let request = slots
                claimed = try await Blocking.run { try store.claimDue(now: Date(), slots: request) }
                storeFailures = 0
            } catch {
                storeFailures += 1
                logger.error("cannot read the alert outbox; trying again", metadata: ["tollgate.error": "\(error)"])
                await store.wakeup.wait(since: store.wakeup.version,
                                        timeout: .milliseconds(min(100 << min(storeFailures, 8), 10_000)))
                continue
            }
            for delivery in claimed {
                state.withLock { $0.inFlight[delivery.channel, default: 0] += 1 }
                group.addTask {
                    await self.attempt(delivery)
                    self.state.withLock { $0.inFlight[delivery.channel, default: 1] -= 1 }
                    store.wakeup.signal()
                }
            }
            if !claimed.isEmpty { continue }

            // Idle: wait for a commit, a finished attempt, the next retry due on a channel with room, or the
            // re-check.
            var timeout = configuration.recheckInterval
            let free = Set(slots.filter { $0.value > 0 }.keys)
            if let due = try? await Blocking.run({ try store.nextDue(channels: free) }) {
                let wait = DeliveryStore.millis(due) - DeliveryStore.millis(Date())
                timeout = min(timeout, .milliseconds(max(wait, 0)))
            }
            await updatePendingGauge()
            await store.wakeup.wait(since: version, timeout: timeout)
        }
    }

    // MARK: One attempt

    private func attempt(_ claimed: ClaimedDelivery) async {
        guard let channel = channels[claimed.channel] else { return }
        let result: DeliveryResult
        do {
            let event = try EventCoding.decode(AlertData.self, from: claimed.event)
            result = await channel.sender.send(AlertDelivery(event: event, channel: channel.name, attempt: claimed.attempt))
        } catch {
            result = .failed(reason: "the queued alert event cannot be decoded: \(error)")
        }
        await record(result, of: claimed, kind: channel.sender.kind)
    }

    private func record(_ result: DeliveryResult, of claimed: ClaimedDelivery, kind: ChannelKind) async {
        let store = self.store
        let now = Date()
        var logger = self.logger
        logger[metadataKey: "tollgate.alert_id"] = "\(claimed.alertID)"
        logger[metadataKey: "tollgate.channel"] = "\(claimed.channel)"
        logger[metadataKey: "tollgate.channel_kind"] = "\(kind.rawValue)"
        logger[metadataKey: "tollgate.attempt"] = "\(claimed.attempt)"

        let outcome: Report.Outcome
        let write: @Sendable () throws -> Void
        switch result {
        case .delivered:
            outcome = .delivered
            write = { try store.markDelivered(alertID: claimed.alertID, channel: claimed.channel, now: now) }
        case .retry where Task.isCancelled:
            outcome = .interrupted
            write = { try store.release(alertID: claimed.alertID, channel: claimed.channel, now: now) }
        case .retry(let reason, let retryAfter):
            if configuration.retry.isExhausted(afterAttempt: claimed.attempt) {
                let why = "gave up after \(claimed.attempt) attempts; last error: \(reason)"
                outcome = .dead(reason: why)
                write = { try store.markDead(alertID: claimed.alertID, channel: claimed.channel, error: why, now: now) }
            } else {
                let delay = configuration.retry.delay(afterAttempt: claimed.attempt, retryAfter: retryAfter)
                let next = now.addingTimeInterval(Double(delay.milliseconds) / 1_000)
                outcome = .retrying(reason: reason, nextAttemptAt: next)
                write = { try store.scheduleRetry(alertID: claimed.alertID, channel: claimed.channel, error: reason, at: next) }
            }
        case .failed(let reason):
            outcome = .dead(reason: reason)
            write = { try store.markDead(alertID: claimed.alertID, channel: claimed.channel, error: reason, now: now) }
        }

        // A result that cannot be written leaves the row `sending`: the attempt is made again after a restart.
        for tries in 1...3 {
            do {
                try await Blocking.run(write)
                break
            } catch {
                logger.error("cannot record an alert delivery's outcome",
                             metadata: ["tollgate.error": "\(error)", "tollgate.tries": "\(tries)"])
                if tries < 3 { try? await Task.sleep(for: .milliseconds(100 * tries)) }
            }
        }

        switch outcome {
        case .delivered:
            metrics.count(channel: claimed.channel, kind: kind, outcome: "delivered")
            logger.info("alert delivered")
        case .retrying(let reason, let next):
            metrics.count(channel: claimed.channel, kind: kind, outcome: "retried")
            logger.warning("alert delivery failed; retrying", metadata: [
                "tollgate.error": "\(reason)",
                "tollgate.retry_in_ms": "\(max(DeliveryStore.millis(next) - DeliveryStore.millis(now), 0))",
            ])
        case .dead(let reason):
            metrics.count(channel: claimed.channel, kind: kind, outcome: "dead")
            metrics.deadLetter(channel: claimed.channel)
            logger.error("alert delivery dead-lettered", metadata: ["tollgate.error": "\(reason)"])
        case .interrupted:
            metrics.count(channel: claimed.channel, kind: kind, outcome: "interrupted")
            logger.notice("alert delivery interrupted by shutdown; sent again at the next start")
        }
        let report = Report(alertID: claimed.alertID, channel: claimed.channel, kind: kind, attempt: claimed.attempt,
                            outcome: outcome)
        for subscriber in state.withLock({ Array($0.subscribers.values) }) { subscriber.yield(report) }
    }

    private func updatePendingGauge() async {
        let store = self.store
        if let outstanding = try? await Blocking.run({ try store.outstanding() }) { metrics.pending.record(outstanding) }
    }
}

/// The deliverer's meters.
struct DeliveryMetrics: Sendable {
    let factory: any MetricsFactory
    let pending: Gauge

    init(factory: any MetricsFactory) {
        self.factory = factory
        pending = Gauge(label: "tollgate_alert_deliveries_pending", factory: factory)
    }

    func count(channel: String, kind: ChannelKind, outcome: String) {
        Counter(label: "tollgate_alert_deliveries_total",
                dimensions: [("channel", channel), ("kind", kind.rawValue), ("outcome", outcome)],
                factory: factory).increment()
    }

    func deadLetter(channel: String) {
        Counter(label: "tollgate_alert_dead_letters_total", dimensions: [("channel", channel)], factory: factory)
            .increment()
    }
}
