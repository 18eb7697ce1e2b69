public import Foundation
public import TollgateEvents

/// The ingress's side of the budget loop, as a plain value: the budgets (from the control topic), the
/// latest decision per budget (from the decisions topic) and a local ledger of this replica's
/// reservations and settled costs since those decisions.
///
/// Before a request goes upstream, ``admit(_:now:worstCase:)`` reserves its worst-case cost against
/// every budget that covers it and refuses it when that would cross a block level, or rewrites its model
/// when it would cross a downgrade level (block beats downgrade beats pass: the strictest budget wins).
/// ``settle(_:cost:now:)`` replaces the reservation by the real cost. So a budget holds between two
/// decisions and under concurrency. With several replicas, each may spend only its share
/// (`1/replicas`) of what the last decision left below a level. A settled cost stays in the local ledger
/// until a decision made ``settleHorizon`` after it arrives (by then the decision includes it); while the
/// budget service is down, no decision arrives and the ledger keeps counting — enforcement goes on.
public struct BudgetGuard: Sendable {
    /// A request's attributes and model.
    public struct Request: Sendable, Hashable {
        public var requestID: String
        public var keyID: String
        public var project: String
        public var team: String
        public var customer: String?
        public var tags: [String: String]
        public var model: String

        public init(requestID: String, keyID: String, project: String, team: String, customer: String?,
                    tags: [String: String], model: String) {
            self.requestID = requestID
            self.keyID = keyID
            self.project = project
            self.team = team
            self.customer = customer
            self.tags = tags
            self.model = model
        }
    }

    /// A reservation to settle when the request completes.
    public struct Ticket: Sendable, Hashable {
        public var requestID: String
        public var budgets: [String]
        public var reservedNanoUSD: Int64
    }

    /// Why a request is refused.
    public struct Refusal: Sendable, Hashable {
        public var budgetID: String
        public var scope: Scope
        public var limit: Money
        /// Spend the decision reported plus this replica's local ledger.
        public var spent: Money
        /// When the budget's period ends (nil: lifetime).
        public var resetsAt: Date?
        /// `budget_exceeded` or `no_cheaper_model`.
        public var reason: String
    }

    public enum Admission: Sendable, Hashable {
        case allow(Ticket)
        case downgrade(from: String, to: String, budgetID: String, Ticket)
        case block(Refusal)
    }

    /// Ingress replicas sharing the budgets. Default 1.
    public var replicas: Int
    /// How long after a local settlement a decision is assumed to include it. Default 5 s.
    public var settleHorizon: TimeInterval
    /// Cheaper models used when a budget's own downgrade map has no entry (the catalog's `downgrade_to`).
    public var defaultDowngrades: [String: String] = [:]

    public private(set) var budgets: [String: BudgetSetData] = [:]
    public private(set) var decisions: [String: BudgetDecisionData] = [:]
    private var reserved: [String: Int64] = [:]
    private var tickets: [String: Ticket] = [:]
    private var settled: [String: [(at: Date, nanoUSD: Int64)]] = [:]

    public init(replicas: Int = 1, settleHorizon: TimeInterval = 5) {
        self.replicas = max(1, replicas)
        self.settleHorizon = settleHorizon
    }

    // MARK: Folding the control and decision topics

    public mutating func apply(_ event: AnyControlEvent) {
        switch event {
        case .budgetSet(let set): budgets[set.data.budgetID] = set.data
        case .budgetDeleted(let deleted):
            budgets[deleted.data.budgetID] = nil
            decisions[deleted.data.budgetID] = nil
            settled[deleted.data.budgetID] = nil
        default: break
        }
    }

    public mutating func apply(_ decision: BudgetDecisionData) {
        if let known = decisions[decision.budgetID], known.decidedAt > decision.decidedAt { return }
        decisions[decision.budgetID] = decision
        let cutoff = decision.decidedAt.addingTimeInterval(-settleHorizon)
        settled[decision.budgetID]?.removeAll { $0.at < cutoff }
    }

    /// A decision was deleted (tombstone): the budget is gone or reset.
    public mutating func removeDecision(_ budgetID: String) {
        decisions[budgetID] = nil
    }

    // MARK: Admission

    /// Spend of `budget` in the period containing `now` according to its latest decision (zero when
    /// the decision is about an earlier period).
    public func decidedSpend(_ budget: BudgetSetData, now: Date) -> Int64 {
        guard let decision = decisions[budget.budgetID] else { return 0 }
        if let end = decision.period.end, end <= now { return 0 }
        return decision.spentNanoUSD.nanoUSD
    }

    /// This replica's reservations and recent settled costs in the current period of `budget`.
    public func localSpend(_ budget: BudgetSetData, now: Date) -> Int64 {
        let periodStart = BudgetCalendar.period(budget.periodKind, timeZone: budget.timeZone, containing: now,
                                                lifetimeStart: .distantPast)?.start ?? .distantPast
        let recent = (settled[budget.budgetID] ?? []).filter { $0.at >= periodStart }.reduce(Int64(0)) { $0 + $1.nanoUSD }
        return (reserved[budget.budgetID] ?? 0) + recent
    }

    /// Budgets covering a request.
    public func covering(_ request: Request) -> [BudgetSetData] {
        budgets.values.filter {
            $0.scope.covers(keyID: request.keyID, project: request.project, team: request.team,
                            customer: request.customer, tags: request.tags)
        }.sorted { $0.budgetID < $1.budgetID }
    }

