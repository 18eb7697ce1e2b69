import Foundation
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateAlerts

/// Budget thresholds, budget actions and burn-rate forecasts as plain values.
@Suite("Budget alerts")
struct BudgetAlertTests {
    typealias F = Fixture

    static let november = "2026-11-01T00:00:00.000Z"

    @Test("a threshold raises once per period and level, and again in the next period")
    func thresholdOncePerPeriod() {
        var driver = Driver(F.only("default-budget-threshold"))
        #expect(driver.decide(F.decision(spent: F.usd(40), at: "2026-11-10T00:00:00Z")).isEmpty)
        let fifty = driver.decide(F.decision(spent: F.usd(55), at: "2026-11-12T00:00:00Z"))
        #expect(fifty.map(\.alertID) == ["default-budget-threshold/b-search|team:search|\(Self.november)|50"])
        let alert = fifty[0]
        #expect(alert.ruleID == "default-budget-threshold" && alert.kind == .budgetThreshold)
        #expect(alert.severity == .info && alert.levelPercent == 50 && alert.scope == .team("search"))
        #expect(alert.periodStart == F.at(Self.november) && alert.raisedAt == F.at("2026-11-12T00:00:00Z"))
        #expect(alert.title == "Team search reached 50% of its monthly budget")
        #expect(alert.message == "Team search has spent $55.00 of $100.00 (55%) this month (budget b-search).")
        #expect(alert.observed["spent_nano_usd"] == .int(55_000_000_000))
        #expect(alert.observed["limit_nano_usd"] == .int(100_000_000_000))
        #expect(alert.observed["used_percent_bp"] == .int(5_500))
        #expect(alert.observed["period_end"] == .string("2026-12-01T00:00:00.000Z"))
        #expect(driver.decide(F.decision(spent: F.usd(60), at: "2026-11-13T00:00:00Z")).isEmpty)
        let eighty = driver.decide(F.decision(spent: Money(nanoUSD: 80_250_000_000), at: "2026-11-20T00:00:00Z"))
        #expect(eighty.map(\.alertID) == ["default-budget-threshold/b-search|team:search|\(Self.november)|80"])
        #expect(eighty.first?.severity == .warning)
        #expect(eighty.first?.message == "Team search has spent $80.25 of $100.00 (80.25%) this month (budget b-search).")
        // December: a new period, the same levels raise again.
        let december = driver.decide(F.decision(start: "2026-12-01T00:00:00Z", end: "2027-01-01T00:00:00Z",
                                                spent: F.usd(51), at: "2026-12-05T00:00:00Z"))
        #expect(december.map(\.alertID) == ["default-budget-threshold/b-search|team:search|2026-12-01T00:00:00.000Z|50"])
    }

