import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TollgateEvents
import TollgateLog
import TollgateProjections
import TollgateQuery

/// The dashboard through the router: sign-in, the sections and their figures, escaping, filters.
///
/// The store is seeded with encoded events; every expected figure is computed here from the same events.
@Suite("Dashboard")
struct DashboardTests {
    // MARK: Sign-in

    @Test("without a key the page is a 401 login form")
    func loginPage() async throws {
        let fixture = try DashboardFixture()
        try await fixture.test { client in
            try await client.execute(uri: "/dashboard", method: .get) { response in
                #expect(response.status == .unauthorized)
                let html = String(buffer: response.body)
                #expect(html.contains("data-testid=\"login-form\""))
                #expect(html.contains("action=\"/dashboard/login\""))
                #expect(!html.contains("data-testid=\"login-error\""))
                #expect(!html.contains("spend-chart"))
                #expect(!html.contains("<script"))
            }
        }
    }

    @Test("posting the admin key sets an HttpOnly session cookie that opens the page")
    func loginFlow() async throws {
        let fixture = try DashboardFixture()
        try await fixture.test { client in
            let login = try await client.execute(uri: "/dashboard/login", method: .post, headers: DashboardFixture.form,
                                                 body: ByteBuffer(string: "key=\(DashboardFixture.adminKey)"))
            #expect(login.status == .seeOther)
            #expect(login.headers[.location] == "/dashboard")
            let setCookie = try #require(login.headers[.setCookie])
            #expect(setCookie == "tollgate_session=\(DashboardFixture.adminKey); HttpOnly; SameSite=Strict; Path=/")
            let cookie = String(setCookie.prefix { $0 != ";" })

            let page = try await client.execute(uri: "/dashboard", method: .get, headers: [.cookie: cookie])
            #expect(page.status == .ok)
            let html = String(buffer: page.body)
            #expect(html.contains("data-testid=\"spend-chart\""))
            #expect(html.contains("data-testid=\"principal\">admin<"))

            let logout = try await client.execute(uri: "/dashboard/logout", method: .post, headers: [.cookie: cookie])
            #expect(logout.status == .seeOther)
            let cleared = try #require(logout.headers[.setCookie])
            #expect(cleared.hasPrefix("tollgate_session=;"))
            #expect(cleared.contains("Max-Age=0"))
        }
    }

