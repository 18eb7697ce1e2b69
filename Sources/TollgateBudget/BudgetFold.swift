public import Foundation
public import TollgateEvents
public import TollgateLog

/// Folds `usage.v1` into spend per budget and period and publishes `budget.decision.v1` (a pure fold;
/// ``BudgetService`` does the I/O).
///
/// It reads two topics: `control` (budget definitions) and `usage`. Each budget keeps the spend of its
/// current period and, per usage partition, the next offset it has folded in (its watermark, published
/// in every decision). A usage event below a budget's watermark is already counted and is skipped, so a
/// batch folded again after a crash — or a restart that restores the state from the decisions topic —
/// never counts twice. A usage event seen twice (the cost service published it again) is skipped by id.
/// Spend is added to the period containing the request's receipt time in the budget's time zone; a
/// later period starts the spend at zero; late usage for an earlier period is not added to the current
/// one. After each batch, one decision per budget that changed is published, keyed by budget id on the
/// compacted `budget-decisions` topic; a deleted budget gets a tombstone.
public struct BudgetFold: EventFold {
    public let topicPrefix: String
    public let source: String
    public let now: @Sendable () -> Date

    public init(topicPrefix: String = TopicCatalog.defaultPrefix, source: String = "tollgate/budget",
                now: @escaping @Sendable () -> Date = Date.init) {
        self.topicPrefix = topicPrefix
        self.source = source
        self.now = now
    }

    /// The spend of one budget in its current period.
    public struct Ledger: Sendable, Hashable {
        public var period: BudgetPeriod
        public var spent: Money
        /// Per usage partition, the next offset folded in.
        public var watermark: [Int: Int64]

        public init(period: BudgetPeriod, spent: Money = .zero, watermark: [Int: Int64] = [:]) {
            self.period = period
            self.spent = spent
            self.watermark = watermark
        }
    }

    public struct State: Sendable {
        public var budgets: [String: BudgetSetData] = [:]
        public var ledgers: [String: Ledger] = [:]
        /// The latest decision published per budget.
        public var decisions: [String: BudgetDecisionData] = [:]
        var recent = RecentIDs(capacity: 200_000)
        var dirty = Set<String>()
        var deleted = Set<String>()

        public init() {}

        /// The state a restarted service resumes from: the budgets of the control topic and the spend
        /// of the latest decision per budget.
        public init(control: [AnyControlEvent], decisions: [BudgetDecisionData]) {
            for event in control {
                switch event {
                case .budgetSet(let set): budgets[set.data.budgetID] = set.data
                case .budgetDeleted(let deleted): budgets[deleted.data.budgetID] = nil
                default: continue
                }
            }
            for decision in decisions where budgets[decision.budgetID] != nil {
                ledgers[decision.budgetID] = Ledger(period: decision.period, spent: decision.spentNanoUSD,
                                                    watermark: decision.watermark.usageOffsets)
                self.decisions[decision.budgetID] = decision
            }
        }
    }

    public enum Input: Sendable {
        case control(AnyControlEvent)
        case usage(id: String, UsageData)
        /// A compaction tombstone or another event on these topics.
        case nothing
    }

    public func decode(_ message: ConsumedMessage) throws -> Input {
        guard let value = message.value else { return .nothing }
        if message.topic == topicPrefix + "control" {
            return .control(try AnyControlEvent.decode(from: value))
        }
        let event = try EventCoding.decodeUsage(from: value)
        return .usage(id: event.id, event.data)
    }

