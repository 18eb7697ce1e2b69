import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TollgateEvents
import TollgateLog
import TollgateProjections
import TollgateQuery

// The query API over a projections database seeded with encoded events, exactly as the projector would
// receive them from the log. Every expectation is computed here from the events built below, never from
// what the API answered before.

// MARK: Seed

/// One seeded usage event and the millisecond it was received at.
private struct SeededUsage: Sendable {
    var data: UsageData
    var atMs: Int64
    var id: String { data.response.requestID }
}

private enum Seed {
    static let adminKey = "tg-admin-secret"
    static let readOnlyKey = "tg-readonly-secret"
    /// A working key that is not read-only: the authenticator's `verifyKey` does not accept it.
    static let writeKey = "tg-write-secret"

    static let authenticator = QueryAuthenticator(adminKey: adminKey) { secret in
        secret == readOnlyKey ? .readOnlyKey(keyID: "key_ro") : nil
    }

    /// Monday 2026-11-02 00:00 UTC.
    static let baseMs: Int64 = 1_793_577_600_000
    static let hourMs: Int64 = 3_600_000
    static let dayMs: Int64 = 86_400_000
    /// The API's clock: Saturday 2026-11-07 00:00 UTC.
    static let nowMs = baseMs + 5 * dayMs
    static let now = date(nowMs)

    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

    static let teams = ["search", "billing", "growth"]
    static let models: [(Provider, String, String, Int64)] = [
        (.openai, "/v1/chat/completions", "gpt-4o-2024-08-06", 1),
        (.anthropic, "/v1/messages", "claude-sonnet-4-5-20250929", 3),
        (.gemini, "/v1beta/models/gemini-2.5-pro:generateContent", "gemini-2.5-pro", 2),
    ]
    /// Nano-USD per token of each class, before the model's factor.
    static let perToken: [TokenClass: Int64] = [
        .input: 2_500, .cachedInputRead: 1_250, .cacheWrite5m: 3_125, .cacheWrite1h: 5_000,
        .output: 10_000, .reasoning: 10_000, .audioInput: 40_000, .audioOutput: 80_000,
    ]

    /// 60 ordinary requests over about 2.5 days, and four of team `edge` on hour and day boundaries.
    static let usage: [SeededUsage] = {
        var events: [SeededUsage] = []
        for i in 0..<60 {
            let (provider, endpoint, model, factor) = models[(i / 3) % 3]
            var tags: [String: String] = i % 2 == 0 ? ["feature": "summarize", "env": "prod"] : ["feature": "search"]
            if i % 5 == 0 { tags = [:] }
            let customer: String? = i % 4 == 0 ? "acme" : i % 4 == 1 ? "globex" : nil
            let outcome: ResponseData.Outcome = i % 11 == 0 ? .providerError : i % 13 == 0 ? .blocked : .success
            let tokens = TokenUsage(
                inputTokens: 100 + Int64(i) * 37, cachedInputReadTokens: i % 3 == 0 ? Int64(i) * 11 : 0,
                cacheWrite5mTokens: Int64(i % 4) * 5, cacheWrite1hTokens: i % 5 == 0 ? 64 : 0,
                outputTokens: 50 + Int64(i) * 13, reasoningTokens: i % 2 == 0 ? Int64(i) * 7 : 0,
                audioInputTokens: i % 6 == 0 ? 9 : 0, audioOutputTokens: i % 6 == 0 ? 4 : 0)
            let atMs = baseMs + Int64(i) * 3_517_013 + Int64(i % 7)
            events.append(usage(
                id: String(format: "req_%04d", i), atMs: atMs, team: teams[i % 3], project: "p\(i % 2)",
                customer: customer, tags: tags, provider: provider, endpoint: endpoint,
                requested: i % 9 == 0 ? "auto" : model, served: model, factor: factor, tokens: tokens,
                outcome: outcome, estimated: i % 17 == 0, priced: i != 7,
                durationMs: 200 + Int64(i * 31 % 977), firstByteMs: i % 3 == 0 ? nil : 50 + Int64(i)))
        }
        // Team edge: the last millisecond before 10:00, 10:00 itself, the day's last millisecond, the next day.
        let edges: [Int64] = [10 * hourMs - 1, 10 * hourMs, dayMs - 1, dayMs]
        for (index, offset) in edges.enumerated() {
            events.append(usage(
                id: "req_edge_\(index)", atMs: baseMs + offset, team: "edge", project: "edges", customer: nil,
                tags: [:], provider: .openai, endpoint: "/v1/chat/completions", requested: "gpt-4o-mini",
                served: "gpt-4o-mini", factor: 1, tokens: TokenUsage(inputTokens: 10 + Int64(index), outputTokens: 5),
                outcome: .success, estimated: false, priced: true, durationMs: 100, firstByteMs: 40))
        }
        return events
    }()

