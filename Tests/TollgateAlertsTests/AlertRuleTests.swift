import Foundation
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateAlerts

/// Rules from control events, the state's persistence and the decoding of rule payloads.
@Suite("Alert rules and state")
struct AlertRuleTests {
    typealias F = Fixture

    static let november = "2026-11-01T00:00:00.000Z"
    static let updated = F.at("2026-11-05T00:00:00Z")

    @Test("the built-in rules are all on, with stable ids")
    func builtIns() {
        let rules = AlertRule.effective(overrides: [:])
        #expect(rules.map(\.id) == [
            "default-budget-action", "default-budget-threshold", "default-burn-rate", "default-error-rate-spike",
            "default-estimated-usage", "default-latency-spike", "default-spend-spike", "default-spend-spike-team",
            "default-unpriced-model",
        ])
        #expect(rules.allSatisfy { $0.enabled && $0.isBuiltIn && $0.definition.problems.isEmpty })
        #expect(Set(rules.map(\.kind)) == Set(AlertRuleSetData.ruleKinds))
        let threshold = rules.first { $0.id == "default-budget-threshold" }
        #expect(threshold?.levelsPercent == [50, 80, 100])
        #expect(rules.first { $0.id == "default-spend-spike-team" }?.scope == Scope(kind: .team, id: "*"))
        #expect(AlertFold.State().rules.count == 9)
    }

    @Test("a rule set with a built-in's id replaces it; enabled false switches it off; deleting brings it back")
    func overrides() {
        var driver = Driver(F.only("default-budget-threshold"))
        driver.control(F.ruleSet(AlertRuleSetData(ruleID: "default-budget-threshold", kind: .budgetThreshold,
                                                  scope: .global, severity: .critical, levelsPercent: [90],
                                                  updatedAt: Self.updated)))
        let ninety = driver.decide(F.decision(spent: F.usd(95), at: "2026-11-10T00:00:00Z"))
        #expect(ninety.map(\.alertID) == ["default-budget-threshold/b-search|team:search|\(Self.november)|90"])
        #expect(ninety.first?.severity == .critical)
        driver.control(F.disable("default-budget-threshold"))
        #expect(driver.state.rules.isEmpty)
        #expect(driver.decide(F.decision(budget: "b2", scope: .team("ads"), spent: F.usd(95), at: "2026-11-11T00:00:00Z"))
            .isEmpty)
        driver.control(F.ruleDeleted("default-budget-threshold"))
        // The built-in again: 50, 80 and 100 % (90 % was the override's and is not a built-in level).
        let back = driver.decide(F.decision(spent: F.usd(96), at: "2026-11-12T00:00:00Z"))
        #expect(back.map(\.levelPercent) == [50, 80])
    }

    @Test("rules are independent and select budgets by scope: exact, kind wildcard, tag-name wildcard")
    func scopedBudgetRules() {
        let search = AlertRuleSetData(ruleID: "search-25", kind: .budgetThreshold, scope: .team("search"),
                                      levelsPercent: [25], updatedAt: Self.updated)
        let teams = AlertRuleSetData(ruleID: "teams-95", kind: .budgetThreshold, scope: Scope(kind: .team, id: "*"),
                                     levelsPercent: [95], updatedAt: Self.updated)
        var driver = Driver(F.only() + [F.ruleSet(search), F.ruleSet(teams)])
        let alerts = driver.decide(F.decision(spent: F.usd(96), at: "2026-11-10T00:00:00Z"))
        #expect(alerts.map(\.alertID) == ["search-25/b-search|team:search|\(Self.november)|25",
                                          "teams-95/b-search|team:search|\(Self.november)|95"])
        #expect(driver.decide(F.decision(budget: "ads", scope: .team("ads"), spent: F.usd(30), at: "2026-11-10T00:00:01Z"))
            .isEmpty)
        #expect(driver.decide(F.decision(budget: "all", scope: .global, spent: F.usd(99), at: "2026-11-10T00:00:02Z"))
            .isEmpty)
        driver.control(F.ruleDeleted("search-25"))
        #expect(driver.decide(F.decision(budget: "b-search-2", scope: .team("search"), start: "2026-11-02T00:00:00Z",
                                         spent: F.usd(50), at: "2026-11-10T00:00:03Z")).isEmpty)

        let rule = { (scope: Scope) in
            AlertRule(AlertRuleSetData(ruleID: "r", kind: .budgetAction, scope: scope, updatedAt: Self.updated))
        }
        #expect(rule(.global).selects(budgetScope: .tag(name: "feature", value: "chat")))
        #expect(rule(Scope(kind: .team, id: "*")).selects(budgetScope: .team("x")))
        #expect(!rule(Scope(kind: .team, id: "*")).selects(budgetScope: .global))
        #expect(!rule(Scope(kind: .team, id: "*")).selects(budgetScope: .project("x")))
        #expect(rule(.tag(name: "feature", value: "*")).selects(budgetScope: .tag(name: "feature", value: "chat")))
        #expect(!rule(.tag(name: "feature", value: "*")).selects(budgetScope: .tag(name: "env", value: "prod")))
        #expect(!rule(.customer("acme")).selects(budgetScope: .customer("other")))
    }

    @Test("traffic series: global is all traffic, a wildcard splits by value, an exact scope covers its requests")
    func trafficSeries() {
        let response = F.usage("r", team: "search", tags: ["feature": "chat"], at: "2026-11-29T00:00:00Z").response
        func series(_ scope: Scope) -> Scope? {
            AlertRule(AlertRuleSetData(ruleID: "r", kind: .spendSpike, scope: scope, updatedAt: Self.updated))
                .series(of: response)
        }
        #expect(series(.global) == .global)
        #expect(series(Scope(kind: .team, id: "*")) == .team("search"))
        #expect(series(Scope(kind: .key, id: "*")) == .key("key-search"))
        #expect(series(Scope(kind: .project, id: "*")) == .project("p-search"))
        #expect(series(Scope(kind: .customer, id: "*")) == nil)
        #expect(series(.tag(name: "feature", value: "*")) == .tag(name: "feature", value: "chat"))
        #expect(series(.tag(name: "env", value: "*")) == nil)
        #expect(series(.team("search")) == .team("search"))
        #expect(series(.team("ads")) == nil)
        #expect(series(.tag(name: "feature", value: "chat")) == .tag(name: "feature", value: "chat"))
    }

    @Test("the state round-trips through JSON with its dedupe, rules and spike history")
    func codableRoundTrip() throws {
        var driver = Driver(F.only("default-budget-threshold", "default-spend-spike"))
        _ = driver.decide(F.decision(spent: F.usd(85), at: "2026-11-10T00:00:00Z"))
        _ = driver.use((0..<24).map { F.usage("h\($0)", at: "2026-11-28T\($0 < 10 ? "0" : "")\($0):30:00Z",
                                              cost: 2_000_000_000) })
        driver.finishBatch()
        let data = try JSONEncoder().encode(driver.state)
        let restored = try JSONDecoder().decode(AlertFold.State.self, from: data)
        #expect(restored.rules.map(\.id) == ["default-budget-threshold", "default-spend-spike"])
        #expect(restored.raised == driver.state.raised)
        #expect(restored.spend == driver.state.spend)
        #expect(restored.clock == driver.state.clock)
        #expect(restored.ruleSets == driver.state.ruleSets && restored.watermarks == driver.state.watermarks)

        var again = Driver(state: restored)
        #expect(again.decide(F.decision(spent: F.usd(90), at: "2026-11-11T00:00:00Z")).isEmpty)
        #expect(again.decide(F.decision(spent: F.usd(100), at: "2026-11-12T00:00:00Z")).map(\.levelPercent) == [100])
        // The restored history is a full day: the next hour can spike.
        let spike = again.use(F.usage("s", at: "2026-11-29T00:05:00Z", cost: 10_000_000_000))
        #expect(spike.map(\.alertID) == ["default-spend-spike|global:*|2026-11-29T00:00:00.000Z|-"])
    }

    @Test("a state seeded with the ids on the alerts topic does not raise them again")
    func seeding() {
        let raised = ["default-budget-threshold/b-search|team:search|\(Self.november)|50",
                      "default-budget-threshold/b-search|team:search|\(Self.november)|80"]
        var driver = Driver(state: AlertFold.State(control: F.only("default-budget-threshold"), raisedAlertIDs: raised))
        #expect(driver.state.hasRaised(raised[0]) && driver.state.rules.map(\.id) == ["default-budget-threshold"])
        #expect(driver.decide(F.decision(spent: F.usd(85), at: "2026-11-10T00:00:00Z")).isEmpty)
        #expect(driver.decide(F.decision(spent: F.usd(101), at: "2026-11-11T00:00:00Z")).map(\.levelPercent) == [100])
        // A restored snapshot can be topped up with ids too.
        var state = driver.state
        state.markRaised(["default-budget-threshold/b-ads|team:ads|\(Self.november)|50"])
        var topped = Driver(state: state)
        #expect(topped.decide(F.decision(budget: "b-ads", scope: .team("ads"), spent: F.usd(55),
                                         at: "2026-11-12T00:00:00Z")).isEmpty)
    }

    @Test("raised ids are forgotten after their period; seeded ids are dated at the first prune")
    func pruning() throws {
        var driver = Driver(state: AlertFold.State(control: F.only("default-unpriced-model"), raisedAlertIDs: ["seeded"]))
        let first = driver.use(F.usage("u1", model: "gpt-9", at: "2026-11-29T08:00:00Z", priced: false))
        let id = try #require(first.first?.alertID)
        driver.finishBatch()
        #expect(driver.state.raised.count == 2)
        let clock = try #require(driver.state.clock)
        #expect(driver.state.raised.forgetAfter["seeded"] == clock + RaisedAlerts.undatedRetentionMs)
        // Kept through the day after (late events), forgotten after.
        _ = driver.use(F.usage("p1", at: "2026-11-30T23:59:59Z"))
        driver.finishBatch()
        #expect(driver.state.hasRaised(id))
        _ = driver.use(F.usage("p2", at: "2026-12-01T00:00:01Z"))
        driver.finishBatch()
        #expect(!driver.state.hasRaised(id) && driver.state.hasRaised("seeded"))
        // A late event of that day raises nothing now: its id would already be forgotten.
        #expect(driver.use(F.usage("u2", model: "gpt-9", at: "2026-11-29T09:00:00Z", priced: false)).isEmpty)
    }

    @Test("a message folded twice (a reprocessed batch) and a usage id seen twice count once")
    func duplicates() {
        let fold = AlertFold()
        var state = AlertFold.State(control: F.only("default-unpriced-model"))
        let usage = F.usage("u1", model: "gpt-9", at: "2026-11-29T08:00:00Z", priced: false)
        let message = ConsumedMessage(topic: "tollgate.usage", partition: 3, offset: 41, timestampMilliseconds: 0,
                                      key: nil, value: Data(), headers: [])
        #expect(fold.fold(&state, .usage(id: "usage:u1", usage), message).count == 1)
        state.raised = RaisedAlerts()  // even without the dedupe of ids, the offset was folded
        #expect(fold.fold(&state, .usage(id: "usage:u1", usage), message).isEmpty)
        var later = message
        later.offset = 90
        #expect(fold.fold(&state, .usage(id: "usage:u1", usage), later).isEmpty)  // same usage id
        #expect(state.watermarks["tollgate.usage#3"] == 91)
    }

    @Test("decode reads each topic, skips tombstones and other topics, and rejects a bad control event")
    func decoding() throws {
        let fold = AlertFold(topicPrefix: "acme.")
        #expect(fold.inputTopics == ["acme.control", "acme.budget-decisions", "acme.usage"])
        func message(_ topic: String, _ value: Data?) -> ConsumedMessage {
            ConsumedMessage(topic: topic, partition: 0, offset: 0, timestampMilliseconds: 0, key: nil, value: value,
                            headers: [])
        }
        let rule = AlertRuleSetEvent(id: "x", source: "t", time: Self.updated, data: AlertRuleSetData(
            ruleID: "x", kind: .unpricedModel, scope: .global, updatedAt: Self.updated))
        guard case .control(.alertRuleSet(let decoded)) = try fold.decode(message("acme.control", EventCoding.encode(rule)))
        else { Issue.record("not a rule"); return }
        #expect(decoded == rule)
        let decision = BudgetDecisionEvent(id: "d", source: "t", time: Self.updated,
                                           data: F.decision(spent: F.usd(1), at: "2026-11-10T00:00:00Z"))
        guard case .decision(let data) = try fold.decode(message("acme.budget-decisions", EventCoding.encode(decision)))
        else { Issue.record("not a decision"); return }
        #expect(data == decision.data)
        let usage = UsageEvent(id: "usage:r", source: "t", time: Self.updated,
                               data: F.usage("r", at: "2026-11-10T00:00:00Z"))
        guard case .usage(let id, _) = try fold.decode(message("acme.usage", EventCoding.encode(usage)))
        else { Issue.record("not usage"); return }
        #expect(id == "usage:r")
        guard case .nothing = try fold.decode(message("acme.budget-decisions", nil)) else { Issue.record("tombstone"); return }
        guard case .nothing = try fold.decode(message("acme.alerts", Data("{}".utf8))) else { Issue.record("other"); return }
        #expect(throws: (any Error).self) { try fold.decode(message("acme.control", Data("{\"type\":1}".utf8))) }
    }

    /// The message of the error decoding `data` with `edit` applied to a valid rule, and the field it names.
    static func decodingError(_ edit: (inout [String: Any]) -> Void) throws -> (field: String?, message: String)? {
        let valid = AlertRuleSetEvent(
            id: "alert-rule-set:r", source: "t", time: updated,
            data: AlertRuleSetData(ruleID: "r", kind: .spendSpike, scope: .global, factorBP: 40_000, updatedAt: updated))
        var object = try #require(JSONSerialization.jsonObject(with: EventCoding.encode(valid)) as? [String: Any])
        var data = try #require(object["data"] as? [String: Any])
        edit(&data)
        object["data"] = data
        do {
            _ = try AnyControlEvent.decode(from: JSONSerialization.data(withJSONObject: object))
            return nil
        } catch DecodingError.dataCorrupted(let context) {
            return (context.codingPath.last?.stringValue, context.debugDescription)
        }
    }

    @Test("decoding a bad rule names the field and says what is wrong")
    func badPayloads() throws {
        #expect(try Self.decodingError { _ in } == nil)
        let cases: [(String, (inout [String: Any]) -> Void, String)] = [
            ("kind", { $0["kind"] = "events_dropped"; $0["factor_bp"] = nil },
             "kind events_dropped is not a rule kind; expected one of budget_threshold, budget_action, burn_rate, "
                + "spend_spike, error_rate_spike, latency_spike, unpriced_model, estimated_usage"),
            ("factor_bp", { $0["kind"] = "budget_threshold" },
             "factor_bp applies only to rules of kind spend_spike, error_rate_spike, latency_spike, not budget_threshold"),
            ("levels_percent", { $0["kind"] = "budget_threshold"; $0["factor_bp"] = nil; $0["levels_percent"] = [50, 0] },
             "levels_percent must be in 1...1000, got 0"),
            ("levels_percent", { $0["kind"] = "budget_threshold"; $0["factor_bp"] = nil; $0["levels_percent"] = [] as [Int] },
             "levels_percent must not be empty"),
            ("factor_bp", { $0["factor_bp"] = 10_000 }, "factor_bp must be in 10001...1000000 (above 1×), got 10000"),
            ("baseline_hours", { $0["baseline_hours"] = 0 }, "baseline_hours must be in 1...168, got 0"),
            ("min_nano_usd", { $0["min_nano_usd"] = -1 }, "min_nano_usd must not be negative, got -1"),
            ("rule_id", { $0["rule_id"] = "a|b" },
             "rule_id must be 1 to 100 ASCII letters, digits and - _ . :, got \"a|b\""),
            ("lead_ms", { $0["lead_ms"] = 1 }, "lead_ms applies only to rules of kind burn_rate, not spend_spike"),
            ("channels", { $0["channels"] = ["ops", ""] }, "channels must not contain an empty name"),
        ]
        for (field, edit, message) in cases {
            let error = try Self.decodingError(edit)
            #expect(error?.field == field, "\(message)")
            #expect(error?.message == message)
        }
        // The admin API and CLI can list every problem at once.
        let bad = AlertRuleSetData(ruleID: "", kind: .burnRate, scope: .global, levelsPercent: [5], minElapsedBP: 0,
                                   updatedAt: Self.updated)
        #expect(bad.problems.map(\.field) == ["rule_id", "levels_percent", "min_elapsed_bp"])
    }

    @Test("rule events carry their entity key and round-trip through AnyControlEvent")
    func controlEvents() throws {
        let set = F.ruleSet(AlertRuleSetData(ruleID: "lat", kind: .latencySpike, scope: .global, windowMinutes: 10,
                                             minLatencyMs: 3_000, updatedAt: Self.updated))
        #expect(set.entityKey == "alert_rule:lat" && set.type == "tollgate.control.alert_rule.set.v1")
        #expect(try AnyControlEvent.decode(from: EventCoding.encode(set)) == set)
        let deleted = F.ruleDeleted("lat")
        #expect(deleted.entityKey == "alert_rule:lat" && deleted.type == "tollgate.control.alert_rule.deleted.v1")
        #expect(try AnyControlEvent.decode(from: EventCoding.encode(deleted)) == deleted)
        #expect(AlertRuleDeletedData.topic == "control")
    }
}
