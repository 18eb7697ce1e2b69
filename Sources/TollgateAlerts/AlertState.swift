import Foundation
public import TollgateEvents
import TollgateLog

extension AlertFold {
    /// Everything the alerts fold remembers: the rules and budgets of the control topic, the alert ids
    /// already raised, and short histories of spend and traffic for the spike rules.
    ///
    /// The state is `Codable` so that the alerts service can snapshot it after each batch and restore it
    /// at start, and bounded: ``AlertFold/finishBatch(_:)`` forgets hour and window buckets older than
    /// their rule's baseline, series idle for longer than it, and raised ids whose period is over (see
    /// ``RaisedAlerts``). Times are the events' own (the latest seen is ``clock``), never the wall
    /// clock, so folding the same events always gives the same state and alerts.
    public struct State: Sendable, Codable {
        /// Alert rules set on the control topic, by id (they replace built-in rules with the same id).
        public private(set) var ruleSets: [String: AlertRuleSetData] = [:]
        /// Budgets of the control topic, by id.
        public private(set) var budgets: [String: BudgetSetData] = [:]
        /// Budgets deleted on the control topic: their decisions raise nothing.
        public private(set) var deletedBudgets: Set<String> = []
        /// Alert ids already raised.
        public internal(set) var raised = RaisedAlerts()
        /// The latest event time folded in (usage receipt, decision time), in milliseconds since the
        /// Unix epoch; `nil` before the first.
        public internal(set) var clock: Int64?
        /// The enabled rules, sorted by id (derived from ``ruleSets``; not encoded).
        public private(set) var rules: [AlertRule] = AlertRule.effective(overrides: [:]).filter(\.enabled)
        /// Spend per hour, by rule id and series scope (`spend_spike`).
        var spend: [String: [String: SpendSeries]] = [:]
        /// Requests per window, by rule id and series (`error_rate_spike`, `latency_spike`).
        var traffic: [String: [String: TrafficSeries]] = [:]
        /// Per `topic#partition` of the usage and decision topics, the next offset not yet folded in.
        var watermarks: [String: Int64] = [:]
        /// Usage event ids seen lately (the cost service may publish one twice).
        var recentUsage = RecentIDs(capacity: 4_096)

        /// An empty state: built-in rules only, no budgets, nothing raised.
        public init() {}

        /// The state a (re)started service begins from: the rules and budgets of the control topic, and
        /// the ids of alerts already on the alerts topic, so that a restart never raises them again.
        ///
        /// Ids given here are kept until their condition recurs (which dates them) or for
        /// ``RaisedAlerts/undatedRetentionMs`` after the first batch, longer than the alerts topic keeps
        /// them.
        public init(control: [AnyControlEvent], raisedAlertIDs: some Sequence<String> = [String]()) {
            for event in control { apply(event) }
            for id in raisedAlertIDs { raised.insertUndated(id) }
        }

        /// Applies one control event (keys and routes are ignored).
        public mutating func apply(_ event: AnyControlEvent) {
            switch event {
            case .alertRuleSet(let set):
                if ruleSets[set.data.ruleID] != set.data {
                    ruleSets[set.data.ruleID] = set.data
                    forgetHistory(ofRule: set.data.ruleID)
                }
            case .alertRuleDeleted(let deleted):
                if ruleSets.removeValue(forKey: deleted.data.ruleID) != nil {
                    forgetHistory(ofRule: deleted.data.ruleID)
                }
            case .budgetSet(let set):
                budgets[set.data.budgetID] = set.data
                deletedBudgets.remove(set.data.budgetID)
            case .budgetDeleted(let deleted):
                budgets[deleted.data.budgetID] = nil
                deletedBudgets.insert(deleted.data.budgetID)
            case .keyCreated, .keyRevoked, .routeSet, .routeDeleted:
                return
            }
            rules = AlertRule.effective(overrides: ruleSets).filter(\.enabled)
        }

        /// Notes alert ids as raised (for example the ids on the alerts topic, added to a restored
        /// snapshot at start).
        public mutating func markRaised(_ alertIDs: some Sequence<String>) {
            for id in alertIDs where !raised.contains(id) { raised.insertUndated(id) }
        }