    static func usage(
        id: String, atMs: Int64, team: String, project: String, customer: String?, tags: [String: String],
        provider: Provider, endpoint: String, requested: String, served: String, factor: Int64, tokens: TokenUsage,
        outcome: ResponseData.Outcome, estimated: Bool, priced: Bool, durationMs: Int64, firstByteMs: Int64?
    ) -> SeededUsage {
        var perClass: [TokenClass: Money] = [:]
        for tokenClass in TokenClass.allCases {
            perClass[tokenClass] = Money(nanoUSD: tokens[tokenClass] * (perToken[tokenClass] ?? 0) * factor)
        }
        let response = ResponseData(
            requestID: id, keyID: "key_\(team)", team: team, project: project, customer: customer, tags: tags,
            provider: provider, endpoint: endpoint, requestedModel: requested, servedModel: served, stream: false,
            status: outcome == .providerError ? 500 : outcome == .blocked ? 429 : 200, outcome: outcome,
            errorType: outcome == .success ? nil : "upstream_error",
            timings: .init(receivedAt: date(atMs), firstByteMs: firstByteMs, durationMs: durationMs,
                           upstreamMs: durationMs - 5),
            usage: tokens, usageSource: estimated ? .estimated : .provider,
            routing: requested == served ? nil : .init(policy: "auto", reason: "cheapest", downgradedFrom: nil))
        let data = UsageData(
            response: response, costNanoUSD: priced ? CostBreakdown(perClass: perClass)! : .zero, priced: priced,
            unpricedReason: priced ? nil : "model_not_in_catalog", catalogVersion: "2026-11-01.1",
            pricedAt: date(atMs + durationMs + 3))
        return SeededUsage(data: data, atMs: atMs)
    }

    static let keySHA = String(repeating: "ab", count: 32)

    static let keys: [KeyCreatedData] = [
        KeyCreatedData(keyID: "key_search", keySHA256: keySHA, keyPrefix: "tg-Se4rch", name: "search prod",
                       team: "search", project: "answers", tags: ["env": "prod"], models: ["gpt-4o"],
                       createdAt: date(baseMs - 10 * dayMs)),
        KeyCreatedData(keyID: "key_ro", keySHA256: keySHA, keyPrefix: "tg-R3ad", team: "finance",
                       project: "reports", createdAt: date(baseMs - 9 * dayMs), readOnly: true),
        KeyCreatedData(keyID: "key_old", keySHA256: keySHA, keyPrefix: "tg-0ld", team: "billing",
                       project: "invoices", customer: "acme", createdAt: date(baseMs - 8 * dayMs)),
        KeyCreatedData(keyID: "key_temp", keySHA256: keySHA, keyPrefix: "tg-T3mp", team: "growth",
                       project: "trial", expiresAt: date(nowMs - dayMs), createdAt: date(baseMs - 7 * dayMs)),
    ]

    static let budgetPeriod = BudgetPeriod(kind: .month, timeZone: "UTC", start: date(baseMs - dayMs),
                                           end: date(baseMs + 29 * dayMs))

    static let alerts: [AlertData] = [1, 3, 10].map { daysAgo in
        let scope = Scope.team(daysAgo == 10 ? "growth" : "search")
        return AlertData(
            alertID: AlertData.makeAlertID(ruleID: "budget-threshold-\(daysAgo)", scope: scope,
                                           periodStart: budgetPeriod.start, levelPercent: 80),
            ruleID: "budget-threshold-\(daysAgo)", kind: .budgetThreshold, severity: .warning, scope: scope,
            periodStart: budgetPeriod.start, levelPercent: 80, title: "Budget at 80%",
            message: "Spent 80% of the monthly budget.",
            observed: ["spent_nano_usd": 410_000_000_000, "limit": "$500.00", "downgrading": false],
            raisedAt: date(nowMs - Int64(daysAgo) * dayMs))
    }

