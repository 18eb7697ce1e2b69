import Foundation
import GRDB
import Testing
import TollgateEvents
import TollgateLog
@testable import TollgateProjections

@Suite("Projection store: the fold of usage, budgets, alerts and keys")
struct ProjectionStoreTests {
    /// 300 events over 5 days for 3 teams and 3 models, some with customers and tags, a few errors.
    static func sampleEvents() -> [UsageEvent] {
        let teams = ["search", "ads", "support"]
        let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"]
        return (0..<300).map { index in
            Traffic.usage(index, team: teams[index % 3], model: models[(index / 3) % 3],
                          at: Traffic.base.addingTimeInterval(Double(index) * 1_440 + 17),
                          customer: index % 4 == 0 ? nil : "cust-\(index % 5)",
                          tags: index % 2 == 0 ? ["feature": index % 6 == 0 ? "chat" : "rag", "env": "prod"] : [:],
                          outcome: index % 50 == 7 ? .providerError : .success)
        }
    }

    @Test("usage by team and model equals the events' sums, to the nano-dollar and token")
    func usageByTeamAndModel() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        var traffic = Traffic()
        let events = Self.sampleEvents()
        let report = try store.apply(try traffic.messages(events))
        #expect(report.applied == events.count)
        let result = try store.usage(UsageQuery(from: Traffic.base, to: Traffic.base.addingTimeInterval(6 * 86_400),
                                                groupBy: [.team, .model]))
        var expected: [String: Expected] = [:]
        for event in events {
            expected["\(event.data.response.team)|\(event.data.response.servedModel)", default: Expected()].add(event)
        }
        #expect(result.rows.count == expected.count)
        for row in result.rows {
            let key = "\(row.group["team"] ?? "")|\(row.group["model"] ?? "")"
            #expect(Expected(row.figures) == expected[key], "group \(key)")
        }
        #expect(Expected(result.totals) == Expected(events))
        #expect(result.totals.errors == Int64(events.filter { $0.data.response.outcome == .providerError }.count))
    }

    @Test("a range with partial days at both ends sums hours and days without overlap or gap",
          arguments: [Granularity.total, .day, .hour, .week, .month])
    func partialDays(granularity: Granularity) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        var traffic = Traffic()
        let events = Self.sampleEvents()
        try store.apply(try traffic.messages(events))
        // From 07:00 on the first day to 15:00 four days later (hour-aligned: rollups are hourly).
        let dayStart = Date(timeIntervalSince1970: (Traffic.base.timeIntervalSince1970 / 86_400).rounded(.down) * 86_400)
        let from = dayStart.addingTimeInterval(86_400 + 7 * 3_600)
        let to = dayStart.addingTimeInterval(4 * 86_400 + 15 * 3_600)
        let result = try store.usage(UsageQuery(from: from, to: to, granularity: granularity))
        let inRange = events.filter { $0.data.response.timings.receivedAt >= from && $0.data.response.timings.receivedAt < to }
        #expect(!inRange.isEmpty && inRange.count < events.count)
        #expect(Expected(result.totals) == Expected(inRange))
        // By customer: whole days from the per-customer family, edge hours from the customer family.
        let byCustomer = try store.usage(UsageQuery(from: from, to: to, groupBy: [.customer], granularity: granularity))
        #expect(Expected(byCustomer.totals) == Expected(inRange))
        if granularity == .total {
            var expected: [String: Expected] = [:]
            for event in inRange { expected[event.data.response.customer ?? "", default: Expected()].add(event) }
            #expect(byCustomer.rows.count == expected.count)
            for row in byCustomer.rows { #expect(Expected(row.figures) == expected[row.group["customer"] ?? "?"]) }
        }
        if granularity == .day {
            var byDay: [Date: Expected] = [:]
            for event in inRange {
                let at = event.data.response.timings.receivedAt.timeIntervalSince1970
                byDay[Date(timeIntervalSince1970: (at / 86_400).rounded(.down) * 86_400), default: Expected()].add(event)
            }
            #expect(result.rows.count == byDay.count)
            for row in result.rows { #expect(Expected(row.figures) == byDay[row.bucketStart!]) }
        }
        if granularity == .hour {
            #expect(result.rows.allSatisfy { $0.bucketStart!.timeIntervalSince1970.truncatingRemainder(dividingBy: 3_600) == 0 })
            #expect(Set(result.rows.map(\.bucketStart)).count == result.rows.count)
        }
        if granularity == .week {
            // Every bucket is a Monday, 00:00 UTC.
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            #expect(result.rows.allSatisfy { calendar.component(.weekday, from: $0.bucketStart!) == 2 })
        }
    }

    @Test("filters, customers and tags use their own rollups and agree with the events")
    func filtersCustomersTags() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        var traffic = Traffic()
        let events = Self.sampleEvents()
        try store.apply(try traffic.messages(events))
        let range = (Traffic.base, Traffic.base.addingTimeInterval(6 * 86_400))
        let ads = try store.usage(UsageQuery(from: range.0, to: range.1, groupBy: [.customer],
                                             filter: UsageFilter([.team: "ads"])))
        var byCustomer: [String: Expected] = [:]
        for event in events where event.data.response.team == "ads" {
            byCustomer[event.data.response.customer ?? "", default: Expected()].add(event)
        }
        #expect(ads.rows.count == byCustomer.count)
        for row in ads.rows { #expect(Expected(row.figures) == byCustomer[row.group["customer"] ?? "?"]) }

        let tags = try store.usage(UsageQuery(from: range.0, to: range.1, groupBy: [.tag]))
        var byTag: [String: Expected] = [:]
        for event in events {
            for (name, value) in event.data.response.tags { byTag["\(name)=\(value)", default: Expected()].add(event) }
        }
        #expect(tags.rows.count == byTag.count)
        for row in tags.rows { #expect(Expected(row.figures) == byTag[row.group["tag"] ?? "?"]) }

        let chat = try store.usage(UsageQuery(from: range.0, to: range.1, groupBy: [.model],
                                              filter: UsageFilter([.tag: "feature=chat", .team: "search"])))
        let chatEvents = events.filter { $0.data.response.tags["feature"] == "chat" && $0.data.response.team == "search" }
        #expect(Expected(chat.totals) == Expected(chatEvents))

        // Combinations no rollup holds are summed from the request rows, with the same figures.
        let byCustomerModel = try store.usage(UsageQuery(from: range.0, to: range.1, groupBy: [.customer, .model],
                                                         granularity: .day))
        var expectedCustomerModel: [String: Expected] = [:]
        for event in events {
            let at = event.data.response.timings.receivedAt.timeIntervalSince1970
            let day = Date(timeIntervalSince1970: (at / 86_400).rounded(.down) * 86_400)
            expectedCustomerModel["\(day)|\(event.data.response.customer ?? "")|\(event.data.response.servedModel)",
                                  default: Expected()].add(event)
        }
        #expect(byCustomerModel.rows.count == expectedCustomerModel.count)
        for row in byCustomerModel.rows {
            let key = "\(row.bucketStart!)|\(row.group["customer"] ?? "?")|\(row.group["model"] ?? "?")"
            #expect(Expected(row.figures) == expectedCustomerModel[key], "\(key)")
        }
        let tagByKey = try store.usage(UsageQuery(from: range.0, to: range.1, groupBy: [.tag, .key],
                                                  filter: UsageFilter([.model: "gpt-4o"])))
        var expectedTagKey: [String: Expected] = [:]
        for event in events where event.data.response.servedModel == "gpt-4o" {
            for (name, value) in event.data.response.tags {
                expectedTagKey["\(name)=\(value)|\(event.data.response.keyID)", default: Expected()].add(event)
            }
        }
        #expect(tagByKey.rows.count == expectedTagKey.count)
        for row in tagByKey.rows {
            #expect(Expected(row.figures) == expectedTagKey["\(row.group["tag"] ?? "?")|\(row.group["key"] ?? "?")"])
        }

        let unknown = try store.usage(UsageQuery(from: range.0, to: range.1, filter: UsageFilter([.team: "nobody"])))
        #expect(unknown.rows.isEmpty && unknown.totals.requests == 0)
    }

    @Test("the same batch twice changes nothing; a usage event published twice counts once")
    func idempotence() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        var traffic = Traffic()
        let events = Self.sampleEvents()
        let messages = try traffic.messages(events)
        try store.apply(messages)
        let range = UsageQuery(from: Traffic.base, to: Traffic.base.addingTimeInterval(6 * 86_400), groupBy: [.team])
        let once = try store.usage(range)
        let again = try store.apply(messages)
        #expect(again.applied == 0 && again.alreadyApplied == messages.count)
        // The same events again at new offsets (the cost service re-published after a crash).
        let republished = try store.apply(try traffic.messages(Array(events.prefix(40))))
        #expect(republished.duplicates == 40 && republished.applied == 0)
        #expect(try store.usage(range) == once)
        #expect(try store.status().requests == Int64(events.count))
        // Offsets moved past the republished messages, so a restart does not read them again.
        let offsets = try store.offsets()
        #expect(offsets.values.reduce(0, +) == Int64(messages.count + 40))
    }

    @Test("a batch that fails part-way leaves nothing behind, and applying it again works")
    func atomicBatch() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        var traffic = Traffic()
        let events = Array(Self.sampleEvents().prefix(50))
        let messages = try traffic.messages(events)
        // A trigger makes the 30th request insert fail, as a full disk would.
        try store.pool.write { db in
            try db.execute(sql: """
                CREATE TRIGGER fail_once BEFORE INSERT ON requests WHEN NEW.request_id = 'req_29'
                BEGIN SELECT RAISE(ABORT, 'disk full'); END
                """)
        }
        #expect(throws: (any Error).self) { try store.apply(messages) }
        #expect(try store.status().requests == 0)
        #expect(try store.offsets().isEmpty)
        #expect(try store.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM rollup_main_hour") } == 0)
        try store.pool.write { db in try db.execute(sql: "DROP TRIGGER fail_once") }
        let report = try store.apply(messages)
        #expect(report.applied == 50)
        let result = try store.usage(UsageQuery(from: Traffic.base, to: Traffic.base.addingTimeInterval(86_400 * 2)))
        #expect(Expected(result.totals) == Expected(events))
    }

    @Test("an undecodable message is kept in rejected with its reason, and the rest of the batch applies")
    func rejected() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        var traffic = Traffic()
        var messages = try traffic.messages(Array(Self.sampleEvents().prefix(10)))
        messages.insert(ConsumedMessage(topic: "tollgate.usage", partition: 5, offset: 0, timestampMilliseconds: 0,
                                        key: nil, value: Data("{not json".utf8), headers: []), at: 4)
        let report = try store.apply(messages)
        #expect(report.rejected == 1 && report.applied == 10)
        let rows = try store.pool.read { try Row.fetchAll($0, sql: "SELECT topic, partition, offset, reason FROM rejected") }
        #expect(rows.count == 1)
        #expect((rows.first?["reason"] as String?)?.contains("does not decode") == true)
        #expect(try store.offsets()[TopicPartition(topic: "tollgate.usage", partition: 5)] == 1)
        #expect(try store.status().rejected == 1)
    }

    @Test("requests: most expensive first, filters, one by id")
    func requests() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        var traffic = Traffic()
        let events = Self.sampleEvents()
        try store.apply(try traffic.messages(events))
        let from = Traffic.base.addingTimeInterval(86_400)
        let to = Traffic.base.addingTimeInterval(3 * 86_400)
        let top = try store.requests(RequestsQuery(from: from, to: to, order: .cost, limit: 10,
                                                   filter: UsageFilter([.team: "search"])))
        let expected = events.filter {
            $0.data.response.team == "search" && $0.data.response.timings.receivedAt >= from
                && $0.data.response.timings.receivedAt < to
        }.sorted { ($0.data.costNanoUSD.total, $0.time) > ($1.data.costNanoUSD.total, $1.time) }.prefix(10)
        #expect(top.map(\.requestID) == expected.map(\.data.response.requestID))
        let one = try #require(try store.request(id: expected.first!.data.response.requestID))
        let source = expected.first!.data
        #expect(one.costNanoUSD == source.costNanoUSD)
        #expect(one.tokens == source.response.usage)
        #expect(one.team == "search" && one.servedModel == source.response.servedModel)
        #expect(one.customer == source.response.customer && one.tags == source.response.tags)
        #expect(one.receivedAt == source.response.timings.receivedAt)
        #expect(try store.request(id: "req_missing") == nil)
        let tagged = try store.requests(RequestsQuery(from: Traffic.base, to: to, order: .time, limit: 1000,
                                                      filter: UsageFilter([.tag: "feature=chat"])))
        #expect(tagged.count == events.filter {
            $0.data.response.tags["feature"] == "chat" && $0.data.response.timings.receivedAt < to
        }.count)
    }

    @Test("budgets fold settings and decisions in any order; a deleted budget stays deleted")
    func budgets() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        let now = Traffic.base
        let set = CloudEvent(id: "b1", source: "test", time: now, data: BudgetSetData(
            budgetID: "team-search", scope: .team("search"), periodKind: .month, timeZone: "UTC",
            limitNanoUSD: Money(wholeUSD: 100)!, levels: [BudgetLevel(percent: 80, action: .alert)],
            downgrade: [:], onNoDowngrade: .block, updatedAt: now))
        let decision = CloudEvent(id: "d1", source: "test", time: now, data: BudgetDecisionData(
            budgetID: "team-search", scope: .team("search"),
            period: BudgetPeriod(kind: .month, timeZone: "UTC", start: now, end: now.addingTimeInterval(86_400 * 30)),
            state: .alert, limitNanoUSD: Money(wholeUSD: 100)!, spentNanoUSD: Money(wholeUSD: 85)!,
            remainingNanoUSD: Money(wholeUSD: 15)!, usedPercentBP: 8_500, action: .alert, downgrade: [:],
            onNoDowngrade: .block, watermark: .init(usageOffsets: [:], asOf: now),
            decidedAt: now.addingTimeInterval(60)))
        // The decision arrives before the setting (different topics).
        try store.apply([try Traffic.message(decision, topic: "tollgate.budget-decisions", offset: 0)])
        try store.apply([try Traffic.message(set, topic: "tollgate.control", offset: 0)])
        let budget = try #require(try store.budgets().first)
        #expect(budget.levels == [BudgetLevel(percent: 80, action: .alert)])
        #expect(budget.spentNanoUSD == 85_000_000_000 && budget.remainingNanoUSD == 15_000_000_000)
        #expect(budget.state == "alert" && budget.resetsAt == now.addingTimeInterval(86_400 * 30))

        let deleted = CloudEvent(id: "x", source: "test", time: now, data: BudgetDeletedData(
            budgetID: "team-search", deletedAt: now.addingTimeInterval(120)))
        try store.apply([try Traffic.message(deleted, topic: "tollgate.control", offset: 1)])
        #expect(try store.budgets().isEmpty)
        // The compacted decisions topic still holds the old decision: replaying it keeps the budget deleted.
        try store.apply([try Traffic.message(decision, topic: "tollgate.budget-decisions", offset: 1)])
        #expect(try store.budgets().isEmpty)
    }

    @Test("keys without secrets, revocation, expiry; alerts newest first, deduplicated by id")
    func keysAndAlerts() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        let now = Traffic.base
        let created = CloudEvent(id: "k1", source: "test", time: now, data: KeyCreatedData(
            keyID: "key_a", keySHA256: String(repeating: "ab", count: 32), keyPrefix: "tg-abc", name: "search bot",
            team: "search", project: "search-api", customer: nil, tags: ["env": "prod"], models: ["gpt-4o"],
            expiresAt: nil, createdAt: now, readOnly: false))
        let expiring = CloudEvent(id: "k2", source: "test", time: now, data: KeyCreatedData(
            keyID: "key_b", keySHA256: String(repeating: "cd", count: 32), keyPrefix: "tg-def", name: nil,
            team: "ads", project: "ads-api", customer: nil, tags: [:], models: [],
            expiresAt: now.addingTimeInterval(10), createdAt: now, readOnly: true))
        let revoked = CloudEvent(id: "k3", source: "test", time: now, data: KeyRevokedData(
            keyID: "key_a", revokedAt: now.addingTimeInterval(5), reason: "leaked"))
        try store.apply([try Traffic.message(created, topic: "tollgate.control", offset: 0),
                         try Traffic.message(expiring, topic: "tollgate.control", offset: 1),
                         try Traffic.message(revoked, topic: "tollgate.control", offset: 2)])
        let keys = try store.keys(now: now.addingTimeInterval(60))
        #expect(keys.map(\.keyID) == ["key_b", "key_a"])
        #expect(keys.map(\.status) == ["expired", "revoked"])
        #expect(keys[1].revokeReason == "leaked" && keys[1].models == ["gpt-4o"])
        let columns = try store.pool.read { try Row.fetchOne($0, sql: "SELECT * FROM keys")!.columnNames }
        #expect(!columns.contains { $0.contains("sha") || $0.contains("secret") || $0.contains("hash") })

        func alert(_ id: String, _ at: TimeInterval) -> AlertEvent {
            CloudEvent(id: id, source: "test", time: now, data: AlertData(
                alertID: id, ruleID: "budget-levels", kind: .budgetThreshold, severity: .warning, scope: .team("search"),
                periodStart: now, levelPercent: 80, title: "Budget at 80 %", message: "search spent $80 of $100",
                observed: ["spent_nano_usd": .int(80_000_000_000)], raisedAt: now.addingTimeInterval(at)))
        }
        try store.apply([try Traffic.message(alert("a1", 10), topic: "tollgate.alerts", offset: 0),
                         try Traffic.message(alert("a2", 20), topic: "tollgate.alerts", offset: 1),
                         try Traffic.message(alert("a1", 10), topic: "tollgate.alerts", offset: 2)])
        let alerts = try store.alerts(since: now)
        #expect(alerts.map(\.alertID) == ["a2", "a1"])
        #expect(alerts[0].observed["spent_nano_usd"] == .int(80_000_000_000))
    }

    @Test("query parameters: good ones parse, bad ones name the parameter")
    func parameters() throws {
        let now = Traffic.base
        let query = try QueryParameters.usage(["since": "7d", "group_by": "team,model", "granularity": "day",
                                               "team": "search"], now: now)
        #expect(query.groupBy == [.team, .model] && query.granularity == .day)
        #expect(query.from == now.addingTimeInterval(-7 * 86_400) && query.to == now)
        #expect(query.filter[.team] == "search")
        let dated = try QueryParameters.usage(["from": "2026-11-01", "to": "2026-11-02T12:00:00Z"], now: now)
        #expect(dated.from == EventTime.parse("2026-11-01T00:00:00Z"))
        let bad: [([String: String], String)] = [
            (["group_by": "team,colour"], "group_by"), (["granularity": "minute"], "granularity"),
            (["since": "7 days"], "since"), (["from": "yesterday"], "from"), (["since": "1d", "from": "2d"], "since"),
            (["from": "1d", "to": "2d"], "from"), (["colour": "red"], "colour"), (["tag": "feature"], "tag"),
            (["group_by": "customer", "tag": "a=b"], "tag"), (["team": ""], "team"),
            (["group_by": "team,team"], "group_by"),
        ]
        for (parameters, name) in bad {
            #expect(throws: QueryError.self, "\(parameters)") { try QueryParameters.usage(parameters, now: now) }
            do {
                _ = try QueryParameters.usage(parameters, now: now)
            } catch {
                #expect(error.parameter == name, "\(parameters): \(error)")
            }
        }
        for (parameters, name) in [(["limit": "0"], "limit"), (["limit": "5000"], "limit"), (["order": "price"], "order")] {
            do {
                _ = try QueryParameters.requests(parameters, now: now)
                Issue.record("\(parameters) was accepted")
            } catch {
                #expect(error.parameter == name)
            }
        }
    }

    @Test("tags are stored as JSON that reads back to the same tags, whatever characters they hold")
    func tagsJSON() throws {
        let samples: [[String: String]] = [
            ["feature": "chat"], ["a\"b": "c\\d", "new\nline": "tab\t", "ctl": "\u{1}\u{1F}x", "é": "日本/語 🚀"],
            ["": ""], ["b": "2", "a": "1", "c": "3"],
        ]
        for tags in samples {
            let text = ProjectionBatch.tagsJSON(tags)
            #expect(try JSONDecoder().decode([String: String].self, from: Data(text.utf8)) == tags, "\(text)")
        }
        #expect(ProjectionBatch.tagsJSON(["b": "2", "a": "1"]) == #"{"a":"1","b":"2"}"#)
    }

    @Test("migration v2 fills the per-customer rollups from the customer, team and project ones")
    func migrationV2() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("old.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try ProjectionSchema.migrator.migrate(queue, upTo: "v1")
        let columns = ProjectionSchema.measureColumns + ProjectionSchema.maxColumns
        try queue.write { db in
            for (bucket, customer, team, project, cost) in [(10, 1, 2, 3, 100), (10, 1, 2, 4, 50), (10, 5, 2, 3, 7),
                                                             (11, 1, 6, 3, 1)] as [(Int64, Int64, Int64, Int64, Int64)] {
                var values = columns.map { _ in Int64(1) }
                values[ProjectionSchema.measureColumns.firstIndex(of: "cost_total")!] = cost
                values[values.count - 1] = cost * 2  // duration_ms_max
                try db.execute(sql: """
                    INSERT INTO rollup_customer_day (bucket, customer, team, project, \(columns.joined(separator: ", ")))
                    VALUES (?, ?, ?, ?, \(columns.map { _ in "?" }.joined(separator: ", ")))
                    """, arguments: StatementArguments([bucket, customer, team, project] + values))
            }
        }
        try queue.close()
        let store = try ProjectionStore.open(path: path)
        let rows = try store.pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT bucket, customer, requests, cost_total, duration_ms_max FROM rollup_customer_total_day
                ORDER BY bucket, customer
                """).map { [$0[0], $0[1], $0[2], $0[3], $0[4]] as [Int64] }
        }
        #expect(rows == [[10, 1, 2, 150, 200], [10, 5, 1, 7, 14], [11, 1, 1, 1, 2]])
    }

    @Test("calendar arithmetic of week and month buckets matches Foundation's")
    func calendar() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        for day in stride(from: Int64(-800), to: 40_000, by: 37) {
            let date = Date(timeIntervalSince1970: Double(day) * 86_400)
            let (year, month, dayOfMonth) = EventTime.civil(fromDays: day)
            let parts = calendar.dateComponents([.year, .month, .day], from: date)
            let civil: [Int] = [Int(year), Int(month), Int(dayOfMonth)]
            let foundation: [Int] = [parts.year!, parts.month!, parts.day!]
            #expect(civil == foundation)
            #expect(EventTime.days(fromCivil: year, month, dayOfMonth) == day)
            let monday = ProjectionStore.rebucket(day, .week)
            #expect(calendar.component(.weekday, from: Date(timeIntervalSince1970: Double(monday) * 86_400)) == 2)
            #expect(day - monday >= 0 && day - monday < 7)
        }
    }
}