        /// Whether an alert with this id was raised (or seeded).
        public func hasRaised(_ alertID: String) -> Bool { raised.contains(alertID) }

        /// A changed or deleted rule starts its spike histories afresh (its windows or baseline may
        /// differ); the ids it raised stay remembered.
        private mutating func forgetHistory(ofRule ruleID: String) {
            spend[ruleID] = nil
            traffic[ruleID] = nil
        }

        /// Forgets what no rule needs any more: buckets older than their rule's baseline, series idle
        /// for longer than it, histories of rules no longer enabled, and raised ids past their period.
        mutating func prune() {
            guard let clock else { return }
            let enabled = Dictionary(rules.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            spend = spend.filter { enabled[$0.key]?.kind == .spendSpike }
            for (ruleID, series) in spend {
                guard let rule = enabled[ruleID] else { continue }
                let oldest = AlertArithmetic.floorDivide(clock, AlertArithmetic.hourMs) - Int64(rule.baselineHours)
                spend[ruleID] = series.compactMapValues { series in
                    guard series.lastHour >= oldest else { return nil }
                    var kept = series
                    kept.hours = series.hours.filter { $0.key >= oldest }
                    return kept
                }
            }
            traffic = traffic.filter { [.errorRateSpike, .latencySpike].contains(enabled[$0.key]?.kind) }
            for (ruleID, series) in traffic {
                guard let rule = enabled[ruleID] else { continue }
                let windowMs = Int64(rule.windowMinutes) * 60_000
                let oldest = AlertArithmetic.floorDivide(clock, windowMs) - Int64(rule.baselineWindows)
                traffic[ruleID] = series.compactMapValues { series in
                    guard series.lastWindow >= oldest else { return nil }
                    var kept = series
                    kept.windows = series.windows.filter { $0.key >= oldest }
                    return kept
                }
            }
            raised.prune(clock: clock)
        }

        enum CodingKeys: String, CodingKey {
            case ruleSets = "rule_sets"
            case budgets
            case deletedBudgets = "deleted_budgets"
            case raised
            case clock
            case spend
            case traffic
            case watermarks
            case recentUsage = "recent_usage"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ruleSets = try c.decode([String: AlertRuleSetData].self, forKey: .ruleSets)
            budgets = try c.decode([String: BudgetSetData].self, forKey: .budgets)
            deletedBudgets = try c.decode(Set<String>.self, forKey: .deletedBudgets)
            raised = try c.decode(RaisedAlerts.self, forKey: .raised)
            clock = try c.decodeIfPresent(Int64.self, forKey: .clock)
            spend = try c.decode([String: [String: SpendSeries]].self, forKey: .spend)
            traffic = try c.decode([String: [String: TrafficSeries]].self, forKey: .traffic)
            watermarks = try c.decode([String: Int64].self, forKey: .watermarks)
            recentUsage = try c.decode(RecentIDs.self, forKey: .recentUsage)
            rules = AlertRule.effective(overrides: ruleSets).filter(\.enabled)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(ruleSets, forKey: .ruleSets)
            try c.encode(budgets, forKey: .budgets)
            try c.encode(deletedBudgets, forKey: .deletedBudgets)
            try c.encode(raised, forKey: .raised)
            try c.encodeIfPresent(clock, forKey: .clock)
            try c.encode(spend, forKey: .spend)
            try c.encode(traffic, forKey: .traffic)
            try c.encode(watermarks, forKey: .watermarks)
            try c.encode(recentUsage, forKey: .recentUsage)
        }
    }
}

/// The alert ids already raised, each remembered until its period is over.
///
/// An id is kept until `forgetAfter` (the end of the budget period, hour, window or day it is about,
/// plus ``graceMs`` for late events; never for lifetime budgets). Ids seeded from the alerts topic have
/// no known period: they are kept for ``undatedRetentionMs`` after the first prune, or dated when their
/// condition recurs. A condition whose id would already be forgotten (its period ended more than the
/// grace ago) raises nothing: that is how late events stay quiet.
public struct RaisedAlerts: Sendable, Codable, Hashable {
    /// How long after its period an id is kept, for late events: one day.
    public static let graceMs: Int64 = 86_400_000
    /// How long an undated (seeded) id is kept: 35 days, longer than the alerts topic's retention.
    public static let undatedRetentionMs: Int64 = 35 * 86_400_000

