public import Foundation
public import TollgateEvents
import TollgateBudget

/// An alert rule as the alerts fold applies it: a definition (from the control topic or built in) with
/// every parameter resolved to its value or the kind's default.
///
/// Rules are independent: every enabled rule that selects a budget or a request evaluates it, and each
/// raises its own alerts (their ids start with the rule id). A rule set on the control topic with the
/// id of a built-in rule replaces it; `enabled: false` switches it off, and deleting the rule brings
/// the built-in back.
///
/// ```swift
/// let rules = AlertRule.effective(overrides: ["default-latency-spike": disabledLatency])
/// rules.filter(\.enabled).map(\.id)   // every built-in id but default-latency-spike
/// ```
public struct AlertRule: Sendable, Hashable {
    /// The definition.
    public var definition: AlertRuleSetData

    /// A rule from its definition.
    public init(_ definition: AlertRuleSetData) {
        self.definition = definition
    }

    /// The rule id.
    public var id: String { definition.ruleID }
    /// The kind of condition the rule watches.
    public var kind: AlertData.Kind { definition.kind }
    /// What the rule selects (see ``AlertRuleSetData`` for wildcards).
    public var scope: Scope { definition.scope }
    /// Whether the rule raises alerts.
    public var enabled: Bool { definition.enabled }
    /// The delivery channels; empty: every channel that accepts the alert's scope.
    public var channels: [String] { definition.channels }
    /// Whether this is one of the built-in rules (possibly replaced by a rule with the same id).
    public var isBuiltIn: Bool { AlertRule.builtInIDs.contains(id) }

    // MARK: Resolved parameters

    /// `budget_threshold`: the levels in percent, ascending.
    public var levelsPercent: [Int] { (definition.levelsPercent ?? Defaults.levelsPercent).sorted() }
    /// `spend_spike`, `error_rate_spike`, `latency_spike`: the factor over the baseline, in basis points.
    public var factorBP: Int64 {
        definition.factorBP ?? (kind == .latencySpike ? Defaults.latencyFactorBP : Defaults.spikeFactorBP)
    }
    /// `spend_spike`: the least spend in an hour that can alert.
    public var minSpend: Money { definition.minNanoUSD ?? Defaults.minSpend }
    /// `spend_spike`: the number of previous hours in the baseline (and of history required).
    public var baselineHours: Int { definition.baselineHours ?? Defaults.baselineHours }
    /// `error_rate_spike`, `latency_spike`: the window length in minutes.
    public var windowMinutes: Int { definition.windowMinutes ?? Defaults.windowMinutes }
    /// `error_rate_spike`, `latency_spike`: the number of previous windows in the baseline.
    public var baselineWindows: Int { definition.baselineWindows ?? Defaults.baselineWindows }
    /// `error_rate_spike`, `latency_spike`: the least number of requests in a window (and in the latency
    /// baseline) that can alert.
    public var minRequests: Int { definition.minRequests ?? Defaults.minRequests }
    /// `error_rate_spike`: the least error rate in a window that can alert, in basis points.
    public var errorRateBP: Int { definition.errorRateBP ?? Defaults.errorRateBP }
    /// `latency_spike`: the least mean latency in a window that can alert, in milliseconds.
    public var minLatencyMs: Int64 { definition.minLatencyMs ?? Defaults.minLatencyMs }
    /// `burn_rate`: how long before the period's end the budget must run out to alert, in milliseconds.
    public var leadMs: Int64 { definition.leadMs ?? Defaults.leadMs }
    /// `burn_rate`: the share of the period that must have elapsed before forecasting, in basis points.
    public var minElapsedBP: Int { definition.minElapsedBP ?? Defaults.minElapsedBP }

    /// The parameter defaults of every kind.
    public enum Defaults {
        /// Budget threshold levels: 50 %, 80 %, 100 %.
        public static let levelsPercent = [50, 80, 100]
        /// Spend and error-rate spikes: 3× the baseline.
        public static let spikeFactorBP: Int64 = 30_000
        /// Latency spikes: 2× the baseline.
        public static let latencyFactorBP: Int64 = 20_000
        /// Spend spikes: at least $10 in the hour.
        public static let minSpend = Money(nanoUSD: 10_000_000_000)
        /// Spend spikes: the previous 24 hours.
        public static let baselineHours = 24
        /// Error-rate and latency spikes: 5-minute windows.
        public static let windowMinutes = 5
        /// Error-rate and latency spikes: the previous 12 windows (an hour of 5-minute windows).
        public static let baselineWindows = 12
        /// Error-rate and latency spikes: at least 20 requests.
        public static let minRequests = 20
        /// Error-rate spikes: at least 10 % of requests failing.
        public static let errorRateBP = 1_000
        /// Latency spikes: at least 2 seconds on average.
        public static let minLatencyMs: Int64 = 2_000
        /// Burn rate: running out at least an hour before the period ends.
        public static let leadMs: Int64 = 3_600_000
        /// Burn rate: only once 10 % of the period has elapsed.
        public static let minElapsedBP = 1_000
    }

