import Foundation
import Testing
import TollgateEvents
@testable import TollgateBudget

/// The ingress's ledger as a plain value.
@Suite("Budget guard")
struct BudgetGuardTests {
    static let now = EventTime.parse("2026-11-29T12:00:00Z")!

    static func budget(_ id: String, scope: Scope, limitNano: Int64 = 1_000_000_000,
                       levels: [BudgetLevel] = [.init(percent: 90, action: .downgrade), .init(percent: 100, action: .block)],
                       downgrade: [String: String] = ["gpt-4o": "gpt-4o-mini", "claude-opus-*": "claude-sonnet-*"],
                       onNoDowngrade: OnNoDowngrade = .block) -> AnyControlEvent {
        .budgetSet(CloudEvent(id: id, source: "t", time: now, subject: nil, data: BudgetSetData(
            budgetID: id, scope: scope, periodKind: .day, timeZone: "UTC", limitNanoUSD: Money(nanoUSD: limitNano),
            levels: levels, downgrade: downgrade, onNoDowngrade: onNoDowngrade, updatedAt: now)))
    }

    static func request(_ id: String, model: String = "gpt-4o", team: String = "search",
                        tags: [String: String] = [:]) -> BudgetGuard.Request {
        .init(requestID: id, keyID: "k", project: "p", team: team, customer: nil, tags: tags, model: model)
    }

    static func decision(_ id: String, spent: Int64, limit: Int64 = 1_000_000_000, at: Date = now) -> BudgetDecisionData {
        BudgetDecisionData(
            budgetID: id, scope: .team("search"),
            period: BudgetCalendar.period(.day, timeZone: "UTC", containing: at)!, state: .ok,
            limitNanoUSD: Money(nanoUSD: limit), spentNanoUSD: Money(nanoUSD: spent),
            remainingNanoUSD: Money(nanoUSD: limit - spent), usedPercentBP: spent * 10_000 / limit, action: .none,
            onNoDowngrade: .block, watermark: .init(usageOffsets: [:], asOf: at), decidedAt: at)
    }

    /// gpt-4o costs 100 M nano-USD ($0.10) worst case, gpt-4o-mini 10 M, claude-sonnet-4 30 M.
    static func worstCase(_ model: String) -> Int64? {
        ["gpt-4o": 100_000_000, "gpt-4o-mini": 10_000_000, "claude-opus-4": 200_000_000,
         "claude-sonnet-4": 30_000_000][model]
    }

    @Test("requests outside every budget pass with no reservation")
    func noBudget() {
        var guardian = BudgetGuard()
        guardian.apply(Self.budget("team", scope: .team("search")))
        guard case .allow(let ticket) = guardian.admit(Self.request("r", team: "ads"), now: Self.now, worstCase: Self.worstCase)
        else { Issue.record("refused"); return }
        #expect(ticket.budgets.isEmpty && ticket.reservedNanoUSD == 0)
    }

    @Test("concurrent reservations never cross the block level; settling frees the difference")
    func concurrency() {
        var guardian = BudgetGuard()
        // Downgrade only at 95 %, block at 100 % of $1.
        guardian.apply(Self.budget("team", scope: .team("search"),
                                   levels: [.init(percent: 100, action: .block)]))
        var admitted: [String] = []
        for index in 0..<20 {
            if case .allow = guardian.admit(Self.request("r\(index)"), now: Self.now, worstCase: Self.worstCase) {
                admitted.append("r\(index)")
            }
        }
        // $1 / $0.10 worst case = 10 in flight at most.
        #expect(admitted.count == 10)
        guard case .block(let refusal) = guardian.admit(Self.request("more"), now: Self.now, worstCase: Self.worstCase)
        else { Issue.record("admitted past the limit"); return }
        #expect(refusal.reason == "budget_exceeded" && refusal.budgetID == "team")
        #expect(refusal.resetsAt == EventTime.parse("2026-11-30T00:00:00Z"))
        // Each really cost $0.02 (a failed one $0): room for more.
        for (index, id) in admitted.enumerated() { guardian.settle(id, cost: index == 0 ? 0 : 20_000_000, now: Self.now) }
        #expect(guardian.inFlight == 0)
        #expect(guardian.localSpend(guardian.budgets["team"]!, now: Self.now) == 180_000_000)
        var more = 0
        for index in 0..<20 {
            if case .allow = guardian.admit(Self.request("s\(index)"), now: Self.now, worstCase: Self.worstCase) { more += 1 }
        }
        #expect(more == 8)  // (1.00 − 0.18) / 0.10
    }

    @Test("with two replicas each may spend half of what the decision left")
    func replicas() {
        var guardian = BudgetGuard(replicas: 2)
        guardian.apply(Self.budget("team", scope: .team("search"), levels: [.init(percent: 100, action: .block)]))
        guardian.apply(Self.decision("team", spent: 400_000_000))
        var admitted = 0
        for index in 0..<10 {
            if case .allow = guardian.admit(Self.request("r\(index)"), now: Self.now, worstCase: Self.worstCase) { admitted += 1 }
        }
        #expect(admitted == 3)  // (1.00 − 0.40) / 2 = 0.30
    }

