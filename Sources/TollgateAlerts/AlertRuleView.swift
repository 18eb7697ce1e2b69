public import Foundation
public import TollgateEvents

/// An effective alert rule as `tollgate alerts rules list` and `GET /admin/alert-rules` show it: the
/// rule with every parameter of its kind resolved (written as in an ``AlertRuleEntry``), and where it
/// comes from.
///
/// ```swift
/// let views = AlertRuleView.effective(overrides: controlRules)
/// views.first { $0.id == "default-latency-spike" }?.source   // .control once a rule replaced it
/// ```
public struct AlertRuleView: Encodable, Sendable, Hashable {
    /// Where a rule comes from.
    public enum Source: String, Encodable, Sendable, Hashable {
        /// Built into the alerts service, not replaced.
        case builtIn = "built-in"
        /// Set on the control topic (possibly replacing a built-in rule of the same id).
        case control
    }

    /// The rule id.
    public var id: String
    /// The rule kind.
    public var kind: String
    /// `global` or `kind:id`.
    public var scope: String
    /// Whether the rule raises alerts.
    public var enabled: Bool
    /// The rule's own severity; absent: the kind's.
    public var severity: String?
    /// Delivery channels; empty: every channel that accepts the alert's scope.
    public var channels: [String]
    /// Every parameter of the kind, set or default, by ``AlertRuleEntry`` key (`factor`: `"3"`).
    public var parameters: [String: String]
    /// Where the rule comes from.
    public var source: Source
    /// Whether this control rule replaces the built-in rule of its id (deleting it brings that back).
    public var replacesBuiltIn: Bool
    /// When the rule was set (control rules only).
    public var updatedAt: Date?

    /// The view of a rule in force.
    public init(_ rule: AlertRule, source: Source) {
        id = rule.id
        kind = rule.kind.rawValue
        scope = AlertRuleEntry.text(of: rule.scope)
        enabled = rule.enabled
        severity = rule.definition.severity?.rawValue
        channels = rule.channels
        parameters = Self.parameters(of: rule)
        self.source = source
        replacesBuiltIn = source == .control && rule.isBuiltIn
        updatedAt = source == .control ? rule.definition.updatedAt : nil
    }

    /// Every rule in force, sorted by id: the built-in rules, each replaced by the control rule with its
    /// id, and the other control rules.
    public static func effective(overrides: [String: AlertRuleSetData]) -> [AlertRuleView] {
        AlertRule.effective(overrides: overrides).map { AlertRuleView($0, source: overrides[$0.id] == nil ? .builtIn : .control) }
    }

    /// The parameters as `key=value` in documentation order, such as `factor=3 min_usd=10 baseline_hours=24`.
    public var parameterText: String {
        AlertRuleEntry.parameterKeys.compactMap { key in parameters[key].map { "\(key)=\($0)" } }.joined(separator: " ")
    }

    /// The resolved parameters that apply to the rule's kind.
    static func parameters(of rule: AlertRule) -> [String: String] {
        var values: [String: String] = [:]
        for key in AlertRuleEntry.parameterKeys {
            guard AlertRuleSetData.parameterKinds[AlertRuleEntry.eventField(forKey: key)]?.contains(rule.kind) == true else {
                continue
            }
            let value: String? = switch key {
            case "levels_percent": rule.levelsPercent.map(String.init).joined(separator: ",")
            case "factor": AlertRuleEntry.decimalText(rule.factorBP, decimals: 4)
            case "min_usd": AlertRuleEntry.dollarText(rule.minSpend)
            case "baseline_hours": String(rule.baselineHours)
            case "window_minutes": String(rule.windowMinutes)
            case "baseline_windows": String(rule.baselineWindows)
            case "min_requests": String(rule.minRequests)
            case "error_rate_percent": AlertRuleEntry.decimalText(Int64(rule.errorRateBP), decimals: 2)
            case "min_latency_ms": String(rule.minLatencyMs)
            case "lead": AlertRuleEntry.durationText(rule.leadMs)
            case "min_elapsed_percent": AlertRuleEntry.decimalText(Int64(rule.minElapsedBP), decimals: 2)
            default: nil
            }
            values[key] = value
        }
        return values
    }
}
