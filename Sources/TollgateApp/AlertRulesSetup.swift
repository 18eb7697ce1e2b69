public import Foundation
public import Logging
public import TollgateAlerts
public import TollgateEvents
import TollgateIngress
public import TollgateLog
import Yams

/// Alert rules as control events: applying a rules list (from a rules file, or the `rules:` section of
/// the alerts configuration at start) writes a `tollgate.control.alert_rule.set.v1` event for each rule
/// that is new or changed; rules in force come from the built-in ones and the control topic.
///
/// A rules file is YAML or JSON with a top-level `rules:` list of ``AlertRuleEntry`` (other top-level
/// keys, such as an alerts configuration's `channels:`, are ignored, so that file can be applied too):
///
/// ```yaml
/// rules:
///   - id: search-thresholds
///     kind: budget_threshold
///     scope: team:search
///     levels_percent: [25, 50, 75, 90, 100]
///     channels: [search-email]
///   - id: default-estimated-usage   # a built-in rule: switched off
///     enabled: false
/// ```
///
/// Rules missing from the list are left as they are: `tollgate alerts rules delete` removes one.
public enum AlertRulesSetup {
    /// Writes the rules of `rules` that are new or differ from the control topic (ignoring when they
    /// were written) and returns their ids; applying the same list twice writes nothing the second time.
    ///
    /// Throws ``AlertRulesSetupError`` with every problem of every rule (each naming the rule and the
    /// field) before writing anything.
    @discardableResult
    public static func apply(rules: [AlertRuleEntry], log: any MessageLog, topicPrefix: String, logger: Logger,
                             source: String = "tollgate/config", now: Date = Date()) async throws -> [String] {
        let desired = try definitions(rules, now: now)
        let writer = ControlWriter(log: log, topicPrefix: topicPrefix, source: source)
        let changed = changes(current: try await controlRules(writer: writer), desired: desired)
        for rule in changed { try await writer.write(rule, now: now) }
        logger.info("alert rules applied", metadata: [
            "tollgate.rules": "\(desired.count)", "tollgate.written": "\(changed.count)",
        ])
        return changed.map(\.ruleID)
    }

    /// Applies the `rules:` list of a YAML or JSON file (see ``apply(rules:log:topicPrefix:logger:source:now:)``).
    @discardableResult
    public static func apply(file: String, log: any MessageLog, topicPrefix: String, logger: Logger,
                             source: String = "tollgate/config") async throws -> [String] {
        let rules = try load(file: file)
        do {
            return try await apply(rules: rules, log: log, topicPrefix: topicPrefix, logger: logger, source: source)
        } catch let error as AlertRulesSetupError {
            throw AlertRulesSetupError("rules file \(file): \(error.description)")
        }
    }

    /// The entries of a rules file's `rules:` list (not yet validated beyond their keys and types).
    public static func load(file: String) throws -> [AlertRuleEntry] {
        let text: String
        do {
            text = try String(contentsOf: URL(fileURLWithPath: file), encoding: .utf8)
        } catch {
            throw AlertRulesSetupError("cannot read the rules file \(file): \(error.localizedDescription)")
        }
        do {
            return try decode(yaml: text)
        } catch {
            throw AlertRulesSetupError("the rules file \(file) is not valid: \(AlertRuleEntry.message(for: error))")
        }
    }

    /// The `rules:` list of a YAML (or JSON) document.
    static func decode(yaml text: String) throws -> [AlertRuleEntry] {
        try YAMLDecoder().decode(Document.self, from: text).rules
    }

    /// The `rules:` of an alerts configuration file, where the section is optional.
    static func optionalRules(yaml text: String) throws -> [AlertRuleEntry] {
        try YAMLDecoder().decode(OptionalDocument.self, from: text).rules ?? []
    }

    struct Document: Decodable {
        var rules: [AlertRuleEntry]
    }

    struct OptionalDocument: Decodable {
        var rules: [AlertRuleEntry]?
    }

    /// The definitions of `rules`, or every problem of every rule.
    public static func definitions(_ rules: [AlertRuleEntry], now: Date) throws -> [AlertRuleSetData] {
        var problems: [String] = []
        var definitions: [AlertRuleSetData] = []
        for (index, entry) in rules.enumerated() {
            let name = entry.id.map { "rule \($0)" } ?? "rules[\(index)]"
            do {
                definitions.append(try entry.data(updatedAt: now))
            } catch let error as AlertRuleEntry.Invalid {
                problems += error.problems.map { "\(name): \($0.message)" }
            }
        }
        var seen: Set<String> = []
        for id in definitions.map(\.ruleID) where !seen.insert(id).inserted {
            problems.append("two rules have the id \(id)")
        }
        guard problems.isEmpty else { throw AlertRulesSetupError(problems.joined(separator: "; ")) }
        return definitions
    }

    /// The rules of `desired` that are new or differ from `current` (ignoring when they were written).
    public static func changes(current: [String: AlertRuleSetData], desired: [AlertRuleSetData]) -> [AlertRuleSetData] {
        desired.filter { rule in
            guard var known = current[rule.ruleID] else { return true }
            known.updatedAt = rule.updatedAt
            return known != rule
        }
    }

    /// The rules set on the control topic and not deleted, by id (the built-in rules are not here).
    public static func controlRules(log: any MessageLog, topicPrefix: String) async throws -> [String: AlertRuleSetData] {
        try await controlRules(writer: ControlWriter(log: log, topicPrefix: topicPrefix, source: "tollgate/config"))
    }

    static func controlRules(writer: ControlWriter) async throws -> [String: AlertRuleSetData] {
        var rules: [String: AlertRuleSetData] = [:]
        for event in try await writer.readAll() {
            switch event {
            case .alertRuleSet(let set): rules[set.data.ruleID] = set.data
            case .alertRuleDeleted(let deleted): rules[deleted.data.ruleID] = nil
            default: continue
            }
        }
        return rules
    }

    /// Every rule in force, sorted by id, with where it comes from (built-in or control).
    public static func effective(log: any MessageLog, topicPrefix: String) async throws -> [AlertRuleView] {
        AlertRuleView.effective(overrides: try await controlRules(log: log, topicPrefix: topicPrefix))
    }
}

/// Why alert rules cannot be applied (every problem, each naming the rule and the field).
public struct AlertRulesSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
