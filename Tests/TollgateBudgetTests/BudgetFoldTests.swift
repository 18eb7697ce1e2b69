import Foundation
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateBudget

/// The fold and the calendar as plain values.
@Suite("Budget fold")
struct BudgetFoldTests {
    static func at(_ text: String) -> Date { EventTime.parse(text)! }
    static let now = at("2026-11-29T12:00:00Z")

    static func budget(_ id: String, scope: Scope, period: PeriodKind = .month, timeZone: String = "UTC",
                       limitUSD: Int64 = 10, levels: [BudgetLevel] = [.init(percent: 50, action: .alert),
                                                                       .init(percent: 90, action: .downgrade),
                                                                       .init(percent: 100, action: .block)],
                       downgrade: [String: String] = ["gpt-4o": "gpt-4o-mini"]) -> AnyControlEvent {
        .budgetSet(CloudEvent(id: "budget:\(id):1", source: "test", time: now, subject: "budget:\(id)",
                              data: BudgetSetData(budgetID: id, scope: scope, periodKind: period, timeZone: timeZone,
                                                  limitNanoUSD: Money(wholeUSD: limitUSD)!, levels: levels,
                                                  downgrade: downgrade, onNoDowngrade: .block,
                                                  updatedAt: at("2026-01-01T00:00:00Z"))))
    }

    static func usage(_ id: String, team: String = "search", tags: [String: String] = [:], customer: String? = nil,
                      at received: String = "2026-11-29T10:00:00Z", nanoUSD: Int64) -> BudgetFold.Input {
        let response = ResponseData(
            requestID: id, keyID: "key-1", team: team, project: "answers", customer: customer, tags: tags,
            provider: .openai, endpoint: "/v1/chat/completions", requestedModel: "gpt-4o", servedModel: "gpt-4o",
            stream: false, status: 200, outcome: .success, errorType: nil, serviceTier: nil,
            timings: .init(receivedAt: at(received), upstreamSentAt: nil, firstByteMs: nil, durationMs: 10, upstreamMs: nil),
            usage: TokenUsage(inputTokens: 1), usageSource: .provider, routing: nil)
        var cost = CostBreakdown.zero
        cost.input = Money(nanoUSD: nanoUSD)
        cost.total = Money(nanoUSD: nanoUSD)
        return .usage(id: "usage:\(id)", UsageData(response: response, costNanoUSD: cost, priced: true,
                                                  catalogVersion: "t", pricedAt: now))
    }

    static func message(partition: Int = 0, offset: Int64) -> ConsumedMessage {
        ConsumedMessage(topic: "tollgate.usage", partition: partition, offset: offset, timestampMilliseconds: 0,
                        key: nil, value: Data(), headers: [])
    }

    static let fold = BudgetFold(now: { now })

    /// Folds inputs as one batch and returns the decisions published.
    static func batch(_ state: inout BudgetFold.State, _ inputs: [(BudgetFold.Input, ConsumedMessage)])
        -> [String: BudgetDecisionData?] {
        for (input, message) in inputs { _ = fold.fold(&state, input, message) }
        var result: [String: BudgetDecisionData?] = [:]
        for output in fold.finishBatch(&state) {
            let key = String(decoding: output.key!, as: UTF8.self)
            result.updateValue(output.value.map { try! EventCoding.decode(BudgetDecisionData.self, from: $0).data },
                               forKey: key)
        }
        return result
    }

    @Test("spend accumulates per budget; levels set the state and action; one decision per budget per batch")
    func levels() throws {
        var state = BudgetFold.State()
        let setup = Self.batch(&state, [(.control(Self.budget("team", scope: .team("search"))), Self.message(offset: 0))])
        #expect(setup["team"]??.state == .ok && setup["team"]??.spentNanoUSD == .zero)
        let alert = Self.batch(&state, (1...5).map { (Self.usage("r\($0)", nanoUSD: 1_000_000_000), Self.message(offset: Int64($0))) })
        let decision = try #require(alert["team"] ?? nil)
        #expect(decision.spentNanoUSD == Money(wholeUSD: 5) && decision.state == .alert && decision.action == .alert)
        #expect(decision.usedPercentBP == 5_000 && decision.remainingNanoUSD == Money(wholeUSD: 5))
        #expect(decision.watermark.usageOffsets == [0: 6])
        let downgrade = Self.batch(&state, [(Self.usage("r6", nanoUSD: 4_000_000_000), Self.message(offset: 6))])
        #expect(downgrade["team"]??.action == .downgrade && downgrade["team"]??.downgrade == ["gpt-4o": "gpt-4o-mini"])
        let blocked = Self.batch(&state, [(Self.usage("r7", nanoUSD: 1_500_000_000), Self.message(offset: 7))])
        #expect(blocked["team"]??.state == .blocked && blocked["team"]??.usedPercentBP == 10_500)
        #expect(blocked["team"]??.remainingNanoUSD == Money(nanoUSD: -500_000_000))
    }