    /// The events above as the projector would consume them from the log.
    static func messages() throws -> [ConsumedMessage] {
        var offsets: [String: Int64] = [:]
        var messages: [ConsumedMessage] = []
        func add(_ topic: String, _ value: Data) {
            let name = TopicCatalog.defaultPrefix + topic
            let offset = offsets[name, default: 0]
            offsets[name] = offset + 1
            messages.append(ConsumedMessage(topic: name, partition: 0, offset: offset, timestampMilliseconds: nowMs,
                                            key: nil, value: value, headers: []))
        }
        let source = "tollgate/test"
        for key in keys {
            add(KeyCreatedData.topic, try EventCoding.encode(KeyCreatedEvent(
                id: "key:\(key.keyID)", source: source, time: key.createdAt, data: key)))
        }
        add(KeyRevokedData.topic, try EventCoding.encode(KeyRevokedEvent(
            id: "revoke:key_old", source: source, time: date(baseMs),
            data: KeyRevokedData(keyID: "key_old", revokedAt: date(baseMs), reason: "rotated"))))
        let budget = BudgetSetData(
            budgetID: "budget_team_search", scope: .team("search"), periodKind: .month, timeZone: "UTC",
            limitNanoUSD: Money(nanoUSD: 500_000_000_000),
            levels: [BudgetLevel(percent: 80, action: .alert), BudgetLevel(percent: 100, action: .block)],
            downgrade: ["gpt-4o": "gpt-4o-mini"], onNoDowngrade: .pass, updatedAt: date(baseMs - 2 * dayMs))
        add(BudgetSetData.topic, try EventCoding.encode(BudgetSetEvent(
            id: "budget:budget_team_search", source: source, time: budget.updatedAt, data: budget)))
        let decision = BudgetDecisionData(
            budgetID: "budget_team_search", scope: .team("search"), period: budgetPeriod, state: .alert,
            limitNanoUSD: Money(nanoUSD: 500_000_000_000), spentNanoUSD: Money(nanoUSD: 410_000_000_000),
            remainingNanoUSD: Money(nanoUSD: 90_000_000_000), usedPercentBP: 8_200, action: .alert,
            downgrade: ["gpt-4o": "gpt-4o-mini"], onNoDowngrade: .pass,
            watermark: .init(usageOffsets: [0: 64], asOf: date(nowMs - hourMs)), decidedAt: date(nowMs - hourMs))
        add(BudgetDecisionData.topic, try EventCoding.encode(BudgetDecisionEvent(
            id: "decision:budget_team_search:1", source: source, time: decision.decidedAt, data: decision)))
        for alert in alerts {
            add(AlertData.topic, try EventCoding.encode(AlertEvent(
                id: "alert:\(alert.alertID)", source: source, time: alert.raisedAt, data: alert)))
        }
        for event in usage {
            add(UsageData.topic, try EventCoding.encode(UsageEvent(
                id: "usage:\(event.id)", source: source, time: event.data.pricedAt, data: event.data)))
        }
        return messages
    }
}

// MARK: Expected figures

/// ``UsageFigures`` as plain values, built either from an API answer or from seeded events.
private struct Figures: Equatable, CustomStringConvertible {
    var requests: Int64 = 0
    var errors: Int64 = 0
    var blocked: Int64 = 0
    var estimated: Int64 = 0
    var unpriced: Int64 = 0
    var tokens = TokenUsage.zero
    var cost = CostBreakdown.zero
    var durationMsAvg: Int64 = 0
    var durationMsMax: Int64 = 0
    var firstByteMsAvg: Int64?

    init(_ figures: UsageFigures) {
        requests = figures.requests
        errors = figures.errors
        blocked = figures.blocked
        estimated = figures.estimated
        unpriced = figures.unpriced
        tokens = figures.tokens
        cost = figures.costNanoUSD
        durationMsAvg = figures.durationMsAvg
        durationMsMax = figures.durationMsMax
        firstByteMsAvg = figures.firstByteMsAvg
    }

    init(events: [SeededUsage]) {
        var durationSum: Int64 = 0
        var firstByteSum: Int64 = 0
        var firstByteCount: Int64 = 0
        for event in events {
            let response = event.data.response
            requests += 1
            if response.outcome == .providerError || response.outcome == .gatewayError { errors += 1 }
            if response.outcome == .blocked { blocked += 1 }
            if response.usageSource == .estimated { estimated += 1 }
            if !event.data.priced { unpriced += 1 }
            for tokenClass in TokenClass.allCases {
                tokens[tokenClass] += response.usage[tokenClass]
                cost[tokenClass] += event.data.costNanoUSD[tokenClass]
            }
            cost.total += event.data.costNanoUSD.total
            durationSum += response.timings.durationMs
            durationMsMax = max(durationMsMax, response.timings.durationMs)
            if let firstByte = response.timings.firstByteMs {
                firstByteSum += firstByte
                firstByteCount += 1
            }
        }
        durationMsAvg = requests > 0 ? durationSum / requests : 0
        firstByteMsAvg = firstByteCount > 0 ? firstByteSum / firstByteCount : nil
    }

    var description: String {
        "requests \(requests), errors \(errors), blocked \(blocked), estimated \(estimated), unpriced \(unpriced), "
            + "tokens \(tokens), cost \(cost.total.nanoUSD), duration \(durationMsAvg)/\(durationMsMax), "
            + "first byte \(firstByteMsAvg.map(String.init) ?? "nil")"
    }
}

/// The seeded usage received in `[from, to)`.
private func seeded(from: Int64, to: Int64, where include: (UsageData) -> Bool = { _ in true }) -> [SeededUsage] {
    Seed.usage.filter { $0.atMs >= from && $0.atMs < to && include($0.data) }
}

// MARK: Harness

private struct APIErrorBody: Decodable {
    struct Detail: Decodable {
        var type: String
        var parameter: String?
        var message: String
    }

