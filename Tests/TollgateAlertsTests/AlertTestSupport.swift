import Foundation
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateAlerts

/// Values and a small driver for folding inputs into alerts.
enum Fixture {
    static func at(_ text: String) -> Date {
        guard let date = EventTime.parse(text) else { preconditionFailure("bad time \(text)") }
        return date
    }

    static func usd(_ dollars: Int64) -> Money { Money(wholeUSD: dollars)! }

    /// A decision for a budget with `limitUSD` and `spent` nano-USD at `decidedAt`.
    static func decision(
        budget: String = "b-search", scope: Scope = .team("search"), kind: PeriodKind = .month,
        start: String = "2026-11-01T00:00:00Z", end: String? = "2026-12-01T00:00:00Z", limitUSD: Int64 = 100,
        spent: Money, action: BudgetDecisionData.Action = .none, at decidedAt: String
    ) -> BudgetDecisionData {
        let limit = usd(limitUSD)
        return BudgetDecisionData(
            budgetID: budget, scope: scope,
            period: BudgetPeriod(kind: kind, timeZone: "UTC", start: at(start), end: end.map(at)),
            state: .ok, limitNanoUSD: limit, spentNanoUSD: spent, remainingNanoUSD: limit - spent,
            usedPercentBP: spent.nanoUSD * 10_000 / limit.nanoUSD, action: action, onNoDowngrade: .block,
            watermark: .init(usageOffsets: [:], asOf: at(decidedAt)), decidedAt: at(decidedAt))
    }

    /// A usage event of one request.
    static func usage(
        _ requestID: String, team: String = "search", tags: [String: String] = [:], provider: Provider = .openai,
        model: String = "gpt-4o", at received: String, cost: Int64 = 0, outcome: ResponseData.Outcome = .success,
        status: Int = 200, firstByteMs: Int64? = 500, durationMs: Int64 = 1_000, priced: Bool = true,
        usageSource: ResponseData.UsageSource = .provider
    ) -> UsageData {
        let response = ResponseData(
            requestID: requestID, keyID: "key-\(team)", team: team, project: "p-\(team)", tags: tags,
            provider: provider, endpoint: "/v1/chat/completions", requestedModel: model, servedModel: model,
            stream: true, status: status, outcome: outcome,
            timings: .init(receivedAt: at(received), firstByteMs: firstByteMs, durationMs: durationMs),
            usage: TokenUsage(inputTokens: 10, outputTokens: 5), usageSource: usageSource)
        var costs = CostBreakdown.zero
        costs.input = Money(nanoUSD: cost)
        costs.total = Money(nanoUSD: cost)
        return UsageData(
            response: response, costNanoUSD: costs, priced: priced,
            unpricedReason: priced ? nil : "model_not_in_catalog", catalogVersion: "2026-11-15.1",
            pricedAt: at(received), priceEffectiveDate: priced ? "2026-11-01" : nil)
    }

    static func ruleSet(_ data: AlertRuleSetData) -> AnyControlEvent {
        .alertRuleSet(CloudEvent(id: "alert-rule-set:\(data.ruleID)", source: "test", time: data.updatedAt,
                                 subject: data.entityKey, data: data))
    }

    static func ruleDeleted(_ id: String) -> AnyControlEvent {
        .alertRuleDeleted(CloudEvent(id: "alert-rule-deleted:\(id)", source: "test", time: at("2026-11-02T00:00:00Z"),
                                     data: AlertRuleDeletedData(ruleID: id, deletedAt: at("2026-11-02T00:00:00Z"))))
    }

    /// A rule switching a built-in off.
    static func disable(_ id: String) -> AnyControlEvent {
        let builtIn = AlertRule.builtIn.first { $0.ruleID == id }!
        var data = builtIn
        data.enabled = false
        data.updatedAt = at("2026-11-01T00:00:00Z")
        return ruleSet(data)
    }

    /// Every built-in but these.
    static func only(_ ids: String...) -> [AnyControlEvent] {
        AlertRule.builtIn.map(\.ruleID).filter { !ids.contains($0) }.map(disable)
    }
}

/// Folds inputs one message at a time, as the runner would, and decodes the alerts published.
struct Driver {
    let fold = AlertFold()
    var state: AlertFold.State
    var offsets: [String: Int64] = [:]

    /// A driver over a new state with these control events, or over `state`, going on from the offsets
    /// it has folded (as a restarted consumer does).
    init(_ control: [AnyControlEvent] = [], state: AlertFold.State? = nil) {
        self.state = state ?? AlertFold.State(control: control)
        for topic in ["budget-decisions", "usage"] {
            offsets[topic] = self.state.watermarks["tollgate.\(topic)#0"]
        }
    }

    private mutating func message(_ topic: String) -> ConsumedMessage {
        let offset = offsets[topic, default: 0]
        offsets[topic] = offset + 1
        return ConsumedMessage(topic: "tollgate." + topic, partition: 0, offset: offset, timestampMilliseconds: 0,
                               key: nil, value: Data(), headers: [])
    }

    private mutating func run(_ input: AlertFold.Input, on topic: String) -> [AlertData] {
        let outputs = fold.fold(&state, input, message(topic))
        return outputs.map { output in
            #expect(output.topic == "tollgate.alerts")
            let event = try! EventCoding.decode(AlertData.self, from: output.value!)
            #expect(output.key == Data(event.data.alertID.utf8))
            #expect(event.id == "alert:" + event.data.alertID)
            #expect(event.time == event.data.raisedAt)
            return event.data
        }
    }

    mutating func control(_ event: AnyControlEvent) {
        #expect(run(.control(event), on: "control").isEmpty)
    }

    mutating func decide(_ decision: BudgetDecisionData) -> [AlertData] {
        run(.decision(decision), on: "budget-decisions")
    }

    mutating func use(_ usage: UsageData) -> [AlertData] {
        run(.usage(id: "usage:" + usage.response.requestID, usage), on: "usage")
    }

    /// Folds many usage events and returns every alert raised.
    mutating func use(_ usages: [UsageData]) -> [AlertData] {
        usages.flatMap { use($0) }
    }

    mutating func finishBatch() {
        #expect(fold.finishBatch(&state).isEmpty)
    }
}
