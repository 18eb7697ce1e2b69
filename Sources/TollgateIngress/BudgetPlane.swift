public import Foundation
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization
public import TollgateBudget
public import TollgateEvents
public import TollgateLog
public import TollgatePricing

/// The ingress's budget enforcement: a ``BudgetGuard`` fed by the control topic (budget definitions,
/// through ``ControlPlane``) and the compacted decisions topic (read from the beginning by a group of
/// this process's own), plus the pricing of worst-case and real costs.
///
/// Metrics: `tollgate_budget_refusals_total{budget}`, `tollgate_budget_downgrades_total{budget}`,
/// `tollgate_budget_decision_age_seconds` (age of the newest decision), and
/// `tollgate_budget_unabsorbed_cost_age_seconds` (age of the oldest settled cost no decision includes yet:
/// it grows while the budget service is down or behind, and enforcement goes on from the local ledger).
public final class BudgetPlane: Service, Sendable {
    public let log: any MessageLog
    public let topic: String
    public let pricer: Pricer
    /// Output tokens assumed for a request that sets no limit.
    public let defaultMaxOutputTokens: Int64
    private let logger: Logger
    private let box: GuardBox
    private let newestDecision = Mutex<Date?>(nil)
    private let ready = Atomic<Bool>(false)
    private let onReady: @Sendable () -> Void
    private let metricsFactory: any MetricsFactory
    private let decisionAge: Gauge
    private let unabsorbed: Gauge
    let decisionsApplied = ChangeNotifier()
    /// `tollgate_budget_decisions_applied_total`: decisions this ingress folded into its guard.
    let decisionsAppliedCounter: Counter

    public init(log: any MessageLog, control: ControlPlane, topicPrefix: String, pricer: Pricer, replicas: Int = 1,
                defaultMaxOutputTokens: Int64 = 16_384, logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory, onReady: @escaping @Sendable () -> Void = {}) {
        self.log = log
        self.topic = topicPrefix + BudgetDecisionData.topic
        self.pricer = pricer
        self.defaultMaxOutputTokens = defaultMaxOutputTokens
        self.logger = logger
        self.onReady = onReady
        self.metricsFactory = metricsFactory
        decisionAge = Gauge(label: "tollgate_budget_decision_age_seconds", factory: metricsFactory)
        unabsorbed = Gauge(label: "tollgate_budget_unabsorbed_cost_age_seconds", factory: metricsFactory)
        decisionsAppliedCounter = Counter(label: "tollgate_budget_decisions_applied_total", factory: metricsFactory)
        var guardian = BudgetGuard(replicas: replicas)
        guardian.defaultDowngrades = pricer.catalog.downgradeDefaults
        let box = GuardBox(guardian)
        self.box = box
        control.observe { events in
            box.state.withLock { guardian in for event in events { guardian.apply(event) } }
        }
    }

    /// A line for `/readyz`: whether decisions keep up with this ingress's settled costs.
    public func enforcementStatus(now: Date = Date()) -> String {
        let guardian = snapshot
        guard let oldest = guardian.oldestUnabsorbedSettlement else { return "decisions up to date" }
        let age = Int(now.timeIntervalSince(oldest))
        if age <= 60 { return "decisions up to date" }
        return "budget service behind or down: costs settled \(age) s ago are in no decision yet; "
            + "enforcing from the last decisions plus this ingress's ledger"
    }

    /// Whether the decisions topic has been read up to where it was at start.
    public var isReady: Bool { ready.load(ordering: .acquiring) }

    /// A snapshot of the guard (tests, admin).
    public var snapshot: BudgetGuard { box.state.withLock { $0 } }

