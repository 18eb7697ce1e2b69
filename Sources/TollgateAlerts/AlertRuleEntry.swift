public import Foundation
public import TollgateEvents
import TollgateBudget

/// An alert rule as people write it: an item of the `rules:` list of a rules file (and of the alerts
/// configuration), the body of `PUT /admin/alert-rules/{id}`, and, option by option,
/// `tollgate alerts rules set`. ``data(updatedAt:)`` turns it into the control event's data.
///
/// The keys are those of `tollgate.control.alert_rule.set.v1` (without `updated_at`), except that
/// values in awkward units are written in everyday ones, converted exactly (no floating point):
///
/// | entry key             | example     | event field      |
/// |-----------------------|-------------|------------------|
/// | `id`                  | `my-rule`   | `rule_id`        |
/// | `factor`              | `3`, `2.5`  | `factor_bp` (30 000, 25 000): up to 4 decimals |
/// | `min_usd`             | `"10"`      | `min_nano_usd`: exact dollars, up to 9 decimals |
/// | `error_rate_percent`  | `10`, `2.5` | `error_rate_bp` (1 000, 250): up to 2 decimals |
/// | `lead`                | `1h`, `1h30m` | `lead_ms`: units `ms`, `s`, `m`, `h`, `d` |
/// | `min_elapsed_percent` | `10`        | `min_elapsed_bp` (1 000): up to 2 decimals |
///
/// `levels_percent`, `baseline_hours`, `window_minutes`, `baseline_windows`, `min_requests` and
/// `min_latency_ms` are integers as in the event. `enabled` defaults to true, `channels` to none (every
/// channel that accepts the alert's scope), `severity` and every parameter to the kind's default. For
/// a built-in rule id (`default-…`), `kind` and `scope` default to the built-in rule's, so switching
/// one off takes two lines. Scopes are written `kind:id`: `global`, `team:search`, `team:*`,
/// `tag:feature=*`. Unknown keys are rejected, naming the key.
///
/// ```yaml
/// rules:
///   - id: search-thresholds
///     kind: budget_threshold
///     scope: team:search
///     levels_percent: [25, 50, 75, 90, 100]
///     channels: [search-email]
///   - id: spend-spike-per-key
///     kind: spend_spike
///     scope: key:*
///     factor: 5               # 5× the trailing baseline
///     min_usd: "25"
///     baseline_hours: 48
///   - id: default-burn-rate   # replaces the built-in rule of that id
///     lead: 1d
///     min_elapsed_percent: 5
///   - id: default-estimated-usage
///     enabled: false
/// ```
public struct AlertRuleEntry: Codable, Sendable, Hashable {
    /// The rule id (`rule_id`); in the admin API it comes from the path.
    public var id: String?
    /// One of ``AlertRuleSetData/ruleKinds``; optional for a built-in rule id.
    public var kind: String?
    /// `kind:id` (`global`, `team:*`, `tag:feature=*`); optional for a built-in rule id.
    public var scope: String?
    /// Whether the rule raises alerts; default true.
    public var enabled: Bool?
    /// `info`, `warning` or `critical`; default: the kind's own.
    public var severity: String?
    /// Delivery channel names; default none (every channel that accepts the alert's scope).
    public var channels: [String]?
    /// `budget_threshold`: levels in percent of the limit.
    public var levelsPercent: [Int]?
    /// `spend_spike`, `error_rate_spike`, `latency_spike`: the factor over the baseline, such as `3` or
    /// `2.5` (a trailing `x` is allowed).
    public var factor: String?
    /// `spend_spike`: the least spend in the hour that can alert, in dollars, such as `"10"`.
    public var minUSD: String?
    /// `spend_spike`: hours in the baseline.
    public var baselineHours: Int?
    /// `error_rate_spike`, `latency_spike`: window length in minutes.
    public var windowMinutes: Int?
    /// `error_rate_spike`, `latency_spike`: windows in the baseline.
    public var baselineWindows: Int?
    /// `error_rate_spike`, `latency_spike`: the least number of requests that can alert.
    public var minRequests: Int?
    /// `error_rate_spike`: the least error rate that can alert, in percent, such as `10` or `2.5`.
    public var errorRatePercent: String?
    /// `latency_spike`: the least mean latency that can alert, in milliseconds.
    public var minLatencyMs: Int64?
    /// `burn_rate`: how long before the period's end the budget must run out, such as `1h` or `1d`.
    public var lead: String?
    /// `burn_rate`: the share of the period that must have elapsed, in percent, such as `10`.
    public var minElapsedPercent: String?