    @Test("a wrong key is refused at login and as a stale cookie")
    func badKey() async throws {
        let fixture = try DashboardFixture()
        try await fixture.test { client in
            try await client.execute(uri: "/dashboard/login", method: .post, headers: DashboardFixture.form,
                                     body: ByteBuffer(string: "key=not-the-key")) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.setCookie] == nil)
                let html = String(buffer: response.body)
                #expect(html.contains("data-testid=\"login-error\""))
                #expect(html.contains("data-testid=\"login-form\""))
            }
            try await client.execute(uri: "/dashboard/login", method: .post, headers: DashboardFixture.form,
                                     body: ByteBuffer(string: "key=")) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/dashboard", method: .get,
                                     headers: [.cookie: "tollgate_session=stale"]) { response in
                #expect(response.status == .unauthorized)
                #expect(String(buffer: response.body).contains("data-testid=\"login-error\""))
            }
        }
    }

    @Test("a read-only virtual key works as a bearer token and through the form")
    func readOnlyKey() async throws {
        let fixture = try DashboardFixture()
        try await fixture.test { client in
            try await client.execute(uri: "/dashboard", method: .get,
                                     headers: [.authorization: "Bearer \(DashboardFixture.readOnlyKey)"]) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("read-only key key_ro"))
            }
            try await client.execute(uri: "/dashboard/login", method: .post, headers: DashboardFixture.form,
                                     body: ByteBuffer(string: "key=\(DashboardFixture.readOnlyKey)")) { response in
                #expect(response.status == .seeOther)
            }
        }
    }

    // MARK: Figures

    @Test("every section shows the seeded figures of the default 7-day period")
    func sections() async throws {
        let fixture = try DashboardFixture()
        let range = fixture.range(days: 7)
        let events = fixture.usage.filter { range.contains($0.response.timings.receivedAt) }
        #expect(events.count > 5 && events.count < fixture.usage.count)
        let html = try await fixture.page("/dashboard", status: .ok)

        for testID in ["filters", "totals", "spend-over-time", "spend-chart", "spend-legend", "teams", "team-chart",
                       "by-team", "by-project", "by-key", "by-customer", "by-tag", "model-mix", "top-requests",
                       "budgets", "alerts"] {
            #expect(html.contains("data-testid=\"\(testID)\""), "section \(testID)")
        }
        #expect(!html.contains("<script"), "no script at all")

        // Totals: exact nano-USD and the dollar string.
        let total = events.reduce(Int64(0)) { $0 + $1.costNanoUSD.total.nanoUSD }
        #expect(DashboardMarkup.attribute("data-cost-nano-usd", of: "total-cost", in: html) == "\(total)")
        #expect(html.contains("data-cost-nano-usd=\"\(total)\">\(dollars4(total))<"))
        #expect(DashboardMarkup.attribute("data-value", of: "total-requests", in: html) == "\(events.count)")
        let tokens = events.reduce(Int64(0)) { $0 + $1.response.usage.totalTokens }
        #expect(DashboardMarkup.attribute("data-value", of: "total-tokens", in: html) == "\(tokens)")

        // Per team, project, key, model, customer, tag.
        func sums(_ key: (UsageData) -> [String]) -> [String: Int64] {
            var sums: [String: Int64] = [:]
            for event in events {
                for name in key(event) { sums[name, default: 0] += event.costNanoUSD.total.nanoUSD }
            }
            return sums
        }
        #expect(DashboardMarkup.costs(table: "by-team", in: html) == escapedKeys(sums { [$0.response.team] }))
        #expect(DashboardMarkup.costs(table: "by-project", in: html) == escapedKeys(sums { [$0.response.project] }))
        #expect(DashboardMarkup.costs(table: "by-key", in: html) == escapedKeys(sums { [$0.response.keyID] }))
        #expect(DashboardMarkup.costs(table: "model-table", in: html) == escapedKeys(sums { [$0.response.servedModel] }))
        #expect(DashboardMarkup.costs(table: "by-customer", in: html) == escapedKeys(sums { [$0.response.customer ?? ""] }))
        #expect(DashboardMarkup.costs(table: "by-tag", in: html)
                == escapedKeys(sums { $0.response.tags.map { "\($0.key)=\($0.value)" } }))
        #expect(DashboardMarkup.totalRowCost(table: "by-team", in: html) == total)
        // The team chart has one bar per team.
        #expect(DashboardMarkup.count("data-testid=\"hbar\"", in: html) == Set(events.map(\.response.team)).count)

        // The chart: one bucket per day, the bars add up to the total, each day to its events.
        #expect(DashboardMarkup.count("data-testid=\"spend-bucket\"", in: html) == 7)
        let barCosts = DashboardMarkup.values("data-cost-nano-usd", after: "data-testid=\"spend-bar\"", in: html)
        #expect(barCosts.reduce(0, +) == total)
        var byDay: [String: Int64] = [:]
        for event in events {
            byDay[String(EventTime.format(event.response.timings.receivedAt).prefix(10)), default: 0]
                += event.costNanoUSD.total.nanoUSD
        }
        for (day, cost) in byDay {
            #expect(html.contains("data-bucket=\"\(day)\" data-cost-nano-usd=\"\(cost)\""), "day \(day)")
        }
        #expect(html.contains("data-testid=\"y-label\""))
        #expect(html.contains("data-testid=\"x-label\""))

        // Top requests: most expensive first (ties: newest first), at most 20.
        let expectedTop = events.sorted {
            ($0.costNanoUSD.total.nanoUSD, $0.response.timings.receivedAt)
                > ($1.costNanoUSD.total.nanoUSD, $1.response.timings.receivedAt)
        }.prefix(20).map(\.response.requestID)
        #expect(DashboardMarkup.strings("data-request-id", after: "data-testid=\"top-request\"", in: html)
                == Array(expectedTop))

        // Budgets and alerts.
        #expect(html.contains("data-budget-id=\"budget_team_search\""))
        #expect(html.contains(dollars4(DashboardFixture.budgetSpent)))
        #expect(html.contains("24.69%"))
        #expect(html.contains("data-testid=\"budget-state\">alert<"))
        #expect(html.contains("2026-12-01 00:00"), "resets at")
        #expect(html.contains("data-testid=\"alert\""))
        #expect(html.contains("Team &lt;b&gt;search&lt;/b&gt; reached 80%"))
    }

    @Test("data from users is escaped everywhere")
    func escaping() async throws {
        let fixture = try DashboardFixture()
        let html = try await fixture.page("/dashboard?period=30d", status: .ok)
        #expect(!html.contains("<script"))
        #expect(!html.contains("<b>search</b>"))
        #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
        // The dropdown offers it escaped, and filtering by it works.
        #expect(html.contains("<option value=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\">"))
        let team = DashboardFixture.teams[2]
        let encoded = team.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let filtered = try await fixture.page("/dashboard?period=30d&team=\(encoded)", status: .ok)
        let range = fixture.range(days: 30)
        let expected = fixture.usage.filter { range.contains($0.response.timings.receivedAt) && $0.response.team == team }
            .reduce(Int64(0)) { $0 + $1.costNanoUSD.total.nanoUSD }
        #expect(expected > 0)
        #expect(DashboardMarkup.attribute("data-cost-nano-usd", of: "total-cost", in: filtered) == "\(expected)")
        #expect(!filtered.contains("<script"))
    }

    @Test("a bad filter is a 400 page naming the parameter", arguments: [
        ("/dashboard?period=13x", "period"),
        ("/dashboard?period=7d&bogus=1", "bogus"),
        ("/dashboard?team=a&team=b", "team"),
        ("/dashboard?project=x%01y", "project"),
    ])
    func badFilter(uri: String, parameter: String) async throws {
        let fixture = try DashboardFixture()
        let html = try await fixture.page(uri, status: .badRequest)
        #expect(html.contains("data-testid=\"error\""))
        #expect(html.contains("data-parameter=\"\(parameter)\""))
        #expect(html.contains("<code>\(parameter)</code>"))
        #expect(html.contains("data-testid=\"filters\""), "the form is still there to fix it")
        #expect(!html.contains("data-testid=\"spend-chart\""))
    }

    @Test("filters narrow every figure; the period widens them")
    func filtersNarrow() async throws {
        let fixture = try DashboardFixture()
        func expected(days: Int, _ include: (ResponseData) -> Bool) -> (cost: Int64, requests: Int) {
            let range = fixture.range(days: days)
            let events = fixture.usage.filter { range.contains($0.response.timings.receivedAt) && include($0.response) }
            return (events.reduce(0) { $0 + $1.costNanoUSD.total.nanoUSD }, events.count)
        }
        let all7 = expected(days: 7) { _ in true }
        let all30 = expected(days: 30) { _ in true }
        #expect(all30.cost > all7.cost)
        let page30 = try await fixture.page("/dashboard?period=30d", status: .ok)
        #expect(DashboardMarkup.attribute("data-cost-nano-usd", of: "total-cost", in: page30) == "\(all30.cost)")
        #expect(DashboardMarkup.attribute("data-value", of: "total-requests", in: page30) == "\(all30.requests)")
        #expect(DashboardMarkup.count("data-testid=\"spend-bucket\"", in: page30) == 30)

        let search = expected(days: 7) { $0.team == "search" }
        let page = try await fixture.page("/dashboard?period=7d&team=search&project=&key=", status: .ok)
        #expect(DashboardMarkup.attribute("data-cost-nano-usd", of: "total-cost", in: page) == "\(search.cost)")
        #expect(DashboardMarkup.attribute("data-value", of: "total-requests", in: page) == "\(search.requests)")
        #expect(DashboardMarkup.costs(table: "by-team", in: page).keys.sorted() == ["search"])
        #expect(DashboardMarkup.values("data-cost-nano-usd", after: "data-testid=\"spend-bar\"", in: page).reduce(0, +) == search.cost)
        // Every top request belongs to the team, and the dropdown still offers the other teams.
        let topIDs = Set(DashboardMarkup.strings("data-request-id", after: "data-testid=\"top-request\"", in: page))
        let searchIDs = Set(fixture.usage.filter { $0.response.team == "search" }.map(\.response.requestID))
        #expect(!topIDs.isEmpty && topIDs.isSubset(of: searchIDs))
        #expect(page.contains("<option value=\"search\" selected>"))
        #expect(page.contains("<option value=\"billing\">"))
        // The budget of team search stays; the alert about it too.
        #expect(page.contains("data-budget-id=\"budget_team_search\""))

        let keyAndProject = expected(days: 30) { $0.keyID == "key_1" && $0.project == "answers" }
        let narrow = try await fixture.page("/dashboard?period=30d&key=key_1&project=answers", status: .ok)
        #expect(DashboardMarkup.attribute("data-cost-nano-usd", of: "total-cost", in: narrow) == "\(keyAndProject.cost)")
        // Another team's budget is not shown under a team filter.
        let billing = try await fixture.page("/dashboard?team=billing", status: .ok)
        #expect(!billing.contains("data-budget-id=\"budget_team_search\""))

        let day = expected(days: 1) { _ in true }
        let hourly = try await fixture.page("/dashboard?period=24h", status: .ok)
        #expect(DashboardMarkup.count("data-testid=\"spend-bucket\"", in: hourly) == 24)
        #expect(DashboardMarkup.attribute("data-cost-nano-usd", of: "total-cost", in: hourly) == "\(day.cost)")
    }

    @Test("an empty store renders without figures")
    func emptyStore() async throws {
        let fixture = try DashboardFixture(seed: false)
        let html = try await fixture.page("/dashboard", status: .ok)
        #expect(DashboardMarkup.attribute("data-cost-nano-usd", of: "total-cost", in: html) == "0")
        #expect(html.contains("No usage in this period."))
        #expect(html.contains("data-testid=\"spend-chart\""))
    }

    // MARK: Helpers

    /// `$12.3456`: four decimals, half to even, written here independently of `Money`.
    func dollars4(_ nano: Int64) -> String {
        let units = nano / 100_000
        let remainder = nano % 100_000
        let rounded = remainder > 50_000 || (remainder == 50_000 && units % 2 == 1) ? units + 1 : units
        let fraction = String(rounded % 10_000)
        return "$\(rounded / 10_000)." + String(repeating: "0", count: 4 - fraction.count) + fraction
    }

    func escapedKeys(_ sums: [String: Int64]) -> [String: Int64] {
        Dictionary(uniqueKeysWithValues: sums.map { (DashboardMarkup.escape($0.key), $0.value) })
    }
}

