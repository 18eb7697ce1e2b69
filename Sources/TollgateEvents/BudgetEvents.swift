public import Foundation

/// A `tollgate.budget.decision.v1` event.
public typealias BudgetDecisionEvent = CloudEvent<BudgetDecisionData>
/// A `tollgate.alert.v1` event.
public typealias AlertEvent = CloudEvent<AlertData>

/// The length of a budget period.
///
/// Periods are calendar periods in the budget's time zone: a day runs from local midnight to local
/// midnight, a week from Monday, a month from the first. A lifetime budget never resets.
public enum PeriodKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// One calendar day.
    case day
    /// One calendar week, starting Monday.
    case week
    /// One calendar month.
    case month
    /// Forever: the budget never resets.
    case lifetime
}

/// What happens when no cheaper model is configured for a downgrade.
public enum OnNoDowngrade: String, Sendable, Hashable, Codable, CaseIterable {
    /// Refuse the request.
    case block
    /// Let the request through unchanged.
    case pass
}

/// One period of a budget: its kind, time zone and bounds.
///
/// `end` is exclusive and is absent exactly when the kind is `lifetime`; decoding rejects other
/// combinations.
public struct BudgetPeriod: Sendable, Hashable, Codable {
    /// The kind of period.
    public var kind: PeriodKind
    /// The IANA time zone the period's calendar boundaries are in, such as `"Europe/Berlin"`.
    public var timeZone: String
    /// The first instant of the period (for lifetime budgets, when the budget was created).
    public var start: Date
    /// The instant after the period; absent for lifetime budgets.
    public var end: Date?

    /// Creates a period.
    public init(kind: PeriodKind, timeZone: String, start: Date, end: Date?) {
        self.kind = kind
        self.timeZone = timeZone
        self.start = start
        self.end = end
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case timeZone = "time_zone"
        case start
        case end
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            kind: try container.decode(PeriodKind.self, forKey: .kind),
            timeZone: try container.decode(String.self, forKey: .timeZone),
            start: try container.decode(Date.self, forKey: .start),
            end: try container.decodeIfPresent(Date.self, forKey: .end))
        guard (kind == .lifetime) == (end == nil) else {
            throw DecodingError.dataCorruptedError(
                forKey: .end, in: container,
                debugDescription: "end must be absent exactly for lifetime periods (kind \(kind.rawValue))")
        }
    }
}

/// The data of `tollgate.budget.decision.v1`: the current state of one budget.
///
/// The budget service folds usage into spend per budget and period and publishes a decision whenever
/// the state or the numbers change. The topic `budget-decisions` is compacted and keyed by
/// `budget_id`, so its latest value per key is the budget's current state; ingress folds it into an
/// in-memory table and acts on `action`.
///
/// Between two decisions ingress keeps its own ledger of in-flight reservations, so a decision is a
/// floor, not the whole truth: requests that were in flight when the limit was reached still finish
/// and are still counted. That is why `remaining_nano_usd` (`limit − spent`) **may be negative**,
/// and `used_percent_bp` may exceed 10 000.
///
/// `watermark` says which usage events the decision includes: for each partition of the usage
/// topic, the next offset not yet folded in, so a reader can tell whether a decision is older than
/// the usage it has seen.
public struct BudgetDecisionData: EventPayload {
    public static let eventType = "tollgate.budget.decision.v1"
    public static let topic = "budget-decisions"
    /// The budget id.
    public var messageKey: String { budgetID }