    /// An entry; every field is optional here, ``data(updatedAt:)`` says what is missing.
    public init(id: String? = nil, kind: String? = nil, scope: String? = nil, enabled: Bool? = nil,
                severity: String? = nil, channels: [String]? = nil, levelsPercent: [Int]? = nil,
                factor: String? = nil, minUSD: String? = nil, baselineHours: Int? = nil,
                windowMinutes: Int? = nil, baselineWindows: Int? = nil, minRequests: Int? = nil,
                errorRatePercent: String? = nil, minLatencyMs: Int64? = nil, lead: String? = nil,
                minElapsedPercent: String? = nil) {
        self.id = id
        self.kind = kind
        self.scope = scope
        self.enabled = enabled
        self.severity = severity
        self.channels = channels
        self.levelsPercent = levelsPercent
        self.factor = factor
        self.minUSD = minUSD
        self.baselineHours = baselineHours
        self.windowMinutes = windowMinutes
        self.baselineWindows = baselineWindows
        self.minRequests = minRequests
        self.errorRatePercent = errorRatePercent
        self.minLatencyMs = minLatencyMs
        self.lead = lead
        self.minElapsedPercent = minElapsedPercent
    }

    /// The entry that gives back `data` (with the event's `updated_at` left out).
    public init(_ data: AlertRuleSetData) {
        self.init(
            id: data.ruleID, kind: data.kind.rawValue, scope: Self.text(of: data.scope), enabled: data.enabled,
            severity: data.severity?.rawValue, channels: data.channels, levelsPercent: data.levelsPercent,
            factor: data.factorBP.map { Self.decimalText($0, decimals: 4) },
            minUSD: data.minNanoUSD.map(Self.dollarText), baselineHours: data.baselineHours,
            windowMinutes: data.windowMinutes, baselineWindows: data.baselineWindows,
            minRequests: data.minRequests, errorRatePercent: data.errorRateBP.map { Self.decimalText(Int64($0), decimals: 2) },
            minLatencyMs: data.minLatencyMs, lead: data.leadMs.map(Self.durationText),
            minElapsedPercent: data.minElapsedBP.map { Self.decimalText(Int64($0), decimals: 2) })
    }

    // MARK: Problems