    @Test("two budgets on the same scope and period alert apart")
    func budgetsOnOneScope() {
        var driver = Driver(F.only("default-budget-threshold"))
        let soft = driver.decide(F.decision(budget: "search-soft", limitUSD: 50, spent: F.usd(45), at: "2026-11-10T00:00:00Z"))
        let hard = driver.decide(F.decision(budget: "search-hard", limitUSD: 100, spent: F.usd(85), at: "2026-11-10T00:00:01Z"))
        #expect(soft.map(\.alertID) == ["default-budget-threshold/search-soft|team:search|\(Self.november)|50",
                                        "default-budget-threshold/search-soft|team:search|\(Self.november)|80"])
        #expect(hard.map(\.alertID) == ["default-budget-threshold/search-hard|team:search|\(Self.november)|50",
                                        "default-budget-threshold/search-hard|team:search|\(Self.november)|80"])
    }

    @Test("several levels crossed in one jump raise one alert each, in level order")
    func jump() {
        var driver = Driver(F.only("default-budget-threshold"))
        let alerts = driver.decide(F.decision(spent: F.usd(105), at: "2026-11-12T00:00:00Z"))
        #expect(alerts.map(\.levelPercent) == [50, 80, 100])
        #expect(alerts.map(\.severity) == [.info, .warning, .critical])
        #expect(alerts.last?.title == "Team search reached 100% of its monthly budget")
        #expect(driver.decide(F.decision(spent: F.usd(110), at: "2026-11-13T00:00:00Z")).isEmpty)
    }

    @Test("a budget hovering around 80 % raises the 80 % alert once")
    func hovering() {
        var driver = Driver(F.only("default-budget-threshold"))
        var raised: [String] = []
        for (index, dollars) in [79, 81, 79, 80, 81, 79, 81].enumerated() {
            raised += driver.decide(F.decision(spent: F.usd(Int64(dollars)), at: "2026-11-1\(index)T00:00:00Z"))
                .map(\.alertID)
        }
        #expect(raised == ["default-budget-threshold/b-search|team:search|\(Self.november)|50",
                           "default-budget-threshold/b-search|team:search|\(Self.november)|80"])
    }

    @Test("a downgrade and a block taking effect raise once per period each")
    func budgetAction() {
        var driver = Driver(F.only("default-budget-action"))
        #expect(driver.decide(F.decision(spent: F.usd(85), action: .alert, at: "2026-11-10T00:00:00Z")).isEmpty)
        let downgrade = driver.decide(F.decision(spent: F.usd(91), action: .downgrade, at: "2026-11-11T00:00:00Z"))
        #expect(downgrade.map(\.alertID) == ["default-budget-action/b-search/downgrade|team:search|\(Self.november)|-"])
        #expect(downgrade.first?.severity == .warning && downgrade.first?.kind == .budgetAction)
        #expect(downgrade.first?.title == "Team search's monthly budget is downgrading requests")
        #expect(downgrade.first?.message == "Team search has spent $91.00 of $100.00 (91%) this month (budget b-search): "
                    + "requests go to cheaper models until the period ends on 2026-12-01 00:00 UTC.")
        #expect(driver.decide(F.decision(spent: F.usd(95), action: .downgrade, at: "2026-11-12T00:00:00Z")).isEmpty)
        let block = driver.decide(F.decision(spent: F.usd(100), action: .block, at: "2026-11-13T00:00:00Z"))
        #expect(block.map(\.alertID) == ["default-budget-action/b-search/block|team:search|\(Self.november)|-"])
        #expect(block.first?.severity == .critical)
        #expect(block.first?.observed["action"] == .string("block"))
        #expect(driver.decide(F.decision(spent: F.usd(101), action: .block, at: "2026-11-14T00:00:00Z")).isEmpty)
        // A period that starts blocked (no downgrade on the way) raises the block only.
        let next = driver.decide(F.decision(start: "2026-12-01T00:00:00Z", end: "2027-01-01T00:00:00Z", spent: F.usd(100),
                                            action: .block, at: "2026-12-02T00:00:00Z"))
        #expect(next.map(\.alertID) == ["default-budget-action/b-search/block|team:search|2026-12-01T00:00:00.000Z|-"])
    }

    @Test("burn rate: the forecast is the spend so far projected at its average rate, to the millisecond")
    func burnRateForecast() throws {
        var driver = Driver(F.only("default-burn-rate"))
        // Day 1 of 30: far too fast, but less than 10 % of the period has elapsed.
        #expect(driver.decide(F.decision(limitUSD: 300, spent: F.usd(50), at: "2026-11-02T00:00:00Z")).isEmpty)
        // Day 3 (exactly 10 %): $70 of $300 in 259 200 000 ms runs out 259 200 000 × 300 / 70 =
        // 1 110 857 142.857… ms after the start: 2026-11-13T20:34:17.142Z.
        let alerts = driver.decide(F.decision(limitUSD: 300, spent: F.usd(70), at: "2026-11-04T00:00:00Z"))
        let alert = try #require(alerts.first)
        #expect(alerts.count == 1)
        #expect(alert.alertID == "default-burn-rate/b-search|team:search|\(Self.november)|-")
        #expect(alert.kind == .burnRate && alert.severity == .warning)
        #expect(alert.observed["forecast_exhausted_at"] == .string("2026-11-13T20:34:17.142Z"))
        // $70 × 30 days / 3 days = $700 projected for the month.
        #expect(alert.observed["forecast_nano_usd"] == .int(700_000_000_000))
        #expect(alert.observed["elapsed_bp"] == .int(1_000))
        #expect(alert.observed["lead_ms"] == .int(2_592_000_000 - 1_110_857_142))
        #expect(alert.title == "Team search's monthly budget runs out on 2026-11-13 20:34 UTC")
        #expect(alert.message == "At the current rate ($70.00 in the first 3 days of the period), team search's budget "
                    + "of $300.00 (budget b-search) runs out on 2026-11-13 20:34 UTC, 17 days 3 hours before the period "
                    + "ends on 2026-12-01 00:00 UTC, about $700.00 by the end.")
        // Once per period, however the rate goes on.
        #expect(driver.decide(F.decision(limitUSD: 300, spent: F.usd(150), at: "2026-11-06T00:00:00Z")).isEmpty)
    }

    @Test("burn rate stays quiet on track, when already exhausted, too close to the end, or for lifetime budgets")
    func burnRateQuiet() throws {
        var driver = Driver(F.only("default-burn-rate"))
        // $20 of $300 after 3 days runs out after 45 days: on track.
        #expect(driver.decide(F.decision(limitUSD: 300, spent: F.usd(20), at: "2026-11-04T00:00:00Z")).isEmpty)
        // Already over the limit: the thresholds say so, not the forecast.
        #expect(driver.decide(F.decision(budget: "over", limitUSD: 300, spent: F.usd(300), at: "2026-11-05T00:00:00Z")).isEmpty)
        #expect(driver.decide(F.decision(budget: "life", scope: .global, kind: .lifetime, start: "2026-01-01T00:00:00Z",
                                         end: nil, limitUSD: 300, spent: F.usd(290), at: "2026-11-05T00:00:00Z")).isEmpty)
        // A daily budget at noon with $50.20 of $100 runs out 86 055 776 ms after midnight, 5 min 44 s
        // before the day ends: under the default lead of an hour.
        let daily = F.decision(budget: "daily", scope: .team("ads"), kind: .day, start: "2026-11-29T00:00:00Z",
                               end: "2026-11-30T00:00:00Z", spent: Money(nanoUSD: 50_200_000_000), at: "2026-11-29T12:00:00Z")
        #expect(driver.decide(daily).isEmpty)
        // With a lead of one minute it alerts.
        driver.control(F.ruleSet(AlertRuleSetData(ruleID: "default-burn-rate", kind: .burnRate, scope: .global,
                                                  leadMs: 60_000, updatedAt: F.at("2026-11-29T00:00:00Z"))))
        var later = daily
        later.decidedAt = F.at("2026-11-29T12:00:00.001Z")
        let alert = try #require(driver.decide(later).first)
        // 43 200 001 × 100 / 50.2 = 86 055 778.88 → 86 055 778 ms → 23:54:15.778.
        #expect(alert.observed["forecast_exhausted_at"] == .string("2026-11-29T23:54:15.778Z"))
        #expect(alert.alertID == "default-burn-rate/daily|team:ads|2026-11-29T00:00:00.000Z|-")
    }

    @Test("the forecast arithmetic does not overflow with huge limits and tiny spend")
    func forecastBounds() throws {
        let rule = AlertRule(AlertRuleSetData(ruleID: "r", kind: .burnRate, scope: .global, updatedAt: F.at(Self.november)))
        var huge = F.decision(spent: Money(nanoUSD: 1), at: "2026-11-20T00:00:00Z")
        huge.limitNanoUSD = Money(nanoUSD: .max)
        #expect(BurnForecast(huge, rule: rule) == nil)
        let fast = F.decision(limitUSD: 100, spent: Money(nanoUSD: 99_999_999_999), at: "2026-11-04T00:00:00Z")
        let forecast = try #require(BurnForecast(fast, rule: rule))
        // 259 200 000 × 100 000 000 000 / 99 999 999 999 = 259 200 000.0026 → 259 200 000 ms: now.
        #expect(forecast.exhaustedAt == F.at("2026-11-04T00:00:00Z"))
        #expect(forecast.projected == Money(nanoUSD: 999_999_999_990))
    }

    @Test("a deleted budget's decisions raise nothing; late decisions of a long-gone period raise nothing")
    func deletedAndLate() {
        var driver = Driver(F.only("default-budget-threshold"))
        driver.control(.budgetDeleted(CloudEvent(id: "d", source: "t", time: F.at("2026-11-02T00:00:00Z"),
                                                 data: BudgetDeletedData(budgetID: "b-search",
                                                                         deletedAt: F.at("2026-11-02T00:00:00Z")))))
        #expect(driver.decide(F.decision(spent: F.usd(99), at: "2026-11-10T00:00:00Z")).isEmpty)
        let other = driver.decide(F.decision(budget: "b-ads", scope: .team("ads"), spent: F.usd(60), at: "2026-12-05T00:00:00Z"))
        #expect(other.isEmpty)  // the November period ended more than a day before the clock (Dec 5)
        let current = driver.decide(F.decision(budget: "b-ads", scope: .team("ads"), start: "2026-12-01T00:00:00Z",
                                               end: "2027-01-01T00:00:00Z", spent: F.usd(60), at: "2026-12-05T00:00:01Z"))
        #expect(current.count == 1)
    }
}