    /// The state of a budget.
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        /// Under every level.
        case ok
        /// An alert level is reached.
        case alert
        /// A downgrade level is reached: requests go to cheaper models.
        case downgrade
        /// A block level is reached: requests are refused.
        case blocked
    }

    /// What ingress does with requests in the budget's scope.
    public enum Action: String, Sendable, Hashable, Codable, CaseIterable {
        /// Nothing.
        case none
        /// Nothing to requests; alerts are raised.
        case alert
        /// Rewrite the model with `downgrade`.
        case downgrade
        /// Refuse requests.
        case block
    }

    /// The usage included in a decision.
    public struct Watermark: Sendable, Hashable, Codable {
        /// For each partition of the usage topic, the next offset not yet folded in. In JSON the
        /// partition number is written as a string key (`{"0": 1042, "1": 998}`).
        public var usageOffsets: [Int: Int64]
        /// When the budget service had folded in exactly these offsets.
        public var asOf: Date

        /// Creates a watermark.
        public init(usageOffsets: [Int: Int64], asOf: Date) {
            self.usageOffsets = usageOffsets
            self.asOf = asOf
        }

        enum CodingKeys: String, CodingKey {
            case usageOffsets = "usage_offsets"
            case asOf = "as_of"
        }
    }

    /// The budget's id.
    public var budgetID: String
    /// What the budget covers.
    public var scope: Scope
    /// The current period.
    public var period: BudgetPeriod
    /// The budget's state.
    public var state: State
    /// The budget's limit for the period.
    public var limitNanoUSD: Money
    /// Spend in the period so far.
    public var spentNanoUSD: Money
    /// `limit − spent`; negative after an overshoot by requests that were in flight.
    public var remainingNanoUSD: Money
    /// `spent / limit` in basis points (10 000 = 100 %), rounded down; may exceed 10 000.
    public var usedPercentBP: Int64
    /// What ingress does now.
    public var action: Action
    /// The downgrade map (requested model → cheaper model) applied when `action` is `downgrade`.
    public var downgrade: [String: String]
    /// What ingress does, when downgrading, with a model missing from `downgrade`.
    public var onNoDowngrade: OnNoDowngrade
    /// The usage this decision includes.
    public var watermark: Watermark
    /// When the decision was made.
    public var decidedAt: Date

    /// Creates the data of a budget decision event.
    public init(
        budgetID: String, scope: Scope, period: BudgetPeriod, state: State, limitNanoUSD: Money,
        spentNanoUSD: Money, remainingNanoUSD: Money, usedPercentBP: Int64, action: Action,
        downgrade: [String: String] = [:], onNoDowngrade: OnNoDowngrade, watermark: Watermark,
        decidedAt: Date
    ) {
        self.budgetID = budgetID
        self.scope = scope
        self.period = period
        self.state = state
        self.limitNanoUSD = limitNanoUSD
        self.spentNanoUSD = spentNanoUSD
        self.remainingNanoUSD = remainingNanoUSD
        self.usedPercentBP = usedPercentBP
        self.action = action
        self.downgrade = downgrade
        self.onNoDowngrade = onNoDowngrade
        self.watermark = watermark
        self.decidedAt = decidedAt
    }

    enum CodingKeys: String, CodingKey {
        case budgetID = "budget_id"
        case scope
        case period
        case state
        case limitNanoUSD = "limit_nano_usd"
        case spentNanoUSD = "spent_nano_usd"
        case remainingNanoUSD = "remaining_nano_usd"
        case usedPercentBP = "used_percent_bp"
        case action
        case downgrade
        case onNoDowngrade = "on_no_downgrade"
        case watermark
        case decidedAt = "decided_at"
    }
}

/// A value observed by an alert rule: a string, an integer or a boolean, written as the bare JSON
/// value.
///
/// There is deliberately no floating-point case: rates and ratios are given as integers in a named
/// unit (`error_rate_bp`, `spent_nano_usd`) or as display strings.
public enum AlertValue: Sendable, Hashable, Codable, ExpressibleByStringLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral
{
    /// A string.
    case string(String)
    /// An integer.
    case int(Int64)
    /// A boolean.
    case bool(Bool)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "alert value must be a string, an integer or a boolean")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        }
    }
}

