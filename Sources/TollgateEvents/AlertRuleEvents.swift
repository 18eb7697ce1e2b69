public import Foundation

/// A `tollgate.control.alert_rule.set.v1` event.
public typealias AlertRuleSetEvent = CloudEvent<AlertRuleSetData>
/// A `tollgate.control.alert_rule.deleted.v1` event.
public typealias AlertRuleDeletedEvent = CloudEvent<AlertRuleDeletedData>

/// The data of `tollgate.control.alert_rule.set.v1`: an alert rule was created or changed.
///
/// The whole definition is carried every time (the latest event per `alert_rule:<id>` is the
/// definition). The alerts service has built-in default rules (ids starting with `default-`); a rule set
/// with the same id replaces the default, so `enabled: false` switches a default off.
///
/// **Scope.** A rule's scope selects what it watches, with `*` as a wildcard id:
///
/// - `global:*` — budget rules (`budget_threshold`, `budget_action`, `burn_rate`): every budget.
///   Traffic rules: all traffic taken together (one series).
/// - `<kind>:*` (such as `team:*`, or `tag:feature=*` for every value of the tag `feature`) — budget
///   rules: every budget whose scope has that kind (and tag name). Traffic rules: one series per value
///   of that attribute in traffic (per team, per key, …); requests without the attribute (no customer,
///   no such tag) are not watched.
/// - `<kind>:<id>` (such as `team:search`) — budget rules: budgets whose scope is exactly that.
///   Traffic rules: the one series of requests in that scope.
///
/// The traffic rules `error_rate_spike`, `latency_spike`, `unpriced_model` and `estimated_usage`
/// further split every series by provider and served model.
///
/// **Parameters.** Integers only (basis points, nano-USD, milliseconds, counts). Each parameter applies
/// to some kinds only; absent means the kind's default (documented with each field). Decoding rejects a
/// parameter on a kind it does not apply to, and values out of range, naming the field.
public struct AlertRuleSetData: ControlPayload {
    public static let eventType = "tollgate.control.alert_rule.set.v1"
    /// `alert_rule:<rule_id>`.
    public var entityKey: String { "alert_rule:" + ruleID }

    /// The kinds a rule can have: every ``AlertData/Kind`` except `events_dropped`, which the
    /// gateway raises by itself.
    public static let ruleKinds: [AlertData.Kind] = [
        .budgetThreshold, .budgetAction, .burnRate, .spendSpike, .errorRateSpike, .latencySpike,
        .unpricedModel, .estimatedUsage,
    ]
    /// The longest allowed ``ruleID``.
    public static let maxRuleIDLength = 100
    /// The allowed range of each entry of ``levelsPercent``.
    public static let levelPercentRange = 1...1000
    /// The allowed range of ``factorBP``: above 1× (10 000) up to 100×.
    public static let factorBPRange: ClosedRange<Int64> = 10_001...1_000_000
    /// The allowed range of ``baselineHours``: up to one week.
    public static let baselineHoursRange = 1...168
    /// The allowed range of ``windowMinutes``.
    public static let windowMinutesRange = 1...60
    /// The allowed range of ``baselineWindows``.
    public static let baselineWindowsRange = 1...288
    /// The allowed range of ``minRequests``.
    public static let minRequestsRange = 1...1_000_000
    /// The allowed range of ``errorRateBP``.
    public static let errorRateBPRange = 1...10_000
    /// The allowed range of ``minElapsedBP``.
    public static let minElapsedBPRange = 1...9_999