    /// The first budget (if any) whose `action` level `cost` more would cross on this replica.
    private func crossing(_ action: BudgetLevel.Action, cost: Int64, among budgets: [BudgetSetData],
                          now: Date) -> BudgetSetData? {
        budgets.first { budget in
            guard let threshold = budget.threshold(of: action) else { return false }
            let spent = decidedSpend(budget, now: now)
            if spent >= threshold { return true }
            let share = (threshold - spent) / Int64(replicas)
            return localSpend(budget, now: now) + cost > share
        }
    }

    /// Decides on a request and, unless it is refused, reserves its worst-case cost.
    ///
    /// - Parameter worstCase: the worst-case cost of the request with a given model, in nano-USD (nil:
    ///   the model has no price; it is reserved at zero).
    public mutating func admit(_ request: Request, now: Date, worstCase: (String) -> Int64?) -> Admission {
        let applicable = covering(request)
        guard !applicable.isEmpty else {
            return .allow(Ticket(requestID: request.requestID, budgets: [], reservedNanoUSD: 0))
        }
        var model = request.model
        var downgradedBy: String?
        var cost = worstCase(model) ?? 0
        if let blocking = crossing(.block, cost: cost, among: applicable, now: now) {
            // A downgrade might still fit under the block level.
            guard let cheaper = cheaperModel(for: model, among: applicable),
                  let cheaperCost = worstCase(cheaper.model),
                  crossing(.block, cost: cheaperCost, among: applicable, now: now) == nil else {
                return .block(refusal(blocking, reason: "budget_exceeded", now: now))
            }
            (model, downgradedBy, cost) = (cheaper.model, cheaper.budgetID, cheaperCost)
        } else if let downgrading = crossing(.downgrade, cost: cost, among: applicable, now: now) {
            if let target = Self.downgrade(model, with: downgrading.downgrade) ?? defaultDowngrades[model] {
                let targetCost = worstCase(target) ?? 0
                if let blocking = crossing(.block, cost: targetCost, among: applicable, now: now) {
                    return .block(refusal(blocking, reason: "budget_exceeded", now: now))
                }
                (model, downgradedBy, cost) = (target, downgrading.budgetID, targetCost)
            } else if downgrading.onNoDowngrade == .block {
                return .block(refusal(downgrading, reason: "no_cheaper_model", now: now))
            }
        }
        let ticket = Ticket(requestID: request.requestID, budgets: applicable.map(\.budgetID), reservedNanoUSD: cost)
        for budget in applicable { reserved[budget.budgetID, default: 0] += cost }
        tickets[request.requestID] = ticket
        if let downgradedBy {
            return .downgrade(from: request.model, to: model, budgetID: downgradedBy, ticket)
        }
        return .allow(ticket)
    }

    /// A cheaper model some budget at its downgrade level maps `model` to.
    private func cheaperModel(for model: String, among budgets: [BudgetSetData]) -> (model: String, budgetID: String)? {
        for budget in budgets where budget.threshold(of: .downgrade) != nil {
            if let target = Self.downgrade(model, with: budget.downgrade) ?? defaultDowngrades[model] {
                return (target, budget.budgetID)
            }
        }
        return nil
    }

    /// The model `model` is downgraded to: an exact entry, or a `prefix*` entry whose target may end in
    /// `*` too (`claude-opus-*` → `claude-sonnet-*` keeps the rest of the name).
    public static func downgrade(_ model: String, with map: [String: String]) -> String? {
        if let exact = map[model] { return exact }
        for (pattern, target) in map.sorted(by: { $0.key.count > $1.key.count }) where pattern.hasSuffix("*") {
            let prefix = pattern.dropLast()
            guard model.hasPrefix(prefix) else { continue }
            return target.hasSuffix("*") ? String(target.dropLast()) + String(model.dropFirst(prefix.count)) : target
        }
        return nil
    }

    private func refusal(_ budget: BudgetSetData, reason: String, now: Date) -> Refusal {
        let spent = decidedSpend(budget, now: now) + localSpend(budget, now: now)
        let period = BudgetCalendar.period(budget.periodKind, timeZone: budget.timeZone, containing: now)
        return Refusal(budgetID: budget.budgetID, scope: budget.scope, limit: budget.limitNanoUSD,
                       spent: Money(nanoUSD: spent), resetsAt: period?.end, reason: reason)
    }

    /// Replaces a request's reservation by its real cost (zero for a request that failed unbilled).
    public mutating func settle(_ requestID: String, cost: Int64, now: Date) {
        guard let ticket = tickets.removeValue(forKey: requestID) else { return }
        for budgetID in ticket.budgets {
            reserved[budgetID, default: 0] -= ticket.reservedNanoUSD
            if cost > 0 { settled[budgetID, default: []].append((now, cost)) }
        }
    }

    /// Requests admitted and not settled yet.
    public var inFlight: Int { tickets.count }

    /// Whether `requestID` was admitted against a budget and is not settled yet.
    public func holdsTicket(_ requestID: String) -> Bool { tickets[requestID] != nil }

    /// When the oldest settled cost was settled that no decision has been made since (per budget).
    /// Normally nil or seconds old; far older means the budget service is down or behind, and the
    /// ingress is enforcing from its own ledger.
    public var oldestUnabsorbedSettlement: Date? {
        settled.compactMap { budgetID, entries -> Date? in
            let decided = decisions[budgetID]?.decidedAt ?? .distantPast
            return entries.filter { $0.at > decided }.map(\.at).min()
        }.min()
    }
}