    /// The severity of an alert of this rule: the rule's own, or the kind's default (`level` is the
    /// threshold level for `budget_threshold`, `action` the budget action for `budget_action`).
    public func severity(level: Int? = nil, action: BudgetDecisionData.Action? = nil) -> AlertData.Severity {
        if let severity = definition.severity { return severity }
        switch kind {
        case .budgetThreshold:
            let level = level ?? 100
            return level >= 100 ? .critical : level >= 80 ? .warning : .info
        case .budgetAction: return action == .block ? .critical : .warning
        case .errorRateSpike, .eventsDropped: return .critical
        case .burnRate, .spendSpike, .latencySpike, .unpricedModel: return .warning
        case .estimatedUsage: return .info
        }
    }

    // MARK: Scope matching

    /// Whether this (budget) rule applies to a budget with scope `budgetScope`: a global rule to every
    /// budget, `<kind>:*` to every budget of that kind (`tag:<name>=*`: every value of that tag), any
    /// other scope to budgets with exactly that scope.
    public func selects(budgetScope: Scope) -> Bool {
        if scope.kind == .global { return true }
        guard scope.kind == budgetScope.kind else { return false }
        if let tag = scope.tag, tag.value == "*" {
            return budgetScope.tag?.name == tag.name
        }
        return scope.id == "*" || scope.id == budgetScope.id
    }

    /// The series a request belongs to for this (traffic) rule, or `nil` when the rule does not watch
    /// it: `global:*` → all traffic (`global:*`); `<kind>:*` → the request's own value of that kind
    /// (`team:<its team>`, `tag:<name>=<its value>`; `nil` without a customer or without the tag);
    /// any other scope → that scope if it covers the request.
    public func series(of response: ResponseData) -> Scope? {
        switch scope.kind {
        case .global:
            return .global
        case .tag:
            guard let tag = scope.tag else { return nil }
            if tag.value == "*" { return response.tags[tag.name].map { .tag(name: tag.name, value: $0) } }
        case .key, .project, .team, .customer:
            if scope.id == "*" {
                switch scope.kind {
                case .key: return .key(response.keyID)
                case .project: return .project(response.project)
                case .team: return .team(response.team)
                default: return response.customer.map(Scope.customer)
                }
            }
        }
        return scope.covers(keyID: response.keyID, project: response.project, team: response.team,
                            customer: response.customer, tags: response.tags) ? scope : nil
    }

    // MARK: Built-in rules

    /// When the built-in rules were "written": the Unix epoch.
    public static let builtInDate = Date(timeIntervalSince1970: 0)

    /// The built-in rules, all enabled, with default parameters:
    ///
    /// - `default-budget-threshold`: every budget crossing 50 %, 80 % and 100 % of its limit.
    /// - `default-budget-action`: every budget starting to downgrade or block.
    /// - `default-burn-rate`: every budget (with an end) forecast to run out before its period ends.
    /// - `default-spend-spike`: spend of all traffic in an hour far above its trailing baseline.
    /// - `default-spend-spike-team`: the same per team (`team:*`).
    /// - `default-error-rate-spike`, `default-latency-spike`: per provider and model, over all traffic.
    /// - `default-unpriced-model`: a model served without a price, once per model per day.
    /// - `default-estimated-usage`: usage estimated rather than reported, once per model per day.
    public static let builtIn: [AlertRuleSetData] = [
        AlertRuleSetData(ruleID: "default-budget-threshold", kind: .budgetThreshold, scope: .global, updatedAt: builtInDate),
        AlertRuleSetData(ruleID: "default-budget-action", kind: .budgetAction, scope: .global, updatedAt: builtInDate),
        AlertRuleSetData(ruleID: "default-burn-rate", kind: .burnRate, scope: .global, updatedAt: builtInDate),
        AlertRuleSetData(ruleID: "default-spend-spike", kind: .spendSpike, scope: .global, updatedAt: builtInDate),
        AlertRuleSetData(ruleID: "default-spend-spike-team", kind: .spendSpike, scope: Scope(kind: .team, id: "*"),
                         updatedAt: builtInDate),
        AlertRuleSetData(ruleID: "default-error-rate-spike", kind: .errorRateSpike, scope: .global, updatedAt: builtInDate),
        AlertRuleSetData(ruleID: "default-latency-spike", kind: .latencySpike, scope: .global, updatedAt: builtInDate),
        AlertRuleSetData(ruleID: "default-unpriced-model", kind: .unpricedModel, scope: .global, updatedAt: builtInDate),
        AlertRuleSetData(ruleID: "default-estimated-usage", kind: .estimatedUsage, scope: .global, updatedAt: builtInDate),
    ]

    /// The ids of the built-in rules.
    public static let builtInIDs: Set<String> = Set(builtIn.map(\.ruleID))

    /// Every rule in force, enabled or not, sorted by id: the built-ins, each replaced by the rule set
    /// with its id if there is one, and every other rule set.
    public static func effective(overrides: [String: AlertRuleSetData]) -> [AlertRule] {
        var byID: [String: AlertRuleSetData] = [:]
        for rule in builtIn { byID[rule.ruleID] = rule }
        for (id, rule) in overrides { byID[id] = rule }
        return byID.values.sorted { $0.ruleID < $1.ruleID }.map(AlertRule.init)
    }
}