/// A temporary projection store seeded with usage, a budget decision, an alert and keys, and the router.
/// Its directory is removed with the fixture.
final class DashboardFixture: Sendable {
    static let adminKey = "admin-secret"
    static let readOnlyKey = "ro-secret"
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
    static let now = EventTime.parse("2026-11-29T12:30:00Z")!
    static let teams = ["search", "billing", "<script>alert('x')</script>"]
    static let projects = ["answers", "reports"]
    static let models = ["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini"]
    static let budgetSpent: Int64 = 12_345_678_901

    let directory: URL
    let store: ProjectionStore
    let usage: [UsageData]

    init(seed: Bool = true) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tollgate-dashboard-\(UUID().uuidString)")
        store = try ProjectionStore.open(path: directory.appendingPathComponent("p.sqlite").path)
        usage = seed ? Self.makeUsage() : []
        guard seed else { return }
        var messages: [ConsumedMessage] = []
        for (offset, data) in usage.enumerated() {
            let event = UsageEvent(id: "usage:\(data.response.requestID)", source: "test", time: data.pricedAt, data: data)
            messages.append(Self.message("tollgate.usage", Int64(offset), try EventCoding.encode(event)))
        }
        let decision = BudgetDecisionEvent(
            id: "decision:1", source: "test", time: Self.now,
            data: BudgetDecisionData(
                budgetID: "budget_team_search", scope: .team("search"),
                period: BudgetPeriod(kind: .month, timeZone: "UTC", start: EventTime.parse("2026-11-01T00:00:00Z")!,
                                     end: EventTime.parse("2026-12-01T00:00:00Z")!),
                state: .alert, limitNanoUSD: Money(nanoUSD: 50_000_000_000), spentNanoUSD: Money(nanoUSD: Self.budgetSpent),
                remainingNanoUSD: Money(nanoUSD: 50_000_000_000 - Self.budgetSpent), usedPercentBP: 2469,
                action: .alert, onNoDowngrade: .pass,
                watermark: .init(usageOffsets: [0: Int64(usage.count)], asOf: Self.now),
                decidedAt: Self.now.addingTimeInterval(-3_600)))
        messages.append(Self.message("tollgate.budget-decisions", 0, try EventCoding.encode(decision)))
        let alertID = AlertData.makeAlertID(ruleID: "budget-threshold", scope: .team("search"), periodStart: nil,
                                            levelPercent: 80)
        let alert = AlertEvent(
            id: "alert:1", source: "test", time: Self.now,
            data: AlertData(alertID: alertID, ruleID: "budget-threshold", kind: .budgetThreshold, severity: .warning,
                            scope: .team("search"), levelPercent: 80, title: "Team <b>search</b> reached 80%",
                            message: "Spent $40 of $50.", raisedAt: Self.now.addingTimeInterval(-7_200)))
        messages.append(Self.message("tollgate.alerts", 0, try EventCoding.encode(alert)))
        let key = KeyCreatedEvent(
            id: "key-created:key_1", source: "test", time: Self.now,
            data: KeyCreatedData(keyID: "key_1", keySHA256: String(repeating: "ab", count: 32), keyPrefix: "tg-Key1",
                                 name: "search prod", team: "search", project: "answers",
                                 createdAt: EventTime.parse("2026-10-01T00:00:00Z")!))
        messages.append(Self.message("tollgate.control", 0, try EventCoding.encode(key)))
        let report = try store.apply(messages)
        precondition(report.rejected == 0 && report.applied == messages.count, "seeding failed: \(report)")
    }

    static func message(_ topic: String, _ offset: Int64, _ value: Data) -> ConsumedMessage {
        ConsumedMessage(topic: topic, partition: 0, offset: offset, timestampMilliseconds: 0, key: nil, value: value,
                        headers: [])
    }

    /// 60 requests, one every 7 hours back from `now`: about 17 days, so 7d and 30d differ.
    static func makeUsage() -> [UsageData] {
        (0..<60).map { index in
            let received = now.addingTimeInterval(-Double(index * 7 + 1) * 3_600 + Double(index))
            let response = ResponseData(
                requestID: "req_\(String(format: "%03d", index))", keyID: "key_\(index % 4)",
                team: teams[index % 3], project: projects[(index / 3) % 2],
                customer: index % 5 == 0 ? "acme" : nil,
                tags: index % 4 == 3 ? [:] : ["feature": index % 2 == 0 ? "summarize" : "chat", "env": "prod"],
                provider: .openai, endpoint: "/v1/chat/completions", requestedModel: models[(index * 5) % 4],
                servedModel: models[(index * 5) % 4], stream: false, status: 200, outcome: .success,
                timings: .init(receivedAt: received, durationMs: 100 + Int64(index)),
                usage: TokenUsage(inputTokens: 100 + Int64(index), outputTokens: 50 + 2 * Int64(index)),
                usageSource: .provider)
            // Costs that need all nine decimals, and repeat (ties order by time).
            let input = Money(nanoUSD: 1_234_567 * Int64(index % 13 + 1) + 3)
            let output = Money(nanoUSD: 987_654_321 * Int64(index % 3) + 49_999)
            return UsageData(response: response,
                             costNanoUSD: CostBreakdown(perClass: [.input: input, .output: output])!,
                             priced: true, catalogVersion: "test", pricedAt: received.addingTimeInterval(1))
        }
    }

    /// The range the page shows for `days` (1 = the last 24 whole hours), as the page defines it.
    func range(days: Int) -> Range<Date> {
        let seconds = Int64(Self.now.timeIntervalSince1970)
        if days == 1 {
            let end = (seconds / 3_600 + 1) * 3_600
            return Date(timeIntervalSince1970: Double(end - 86_400))..<Date(timeIntervalSince1970: Double(end))
        }
        let end = (seconds / 86_400 + 1) * 86_400
        return Date(timeIntervalSince1970: Double(end - Int64(days) * 86_400))..<Date(timeIntervalSince1970: Double(end))
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    func test<Value>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        let router = Router()
        let authenticator = QueryAuthenticator(adminKey: Self.adminKey) { secret in
            secret == Self.readOnlyKey ? .readOnlyKey(keyID: "key_ro") : nil
        }
        let now = Self.now
        Dashboard.addRoutes(to: router, store: store, authenticator: authenticator, now: { now })
        return try await Application(router: router).test(.router) { client in try await body(client) }
    }

    /// The page at `uri` as the admin, checking its status.
    func page(_ uri: String, status: HTTPResponse.Status) async throws -> String {
        let response = try await test { client in
            try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(Self.adminKey)"])
        }
        #expect(response.status == status, "GET \(uri)")
        #expect(response.headers[.contentType] == "text/html; charset=utf-8")
        return String(buffer: response.body)
    }
}