    var error: Detail
}

private struct RequestsPageBody: Decodable {
    var from: Date
    var to: Date
    var order: RequestOrder
    var limit: Int
    var filter: [String: String]
    var requests: [RequestRecord]
}

private struct BudgetsBody: Decodable { var budgets: [BudgetRecord] }
private struct AlertsBody: Decodable {
    var since: Date
    var limit: Int
    var alerts: [AlertRecord]
}
private struct KeysBody: Decodable { var keys: [KeyRecord] }

/// Runs `body` against the query API over a fresh database seeded with ``Seed``.
private func withQueryAPI(_ body: @Sendable (any TestClientProtocol, ProjectionStore) async throws -> Void) async throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("tollgate-query-api-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = try ProjectionStore.open(path: directory.appendingPathComponent("projections.sqlite").path)
    let report = try store.apply(try Seed.messages())
    #expect(report.rejected == 0)
    let router = Router()
    QueryAPI.addRoutes(to: router, store: store, authenticator: Seed.authenticator, now: { Seed.now })
    let app = Application(router: router)
    try await app.test(.router) { client in try await body(client, store) }
}

private let adminHeaders: HTTPFields = [.authorization: "Bearer \(Seed.adminKey)"]

private extension TestClientProtocol {
    func apiGet(_ uri: String, headers: HTTPFields = adminHeaders) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }

    /// GETs `uri` as the admin, expects 200 and decodes the body.
    func answer<T: Decodable>(_ type: T.Type, _ uri: String, sourceLocation: SourceLocation = #_sourceLocation)
        async throws -> T
    {
        let response = try await apiGet(uri)
        #expect(response.status == .ok, "\(uri): \(response.bodyText)", sourceLocation: sourceLocation)
        return try response.decodeJSON(type)
    }
}

private extension TestResponse {
    var bodyText: String { String(buffer: body) }

    func decodeJSON<T: Decodable>(_ type: T.Type) throws -> T {
        try EventCoding.makeDecoder().decode(type, from: Data(body.readableBytesView))
    }
}

// MARK: Tests

@Suite struct QueryAPITests {
    static let allDays = "from=2026-11-01&to=2026-11-06"
    static let allFrom = Seed.baseMs - Seed.dayMs
    static let allTo = Seed.baseMs + 4 * Seed.dayMs

    @Test func usageByTeamAndModelSumsTheEventsExactly() async throws {
        try await withQueryAPI { client, _ in
            let result = try await client.answer(UsageResult.self, "/api/usage?group_by=team,model&\(Self.allDays)")
            #expect(result.groupBy == [.team, .model])
            #expect(result.granularity == .total)
            #expect(result.from == Seed.date(Self.allFrom))
            #expect(result.to == Seed.date(Self.allTo))
            let events = seeded(from: Self.allFrom, to: Self.allTo)
            #expect(events.count == Seed.usage.count)
            let expected = Dictionary(grouping: events) { [$0.data.response.team, $0.data.response.servedModel] }
            #expect(result.rows.count == expected.count)
            for row in result.rows {
                #expect(row.bucketStart == nil)
                let group = [row.group["team"] ?? "?", row.group["model"] ?? "?"]
                #expect(row.group.count == 2)
                #expect(Figures(row.figures) == Figures(events: expected[group] ?? []), "group \(group)")
            }
            #expect(Figures(result.totals) == Figures(events: events))
            // Most expensive first within the single bucket.
            let costs = result.rows.map(\.figures.costNanoUSD.total)
            #expect(costs == costs.sorted(by: >))
        }
    }

    @Test func usageDefaultRangeIsTheWeekBeforeNow() async throws {
        try await withQueryAPI { client, _ in
            let result = try await client.answer(UsageResult.self, "/api/usage")
            #expect(result.to == Seed.now)
            #expect(result.from == Seed.date(Seed.nowMs - 7 * Seed.dayMs))
            #expect(result.rows.count == 1)
            #expect(Figures(result.totals) == Figures(events: Seed.usage))
        }
    }