    @Test("at the downgrade level the model is rewritten, by exact name or prefix pattern; without a mapping the budget decides")
    func downgrade() {
        var guardian = BudgetGuard()
        guardian.apply(Self.budget("team", scope: .team("search")))
        guardian.apply(Self.decision("team", spent: 850_000_000))
        guard case .downgrade(let from, let to, let budgetID, let ticket) =
            guardian.admit(Self.request("a"), now: Self.now, worstCase: Self.worstCase)
        else { Issue.record("not downgraded"); return }
        #expect(from == "gpt-4o" && to == "gpt-4o-mini" && budgetID == "team" && ticket.reservedNanoUSD == 10_000_000)
        guard case .downgrade(_, let claude, _, _) = guardian.admit(Self.request("b", model: "claude-opus-4"),
                                                                     now: Self.now, worstCase: Self.worstCase)
        else { Issue.record("not downgraded"); return }
        #expect(claude == "claude-sonnet-4")
        // At the level itself, even a tiny request of a model without a mapping is refused.
        guardian.apply(Self.decision("team", spent: 900_000_000, at: Self.now.addingTimeInterval(1)))
        guard case .block(let refusal) = guardian.admit(Self.request("c", model: "gemini-2.5-pro"), now: Self.now,
                                                        worstCase: { _ in 1 })
        else { Issue.record("passed without a cheaper model"); return }
        #expect(refusal.reason == "no_cheaper_model")

        var passing = BudgetGuard()
        passing.apply(Self.budget("team", scope: .team("search"), onNoDowngrade: .pass))
        passing.apply(Self.decision("team", spent: 900_000_000))
        guard case .allow = passing.admit(Self.request("d", model: "gemini-2.5-pro"), now: Self.now, worstCase: { _ in 1 })
        else { Issue.record("refused though the budget passes"); return }
    }

    @Test("a model the budget's map does not name goes to the catalog's default cheaper model")
    func catalogDefaults() {
        var guardian = BudgetGuard()
        guardian.defaultDowngrades = ["gemini-2.5-pro": "gemini-2.5-flash"]
        guardian.apply(Self.budget("team", scope: .team("search"), downgrade: [:]))
        guardian.apply(Self.decision("team", spent: 950_000_000))
        guard case .downgrade(_, let to, _, _) = guardian.admit(Self.request("g", model: "gemini-2.5-pro"), now: Self.now,
                                                                 worstCase: { _ in 1_000 })
        else { Issue.record("not downgraded by the catalog default"); return }
        #expect(to == "gemini-2.5-flash")
    }

    @Test("several budgets on one request: the strictest wins")
    func strictest() {
        var guardian = BudgetGuard()
        guardian.apply(Self.budget("team", scope: .team("search"), limitNano: 100_000_000_000))
        guardian.apply(Self.budget("tag", scope: .tag(name: "feature", value: "chat"), limitNano: 1_000_000_000))
        guardian.apply(Self.decision("tag", spent: 1_000_000_000))
        guard case .block(let refusal) = guardian.admit(Self.request("r", tags: ["feature": "chat"]), now: Self.now,
                                                        worstCase: Self.worstCase)
        else { Issue.record("admitted"); return }
        #expect(refusal.budgetID == "tag")
        guard case .allow = guardian.admit(Self.request("r2", tags: ["feature": "search"]), now: Self.now,
                                           worstCase: Self.worstCase)
        else { Issue.record("refused by a budget that does not cover it"); return }
    }

    @Test("a decision about a past period counts as zero; later decisions absorb local settlements")
    func periodsAndHorizon() {
        var guardian = BudgetGuard(settleHorizon: 5)
        guardian.apply(Self.budget("team", scope: .team("search"), levels: [.init(percent: 100, action: .block)]))
        guardian.apply(Self.decision("team", spent: 1_000_000_000, at: Self.now.addingTimeInterval(-86_400)))
        guard case .allow(let ticket) = guardian.admit(Self.request("r"), now: Self.now, worstCase: Self.worstCase)
        else { Issue.record("yesterday's spend blocked today"); return }
        guardian.settle(ticket.requestID, cost: 50_000_000, now: Self.now)
        let budget = guardian.budgets["team"]!
        #expect(guardian.localSpend(budget, now: Self.now) == 50_000_000)
        // A decision made 1 s later may not include it yet; one made 6 s later does.
        // Until a decision is made after it, the ledger says how old the oldest such cost is (readiness).
        #expect(guardian.oldestUnabsorbedSettlement == Self.now)
        guardian.apply(Self.decision("team", spent: 50_000_000, at: Self.now.addingTimeInterval(1)))
        #expect(guardian.localSpend(budget, now: Self.now) == 50_000_000)
        #expect(guardian.oldestUnabsorbedSettlement == nil)
        guardian.apply(Self.decision("team", spent: 50_000_000, at: Self.now.addingTimeInterval(6)))
        #expect(guardian.localSpend(budget, now: Self.now) == 0)
        // An older decision arriving late does not replace a newer one.
        guardian.apply(Self.decision("team", spent: 1, at: Self.now))
        #expect(guardian.decidedSpend(budget, now: Self.now) == 50_000_000)
    }
}