/// The data of `tollgate.alert.v1`: an alert raised by the alerts service.
///
/// Each alert is published as an event (and delivered to webhooks, Slack and email). `alert_id` is
/// deterministic, built from the rule, scope, period and level (see ``makeAlertID(ruleID:scope:periodStart:levelPercent:)``),
/// so a re-raised alert has the same id and every consumer and sink can drop the duplicate. The
/// `alerts` topic is keyed by `alert_id`.
public struct AlertData: EventPayload {
    public static let eventType = "tollgate.alert.v1"
    public static let topic = "alerts"
    /// The alert id.
    public var messageKey: String { alertID }

    /// What kind of condition raised the alert.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// A budget crossed a threshold level (50/80/100 % by default).
        case budgetThreshold = "budget_threshold"
        /// A budget started to downgrade or block.
        case budgetAction = "budget_action"
        /// The forecast at the current burn rate crosses the limit before the period ends.
        case burnRate = "burn_rate"
        /// Spend is far above its usual level.
        case spendSpike = "spend_spike"
        /// The error rate is far above its usual level.
        case errorRateSpike = "error_rate_spike"
        /// Latency is far above its usual level.
        case latencySpike = "latency_spike"
        /// A model was served that the catalog has no price for.
        case unpricedModel = "unpriced_model"
        /// Usage is being estimated instead of reported by the provider.
        case estimatedUsage = "estimated_usage"
        /// Events were lost: the publisher's queue overflowed while the log (or its spool) refused them.
        case eventsDropped = "events_dropped"
    }

    /// How urgent an alert is.
    public enum Severity: String, Sendable, Hashable, Codable, CaseIterable {
        /// For information.
        case info
        /// Needs attention soon.
        case warning
        /// Needs attention now.
        case critical
    }

    /// The deterministic de-duplication key.
    public var alertID: String
    /// The rule that raised the alert.
    public var ruleID: String
    /// The kind of condition.
    public var kind: Kind
    /// How urgent it is.
    public var severity: Severity
    /// What the alert is about.
    public var scope: Scope
    /// The start of the period the alert is about: the budget period for budget alerts; the hour,
    /// window or day of the other rules' alerts (the alerts service's rules are raised once per period).
    public var periodStart: Date?
    /// The threshold level crossed, in percent, for threshold alerts.
    public var levelPercent: Int?
    /// A one-line title.
    public var title: String
    /// The full message.
    public var message: String
    /// The observations behind the alert, by name (such as `"spent_nano_usd": 80000000000`).
    public var observed: [String: AlertValue]
    /// When the alert was raised.
    public var raisedAt: Date

    /// Creates the data of an alert event.
    public init(
        alertID: String, ruleID: String, kind: Kind, severity: Severity, scope: Scope,
        periodStart: Date? = nil, levelPercent: Int? = nil, title: String, message: String,
        observed: [String: AlertValue] = [:], raisedAt: Date
    ) {
        self.alertID = alertID
        self.ruleID = ruleID
        self.kind = kind
        self.severity = severity
        self.scope = scope
        self.periodStart = periodStart
        self.levelPercent = levelPercent
        self.title = title
        self.message = message
        self.observed = observed
        self.raisedAt = raisedAt
    }

    /// The deterministic alert id for a rule, scope, period and level:
    /// `<rule_id>|<kind>:<id>|<period start or ->|<level or ->`, such as
    /// `budget-80|team:search|2026-11-01T00:00:00.000Z|80`.
    public static func makeAlertID(
        ruleID: String, scope: Scope, periodStart: Date?, levelPercent: Int?
    ) -> String {
        let period = periodStart.map(EventTime.format) ?? "-"
        let level = levelPercent.map(String.init) ?? "-"
        return "\(ruleID)|\(scope)|\(period)|\(level)"
    }

    enum CodingKeys: String, CodingKey {
        case alertID = "alert_id"
        case ruleID = "rule_id"
        case kind
        case severity
        case scope
        case periodStart = "period_start"
        case levelPercent = "level_percent"
        case title
        case message
        case observed
        case raisedAt = "raised_at"
    }
}