    /// Id → the time (milliseconds since the Unix epoch) after which it may be forgotten.
    public private(set) var forgetAfter: [String: Int64] = [:]
    /// Seeded ids not dated yet.
    public private(set) var undated: Set<String> = []

    /// No ids.
    public init() {}

    /// The number of ids remembered.
    public var count: Int { forgetAfter.count + undated.count }

    /// Whether the id is remembered.
    public func contains(_ id: String) -> Bool { forgetAfter[id] != nil || undated.contains(id) }

    /// Remembers an id whose period is unknown.
    mutating func insertUndated(_ id: String) {
        if forgetAfter[id] == nil { undated.insert(id) }
    }

    /// Records a raise of `id`, remembered until `until`; returns whether it is new (the alert should be
    /// published). A known id is only re-dated. An id whose `until` is before `clock` is stale: nothing
    /// is raised nor remembered.
    mutating func raise(_ id: String, until: Int64, clock: Int64?) -> Bool {
        if undated.remove(id) != nil {
            forgetAfter[id] = until
            return false
        }
        if let known = forgetAfter[id] {
            forgetAfter[id] = max(known, until)
            return false
        }
        if let clock, until < clock { return false }
        forgetAfter[id] = until
        return true
    }

    /// Forgets ids past their time and dates undated ones.
    mutating func prune(clock: Int64) {
        forgetAfter = forgetAfter.filter { $0.value >= clock }
        let until = AlertArithmetic.saturatingAdd(clock, Self.undatedRetentionMs)
        for id in undated { forgetAfter[id] = until }
        undated.removeAll()
    }

    enum CodingKeys: String, CodingKey {
        case forgetAfter = "forget_after"
        case undated
    }
}

/// Spend per hour of one series (one scope of one `spend_spike` rule).
struct SpendSeries: Sendable, Codable, Hashable {
    /// The first hour (hours since the Unix epoch) spend was seen in.
    var firstHour: Int64
    /// The latest hour spend was seen in.
    var lastHour: Int64
    /// Hour → spend and whether it crossed the threshold.
    var hours: [Int64: Bucket] = [:]

    struct Bucket: Sendable, Codable, Hashable {
        var spentNanoUSD: Int64 = 0
        var crossed = false

        enum CodingKeys: String, CodingKey {
            case spentNanoUSD = "spent_nano_usd"
            case crossed
        }
    }

    enum CodingKeys: String, CodingKey {
        case firstHour = "first_hour"
        case lastHour = "last_hour"
        case hours
    }
}

/// Requests per window of one series (one scope, provider and model of one error-rate or latency rule).
struct TrafficSeries: Sendable, Codable, Hashable {
    /// The latest window (windows since the Unix epoch) a request was seen in.
    var lastWindow: Int64
    /// Window → counts.
    var windows: [Int64: Bucket] = [:]

    struct Bucket: Sendable, Codable, Hashable {
        /// Requests that count for the error rate (answered, or failed by the provider or gateway).
        var requests: Int64 = 0
        /// Of those, the failures (gateway errors, provider 429 and 5xx).
        var errors: Int64 = 0
        /// Successful requests with a latency.
        var timed: Int64 = 0
        /// Their latencies added up, in milliseconds.
        var latencySumMs: Int64 = 0
        /// Whether the window crossed the rule's threshold.
        var crossed = false

        enum CodingKeys: String, CodingKey {
            case requests
            case errors
            case timed
            case latencySumMs = "latency_sum_ms"
            case crossed
        }
    }

    enum CodingKeys: String, CodingKey {
        case lastWindow = "last_window"
        case windows
    }
}