    /// The rule's id: 1 to 100 letters, digits, `-`, `_`, `.` or `:`.
    public var ruleID: String
    /// What the rule watches; one of ``ruleKinds``.
    public var kind: AlertData.Kind
    /// What the rule applies to (see the type's discussion for wildcards).
    public var scope: Scope
    /// Whether the rule raises alerts.
    public var enabled: Bool
    /// The severity of every alert of the rule; absent: the kind's own (by threshold level for
    /// `budget_threshold`: 100 % and above critical, 80 % warning, below info; `budget_action`: block
    /// critical, downgrade warning; `error_rate_spike` critical; `burn_rate`, `spend_spike`,
    /// `latency_spike` and `unpriced_model` warning; `estimated_usage` info).
    public var severity: AlertData.Severity?
    /// The names of the delivery channels (configured in the alerts service) that get the rule's
    /// alerts; empty: every channel that accepts the alert's scope.
    public var channels: [String]
    /// `budget_threshold`: the levels, in percent of the limit (1...1000, distinct). Default 50, 80, 100.
    public var levelsPercent: [Int]?
    /// `spend_spike`, `error_rate_spike`, `latency_spike`: how far above its baseline the current value
    /// must be, in basis points of the baseline (30 000 = 3×; above 10 000). Default 30 000 for spend
    /// and error rate, 20 000 for latency.
    public var factorBP: Int64?
    /// `spend_spike`: the least spend in the hour that can alert, in nano-USD. Default $10.
    public var minNanoUSD: Money?
    /// `spend_spike`: how many previous hours make the baseline (1...168); the scope must have that much
    /// history before it can alert. Default 24.
    public var baselineHours: Int?
    /// `error_rate_spike`, `latency_spike`: the length of a window in minutes (1...60). Default 5.
    public var windowMinutes: Int?
    /// `error_rate_spike`, `latency_spike`: how many previous windows make the baseline (1...288).
    /// Default 12.
    public var baselineWindows: Int?
    /// `error_rate_spike`, `latency_spike`: the least number of requests in the window (and, for
    /// latency, in the baseline) that can alert. Default 20.
    public var minRequests: Int?
    /// `error_rate_spike`: the least error rate in the window that can alert, in basis points
    /// (1...10 000). Default 1 000 (10 %).
    public var errorRateBP: Int?
    /// `latency_spike`: the least mean latency in the window that can alert, in milliseconds. Default
    /// 2 000.
    public var minLatencyMs: Int64?
    /// `burn_rate`: alert only if the budget runs out at least this long before its period ends, in
    /// milliseconds. Default 3 600 000 (one hour).
    public var leadMs: Int64?
    /// `burn_rate`: forecast only once this share of the period has elapsed, in basis points
    /// (1...9 999). Default 1 000 (10 %).
    public var minElapsedBP: Int?
    /// When the rule was last changed.
    public var updatedAt: Date

    /// Creates the data of an alert-rule-set event.
    public init(
        ruleID: String, kind: AlertData.Kind, scope: Scope, enabled: Bool = true,
        severity: AlertData.Severity? = nil, channels: [String] = [], levelsPercent: [Int]? = nil,
        factorBP: Int64? = nil, minNanoUSD: Money? = nil, baselineHours: Int? = nil,
        windowMinutes: Int? = nil, baselineWindows: Int? = nil, minRequests: Int? = nil,
        errorRateBP: Int? = nil, minLatencyMs: Int64? = nil, leadMs: Int64? = nil,
        minElapsedBP: Int? = nil, updatedAt: Date
    ) {
        self.ruleID = ruleID
        self.kind = kind
        self.scope = scope
        self.enabled = enabled
        self.severity = severity
        self.channels = channels
        self.levelsPercent = levelsPercent
        self.factorBP = factorBP
        self.minNanoUSD = minNanoUSD
        self.baselineHours = baselineHours
        self.windowMinutes = windowMinutes
        self.baselineWindows = baselineWindows
        self.minRequests = minRequests
        self.errorRateBP = errorRateBP
        self.minLatencyMs = minLatencyMs
        self.leadMs = leadMs
        self.minElapsedBP = minElapsedBP
        self.updatedAt = updatedAt
    }

    /// One thing wrong with a rule: the JSON field and what is wrong with it.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The JSON field name, such as `"factor_bp"`.
        public var field: String
        /// What is wrong, in words (it names the field).
        public var message: String