    /// One thing wrong with an entry: the entry key and what is wrong (the message starts with the key).
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The entry key, such as `"factor"`.
        public var field: String
        /// What is wrong, in words.
        public var message: String

        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }

        public var description: String { message }
    }

    /// Why an entry is not a usable rule: every problem found.
    public struct Invalid: Error, Sendable, Hashable, CustomStringConvertible {
        public var problems: [Problem]

        public init(_ problems: [Problem]) { self.problems = problems }

        public var description: String { problems.map(\.message).joined(separator: "; ") }
    }

    /// The control event's data, or ``Invalid`` with every problem, each naming its entry key.
    public func data(updatedAt: Date) throws -> AlertRuleSetData {
        var problems: [Problem] = []
        func add(_ key: CodingKeys, _ message: String) { problems.append(Problem(field: key.rawValue, message: message)) }
        let ruleID = id ?? ""
        if id == nil { add(.id, "id is required") }
        let builtIn = AlertRule.builtIn.first { $0.ruleID == ruleID }
        let kinds = AlertRuleSetData.ruleKinds.map(\.rawValue).joined(separator: ", ")

        var resolvedKind = builtIn?.kind
        if let kind {
            resolvedKind = AlertData.Kind(rawValue: kind).flatMap { AlertRuleSetData.ruleKinds.contains($0) ? $0 : nil }
            if resolvedKind == nil { add(.kind, "kind \"\(kind)\" is not a rule kind; expected one of \(kinds)") }
        } else if builtIn == nil {
            add(.kind, "kind is required (one of \(kinds))")
        }
        var resolvedScope = builtIn?.scope
        if let scope {
            do { resolvedScope = try Self.scope(scope) } catch {
                resolvedScope = nil
                add(.scope, "scope \(error)")
            }
        } else if builtIn == nil {
            add(.scope, "scope is required (such as global, team:*, team:search or tag:feature=*)")
        }
        var resolvedSeverity: AlertData.Severity?
        if let severity {
            resolvedSeverity = AlertData.Severity(rawValue: severity)
            if resolvedSeverity == nil { add(.severity, "severity must be info, warning or critical, got \"\(severity)\"") }
        }
        var factorBP: Int64?
        if let factor {
            let trimmed = factor.hasSuffix("x") || factor.hasSuffix("×") ? String(factor.dropLast()) : factor
            factorBP = Self.scaled(trimmed, decimals: 4)
            if factorBP == nil { add(.factor, "factor must be a number such as 3 or 2.5 (at most 4 decimals), got \"\(factor)\"") }
        }
        var minNanoUSD: Money?
        if let minUSD {
            do { minNanoUSD = try Money.parse(minUSD) } catch {
                add(.minUSD, "min_usd must be an exact amount of dollars such as \"10\" or \"12.50\": \(error)")
            }
        }
        var errorRateBP: Int?
        if let errorRatePercent {
            errorRateBP = Self.scaled(Self.trimPercent(errorRatePercent), decimals: 2).flatMap { Int(exactly: $0) }
            if errorRateBP == nil {
                add(.errorRatePercent, "error_rate_percent must be a percentage such as 10 or 2.5 (at most 2 decimals), got \"\(errorRatePercent)\"")
            }
        }
        var leadMs: Int64?
        if let lead {
            leadMs = Self.milliseconds(lead)
            if leadMs == nil { add(.lead, "lead must be a duration such as 1h, 30m or 1h30m (units ms, s, m, h, d), got \"\(lead)\"") }
        }
        var minElapsedBP: Int?
        if let minElapsedPercent {
            minElapsedBP = Self.scaled(Self.trimPercent(minElapsedPercent), decimals: 2).flatMap { Int(exactly: $0) }
            if minElapsedBP == nil {
                add(.minElapsedPercent, "min_elapsed_percent must be a percentage such as 10 or 2.5 (at most 2 decimals), got \"\(minElapsedPercent)\"")
            }
        }
        guard let resolvedKind, let resolvedScope else { throw Invalid(problems) }

        let data = AlertRuleSetData(
            ruleID: ruleID, kind: resolvedKind, scope: resolvedScope, enabled: enabled ?? true,
            severity: resolvedSeverity, channels: channels ?? [], levelsPercent: levelsPercent, factorBP: factorBP,
            minNanoUSD: minNanoUSD, baselineHours: baselineHours, windowMinutes: windowMinutes,
            baselineWindows: baselineWindows, minRequests: minRequests, errorRateBP: errorRateBP,
            minLatencyMs: minLatencyMs, leadMs: leadMs, minElapsedBP: minElapsedBP, updatedAt: updatedAt)
        let reported = Set(problems.map(\.field))
        for problem in data.problems {
            guard let key = Self.entryKey(forEventField: problem.field), !reported.contains(key.rawValue) else { continue }
            problems.append(Problem(field: key.rawValue, message: message(for: problem, key: key, kind: resolvedKind)))
        }
        guard problems.isEmpty else { throw Invalid(problems) }
        return data
    }

    /// A problem of the event data in the entry's terms.
    private func message(for problem: AlertRuleSetData.Problem, key: CodingKeys, kind: AlertData.Kind) -> String {
        if key.rawValue == problem.field { return problem.message }
        if let kinds = AlertRuleSetData.parameterKinds[problem.field], !kinds.contains(kind) {
            let names = AlertRuleSetData.ruleKinds.filter(kinds.contains).map(\.rawValue).joined(separator: ", ")
            return "\(key.rawValue) applies only to rules of kind \(names), not \(kind.rawValue)"
        }
        switch key {
        case .factor: return "factor must be above 1 and at most 100, got \(factor ?? "")"
        case .minUSD: return "min_usd must not be negative, got \(minUSD ?? "")"
        case .errorRatePercent: return "error_rate_percent must be above 0 and at most 100, got \(errorRatePercent ?? "")"
        case .minElapsedPercent: return "min_elapsed_percent must be above 0 and below 100, got \(minElapsedPercent ?? "")"
        case .id: return "id" + problem.message.dropFirst("rule_id".count)
        default: return "\(key.rawValue): \(problem.message)"
        }
    }

    // MARK: Keys

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id
        case kind
        case scope
        case enabled
        case severity
        case channels
        case levelsPercent = "levels_percent"
        case factor
        case minUSD = "min_usd"
        case baselineHours = "baseline_hours"
        case windowMinutes = "window_minutes"
        case baselineWindows = "baseline_windows"
        case minRequests = "min_requests"
        case errorRatePercent = "error_rate_percent"
        case minLatencyMs = "min_latency_ms"
        case lead
        case minElapsedPercent = "min_elapsed_percent"
    }

    /// Every key an entry may have, in documentation order.
    public static let keys: [String] = CodingKeys.allCases.map(\.rawValue)

    /// The kind-specific parameter keys, in documentation order.
    public static let parameterKeys: [String] = [
        CodingKeys.levelsPercent, .factor, .minUSD, .baselineHours, .windowMinutes, .baselineWindows, .minRequests,
        .errorRatePercent, .minLatencyMs, .lead, .minElapsedPercent,
    ].map(\.rawValue)

    /// The event field each entry key that differs from it stands for.
    private static let eventFields: [CodingKeys: String] = [
        .id: "rule_id", .factor: "factor_bp", .minUSD: "min_nano_usd", .errorRatePercent: "error_rate_bp",
        .lead: "lead_ms", .minElapsedPercent: "min_elapsed_bp",
    ]

    /// The event field (`factor_bp`) of an entry key (`factor`).
    public static func eventField(forKey key: String) -> String {
        CodingKeys(rawValue: key).flatMap { eventFields[$0] } ?? key
    }

    static func entryKey(forEventField field: String) -> CodingKeys? {
        eventFields.first { $0.value == field }?.key ?? CodingKeys(rawValue: field)
    }

    /// Keys of the event that people might write in an entry, with the entry key to use instead.
    private static let renamed: [String: String] = [
        "rule_id": "id", "factor_bp": "factor (3 = 3×)", "min_nano_usd": "min_usd (dollars, such as \"10\")",
        "error_rate_bp": "error_rate_percent", "lead_ms": "lead (such as 1h)", "min_elapsed_bp": "min_elapsed_percent",
        "levels": "levels_percent",
    ]

    // MARK: Codable

    public init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = keys.allKeys.map(\.stringValue).sorted().first(where: { CodingKeys(rawValue: $0) == nil }) {
            let hint = Self.renamed[unknown].map { "; use \($0)" } ?? "; expected one of " + Self.keys.joined(separator: ", ")
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath + [AnyKey(unknown)],
                debugDescription: "unknown key \"\(unknown)\" in an alert rule\(hint)"))
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decodeIfPresent(String.self, forKey: .id),
            kind: try c.decodeIfPresent(String.self, forKey: .kind),
            scope: try c.decodeIfPresent(String.self, forKey: .scope),
            enabled: try c.decodeIfPresent(Bool.self, forKey: .enabled),
            severity: try c.decodeIfPresent(String.self, forKey: .severity),
            channels: try c.decodeIfPresent([String].self, forKey: .channels),
            levelsPercent: try c.decodeIfPresent([Int].self, forKey: .levelsPercent),
            factor: try Self.decimal(c, .factor),
            minUSD: try Self.decimal(c, .minUSD),
            baselineHours: try c.decodeIfPresent(Int.self, forKey: .baselineHours),
            windowMinutes: try c.decodeIfPresent(Int.self, forKey: .windowMinutes),
            baselineWindows: try c.decodeIfPresent(Int.self, forKey: .baselineWindows),
            minRequests: try c.decodeIfPresent(Int.self, forKey: .minRequests),
            errorRatePercent: try Self.decimal(c, .errorRatePercent),
            minLatencyMs: try c.decodeIfPresent(Int64.self, forKey: .minLatencyMs),
            lead: try c.decodeIfPresent(String.self, forKey: .lead),
            minElapsedPercent: try Self.decimal(c, .minElapsedPercent))
    }

    /// A decimal written as a string (YAML scalars always decode as their text) or as a JSON number
    /// (its digits as written: `Decimal` keeps them exactly).
    private static func decimal(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> String? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        if let text = try? c.decode(String.self, forKey: key) { return text }
        if let integer = try? c.decode(Int64.self, forKey: key) { return String(integer) }
        if let number = try? c.decode(Decimal.self, forKey: key) { return number.description }
        throw DecodingError.typeMismatch(String.self, .init(
            codingPath: c.codingPath + [key], debugDescription: "a number or a string of one"))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(id, forKey: .id)
        try c.encodeIfPresent(kind, forKey: .kind)
        try c.encodeIfPresent(scope, forKey: .scope)
        try c.encodeIfPresent(enabled, forKey: .enabled)
        try c.encodeIfPresent(severity, forKey: .severity)
        try c.encodeIfPresent(channels, forKey: .channels)
        try c.encodeIfPresent(levelsPercent, forKey: .levelsPercent)
        try c.encodeIfPresent(factor, forKey: .factor)
        try c.encodeIfPresent(minUSD, forKey: .minUSD)
        try c.encodeIfPresent(baselineHours, forKey: .baselineHours)
        try c.encodeIfPresent(windowMinutes, forKey: .windowMinutes)
        try c.encodeIfPresent(baselineWindows, forKey: .baselineWindows)
        try c.encodeIfPresent(minRequests, forKey: .minRequests)
        try c.encodeIfPresent(errorRatePercent, forKey: .errorRatePercent)
        try c.encodeIfPresent(minLatencyMs, forKey: .minLatencyMs)
        try c.encodeIfPresent(lead, forKey: .lead)
        try c.encodeIfPresent(minElapsedPercent, forKey: .minElapsedPercent)
    }

    /// A decoding error in words, with where it happened (`rules[2].factor: …`).
    public static func message(for error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        let context: DecodingError.Context
        let detail: String
        switch error {
        case .typeMismatch(let type, let c):
            context = c
            detail = "expected \(Self.typeName(type))" + (c.debugDescription.isEmpty ? "" : " (\(c.debugDescription))")
        case .valueNotFound(let type, let c):
            context = c
            detail = "expected \(Self.typeName(type)), found null"
        case .keyNotFound(let key, let c):
            context = c
            detail = "\(key.stringValue) is required"
        case .dataCorrupted(let c):
            context = c
            detail = c.debugDescription
        @unknown default:
            return "\(error)"
        }
        let path = context.codingPath.reduce(into: "") { path, key in
            if let index = key.intValue { path += "[\(index)]" } else { path += (path.isEmpty ? "" : ".") + key.stringValue }
        }
        return path.isEmpty ? detail : "\(path): \(detail)"
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Int64.Type: "an integer"
        case is [String].Type: "a list of strings"
        case is [Int].Type: "a list of integers"
        default: "\(type)"
        }
    }

    // MARK: Exact conversions

    /// A scope from `global`, `global:*`, `*` or `kind:id`.
    public static func scope(_ text: String) throws -> Scope {
        if text == "global:*" { return .global }
        do { return try BudgetSpec.scope(text) } catch let error as BudgetSpecError {
            throw ScopeError(description: "\"\(text)\" is not valid: \(error.description)")
        }
    }

    struct ScopeError: Error, CustomStringConvertible { var description: String }

    /// `global` or `kind:id`.
    public static func text(of scope: Scope) -> String {
        scope.kind == .global ? "global" : scope.description
    }

    /// A non-negative decimal (`digits[.digits]`) times 10^`decimals`, exactly; nil if it is not one,
    /// has more decimals, or does not fit.
    public static func scaled(_ text: String, decimals: Int) -> Int64? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        let fraction = parts.count == 2 ? parts[1] : ""
        let isDigits = { (s: Substring) in s.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
        guard !whole.isEmpty, isDigits(whole), isDigits(fraction), parts.count == 1 || !fraction.isEmpty,
              fraction.count <= decimals else { return nil }
        var value: Int64 = 0
        for digit in (whole + fraction + String(repeating: "0", count: decimals - fraction.count)).utf8 {
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.addingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = next
        }
        return value
    }

    /// `value` / 10^`decimals` written without trailing zeros: 25 000 with 4 decimals → `"2.5"`.
    public static func decimalText(_ value: Int64, decimals: Int) -> String {
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let sign = value < 0 ? "-" : ""
        let magnitude = value.magnitude
        let whole = magnitude / UInt64(scale)
        var fraction = String(magnitude % UInt64(scale))
        fraction = String(repeating: "0", count: decimals - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return sign + String(whole) + (fraction.isEmpty ? "" : "." + fraction)
    }

    /// Dollars without trailing zeros: `"10"`, `"12.5"`.
    public static func dollarText(_ money: Money) -> String {
        decimalText(money.nanoUSD, decimals: 9)
    }

    private static func trimPercent(_ text: String) -> String {
        text.hasSuffix("%") ? String(text.dropLast()).trimmingCharacters(in: .whitespaces) : text
    }

    private static let units: [(String, Int64)] = [("ms", 1), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)]

    /// Milliseconds of a duration such as `1h`, `30m`, `1h30m`, `90s`, `500ms` or `2d`; nil if it is not one.
    public static func milliseconds(_ text: String) -> Int64? {
        var rest = Substring(text)
        var total: Int64 = 0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let amount = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            rest = rest.dropFirst(unit.0.count)
            let (part, o1) = amount.multipliedReportingOverflow(by: unit.1)
            let (sum, o2) = total.addingReportingOverflow(part)
            if o1 || o2 { return nil }
            total = sum
        }
        return total
    }

    /// A duration in the largest units that write it exactly: 5 400 000 → `"1h30m"`, 1 500 → `"1s500ms"`.
    public static func durationText(_ milliseconds: Int64) -> String {
        if milliseconds <= 0 { return "\(milliseconds)ms" }
        var rest = milliseconds
        var text = ""
        for (unit, scale) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)]
        where rest >= scale {
            text += "\(rest / scale)\(unit)"
            rest %= scale
        }
        return text
    }
}

/// Any string key (to find the keys an entry should not have).
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