    @Test func dayBucketsSplitAtUTCMidnight() async throws {
        try await withQueryAPI { client, _ in
            let result = try await client.answer(UsageResult.self, "/api/usage?granularity=day&\(Self.allDays)")
            let expected = Dictionary(grouping: Seed.usage) { $0.atMs / Seed.dayMs * Seed.dayMs }
            #expect(result.rows.count == expected.count)
            for row in result.rows {
                let start = try #require(row.bucketStart)
                let ms = Int64((start.timeIntervalSince1970 * 1000).rounded())
                #expect(Figures(row.figures) == Figures(events: expected[ms] ?? []), "day \(EventTime.format(start))")
            }
            let starts = result.rows.compactMap(\.bucketStart)
            #expect(starts == starts.sorted())

            // The edge team: 09:59:59.999, 10:00 and 23:59:59.999 on Monday, 00:00 on Tuesday.
            let edge = try await client.answer(UsageResult.self, "/api/usage?granularity=day&team=edge&\(Self.allDays)")
            #expect(edge.rows.map { EventTime.format($0.bucketStart ?? .distantPast) }
                    == ["2026-11-02T00:00:00.000Z", "2026-11-03T00:00:00.000Z"])
            #expect(edge.rows.map(\.figures.requests) == [3, 1])
        }
    }

    @Test func hourBucketsSplitAtTheHour() async throws {
        try await withQueryAPI { client, _ in
            let edge = try await client.answer(
                UsageResult.self, "/api/usage?granularity=hour&team=edge&from=2026-11-02&to=2026-11-03")
            #expect(edge.rows.map { EventTime.format($0.bucketStart ?? .distantPast) }
                    == ["2026-11-02T09:00:00.000Z", "2026-11-02T10:00:00.000Z", "2026-11-02T23:00:00.000Z"])
            #expect(edge.rows.map(\.figures.tokens.inputTokens) == [10, 11, 12])

            let from = Seed.baseMs
            let to = Seed.baseMs + 3 * Seed.dayMs
            let result = try await client.answer(
                UsageResult.self, "/api/usage?granularity=hour&group_by=provider&from=2026-11-02&to=2026-11-05")
            let events = seeded(from: from, to: to)
            let expected = Dictionary(grouping: events) {
                "\($0.atMs / Seed.hourMs * Seed.hourMs) \($0.data.response.provider.rawValue)"
            }
            #expect(result.rows.count == expected.count)
            for row in result.rows {
                let start = try #require(row.bucketStart)
                let key = "\(Int64((start.timeIntervalSince1970 * 1000).rounded())) \(row.group["provider"] ?? "?")"
                #expect(Figures(row.figures) == Figures(events: expected[key] ?? []), "bucket \(key)")
            }
            #expect(Figures(result.totals) == Figures(events: events))
        }
    }

    @Test func dayBucketsOfARangeStartingAndEndingMidDay() async throws {
        try await withQueryAPI { client, _ in
            // Hours at either end come from the hourly rollup, the whole day between from the daily one.
            let from = Seed.baseMs + 10 * Seed.hourMs
            let to = Seed.baseMs + 2 * Seed.dayMs + 5 * Seed.hourMs
            let result = try await client.answer(
                UsageResult.self, "/api/usage?granularity=day&from=2026-11-02T10:00:00Z&to=2026-11-04T05:00:00Z")
            let events = seeded(from: from, to: to)
            let expected = Dictionary(grouping: events) { $0.atMs / Seed.dayMs * Seed.dayMs }
            #expect(result.rows.count == expected.count)
            for row in result.rows {
                let ms = Int64(((row.bucketStart ?? .distantPast).timeIntervalSince1970 * 1000).rounded())
                #expect(Figures(row.figures) == Figures(events: expected[ms] ?? []))
            }
            #expect(Figures(result.totals) == Figures(events: events))
        }
    }

    @Test func filtersNarrowTheSums() async throws {
        try await withQueryAPI { client, _ in
            let cases: [(String, (UsageData) -> Bool)] = [
                ("team=search&provider=openai", { $0.response.team == "search" && $0.response.provider == .openai }),
                ("customer=acme", { $0.response.customer == "acme" }),
                ("tag=feature%3Dsummarize", { $0.response.tags["feature"] == "summarize" }),
                ("tag=feature=search", { $0.response.tags["feature"] == "search" }),
                ("model=claude-sonnet-4-5-20250929", { $0.response.servedModel == "claude-sonnet-4-5-20250929" }),
                ("requested_model=auto", { $0.response.requestedModel == "auto" }),
                ("key=key_billing&project=p1", { $0.response.keyID == "key_billing" && $0.response.project == "p1" }),
            ]
            for (filter, include) in cases {
                let result = try await client.answer(UsageResult.self, "/api/usage?\(filter)&\(Self.allDays)")
                let events = seeded(from: Self.allFrom, to: Self.allTo, where: include)
                #expect(!events.isEmpty, "\(filter) selects something")
                #expect(Figures(result.totals) == Figures(events: events), "\(filter)")
            }
            let none = try await client.answer(UsageResult.self, "/api/usage?team=nobody&\(Self.allDays)")
            #expect(none.rows.isEmpty)
            #expect(none.totals.requests == 0)
            #expect(none.filter == ["team": "nobody"])
        }
    }

    @Test func groupingByTagCountsARequestOncePerTag() async throws {
        try await withQueryAPI { client, _ in
            let result = try await client.answer(UsageResult.self, "/api/usage?group_by=tag&\(Self.allDays)")
            var expected: [String: [SeededUsage]] = [:]
            for event in Seed.usage {
                for (name, value) in event.data.response.tags { expected["\(name)=\(value)", default: []].append(event) }
            }
            #expect(Set(result.rows.compactMap { $0.group["tag"] }) == Set(expected.keys))
            for row in result.rows {
                #expect(Figures(row.figures) == Figures(events: expected[row.group["tag"] ?? "?"] ?? []))
            }
            let customers = try await client.answer(
                UsageResult.self, "/api/usage?group_by=customer&team=search&\(Self.allDays)")
            let byCustomer = Dictionary(grouping: Seed.usage.filter { $0.data.response.team == "search" }) {
                $0.data.response.customer ?? ""
            }
            #expect(customers.rows.count == byCustomer.count)
            for row in customers.rows {
                #expect(Figures(row.figures) == Figures(events: byCustomer[row.group["customer"] ?? "?"] ?? []))
            }
        }
    }

    @Test func requestsTopByCostDurationAndTime() async throws {
        try await withQueryAPI { client, _ in
            let events = seeded(from: Self.allFrom, to: Self.allTo)
            let byCost = events.sorted {
                ($0.data.costNanoUSD.total, $0.atMs) > ($1.data.costNanoUSD.total, $1.atMs)
            }
            let top = try await client.answer(RequestsPageBody.self, "/api/requests?order=cost&limit=5&\(Self.allDays)")
            #expect(top.requests.map(\.requestID) == byCost.prefix(5).map(\.id))
            #expect(top.order == .cost)
            #expect(top.limit == 5)
            #expect(top.from == Seed.date(Self.allFrom))
            #expect(top.to == Seed.date(Self.allTo))

            let byDuration = events.sorted {
                ($0.data.response.timings.durationMs, $0.atMs) > ($1.data.response.timings.durationMs, $1.atMs)
            }
            let slow = try await client.answer(RequestsPageBody.self, "/api/requests?order=duration&limit=3&\(Self.allDays)")
            #expect(slow.requests.map(\.requestID) == byDuration.prefix(3).map(\.id))

            // Default: newest first, 50, the day before now: nothing seeded is that recent.
            let recent = try await client.answer(RequestsPageBody.self, "/api/requests")
            #expect(recent.requests.isEmpty)
            #expect(recent.limit == 50)
            #expect(recent.order == .time)
            #expect(recent.to == Seed.now)
            let newest = try await client.answer(RequestsPageBody.self, "/api/requests?since=7d")
            #expect(newest.requests.map(\.requestID) == events.sorted { $0.atMs > $1.atMs }.prefix(50).map(\.id))

            let billing = try await client.answer(
                RequestsPageBody.self, "/api/requests?team=billing&tag=feature%3Dsummarize&limit=1000&\(Self.allDays)")
            let expected = events.filter {
                $0.data.response.team == "billing" && $0.data.response.tags["feature"] == "summarize"
            }
            #expect(Set(billing.requests.map(\.requestID)) == Set(expected.map(\.id)))
            #expect(billing.requests.count == expected.count)
            #expect(billing.filter == ["team": "billing", "tag": "feature=summarize"])
        }
    }

    @Test func requestByIDAndUnknownID() async throws {
        try await withQueryAPI { client, _ in
            for event in [Seed.usage[0], Seed.usage[7], Seed.usage[22], Seed.usage[61]] {
                let record = try await client.answer(RequestRecord.self, "/api/requests/\(event.id)")
                let response = event.data.response
                #expect(record.requestID == event.id)
                #expect(record.receivedAt == Seed.date(event.atMs))
                #expect(record.keyID == response.keyID)
                #expect(record.team == response.team)
                #expect(record.project == response.project)
                #expect(record.customer == response.customer)
                #expect(record.tags == response.tags)
                #expect(record.provider == response.provider.rawValue)
                #expect(record.endpoint == response.endpoint)
                #expect(record.requestedModel == response.requestedModel)
                #expect(record.servedModel == response.servedModel)
                #expect(record.status == response.status)
                #expect(record.outcome == response.outcome.rawValue)
                #expect(record.errorType == response.errorType)
                #expect(record.usageSource == response.usageSource.rawValue)
                #expect(record.priced == event.data.priced)
                #expect(record.unpricedReason == event.data.unpricedReason)
                #expect(record.tokens == response.usage)
                #expect(record.costNanoUSD == event.data.costNanoUSD)
                #expect(record.durationMs == response.timings.durationMs)
                #expect(record.firstByteMs == response.timings.firstByteMs)
                #expect(record.upstreamMs == response.timings.upstreamMs)
            }
            let missing = try await client.apiGet("/api/requests/req_nope")
            #expect(missing.status == .notFound)
            let error = try missing.decodeJSON(APIErrorBody.self)
            #expect(error.error.type == "not_found")
            #expect(error.error.message.contains("req_nope"))

            let unknownRoute = try await client.apiGet("/api/nothing/here")
            #expect(unknownRoute.status == .notFound)
            #expect(try unknownRoute.decodeJSON(APIErrorBody.self).error.type == "not_found")
        }
    }

    static let badParameters: [(String, String)] = [
        ("/api/usage?colour=blue", "colour"),
        ("/api/usage?group_by=team,colour", "group_by"),
        ("/api/usage?group_by=team,team", "group_by"),
        ("/api/usage?granularity=fortnight", "granularity"),
        ("/api/usage?since=yesterday", "since"),
        ("/api/usage?since=0d", "since"),
        ("/api/usage?since=7d&from=2026-11-01", "since"),
        ("/api/usage?from=2026-11-05&to=2026-11-01", "from"),
        ("/api/usage?from=2026-11-05&to=2026-11-05", "from"),
        ("/api/usage?from=last-tuesday", "from"),
        ("/api/usage?to=2026-13-01", "to"),
        ("/api/usage?group_by=customer&tag=feature%3Dsearch", "tag"),
        ("/api/usage?group_by=customer,tag", "group_by"),
        ("/api/usage?customer=acme&tag=feature%3Dsearch", "customer"),
        ("/api/usage?team=a&team=b", "team"),
        ("/api/usage?group_by=team&group_by=model", "group_by"),
        ("/api/usage?team=", "team"),
        ("/api/usage?tag=feature", "tag"),
        ("/api/usage?granularity=hour&from=2026-01-01&to=2026-11-01", "granularity"),
        ("/api/usage?order=cost", "order"),
        ("/api/requests?limit=0", "limit"),
        ("/api/requests?limit=1001", "limit"),
        ("/api/requests?limit=ten", "limit"),
        ("/api/requests?order=price", "order"),
        ("/api/requests?group_by=team", "group_by"),
        ("/api/requests?order=cost&order=time", "order"),
        ("/api/requests?from=2026-11-04&to=2026-11-02", "from"),
        ("/api/alerts?limit=0", "limit"),
        ("/api/alerts?limit=1001", "limit"),
        ("/api/alerts?since=forever", "since"),
        ("/api/alerts?since=7d&since=1d", "since"),
        ("/api/alerts?team=search", "team"),
        ("/api/budgets?verbose=1", "verbose"),
        ("/api/keys?team=search", "team"),
        ("/api/status?x=1", "x"),
        ("/api/requests/req_0001?expand=1", "expand"),
    ]

    @Test(arguments: badParameters)
    func badParameterIs400NamingIt(uri: String, parameter: String) async throws {
        try await withQueryAPI { client, _ in
            let response = try await client.apiGet(uri)
            #expect(response.status == .badRequest, "\(uri): \(response.bodyText)")
            #expect(response.headers[.contentType] == "application/json")
            #expect(response.headers[.cacheControl] == "no-store")
            let error = try response.decodeJSON(APIErrorBody.self)
            #expect(error.error.type == "invalid_parameter")
            #expect(error.error.parameter == parameter, "\(uri): \(error.error.message)")
            #expect(!error.error.message.isEmpty)
        }
    }

    @Test func alertsSinceAndLimitAreValidatedBoundaries() async throws {
        try await withQueryAPI { client, _ in
            let one = try await client.answer(AlertsBody.self, "/api/alerts?limit=1")
            #expect(one.alerts.count == 1)
            let most = try await client.answer(AlertsBody.self, "/api/alerts?limit=1000&since=30d")
            #expect(most.alerts.count == 3)
            #expect(most.limit == 1000)
        }
    }

    static let routes = ["/api/usage", "/api/requests", "/api/requests/req_0001", "/api/budgets", "/api/alerts",
                         "/api/keys", "/api/status", "/api/usage?colour=blue"]

    @Test(arguments: routes)
    func everyRouteNeedsAReadingKey(uri: String) async throws {
        try await withQueryAPI { client, _ in
            let refused: [HTTPFields] = [
                [:],
                [.authorization: "Bearer wrong-key"],
                [.authorization: "Bearer \(Seed.writeKey)"],
                [HTTPField.Name("x-api-key")!: Seed.writeKey],
                [.authorization: "Basic \(Seed.adminKey)"],
                [.authorization: "Bearer "],
                [.cookie: "\(QueryAuthenticator.cookieName)=nope"],
            ]
            for headers in refused {
                let response = try await client.apiGet(uri, headers: headers)
                #expect(response.status == .unauthorized, "\(uri) with \(headers)")
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
                #expect(response.headers[.contentType] == "application/json")
                #expect(try response.decodeJSON(APIErrorBody.self).error.type == "authentication_error")
                #expect(!response.bodyText.contains(Seed.adminKey))
            }
            let accepted: [HTTPFields] = [
                [.authorization: "Bearer \(Seed.adminKey)"],
                [.authorization: "bearer \(Seed.readOnlyKey)"],
                [HTTPField.Name("x-api-key")!: Seed.readOnlyKey],
                [HTTPField.Name("x-api-key")!: Seed.adminKey],
                [.cookie: "theme=dark; \(QueryAuthenticator.cookieName)=\(Seed.readOnlyKey)"],
            ]
            let expected: HTTPResponse.Status = uri.contains("colour") ? .badRequest : .ok
            for headers in accepted {
                let response = try await client.apiGet(uri, headers: headers)
                #expect(response.status == expected, "\(uri) with \(headers): \(response.bodyText)")
                #expect(response.headers[.contentType] == "application/json")
                #expect(response.headers[.cacheControl] == "no-store")
                #expect(response.headers[.wwwAuthenticate] == nil)
            }
        }
    }

    @Test func budgetsAlertsKeysAndStatus() async throws {
        try await withQueryAPI { client, _ in
            let budgets = try await client.answer(BudgetsBody.self, "/api/budgets").budgets
            #expect(budgets.count == 1)
            let budget = try #require(budgets.first)
            #expect(budget.budgetID == "budget_team_search")
            #expect(budget.scope == .team("search"))
            #expect(budget.periodKind == "month")
            #expect(budget.limitNanoUSD == 500_000_000_000)
            #expect(budget.levels == [BudgetLevel(percent: 80, action: .alert), BudgetLevel(percent: 100, action: .block)])
            #expect(budget.downgrade == ["gpt-4o": "gpt-4o-mini"])
            #expect(budget.onNoDowngrade == "pass")
            #expect(budget.state == "alert")
            #expect(budget.spentNanoUSD == 410_000_000_000)
            #expect(budget.remainingNanoUSD == 90_000_000_000)
            #expect(budget.usedPercentBP == 8_200)
            #expect(budget.periodStart == Seed.budgetPeriod.start)
            #expect(budget.resetsAt == Seed.budgetPeriod.end)
            #expect(budget.decidedAt == Seed.date(Seed.nowMs - Seed.hourMs))

            // Default since=7d: the alerts of 1 and 3 days ago, newest first.
            let alerts = try await client.answer(AlertsBody.self, "/api/alerts")
            #expect(alerts.alerts.map(\.alertID) == Seed.alerts.prefix(2).map(\.alertID))
            #expect(alerts.since == Seed.date(Seed.nowMs - 7 * Seed.dayMs))
            #expect(alerts.limit == 100)
            let first = try #require(alerts.alerts.first)
            #expect(first.observed == Seed.alerts[0].observed)
            #expect(first.scope == Seed.alerts[0].scope)
            #expect(first.raisedAt == Seed.alerts[0].raisedAt)
            let twoDays = try await client.answer(AlertsBody.self, "/api/alerts?since=2d")
            #expect(twoDays.alerts.map(\.alertID) == [Seed.alerts[0].alertID])

            let keysResponse = try await client.apiGet("/api/keys")
            #expect(!keysResponse.bodyText.contains(Seed.keySHA))
            #expect(!keysResponse.bodyText.contains("sha256"))
            let keys = try keysResponse.decodeJSON(KeysBody.self).keys
            #expect(Set(keys.map(\.keyID)) == Set(Seed.keys.map(\.keyID)))
            let status = Dictionary(uniqueKeysWithValues: keys.map { ($0.keyID, $0.status) })
            #expect(status == ["key_search": "active", "key_ro": "active", "key_old": "revoked", "key_temp": "expired"])
            let readOnly = try #require(keys.first { $0.keyID == "key_ro" })
            #expect(readOnly.readOnly)
            let search = try #require(keys.first { $0.keyID == "key_search" })
            #expect(search.models == ["gpt-4o"])
            #expect(search.tags == ["env": "prod"])
            #expect(search.name == "search prod")
            #expect(keys.first { $0.keyID == "key_old" }?.revokeReason == "rotated")

            let store = try await client.answer(ProjectionStore.Status.self, "/api/status")
            #expect(store.requests == Int64(Seed.usage.count))
            #expect(store.firstRequestAt == Seed.date(Seed.usage.map(\.atMs).min() ?? 0))
            #expect(store.lastRequestAt == Seed.date(Seed.usage.map(\.atMs).max() ?? 0))
            #expect(store.rejected == 0)
            #expect(store.offsets["tollgate.usage[0]"] == Int64(Seed.usage.count))
            #expect(store.offsets["tollgate.alerts[0]"] == Int64(Seed.alerts.count))
        }
    }

    @Test func databaseFailureIs500WithoutDetails() async throws {
        try await withQueryAPI { client, store in
            try await store.pool.write { db in try db.execute(sql: "DROP TABLE requests") }
            let response = try await client.apiGet("/api/requests?since=7d")
            #expect(response.status == .internalServerError)
            #expect(response.headers[.contentType] == "application/json")
            let error = try response.decodeJSON(APIErrorBody.self)
            #expect(error.error.type == "internal_error")
            #expect(!error.error.message.contains("requests"))
        }
    }
}