    public func fold(_ state: inout State, _ input: Input, _ message: ConsumedMessage) -> [OutgoingMessage] {
        switch input {
        case .nothing:
            return []
        case .control(.budgetSet(let event)):
            let budget = event.data
            if let previous = state.budgets[budget.budgetID],
               previous.periodKind != budget.periodKind || previous.timeZone != budget.timeZone {
                // Another period shape: the spend so far belongs to periods that no longer exist.
                state.ledgers[budget.budgetID] = nil
            }
            state.budgets[budget.budgetID] = budget
            state.deleted.remove(budget.budgetID)
            state.dirty.insert(budget.budgetID)
        case .control(.budgetDeleted(let event)):
            state.budgets[event.data.budgetID] = nil
            state.ledgers[event.data.budgetID] = nil
            state.decisions[event.data.budgetID] = nil
            state.dirty.remove(event.data.budgetID)
            state.deleted.insert(event.data.budgetID)
        case .control:
            return []
        case .usage(let id, let usage):
            guard state.recent.insert(id) else { return [] }
            let response = usage.response
            let at = response.timings.receivedAt
            for (budgetID, budget) in state.budgets
            where budget.scope.covers(keyID: response.keyID, project: response.project, team: response.team,
                                      customer: response.customer, tags: response.tags) {
                guard let period = BudgetCalendar.period(budget.periodKind, timeZone: budget.timeZone,
                                                         containing: at, lifetimeStart: budget.updatedAt) else { continue }
                var ledger = state.ledgers[budgetID] ?? Ledger(period: period)
                if let next = ledger.watermark[message.partition], message.offset < next { continue }
                ledger.watermark[message.partition] = message.offset + 1
                if budget.periodKind != .lifetime && period.start > ledger.period.start {
                    ledger = Ledger(period: period, watermark: ledger.watermark)
                }
                if budget.periodKind == .lifetime || period.start == ledger.period.start {
                    ledger.spent = ledger.spent.adding(usage.costNanoUSD.total) ?? Money(nanoUSD: .max)
                }
                state.ledgers[budgetID] = ledger
                state.dirty.insert(budgetID)
            }
        }
        return []
    }

    public func finishBatch(_ state: inout State) -> [OutgoingMessage] {
        let now = now()
        var outputs: [OutgoingMessage] = []
        for budgetID in state.deleted.sorted() {
            outputs.append(OutgoingMessage(topic: topicPrefix + BudgetDecisionData.topic, key: budgetID, value: nil,
                                           headers: [MessageHeader("ce_type", BudgetDecisionData.eventType)]))
        }
        for budgetID in state.dirty.sorted() {
            guard let budget = state.budgets[budgetID] else { continue }
            var ledger = state.ledgers[budgetID]
                ?? Ledger(period: BudgetCalendar.period(budget.periodKind, timeZone: budget.timeZone, containing: now,
                                                        lifetimeStart: budget.updatedAt)
                          ?? BudgetPeriod(kind: .lifetime, timeZone: "UTC", start: budget.updatedAt, end: nil))
            // A period that ended with no usage since: the decision is about the current one.
            if let end = ledger.period.end, end <= now,
               let current = BudgetCalendar.period(budget.periodKind, timeZone: budget.timeZone, containing: now) {
                ledger = Ledger(period: current, watermark: ledger.watermark)
            }
            state.ledgers[budgetID] = ledger
            let decision = Self.decision(budget: budget, ledger: ledger, at: now)
            state.decisions[budgetID] = decision
            let event = CloudEvent(id: "decision:\(budgetID):\(UUID().uuidString.lowercased())", source: source,
                                   time: now, subject: budgetID, data: decision)
            guard let value = try? EventCoding.encode(event) else { continue }
            outputs.append(OutgoingMessage(topic: topicPrefix + BudgetDecisionData.topic, key: budgetID, value: value,
                                           headers: [MessageHeader("content-type", "application/cloudevents+json"),
                                                     MessageHeader("ce_type", BudgetDecisionData.eventType)]))
        }
        state.dirty.removeAll()
        state.deleted.removeAll()
        return outputs
    }

    /// The decision for a budget with this spend.
    public static func decision(budget: BudgetSetData, ledger: Ledger, at now: Date) -> BudgetDecisionData {
        let (state, action, usedBP) = budget.assess(spent: ledger.spent)
        return BudgetDecisionData(
            budgetID: budget.budgetID, scope: budget.scope, period: ledger.period, state: state,
            limitNanoUSD: budget.limitNanoUSD, spentNanoUSD: ledger.spent,
            remainingNanoUSD: budget.limitNanoUSD.subtracting(ledger.spent) ?? Money(nanoUSD: .min),
            usedPercentBP: usedBP, action: action, downgrade: budget.downgrade, onNoDowngrade: budget.onNoDowngrade,
            watermark: .init(usageOffsets: ledger.watermark, asOf: now), decidedAt: now)
    }
}

