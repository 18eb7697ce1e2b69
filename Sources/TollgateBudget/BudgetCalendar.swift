public import Foundation
public import TollgateEvents

/// Calendar periods of budgets: a day from local midnight, a week from Monday, a month from the 1st, in
/// the budget's IANA time zone; lifetime never ends.
public enum BudgetCalendar {
    /// The period of `kind` in `timeZone` that contains `date`; `nil` when the time zone is unknown.
    /// - Parameter lifetimeStart: the start of a lifetime period (when the budget was created).
    public static func period(_ kind: PeriodKind, timeZone: String, containing date: Date,
                              lifetimeStart: Date = Date(timeIntervalSince1970: 0)) -> BudgetPeriod? {
        guard let zone = TimeZone(identifier: timeZone) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        calendar.firstWeekday = 2  // Monday
        calendar.minimumDaysInFirstWeek = 4
        let interval: DateInterval?
        switch kind {
        case .lifetime:
            return BudgetPeriod(kind: .lifetime, timeZone: timeZone, start: lifetimeStart, end: nil)
        case .day:
            interval = calendar.dateInterval(of: .day, for: date)
        case .week:
            interval = calendar.dateInterval(of: .weekOfYear, for: date)
        case .month:
            interval = calendar.dateInterval(of: .month, for: date)
        }
        guard let interval else { return nil }
        return BudgetPeriod(kind: kind, timeZone: timeZone, start: interval.start, end: interval.end)
    }
}

extension Scope {
    /// Whether a request with these attributes is in this scope.
    public func covers(keyID: String, project: String, team: String, customer: String?, tags: [String: String]) -> Bool {
        switch kind {
        case .global: return true
        case .key: return id == keyID
        case .project: return id == project
        case .team: return id == team
        case .customer: return id == customer
        case .tag:
            guard let equals = id.firstIndex(of: "=") else { return false }
            return tags[String(id[..<equals])] == String(id[id.index(after: equals)...])
        }
    }
}

extension BudgetSetData {
    /// The state, action and used share of this budget at `spent`.
    public func assess(spent: Money) -> (state: BudgetDecisionData.State, action: BudgetDecisionData.Action,
                                         usedBP: Int64) {
        let usedBP: Int64
        if limitNanoUSD.nanoUSD > 0 {
            let (product, overflow) = spent.nanoUSD.multipliedReportingOverflow(by: 10_000)
            usedBP = overflow ? Int64.max : product / limitNanoUSD.nanoUSD
        } else {
            usedBP = spent.nanoUSD > 0 ? Int64.max : 0
        }
        let reached = levels.filter { Int64($0.percent) * 100 <= usedBP }.map(\.action)
        if reached.contains(.block) { return (.blocked, .block, usedBP) }
        if reached.contains(.downgrade) { return (.downgrade, .downgrade, usedBP) }
        if reached.contains(.alert) { return (.alert, .alert, usedBP) }
        return (.ok, .none, usedBP)
    }

    /// The spend at which `action` starts: the lowest level with that action, in nano-USD (rounded
    /// down); `nil` when the budget has no such level.
    public func threshold(of action: BudgetLevel.Action) -> Int64? {
        guard let percent = levels.filter({ $0.action == action }).map(\.percent).min() else { return nil }
        let (product, overflow) = limitNanoUSD.nanoUSD.multipliedReportingOverflow(by: Int64(percent))
        return overflow ? Int64.max : product / 100
    }
}