    @Test("only budgets whose scope covers the request count it: team, tag, customer, everything")
    func scopes() {
        var state = BudgetFold.State()
        _ = Self.batch(&state, [
            (.control(Self.budget("team", scope: .team("search"))), Self.message(offset: 0)),
            (.control(Self.budget("tag", scope: .tag(name: "feature", value: "chat"))), Self.message(offset: 1)),
            (.control(Self.budget("acme", scope: .customer("acme"))), Self.message(offset: 2)),
            (.control(Self.budget("all", scope: .global)), Self.message(offset: 3)),
        ])
        let decisions = Self.batch(&state, [
            (Self.usage("a", team: "search", tags: ["feature": "chat"], nanoUSD: 100), Self.message(offset: 10)),
            (Self.usage("b", team: "ads", customer: "acme", nanoUSD: 20), Self.message(offset: 11)),
        ])
        #expect(decisions["team"]??.spentNanoUSD.nanoUSD == 100)
        #expect(decisions["tag"]??.spentNanoUSD.nanoUSD == 100)
        #expect(decisions["acme"]??.spentNanoUSD.nanoUSD == 20)
        #expect(decisions["all"]??.spentNanoUSD.nanoUSD == 120)
    }

    @Test("a usage event folded again (same offset, or same id elsewhere) is not counted twice")
    func noDoubleCounting() {
        var state = BudgetFold.State()
        _ = Self.batch(&state, [(.control(Self.budget("team", scope: .team("search"))), Self.message(offset: 0))])
        _ = Self.batch(&state, [(Self.usage("r1", nanoUSD: 7), Self.message(offset: 5))])
        // The same batch again after a crash before the commit, into a state restored from the decision.
        var restored = BudgetFold.State(control: [Self.budget("team", scope: .team("search"))],
                                        decisions: Array(state.decisions.values))
        let again = Self.batch(&restored, [(Self.usage("r1", nanoUSD: 7), Self.message(offset: 5)),
                                           (Self.usage("r2", nanoUSD: 3), Self.message(offset: 6))])
        #expect(again["team"]??.spentNanoUSD.nanoUSD == 10)
        // The cost service published r2's usage twice, at another offset.
        let duplicate = Self.batch(&restored, [(Self.usage("r2", nanoUSD: 3), Self.message(offset: 9))])
        #expect(duplicate.isEmpty)
        #expect(restored.ledgers["team"]?.spent.nanoUSD == 10)
    }

    @Test("a new period starts from zero; late usage of the previous one does not count in the new")
    func rollover() {
        var state = BudgetFold.State()
        _ = Self.batch(&state, [(.control(Self.budget("daily", scope: .global, period: .day)), Self.message(offset: 0))])
        _ = Self.batch(&state, [(Self.usage("d1", at: "2026-11-28T23:59:59.999Z", nanoUSD: 50), Self.message(offset: 1))])
        let next = Self.batch(&state, [(Self.usage("d2", at: "2026-11-29T00:00:00Z", nanoUSD: 5), Self.message(offset: 2)),
                                       (Self.usage("late", at: "2026-11-28T22:00:00Z", nanoUSD: 900), Self.message(offset: 3))])
        let decision = next["daily"] ?? nil
        #expect(decision?.spentNanoUSD.nanoUSD == 5)
        #expect(decision?.period.start == Self.at("2026-11-29T00:00:00Z"))
        #expect(decision?.period.end == Self.at("2026-11-30T00:00:00Z"))
    }

    @Test("calendar periods follow the budget's time zone (DST included), weeks start on Monday")
    func calendar() throws {
        let berlin = try #require(BudgetCalendar.period(.day, timeZone: "Europe/Berlin", containing: Self.at("2026-11-29T23:30:00Z")))
        #expect(berlin.start == Self.at("2026-11-29T23:00:00Z") && berlin.end == Self.at("2026-11-30T23:00:00Z"))
        // 2026-03-29: Berlin moves to summer time, the day lasts 23 hours.
        let short = try #require(BudgetCalendar.period(.day, timeZone: "Europe/Berlin", containing: Self.at("2026-03-29T12:00:00Z")))
        #expect(short.end!.timeIntervalSince(short.start) == 23 * 3600)
        let week = try #require(BudgetCalendar.period(.week, timeZone: "UTC", containing: Self.at("2026-11-29T12:00:00Z")))
        #expect(week.start == Self.at("2026-11-23T00:00:00Z") && week.end == Self.at("2026-11-30T00:00:00Z"))
        let month = try #require(BudgetCalendar.period(.month, timeZone: "America/New_York",
                                                       containing: Self.at("2026-12-01T03:00:00Z")))
        #expect(month.start == Self.at("2026-11-01T04:00:00Z") && month.end == Self.at("2026-12-01T05:00:00Z"))
        #expect(BudgetCalendar.period(.day, timeZone: "Mars/Olympus", containing: Self.now) == nil)
        let lifetime = try #require(BudgetCalendar.period(.lifetime, timeZone: "UTC", containing: Self.now,
                                                          lifetimeStart: Self.at("2026-01-01T00:00:00Z")))
        #expect(lifetime.end == nil)
    }

    @Test("a deleted budget gets a tombstone and stops counting")
    func deletion() {
        var state = BudgetFold.State()
        _ = Self.batch(&state, [(.control(Self.budget("team", scope: .team("search"))), Self.message(offset: 0))])
        let deleted = AnyControlEvent.budgetDeleted(CloudEvent(
            id: "x", source: "t", time: Self.now, subject: nil,
            data: BudgetDeletedData(budgetID: "team", deletedAt: Self.now)))
        let result = Self.batch(&state, [(.control(deleted), Self.message(offset: 1)),
                                         (Self.usage("r", nanoUSD: 5), Self.message(offset: 2))])
        #expect(result.keys.contains("team") && result["team"]! == nil)
        #expect(state.ledgers.isEmpty)
    }
}
