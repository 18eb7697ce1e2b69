import Foundation
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateAlerts

/// Spend spikes, error-rate and latency spikes, unpriced models and estimated usage as plain values.
@Suite("Traffic alerts")
struct TrafficAlertTests {
    typealias F = Fixture

    /// `HH:MM` on 2026-11-28 (`day` 28) or another day of November 2026.
    static func time(_ day: Int, _ hour: Int, _ minute: Int, _ second: Int = 0) -> String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "2026-11-\(two(day))T\(two(hour)):\(two(minute)):\(two(second))Z"
    }

    static func dollars(_ n: Int64) -> Int64 { n * 1_000_000_000 }

    @Test("spend spike: no alert without a full baseline of history")
    func spendSpikeNeedsHistory() {
        var driver = Driver(F.only("default-spend-spike", "default-spend-spike-team"))
        #expect(driver.use(F.usage("a", at: Self.time(28, 0, 30), cost: Self.dollars(50))).isEmpty)
        #expect(driver.use(F.usage("b", at: Self.time(28, 5, 0), cost: Self.dollars(100))).isEmpty)
        #expect(driver.use(F.usage("c", at: Self.time(28, 23, 59), cost: Self.dollars(500))).isEmpty)
    }

    @Test("spend spike: the hour crossing factor × baseline raises once, a continuing spike does not, a new one does")
    func spendSpike() throws {
        var driver = Driver(F.only("default-spend-spike", "default-spend-spike-team"))
        // A day of history: $2 an hour.
        let history = (0..<24).map { F.usage("h\($0)", at: Self.time(28, $0, 30), cost: Self.dollars(2)) }
        #expect(driver.use(history).isEmpty)
        // Baseline $2 an hour: the threshold is max($10, 3 × $2) = $10.
        #expect(driver.use(F.usage("s1", at: Self.time(29, 0, 10), cost: Self.dollars(4))).isEmpty)
        let spike = driver.use(F.usage("s2", at: Self.time(29, 0, 20), cost: Self.dollars(7)))
        #expect(spike.map(\.alertID) == ["default-spend-spike|global:*|2026-11-29T00:00:00.000Z|-",
                                         "default-spend-spike-team|team:search|2026-11-29T00:00:00.000Z|-"])
        let team = try #require(spike.last)
        #expect(team.kind == .spendSpike && team.severity == .warning && team.scope == .team("search"))
        #expect(team.raisedAt == F.at(Self.time(29, 0, 20)) && team.periodStart == F.at(Self.time(29, 0, 0)))
        #expect(team.observed["spent_nano_usd"] == .int(Self.dollars(11)))
        #expect(team.observed["baseline_nano_usd"] == .int(Self.dollars(2)))
        #expect(team.observed["threshold_nano_usd"] == .int(Self.dollars(10)))
        #expect(team.title == "Team search is spending far more than usual")
        #expect(team.message == "Team search has spent $11.00 in the hour from 2026-11-29 00:00 UTC, 5.5× its usual "
                    + "$2.00 an hour (average of the previous 24 hours).")
        // More spend in the same hour, and the next hour still high: one alert for the whole spike.
        #expect(driver.use(F.usage("s3", at: Self.time(29, 0, 40), cost: Self.dollars(5))).isEmpty)
        #expect(driver.use(F.usage("s4", at: Self.time(29, 1, 30), cost: Self.dollars(15))).isEmpty)
        // A quiet hour, then a new spike: baseline ($42 + $16 + $15 + $1) / 24 = $3.083…, threshold $10.
        #expect(driver.use(F.usage("s5", at: Self.time(29, 2, 30), cost: Self.dollars(1))).isEmpty)
        let again = driver.use(F.usage("s6", at: Self.time(29, 3, 30), cost: Self.dollars(12)))
        #expect(again.map(\.alertID) == ["default-spend-spike|global:*|2026-11-29T03:00:00.000Z|-",
                                         "default-spend-spike-team|team:search|2026-11-29T03:00:00.000Z|-"])
        #expect(again.last?.observed["baseline_nano_usd"] == .int(3_083_333_333))
    }

    @Test("spend spike: a steady scope never alerts, and its history stays within the baseline window")
    func spendSteady() throws {
        var driver = Driver(F.only("default-spend-spike-team"))
        for hour in 0..<48 {
            let day = 28 + hour / 24
            #expect(driver.use(F.usage("r\(hour)", team: "ads", at: Self.time(day, hour % 24, 15),
                                       cost: Self.dollars(20))).isEmpty)
            driver.finishBatch()
        }
        let series = try #require(driver.state.spend["default-spend-spike-team"]?["team:ads"])
        #expect(series.hours.count == 25)
        #expect(series.firstHour == F.milliHours(Self.time(28, 0, 0)))
    }

    /// Twelve 5-minute windows from 08:00: `gpt-4o` with 1 failure in 20, `claude` with none.
    static func errorBaseline() -> [UsageData] {
        (0..<12).flatMap { window in
            (0..<20).flatMap { i -> [UsageData] in
                let at = Self.time(29, 8, window * 5 + i / 6, i % 6 * 10)
                let failed = i == 0
                return [
                    F.usage("g\(window)-\(i)", at: at, outcome: failed ? .providerError : .success,
                            status: failed ? 503 : 200),
                    F.usage("c\(window)-\(i)", provider: .anthropic, model: "claude-sonnet-4-5", at: at),
                ]
            }
        }
    }

    @Test("error-rate spike per provider and model: an outage of one model alerts for it only, once")
    func errorRateSpike() throws {
        var driver = Driver(F.only("default-error-rate-spike"))
        #expect(driver.use(Self.errorBaseline()).isEmpty)
        // 09:00: gpt-4o fails half its requests, claude is fine; client errors do not count.
        var alerts: [AlertData] = []
        for i in 0..<20 {
            let at = Self.time(29, 9, i / 6, i % 6 * 10)
            alerts += driver.use(F.usage("bad-\(i)", model: "gpt-4o", at: at, outcome: .providerError, status: 400))
            alerts += driver.use(F.usage("o-\(i)", at: at, outcome: i < 10 ? .providerError : .success,
                                         status: i < 10 ? 503 : 200))
            alerts += driver.use(F.usage("ok-\(i)", provider: .anthropic, model: "claude-sonnet-4-5", at: at))
        }
        #expect(alerts.map(\.alertID) == ["default-error-rate-spike/openai/gpt-4o|global:*|2026-11-29T09:00:00.000Z|-"])
        let alert = try #require(alerts.first)
        #expect(alert.kind == .errorRateSpike && alert.severity == .critical && alert.scope == .global)
        #expect(alert.raisedAt == F.at(Self.time(29, 9, 3, 10)))  // the 20th request of the window
        #expect(alert.observed["error_rate_bp"] == .int(5_000) && alert.observed["baseline_error_rate_bp"] == .int(500))
        #expect(alert.observed["requests"] == .int(20) && alert.observed["errors"] == .int(10))
        #expect(alert.observed["baseline_requests"] == .int(240))
        #expect(alert.observed["provider"] == .string("openai") && alert.observed["model"] == .string("gpt-4o"))
        #expect(alert.title == "Error rate spike on openai/gpt-4o")
        #expect(alert.message == "50% of requests to openai/gpt-4o failed in the 5 minutes from 09:00 UTC (10 of 20), "
                    + "usually 5% (previous 60 minutes).")
        // 09:05: the outage goes on: no second alert.
        let continuing = (0..<20).flatMap { i in
            driver.use(F.usage("o2-\(i)", at: Self.time(29, 9, 5 + i / 6, i % 6 * 10), outcome: .gatewayError, status: 502))
        }
        #expect(continuing.isEmpty)
        // No gpt-4o traffic at 09:10; at 09:15 it fails again: a new outage, a new alert.
        let again = (0..<20).flatMap { i in
            driver.use(F.usage("o3-\(i)", at: Self.time(29, 9, 15 + i / 6, i % 6 * 10), outcome: .gatewayError, status: 502))
        }
        #expect(again.map(\.alertID) == ["default-error-rate-spike/openai/gpt-4o|global:*|2026-11-29T09:15:00.000Z|-"])
    }

    @Test("error-rate spike: under the minimum requests or the absolute floor nothing is raised")
    func errorRateFloors() {
        var driver = Driver(F.only("default-error-rate-spike"))
        // 19 failures: under 20 requests.
        let few = (0..<19).flatMap { i in
            driver.use(F.usage("f\(i)", at: Self.time(29, 8, 0, i), outcome: .gatewayError, status: 502))
        }
        #expect(few.isEmpty)
        // A steady 5 % error rate with no history: under the 10 % floor.
        var steady: [AlertData] = []
        for i in 0..<40 {
            let failed = i % 20 == 0
            let outcome: ResponseData.Outcome = failed ? .gatewayError : .success
            steady += driver.use(F.usage("s\(i)", model: "gpt-4o-mini", at: Self.time(29, 8, 0, i), outcome: outcome,
                                         status: failed ? 502 : 200))
        }
        #expect(steady.isEmpty)
    }

    @Test("latency spike per provider and model against the trailing baseline")
    func latencySpike() throws {
        var driver = Driver(F.only("default-latency-spike"))
        // Without a baseline, slow requests raise nothing.
        let cold = (0..<20).flatMap { i in
            driver.use(F.usage("cold\(i)", model: "gpt-4o-mini", at: Self.time(29, 7, 0, i), firstByteMs: 9_000))
        }
        #expect(cold.isEmpty)
        for window in 0..<12 {
            for i in 0..<20 {
                let at = Self.time(29, 8, window * 5, i)
                #expect(driver.use(F.usage("g\(window)-\(i)", at: at, firstByteMs: 800)).isEmpty)
                #expect(driver.use(F.usage("c\(window)-\(i)", provider: .anthropic, model: "claude-sonnet-4-5", at: at,
                                           firstByteMs: nil, durationMs: 1_200)).isEmpty)
            }
        }
        var alerts: [AlertData] = []
        for i in 0..<20 {
            let at = Self.time(29, 9, 0, i)
            // A failed request does not count for latency.
            alerts += driver.use(F.usage("x\(i)", at: at, outcome: .gatewayError, status: 504, firstByteMs: 60_000))
            alerts += driver.use(F.usage("g-slow-\(i)", at: at, firstByteMs: 4_000))
            alerts += driver.use(F.usage("c-ok-\(i)", provider: .anthropic, model: "claude-sonnet-4-5", at: at,
                                         firstByteMs: nil, durationMs: 1_300))
        }
        #expect(alerts.map(\.alertID) == ["default-latency-spike/openai/gpt-4o|global:*|2026-11-29T09:00:00.000Z|-"])
        let alert = try #require(alerts.first)
        #expect(alert.kind == .latencySpike && alert.severity == .warning)
        #expect(alert.observed["mean_latency_ms"] == .int(4_000) && alert.observed["baseline_mean_latency_ms"] == .int(800))
        #expect(alert.observed["requests"] == .int(20) && alert.observed["baseline_requests"] == .int(240))
        #expect(alert.message == "Requests to openai/gpt-4o took 4000 ms on average in the 5 minutes from 09:00 UTC "
                    + "(20 requests), usually 800 ms (previous 60 minutes).")
    }

    @Test("an unpriced model raises once per model per day")
    func unpricedModel() throws {
        var driver = Driver(F.only("default-unpriced-model"))
        let first = driver.use(F.usage("u1", model: "gpt-9", at: Self.time(29, 8, 0), priced: false))
        #expect(first.map(\.alertID) == ["default-unpriced-model/openai/gpt-9|global:*|2026-11-29T00:00:00.000Z|-"])
        let alert = try #require(first.first)
        #expect(alert.kind == .unpricedModel && alert.severity == .warning && alert.title == "No price for openai/gpt-9")
        #expect(alert.observed["unpriced_reason"] == .string("model_not_in_catalog"))
        #expect(alert.observed["request_id"] == .string("u1") && alert.observed["priced"] == .bool(false))
        #expect(driver.use(F.usage("u2", model: "gpt-9", at: Self.time(29, 15, 0), priced: false)).isEmpty)
        #expect(driver.use(F.usage("p1", model: "gpt-9", at: Self.time(29, 16, 0))).isEmpty)  // priced
        let other = driver.use(F.usage("u3", provider: .gemini, model: "gemini-9-ultra", at: Self.time(29, 17, 0),
                                       priced: false))
        #expect(other.map(\.alertID) == ["default-unpriced-model/gemini/gemini-9-ultra|global:*|2026-11-29T00:00:00.000Z|-"])
        let nextDay = driver.use(F.usage("u4", model: "gpt-9", at: Self.time(30, 1, 0), priced: false))
        #expect(nextDay.map(\.alertID) == ["default-unpriced-model/openai/gpt-9|global:*|2026-11-30T00:00:00.000Z|-"])
    }

    @Test("estimated usage raises once per provider and model per day")
    func estimatedUsage() throws {
        var driver = Driver(F.only("default-estimated-usage", "default-unpriced-model"))
        let both = driver.use(F.usage("e1", provider: .anthropic, model: "claude-x", at: Self.time(29, 8, 0), priced: false,
                                      usageSource: .estimated))
        #expect(both.map(\.alertID) == ["default-estimated-usage/anthropic/claude-x|global:*|2026-11-29T00:00:00.000Z|-",
                                        "default-unpriced-model/anthropic/claude-x|global:*|2026-11-29T00:00:00.000Z|-"])
        #expect(both.first?.severity == .info && both.first?.kind == .estimatedUsage)
        #expect(driver.use(F.usage("e2", provider: .anthropic, model: "claude-x", at: Self.time(29, 9, 0),
                                   usageSource: .estimated)).isEmpty)
        #expect(driver.use(F.usage("e3", provider: .openai, model: "claude-x", at: Self.time(29, 9, 0))).isEmpty)
        let openai = driver.use(F.usage("e4", provider: .openai, model: "claude-x", at: Self.time(29, 9, 0),
                                        usageSource: .estimated))
        #expect(openai.map(\.alertID) == ["default-estimated-usage/openai/claude-x|global:*|2026-11-29T00:00:00.000Z|-"])
    }

    @Test("per-team rules split traffic by team; scoped rules watch only their scope")
    func scopedTrafficRules() {
        let perTeam = AlertRuleSetData(ruleID: "unpriced-per-team", kind: .unpricedModel, scope: Scope(kind: .team, id: "*"),
                                       updatedAt: F.at(Self.time(28, 0, 0)))
        let searchOnly = AlertRuleSetData(ruleID: "estimated-search", kind: .estimatedUsage, scope: .team("search"),
                                          severity: .critical, updatedAt: F.at(Self.time(28, 0, 0)))
        var driver = Driver(F.only() + [F.ruleSet(perTeam), F.ruleSet(searchOnly)])
        let search = driver.use(F.usage("a", team: "search", model: "m", at: Self.time(29, 8, 0), priced: false,
                                        usageSource: .estimated))
        #expect(search.map(\.alertID) == ["estimated-search/openai/m|team:search|2026-11-29T00:00:00.000Z|-",
                                          "unpriced-per-team/openai/m|team:search|2026-11-29T00:00:00.000Z|-"])
        #expect(search.first?.severity == .critical)
        let ads = driver.use(F.usage("b", team: "ads", model: "m", at: Self.time(29, 8, 1), priced: false,
                                     usageSource: .estimated))
        #expect(ads.map(\.alertID) == ["unpriced-per-team/openai/m|team:ads|2026-11-29T00:00:00.000Z|-"])
    }
}

extension Fixture {
    /// Hours since the Unix epoch of a time.
    static func milliHours(_ text: String) -> Int64 {
        Int64(at(text).timeIntervalSince1970) / 3_600
    }
}