/// Reading the page's markup: attributes by `data-testid`, table rows by `data-name`.
enum DashboardMarkup {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    /// The value of `name` on the element carrying `data-testid="testID"`.
    static func attribute(_ name: String, of testID: String, in html: String) -> String? {
        guard let marker = html.range(of: "data-testid=\"\(testID)\"") else { return nil }
        let start = html[..<marker.lowerBound].lastIndex(of: "<") ?? marker.lowerBound
        guard let end = html[marker.upperBound...].firstIndex(of: ">") else { return nil }
        return value(name, in: html[start..<end])
    }

    static func value(_ name: String, in tag: Substring) -> String? {
        guard let range = tag.range(of: " \(name)=\"") else { return nil }
        let rest = tag[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    static func count(_ needle: String, in html: String) -> Int {
        html.components(separatedBy: needle).count - 1
    }

    /// The first `name` attribute after each occurrence of `marker`, in order.
    static func strings(_ name: String, after marker: String, in html: String) -> [String] {
        html.components(separatedBy: marker).dropFirst().compactMap { value(name, in: $0[...]) }
    }

    static func values(_ name: String, after marker: String, in html: String) -> [Int64] {
        strings(name, after: marker, in: html).compactMap(Int64.init)
    }

    /// The markup of the table with this `data-testid`.
    static func table(_ testID: String, in html: String) -> Substring {
        guard let start = html.range(of: "<table[^>]* data-testid=\"\(testID)\"", options: .regularExpression)
        else { return "" }
        let rest = html[start.lowerBound...]
        return rest[..<(rest.range(of: "</table>")?.upperBound ?? rest.endIndex)]
    }

    /// Each usage row's (escaped) name and spend in nano-USD.
    static func costs(table testID: String, in html: String) -> [String: Int64] {
        var costs: [String: Int64] = [:]
        let table = String(table(testID, in: html))
        for piece in table.components(separatedBy: "<tr data-testid=\"usage-row\"").dropFirst() {
            if let name = value("data-name", in: piece[...]),
               let cost = value("data-cost-nano-usd", in: piece[...]).flatMap(Int64.init) {
                costs[name] = cost
            }
        }
        return costs
    }

    static func totalRowCost(table testID: String, in html: String) -> Int64? {
        let table = String(table(testID, in: html))
        guard let total = table.range(of: "data-testid=\"total-row\"") else { return nil }
        return value("data-cost-nano-usd", in: table[total.lowerBound...]).flatMap(Int64.init)
    }
}