        public var description: String { message }
    }

    /// The kinds each parameter applies to, by JSON field name.
    public static let parameterKinds: [String: Set<AlertData.Kind>] = [
        CodingKeys.levelsPercent.rawValue: [.budgetThreshold],
        CodingKeys.factorBP.rawValue: [.spendSpike, .errorRateSpike, .latencySpike],
        CodingKeys.minNanoUSD.rawValue: [.spendSpike],
        CodingKeys.baselineHours.rawValue: [.spendSpike],
        CodingKeys.windowMinutes.rawValue: [.errorRateSpike, .latencySpike],
        CodingKeys.baselineWindows.rawValue: [.errorRateSpike, .latencySpike],
        CodingKeys.minRequests.rawValue: [.errorRateSpike, .latencySpike],
        CodingKeys.errorRateBP.rawValue: [.errorRateSpike],
        CodingKeys.minLatencyMs.rawValue: [.latencySpike],
        CodingKeys.leadMs.rawValue: [.burnRate],
        CodingKeys.minElapsedBP.rawValue: [.burnRate],
    ]

    /// Every problem of the definition, in field order (empty when it is usable). Decoding throws the
    /// first one; the CLI and the admin API can show them all.
    public var problems: [Problem] {
        var problems: [Problem] = []
        func add(_ key: CodingKeys, _ message: String) { problems.append(Problem(field: key.rawValue, message: message)) }
        let idCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.:"))
        if ruleID.isEmpty || ruleID.count > Self.maxRuleIDLength
            || ruleID.unicodeScalars.contains(where: { !idCharacters.contains($0) || !$0.isASCII })
        {
            add(.ruleID, "rule_id must be 1 to \(Self.maxRuleIDLength) ASCII letters, digits and - _ . :, got \"\(ruleID)\"")
        }
        if !Self.ruleKinds.contains(kind) {
            add(.kind, "kind \(kind.rawValue) is not a rule kind; expected one of "
                + Self.ruleKinds.map(\.rawValue).joined(separator: ", "))
        }
        if !scope.isValid {
            add(.scope, "invalid scope id \"\(scope.id)\" for scope kind \(scope.kind.rawValue)")
        }
        if channels.contains(where: \.isEmpty) { add(.channels, "channels must not contain an empty name") }
        let present: [(CodingKeys, Bool)] = [
            (.levelsPercent, levelsPercent != nil), (.factorBP, factorBP != nil), (.minNanoUSD, minNanoUSD != nil),
            (.baselineHours, baselineHours != nil), (.windowMinutes, windowMinutes != nil),
            (.baselineWindows, baselineWindows != nil), (.minRequests, minRequests != nil),
            (.errorRateBP, errorRateBP != nil), (.minLatencyMs, minLatencyMs != nil), (.leadMs, leadMs != nil),
            (.minElapsedBP, minElapsedBP != nil),
        ]
        for (key, isPresent) in present where isPresent {
            let kinds = Self.parameterKinds[key.rawValue] ?? []
            if !kinds.contains(kind) {
                let names = Self.ruleKinds.filter(kinds.contains).map(\.rawValue).joined(separator: ", ")
                add(key, "\(key.rawValue) applies only to rules of kind \(names), not \(kind.rawValue)")
            }
        }
        if let levelsPercent {
            if levelsPercent.isEmpty { add(.levelsPercent, "levels_percent must not be empty") }
            for level in levelsPercent where !Self.levelPercentRange.contains(level) {
                add(.levelsPercent, "levels_percent must be in 1...1000, got \(level)")
            }
            if Set(levelsPercent).count != levelsPercent.count { add(.levelsPercent, "levels_percent has a level twice") }
        }
        if let factorBP, !Self.factorBPRange.contains(factorBP) {
            add(.factorBP, "factor_bp must be in 10001...1000000 (above 1×), got \(factorBP)")
        }
        if let minNanoUSD, minNanoUSD.nanoUSD < 0 { add(.minNanoUSD, "min_nano_usd must not be negative, got \(minNanoUSD.nanoUSD)") }
        if let baselineHours, !Self.baselineHoursRange.contains(baselineHours) {
            add(.baselineHours, "baseline_hours must be in 1...168, got \(baselineHours)")
        }
        if let windowMinutes, !Self.windowMinutesRange.contains(windowMinutes) {
            add(.windowMinutes, "window_minutes must be in 1...60, got \(windowMinutes)")
        }
        if let baselineWindows, !Self.baselineWindowsRange.contains(baselineWindows) {
            add(.baselineWindows, "baseline_windows must be in 1...288, got \(baselineWindows)")
        }
        if let minRequests, !Self.minRequestsRange.contains(minRequests) {
            add(.minRequests, "min_requests must be in 1...1000000, got \(minRequests)")
        }
        if let errorRateBP, !Self.errorRateBPRange.contains(errorRateBP) {
            add(.errorRateBP, "error_rate_bp must be in 1...10000, got \(errorRateBP)")
        }
        if let minLatencyMs, minLatencyMs < 0 { add(.minLatencyMs, "min_latency_ms must not be negative, got \(minLatencyMs)") }
        if let leadMs, leadMs < 0 { add(.leadMs, "lead_ms must not be negative, got \(leadMs)") }
        if let minElapsedBP, !Self.minElapsedBPRange.contains(minElapsedBP) {
            add(.minElapsedBP, "min_elapsed_bp must be in 1...9999, got \(minElapsedBP)")
        }
        return problems
    }

    enum CodingKeys: String, CodingKey {
        case ruleID = "rule_id"
        case kind
        case scope
        case enabled
        case severity
        case channels
        case levelsPercent = "levels_percent"
        case factorBP = "factor_bp"
        case minNanoUSD = "min_nano_usd"
        case baselineHours = "baseline_hours"
        case windowMinutes = "window_minutes"
        case baselineWindows = "baseline_windows"
        case minRequests = "min_requests"
        case errorRateBP = "error_rate_bp"
        case minLatencyMs = "min_latency_ms"
        case leadMs = "lead_ms"
        case minElapsedBP = "min_elapsed_bp"
        case updatedAt = "updated_at"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            ruleID: try c.decode(String.self, forKey: .ruleID),
            kind: try c.decode(AlertData.Kind.self, forKey: .kind),
            scope: try c.decode(Scope.self, forKey: .scope),
            enabled: try c.decode(Bool.self, forKey: .enabled),
            severity: try c.decodeIfPresent(AlertData.Severity.self, forKey: .severity),
            channels: try c.decode([String].self, forKey: .channels),
            levelsPercent: try c.decodeIfPresent([Int].self, forKey: .levelsPercent),
            factorBP: try c.decodeIfPresent(Int64.self, forKey: .factorBP),
            minNanoUSD: try c.decodeIfPresent(Money.self, forKey: .minNanoUSD),
            baselineHours: try c.decodeIfPresent(Int.self, forKey: .baselineHours),
            windowMinutes: try c.decodeIfPresent(Int.self, forKey: .windowMinutes),
            baselineWindows: try c.decodeIfPresent(Int.self, forKey: .baselineWindows),
            minRequests: try c.decodeIfPresent(Int.self, forKey: .minRequests),
            errorRateBP: try c.decodeIfPresent(Int.self, forKey: .errorRateBP),
            minLatencyMs: try c.decodeIfPresent(Int64.self, forKey: .minLatencyMs),
            leadMs: try c.decodeIfPresent(Int64.self, forKey: .leadMs),
            minElapsedBP: try c.decodeIfPresent(Int.self, forKey: .minElapsedBP),
            updatedAt: try c.decode(Date.self, forKey: .updatedAt))
        if let problem = problems.first {
            throw DecodingError.dataCorruptedError(
                forKey: CodingKeys(rawValue: problem.field) ?? .ruleID, in: c, debugDescription: problem.message)
        }
    }
}

/// The data of `tollgate.control.alert_rule.deleted.v1`: an alert rule no longer exists.
///
/// Deleting a rule that replaced a built-in default brings the default back; to switch a default off,
/// set it with `enabled: false` instead.
public struct AlertRuleDeletedData: ControlPayload {
    public static let eventType = "tollgate.control.alert_rule.deleted.v1"
    /// `alert_rule:<rule_id>`.
    public var entityKey: String { "alert_rule:" + ruleID }

    /// The rule's id.
    public var ruleID: String
    /// When it was deleted.
    public var deletedAt: Date

    /// Creates the data of an alert-rule-deleted event.
    public init(ruleID: String, deletedAt: Date) {
        self.ruleID = ruleID
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case ruleID = "rule_id"
        case deletedAt = "deleted_at"
    }
}
