import Foundation
import Logging
import Testing
import TollgateAlerts
@testable import TollgateApp
import TollgateEvents
import TollgateLog

@Suite("Alert rules setup")
struct AlertRulesSetupTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func entries(_ yaml: String) throws -> [AlertRuleEntry] {
        try AlertRulesSetup.decode(yaml: yaml)
    }

    static func problems(_ entry: AlertRuleEntry) -> [AlertRuleEntry.Problem] {
        do {
            _ = try entry.data(updatedAt: now)
            return []
        } catch let error as AlertRuleEntry.Invalid {
            return error.problems
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    // MARK: Entries

    @Test("a YAML entry becomes the event data, with every everyday unit converted exactly")
    func goodEntries() throws {
        let rules = try Self.entries("""
            rules:
              - id: spend-spike-per-key
                kind: spend_spike
                scope: key:*
                factor: 2.5
                min_usd: "12.5"
                baseline_hours: 48
                severity: critical
                channels: [oncall-slack, pager]
              - id: errors
                kind: error_rate_spike
                scope: tag:feature=*
                factor: 1.0001
                error_rate_percent: 2.5
                window_minutes: 10
                baseline_windows: 6
                min_requests: 50
              - id: burn
                kind: burn_rate
                scope: team:search
                lead: 1h30m
                min_elapsed_percent: 5
                enabled: false
              - id: latency
                kind: latency_spike
                scope: global
                factor: 3x
                min_latency_ms: 5000
              - id: thresholds
                kind: budget_threshold
                scope: team:search
                levels_percent: [25, 50, 100]
            """)
        let data = try rules.map { try $0.data(updatedAt: Self.now) }
        #expect(data[0] == AlertRuleSetData(
            ruleID: "spend-spike-per-key", kind: .spendSpike, scope: Scope(kind: .key, id: "*"), severity: .critical,
            channels: ["oncall-slack", "pager"], factorBP: 25_000, minNanoUSD: Money(nanoUSD: 12_500_000_000),
            baselineHours: 48, updatedAt: Self.now))
        #expect(data[1] == AlertRuleSetData(
            ruleID: "errors", kind: .errorRateSpike, scope: .tag(name: "feature", value: "*"), factorBP: 10_001,
            windowMinutes: 10, baselineWindows: 6, minRequests: 50, errorRateBP: 250, updatedAt: Self.now))
        #expect(data[2] == AlertRuleSetData(
            ruleID: "burn", kind: .burnRate, scope: .team("search"), enabled: false, leadMs: 5_400_000,
            minElapsedBP: 500, updatedAt: Self.now))
        #expect(data[3].factorBP == 30_000)
        #expect(data[3].minLatencyMs == 5_000)
        #expect(data[3].scope == .global)
        #expect(data[4].levelsPercent == [25, 50, 100])
        // Back to an entry and again: the same definition.
        for definition in data {
            #expect(try AlertRuleEntry(definition).data(updatedAt: Self.now) == definition)
        }
    }

    @Test("factors and percentages are exact: decimal text to basis points without floating point")
    func exactFactors() throws {
        let cases: [(String, Int64?)] = [("3", 30_000), ("2.5", 25_000), ("1.0001", 10_001), ("100", 1_000_000),
                                         ("2.12345", nil), ("-3", nil), ("1e2", nil), ("3.", nil), ("", nil)]
        for (text, expected) in cases {
            #expect(AlertRuleEntry.scaled(text, decimals: 4) == expected, "\(text)")
        }
        // JSON numbers keep their digits, too.
        let json = Data(#"{"id": "s", "kind": "spend_spike", "scope": "global", "factor": 2.3, "min_usd": 0.1}"#.utf8)
        let data = try JSONDecoder().decode(AlertRuleEntry.self, from: json).data(updatedAt: Self.now)
        #expect(data.factorBP == 23_000)
        #expect(data.minNanoUSD == Money(nanoUSD: 100_000_000))
        #expect(AlertRuleEntry.decimalText(23_000, decimals: 4) == "2.3")
        #expect(AlertRuleEntry.milliseconds("1d") == 86_400_000)
        #expect(AlertRuleEntry.milliseconds("90") == nil)
        #expect(AlertRuleEntry.durationText(5_400_000) == "1h30m")
    }

    @Test("unknown keys are rejected, naming the key (and the entry key for an event field)")
    func unknownKeys() {
        let colour = #expect(throws: DecodingError.self) {
            try Self.entries("rules:\n  - id: x\n    kind: spend_spike\n    scope: global\n    colour: red\n")
        }
        let message = colour.map { AlertRuleEntry.message(for: $0) } ?? ""
        #expect(message.hasPrefix("rules[0].colour: unknown key \"colour\" in an alert rule; expected one of id, kind"))
        let renamed = #expect(throws: DecodingError.self) {
            try Self.entries("rules:\n  - id: x\n    kind: spend_spike\n    scope: global\n    factor_bp: 30000\n")
        }
        #expect(renamed.map { AlertRuleEntry.message(for: $0) }?.contains("unknown key \"factor_bp\" in an alert rule; use factor") == true)
    }

    @Test("bad parameters are reported in the entry's terms, naming the field")
    func badParameters() {
        let misplaced = Self.problems(AlertRuleEntry(id: "a", kind: "budget_action", scope: "global", factor: "3"))
        #expect(misplaced == [AlertRuleEntry.Problem(
            field: "factor",
            message: "factor applies only to rules of kind spend_spike, error_rate_spike, latency_spike, not budget_action")])
        let low = Self.problems(AlertRuleEntry(id: "a", kind: "spend_spike", scope: "global", factor: "0.5"))
        #expect(low.map(\.field) == ["factor"])
        #expect(low.first?.message == "factor must be above 1 and at most 100, got 0.5")
        let fine = Self.problems(AlertRuleEntry(id: "a", kind: "spend_spike", scope: "global", factor: "2.00001"))
        #expect(fine.map(\.field) == ["factor"])
        let percent = Self.problems(AlertRuleEntry(id: "a", kind: "error_rate_spike", scope: "global",
                                                   errorRatePercent: "150"))
        #expect(percent.first?.message == "error_rate_percent must be above 0 and at most 100, got 150")
        let levels = Self.problems(AlertRuleEntry(id: "a", kind: "budget_threshold", scope: "global", levelsPercent: [0]))
        #expect(levels.map(\.field) == ["levels_percent"])
        let lead = Self.problems(AlertRuleEntry(id: "a", kind: "burn_rate", scope: "global", lead: "soon"))
        #expect(lead.map(\.field) == ["lead"])
        let money = Self.problems(AlertRuleEntry(id: "a", kind: "spend_spike", scope: "global", minUSD: "ten"))
        #expect(money.map(\.field) == ["min_usd"])
        let missing = Self.problems(AlertRuleEntry(id: "mine", enabled: false))
        #expect(missing.map(\.field) == ["kind", "scope"])
        let kind = Self.problems(AlertRuleEntry(id: "a", kind: "events_dropped", scope: "global"))
        #expect(kind.map(\.field) == ["kind"])
        let id = Self.problems(AlertRuleEntry(id: "a b", kind: "unpriced_model", scope: "global"))
        #expect(id.map(\.field) == ["id"])
        #expect(id.first?.message.hasPrefix("id must be") == true)
        let scope = Self.problems(AlertRuleEntry(id: "a", kind: "unpriced_model", scope: "planet:earth"))
        #expect(scope.map(\.field) == ["scope"])
    }

    @Test("a built-in rule id takes the built-in's kind and scope when the entry leaves them out")
    func builtInDefaults() throws {
        let data = try AlertRuleEntry(id: "default-estimated-usage", enabled: false).data(updatedAt: Self.now)
        #expect(data == AlertRuleSetData(ruleID: "default-estimated-usage", kind: .estimatedUsage, scope: .global,
                                         enabled: false, updatedAt: Self.now))
    }

    // MARK: Applying

    @Test("applying writes only new or changed rules; the effective list marks built-in and control rules")
    func applyWritesChanges() async throws {
        try await withLog { log in
            let logger = Logger(label: "test")
            let first = [
                AlertRuleEntry(id: "default-latency-spike", enabled: false),
                AlertRuleEntry(id: "search-thresholds", kind: "budget_threshold", scope: "team:search",
                               levelsPercent: [25, 50, 100]),
            ]
            let written = try await AlertRulesSetup.apply(rules: first, log: log, topicPrefix: "tollgate.", logger: logger)
            #expect(written == ["default-latency-spike", "search-thresholds"])
            let again = try await AlertRulesSetup.apply(rules: first, log: log, topicPrefix: "tollgate.", logger: logger,
                                                        now: Self.now.addingTimeInterval(60))
            #expect(again.isEmpty)
            var changed = first
            changed[1].levelsPercent = [50, 100]
            changed.append(AlertRuleEntry(id: "spend-per-key", kind: "spend_spike", scope: "key:*", factor: "4"))
            let third = try await AlertRulesSetup.apply(rules: changed, log: log, topicPrefix: "tollgate.", logger: logger)
            #expect(third == ["search-thresholds", "spend-per-key"])

            let effective = try await AlertRulesSetup.effective(log: log, topicPrefix: "tollgate.")
            #expect(effective.count == AlertRule.builtIn.count + 2)
            let latency = try #require(effective.first { $0.id == "default-latency-spike" })
            #expect(latency.source == .control && latency.replacesBuiltIn && !latency.enabled)
            let budget = try #require(effective.first { $0.id == "default-budget-threshold" })
            #expect(budget.source == .builtIn && budget.parameters == ["levels_percent": "50,80,100"])
            let spend = try #require(effective.first { $0.id == "spend-per-key" })
            #expect(spend.parameterText == "factor=4 min_usd=10 baseline_hours=24")
            #expect(spend.source == .control && !spend.replacesBuiltIn)
        }
    }

    @Test("a rules file is applied as a whole, or not at all with every problem named")
    func applyFile() async throws {
        try await withLog { log in
            let logger = Logger(label: "test")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(UUID()).yaml").path
            defer { try? FileManager.default.removeItem(atPath: file) }
            try """
                channels: []   # other sections of an alerts configuration are ignored
                rules:
                  - id: burn
                    kind: burn_rate
                    scope: global
                    lead: 1d
                  - id: bad-one
                    kind: budget_action
                    scope: global
                    window_minutes: 5
                  - id: burn
                    kind: unpriced_model
                    scope: global
                """.write(toFile: file, atomically: true, encoding: .utf8)
            let error = await #expect(throws: AlertRulesSetupError.self) {
                try await AlertRulesSetup.apply(file: file, log: log, topicPrefix: "tollgate.", logger: logger)
            }
            let message = error?.description ?? ""
            #expect(message.contains("rule bad-one: window_minutes applies only to rules of kind error_rate_spike, latency_spike, not budget_action"))
            #expect(message.contains("two rules have the id burn"))
            #expect(try await AlertRulesSetup.controlRules(log: log, topicPrefix: "tollgate.").isEmpty)

            try """
                rules:
                  - id: burn
                    kind: burn_rate
                    scope: global
                    lead: 1d
                """.write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try await AlertRulesSetup.apply(file: file, log: log, topicPrefix: "tollgate.", logger: logger) == ["burn"])
            #expect(try await AlertRulesSetup.apply(file: file, log: log, topicPrefix: "tollgate.", logger: logger).isEmpty)
            let rules = try await AlertRulesSetup.controlRules(log: log, topicPrefix: "tollgate.")
            #expect(rules["burn"]?.leadMs == 86_400_000)
        }
    }

    /// A fresh embedded log with the catalog's topics, removed afterwards.
    func withLog(_ body: (any MessageLog) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-rules-\(UUID())").path
        let log = try EmbeddedLog.open(directory: directory)
        defer {
            log.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        try await log.provision(TopicCatalog.specs())
        try await body(log)
    }
}