    /// Decides on a request before it goes upstream; see ``BudgetGuard/admit(_:now:worstCase:)``.
    public func admit(_ request: BudgetGuard.Request, provider: Provider, estimatedInputTokens: Int64,
                      maxOutputTokens: Int64?, now: Date = Date()) -> BudgetGuard.Admission {
        let output = maxOutputTokens ?? defaultMaxOutputTokens
        let pricer = self.pricer
        let admission = box.state.withLock { guardian in
            guardian.admit(request, now: now) { model in
                let quote = pricer.quote(provider: provider, model: model,
                                         usage: TokenUsage(inputTokens: estimatedInputTokens, outputTokens: output), at: now)
                return quote.priced ? quote.cost.total.nanoUSD : nil
            }
        }
        switch admission {
        case .allow: break
        case .downgrade(_, _, let budgetID, _):
            Counter(label: "tollgate_budget_downgrades_total", dimensions: [("budget", budgetID)],
                    factory: metricsFactory).increment()
        case .block(let refusal):
            Counter(label: "tollgate_budget_refusals_total", dimensions: [("budget", refusal.budgetID)],
                    factory: metricsFactory).increment()
        }
        return admission
    }

    /// Settles a request with the cost of what the provider reported (zero when nothing was billed).
    public func settle(_ requestID: String, provider: Provider, model: String, usage: TokenUsage,
                       receivedAt: Date, now: Date = Date()) {
        // Most calls hold no reservation (no budget covers them): nothing to price then.
        guard box.state.withLock({ $0.holdsTicket(requestID) }) else { return }
        let cost = usage == .zero ? 0
            : pricer.quote(provider: provider, model: model, usage: usage, at: receivedAt).cost.total.nanoUSD
        box.state.withLock { $0.settle(requestID, cost: cost, now: now) }
    }

    /// Waits until `condition` holds for the guard, or `timeout` passes. Returns whether it holds.
    public func wait(timeout: Duration, until condition: (BudgetGuard) -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        while true {
            let version = decisionsApplied.version
            if condition(snapshot) { return true }
            let now = clock.now
            if now >= end { return false }
            await decisionsApplied.wait(since: version, timeout: end - now)
        }
    }

    /// Applies decisions directly (tests).
    public func apply(_ decisions: [BudgetDecisionData]) {
        box.state.withLock { guardian in for decision in decisions { guardian.apply(decision) } }
        if !decisions.isEmpty { decisionsAppliedCounter.increment(by: Int64(decisions.count)) }
        if let newest = decisions.map(\.decidedAt).max() {
            newestDecision.withLock { $0 = max($0 ?? newest, newest) }
        }
        decisionsApplied.signal()
    }

    public func run() async throws {
        try await TopicFollower(log: log, topic: topic, groupPrefix: "budget-reader").run(onCaughtUp: {
            ready.store(true, ordering: .releasing)
            logger.info("budget decisions loaded", metadata: ["tollgate.budgets": "\(snapshot.decisions.count)"])
            onReady()
        }, onPoll: {
            if let newest = newestDecision.withLock({ $0 }) {
                decisionAge.record(Date().timeIntervalSince(newest))
            }
            unabsorbed.record(snapshot.oldestUnabsorbedSettlement.map { Date().timeIntervalSince($0) } ?? 0)
        }) { batch in
            var decisions: [BudgetDecisionData] = []
            for message in batch {
                guard let value = message.value else {
                    // A tombstone: the budget was deleted.
                    if let key = message.key {
                        let budgetID = String(decoding: key, as: UTF8.self)
                        box.state.withLock { $0.removeDecision(budgetID) }
                    }
                    continue
                }
                do {
                    decisions.append(try EventCoding.decode(BudgetDecisionData.self, from: value).data)
                } catch {
                    logger.error("budget decision ignored: it does not decode", metadata: [
                        "kafka.offset": "\(message.offset)", "tollgate.error": "\(error)",
                    ])
                }
            }
            apply(decisions)
        }
    }
}

/// The guard behind a lock, shared with the control plane's observer.
final class GuardBox: Sendable {
    let state: Mutex<BudgetGuard>
    init(_ guardian: BudgetGuard) { state = Mutex(guardian) }
}
