import Foundation
import GRDB
import GRDBSQLite
import TollgateEvents
import TollgateLog

/// The sums one rollup row carries, in ``ProjectionSchema/measureColumns`` order, then the maxima.
struct Measures {
    static let count = ProjectionSchema.measureColumns.count
    var sums: [Int64]
    var durationMax: Int64

    init() {
        sums = Array(repeating: 0, count: Self.count)
        durationMax = 0
    }

    init(_ usage: UsageData) {
        let response = usage.response
        let cost = usage.costNanoUSD
        let firstByte = response.timings.firstByteMs
        sums = [
            1,
            response.outcome == .providerError || response.outcome == .gatewayError ? 1 : 0,
            response.outcome == .blocked ? 1 : 0,
            response.usageSource == .estimated ? 1 : 0,
            usage.priced ? 0 : 1,
            response.usage.inputTokens, response.usage.cachedInputReadTokens, response.usage.cacheWrite5mTokens,
            response.usage.cacheWrite1hTokens, response.usage.outputTokens, response.usage.reasoningTokens,
            response.usage.audioInputTokens, response.usage.audioOutputTokens,
            cost.total.nanoUSD, cost.input.nanoUSD, cost.cachedInputRead.nanoUSD, cost.cacheWrite5m.nanoUSD,
            cost.cacheWrite1h.nanoUSD, cost.output.nanoUSD, cost.reasoning.nanoUSD, cost.audioInput.nanoUSD,
            cost.audioOutput.nanoUSD,
            response.timings.durationMs, firstByte ?? 0, firstByte == nil ? 0 : 1,
        ]
        durationMax = response.timings.durationMs
    }

    mutating func add(_ other: Measures) {
        for index in 0..<Self.count { sums[index] &+= other.sums[index] }
        durationMax = max(durationMax, other.durationMax)
    }
}

/// One rollup row's identity while a batch is applied: table, time bucket and up to six dimension ids
/// (unused ones 0), without an array to allocate and hash per row.
struct CellKey: Hashable {
    var table: Int
    var bucket: Int64
    var d0: Int64 = 0, d1: Int64 = 0, d2: Int64 = 0, d3: Int64 = 0, d4: Int64 = 0, d5: Int64 = 0
}

/// A group's identity in a query's answer: bucket and dimension ids.
struct RollupKey: Hashable {
    var table: Int
    var bucket: Int64
    var dimensions: [Int64]
}

/// The work of one ``ProjectionStore/apply(_:)`` transaction: rows written as messages come, rollup sums
/// accumulated in memory and written once at the end (one upsert per rollup row the batch touches).
struct ProjectionBatch {
    static let tables: [(cube: RollupCube, grain: RollupGrain)] = RollupCube.allCases.flatMap { cube in
        cube.grains.map { (cube, $0) }
    }

    let store: ProjectionStore
    let db: Database
    /// Whether the string ids looked up while decoding are still good (no transaction failed since).
    let trustLookups: Bool
    var report = ProjectionStore.ApplyReport()
    var rollups: [CellKey: Measures] = [:]

    init(store: ProjectionStore, db: Database, expected: Int, trustLookups: Bool = false) {
        self.store = store
        self.db = db
        self.trustLookups = trustLookups
        rollups.reserveCapacity(expected * 4)
    }

    /// A usage event with what can be worked out before the write transaction, on any thread: its time,
    /// tags as JSON, rollup measures, and its dimension strings with the ids of those the database already
    /// had when it was decoded (0 for the others). A class, so that moving it around the batch costs one
    /// reference count rather than a copy of every field.
    final class PreparedUsage: Sendable {
        /// Positions in ``strings``: fixed ones, then tag names and values (sorted by name), then the model
        /// a downgrade came from, if any.
        static let keyID = 0, team = 1, project = 2, customer = 3, provider = 4, requested = 5, served = 6,
                   endpoint = 7, catalog = 8, firstTag = 9

        let usage: UsageData
        let atMs: Int64
        let tags: String?
        let measures: Measures
        let strings: [String]
        let ids: [Int64]
        let tagCount: Int

        init(_ usage: UsageData, known: [String: Int64]) {
            let response = usage.response
            self.usage = usage
            atMs = ProjectionBatch.milliseconds(response.timings.receivedAt)
            tags = response.tags.isEmpty ? nil : ProjectionBatch.tagsJSON(response.tags)
            measures = Measures(usage)
            var strings = [response.keyID, response.team, response.project, response.customer ?? "",
                           response.provider.rawValue, response.requestedModel, response.servedModel,
                           response.endpoint, usage.catalogVersion]
            strings.reserveCapacity(Self.firstTag + 2 * response.tags.count + 1)
            for (name, value) in response.tags.sorted(by: { $0.key < $1.key }) {
                strings.append(name)
                strings.append(value)
            }
            tagCount = response.tags.count
            if let downgradedFrom = response.routing?.downgradedFrom { strings.append(downgradedFrom) }
            ids = strings.map { known[$0] ?? 0 }
            self.strings = strings
        }

        var downgradedFrom: Int? { strings.count > Self.firstTag + 2 * tagCount ? strings.count - 1 : nil }
    }

    /// The id of a prepared usage's `index`-th string: looked up while decoding, or interned now.
    private func id(_ usage: PreparedUsage, _ index: Int) throws -> Int64 {
        if trustLookups, usage.ids[index] != 0 { return usage.ids[index] }
        return try store.intern(usage.strings[index], db)
    }


    /// A message decoded ahead of the write transaction.
    enum Decoded: Sendable {
        case usage(PreparedUsage)
        case decision(BudgetDecisionData)
        case alert(AlertData)
        case control(AnyControlEvent)
        case tombstone(String)
        case ignored
        case undecodable(String)
    }

    /// Decodes one message (no database access: runs before the transaction, on any thread).
    static func decode(_ message: ConsumedMessage, topicPrefix: String, known: [String: Int64] = [:]) -> Decoded {
        guard message.topic.hasPrefix(topicPrefix) else { return .ignored }
        let topic = String(message.topic.dropFirst(topicPrefix.count))
        guard [UsageData.topic, BudgetDecisionData.topic, AlertData.topic, KeyCreatedData.topic].contains(topic) else {
            return .ignored
        }
        // A tombstone on a compacted topic: nothing to project.
        guard let value = message.value else { return .tombstone(topic) }
        do {
            switch topic {
            case UsageData.topic:
                return .usage(PreparedUsage(try EventCoding.decodeUsage(from: value).data, known: known))
            case BudgetDecisionData.topic:
                return .decision(try EventCoding.makeDecoder().decode(BudgetDecisionEvent.self, from: value).data)
            case AlertData.topic:
                return .alert(try EventCoding.makeDecoder().decode(AlertEvent.self, from: value).data)
            default:
                return .control(try AnyControlEvent.decode(from: value))
            }
        } catch {
            return .undecodable("does not decode: \(error)")
        }
    }

    /// Decodes a batch, on every core when it is large.
    static func decodeAll(_ messages: [ConsumedMessage], topicPrefix: String, known: [String: Int64] = [:]) -> [Decoded] {
        let workers = min(ProcessInfo.processInfo.activeProcessorCount, max(1, messages.count / 500))
        guard workers > 1 else { return messages.map { decode($0, topicPrefix: topicPrefix, known: known) } }
        let chunk = (messages.count + workers - 1) / workers
        return Array(unsafeUninitializedCapacity: messages.count) { buffer, initialized in
            nonisolated(unsafe) let output = buffer
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                // Each worker initializes only its own slice.
                for index in (worker * chunk)..<min(messages.count, (worker + 1) * chunk) {
                    (output.baseAddress! + index).initialize(to: decode(messages[index], topicPrefix: topicPrefix,
                                                                         known: known))
                }
            }
            initialized = messages.count
        }
    }

    mutating func apply(_ message: ConsumedMessage, _ decoded: Decoded) throws {
        switch decoded {
        case .ignored:
            report.ignored += 1
        case .tombstone(let topic):
            report.applied += 1
            report.byTopic[topic, default: 0] += 1
        case .undecodable(let reason):
            try reject(message, reason: reason)
        case .usage(let usage):
            if try applyUsage(usage) { report.applied += 1 } else { report.duplicates += 1 }
            report.byTopic[UsageData.topic, default: 0] += 1
        case .decision(let decision):
            try applyDecision(decision)
            report.applied += 1
            report.byTopic[BudgetDecisionData.topic, default: 0] += 1
        case .alert(let alert):
            try applyAlert(alert)
            report.applied += 1
            report.byTopic[AlertData.topic, default: 0] += 1
        case .control(let event):
            try applyControl(event)
            report.applied += 1
            report.byTopic[KeyCreatedData.topic, default: 0] += 1
        }
    }

    private mutating func reject(_ message: ConsumedMessage, reason: String) throws {
        report.rejected += 1
        store.logger.error("projector: message rejected", metadata: [
            "kafka.topic": "\(message.topic)", "kafka.partition": "\(message.partition)",
            "kafka.offset": "\(message.offset)", "tollgate.reason": "\(reason.prefix(500))",
        ])
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO rejected (topic, partition, offset, reason, rejected_at_ms) VALUES (?, ?, ?, ?, ?)
            """).execute(arguments: [message.topic, message.partition, message.offset, String(reason.prefix(2_000)),
                                     Int64(Date().timeIntervalSince1970 * 1000)])
    }

    // MARK: Usage

    /// Inserts the request row and adds the usage to the rollups; `false` when the request is already
    /// there (the same usage published twice), which changes nothing.
    private mutating func applyUsage(_ prepared: PreparedUsage) throws -> Bool {
        typealias P = PreparedUsage
        let usage = prepared.usage
        let response = usage.response
        let atMs = prepared.atMs
        let keyID = try id(prepared, P.keyID)
        let team = try id(prepared, P.team)
        let project = try id(prepared, P.project)
        let customer = try id(prepared, P.customer)
        let provider = try id(prepared, P.provider)
        let requested = try id(prepared, P.requested)
        let served = try id(prepared, P.served)
        let endpoint = try id(prepared, P.endpoint)
        let downgradedFrom = try prepared.downgradedFrom.map { try id(prepared, $0) }
        let catalog = try id(prepared, P.catalog)
        let tags = prepared.tags
        let tokens = response.usage
        let cost = usage.costNanoUSD
        let insert = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO requests (
                request_id, at_ms, key_id, team, project, customer, tags, provider, endpoint, requested_model,
                served_model, downgraded_from, stream, status, outcome, error_type, service_tier, usage_source,
                priced, unpriced_reason, catalog_version,
                input_tokens, cached_input_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                output_tokens, reasoning_tokens, audio_input_tokens, audio_output_tokens,
                cost_total, cost_input, cost_cached_input_read, cost_cache_write_5m, cost_cache_write_1h,
                cost_output, cost_reasoning, cost_audio_input, cost_audio_output,
                duration_ms, first_byte_ms, upstream_ms
            ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                      ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        var bind = RawBinder(insert)
        bind.text(response.requestID)
        for value in [atMs, keyID, team, project, customer] { bind.int(value) }
        bind.text(tags)
        for value in [provider, endpoint, requested, served] { bind.int(value) }
        bind.int(downgradedFrom)
        bind.int(response.stream ? 1 : 0)
        bind.int(Int64(response.status))
        bind.text(response.outcome.rawValue)
        bind.text(response.errorType)
        bind.text(response.serviceTier)
        bind.text(response.usageSource.rawValue)
        bind.int(usage.priced ? 1 : 0)
        bind.text(usage.unpricedReason)
        bind.int(catalog)
        for tokenClass in TokenClass.allCases { bind.int(tokens[tokenClass]) }
        bind.int(cost.total.nanoUSD)
        for tokenClass in TokenClass.allCases { bind.int(cost[tokenClass].nanoUSD) }
        bind.int(response.timings.durationMs)
        bind.int(response.timings.firstByteMs)
        bind.int(response.timings.upstreamMs)
        try bind.run(db)
        guard db.changesCount > 0 else { return false }

        let measures = prepared.measures
        for (index, table) in Self.tables.enumerated() {
            let bucket = ProjectionStore.floorDiv(atMs, table.grain.milliseconds)
            switch table.cube {
            case .main:
                rollups[CellKey(table: index, bucket: bucket, d0: keyID, d1: team, d2: project, d3: provider,
                                d4: requested, d5: served), default: Measures()].add(measures)
            case .team:
                rollups[CellKey(table: index, bucket: bucket, d0: team, d1: project, d2: provider, d3: served),
                        default: Measures()].add(measures)
            case .customer:
                rollups[CellKey(table: index, bucket: bucket, d0: customer, d1: team, d2: project),
                        default: Measures()].add(measures)
            case .customerTotal:
                rollups[CellKey(table: index, bucket: bucket, d0: customer), default: Measures()].add(measures)
            case .tag:
                for tag in 0..<prepared.tagCount {
                    let name = try id(prepared, P.firstTag + 2 * tag), value = try id(prepared, P.firstTag + 2 * tag + 1)
                    rollups[CellKey(table: index, bucket: bucket, d0: name, d1: value, d2: team, d3: project),
                            default: Measures()].add(measures)
                }
            }
        }
        return true
    }

    /// Writes the rollup sums the batch accumulated.
    mutating func finish() throws {
        guard !rollups.isEmpty else { return }
        var statements: [Statement] = []
        for table in Self.tables {
            let dims = table.cube.dimensionColumns
            let sums = ProjectionSchema.measureColumns
            let columns = (["bucket"] + dims + sums + ProjectionSchema.maxColumns).joined(separator: ", ")
            let placeholders = Array(repeating: "?", count: 1 + dims.count + sums.count + 1).joined(separator: ", ")
            let updates = sums.map { "\($0) = \($0) + excluded.\($0)" }
                + ProjectionSchema.maxColumns.map { "\($0) = max(\($0), excluded.\($0))" }
            statements.append(try db.cachedStatement(sql: """
                INSERT INTO \(table.cube.table(table.grain)) (\(columns)) VALUES (\(placeholders))
                ON CONFLICT (\((["bucket"] + dims).joined(separator: ", "))) DO UPDATE SET \(updates.joined(separator: ", "))
                """))
        }
        for (key, measures) in rollups {
            var bind = RawBinder(statements[key.table])
            bind.int(key.bucket)
            let dimensions = [key.d0, key.d1, key.d2, key.d3, key.d4, key.d5]
            for index in 0..<Self.tables[key.table].cube.dimensionColumns.count { bind.int(dimensions[index]) }
            for sum in measures.sums { bind.int(sum) }
            bind.int(measures.durationMax)
            try bind.run(db)
        }
        rollups.removeAll()
    }

    // MARK: Budgets, alerts, keys

    private func applyDecision(_ decision: BudgetDecisionData) throws {
        let decidedAt = Self.milliseconds(decision.decidedAt)
        if let deletedAt = try Int64.fetchOne(
            db, sql: "SELECT deleted_at_ms FROM budgets WHERE budget_id = ?", arguments: [decision.budgetID]),
            deletedAt >= decidedAt {
            return  // a decision made before the budget was deleted
        }
        try db.execute(sql: """
            INSERT INTO budgets (budget_id, scope_kind, scope_id, period_kind, time_zone, limit_nano_usd, levels,
                downgrade, on_no_downgrade, updated_at_ms, state, spent_nano_usd, remaining_nano_usd,
                used_percent_bp, action, period_start_ms, period_end_ms, decided_at_ms)
            VALUES (?, ?, ?, ?, ?, ?, '[]', ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (budget_id) DO UPDATE SET
                state = excluded.state, spent_nano_usd = excluded.spent_nano_usd,
                remaining_nano_usd = excluded.remaining_nano_usd, used_percent_bp = excluded.used_percent_bp,
                action = excluded.action, period_start_ms = excluded.period_start_ms,
                period_end_ms = excluded.period_end_ms, decided_at_ms = excluded.decided_at_ms,
                limit_nano_usd = CASE WHEN budgets.updated_at_ms = 0 THEN excluded.limit_nano_usd
                                      ELSE budgets.limit_nano_usd END
            WHERE budgets.decided_at_ms IS NULL OR budgets.decided_at_ms <= excluded.decided_at_ms
            """, arguments: [
                decision.budgetID, decision.scope.kind.rawValue, decision.scope.id, decision.period.kind.rawValue,
                decision.period.timeZone, decision.limitNanoUSD.nanoUSD, Self.json(decision.downgrade),
                decision.onNoDowngrade.rawValue, decision.state.rawValue, decision.spentNanoUSD.nanoUSD,
                decision.remainingNanoUSD.nanoUSD, decision.usedPercentBP, decision.action.rawValue,
                Self.milliseconds(decision.period.start), decision.period.end.map(Self.milliseconds), decidedAt,
            ])
    }

    private func applyAlert(_ alert: AlertData) throws {
        try db.execute(sql: """
            INSERT OR IGNORE INTO alerts (alert_id, rule_id, kind, severity, scope_kind, scope_id, period_start_ms,
                level_percent, title, message, observed, raised_at_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [
                alert.alertID, alert.ruleID, alert.kind.rawValue, alert.severity.rawValue, alert.scope.kind.rawValue,
                alert.scope.id, alert.periodStart.map(Self.milliseconds), alert.levelPercent, alert.title,
                alert.message, Self.json(alert.observed), Self.milliseconds(alert.raisedAt),
            ])
    }

    private func applyControl(_ event: AnyControlEvent) throws {
        switch event {
        case .keyCreated(let event):
            let key = event.data
            try db.execute(sql: """
                INSERT OR REPLACE INTO keys (key_id, key_prefix, name, team, project, customer, tags, models,
                    read_only, created_at_ms, expires_at_ms, revoked_at_ms, revoke_reason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                        (SELECT revoked_at_ms FROM keys WHERE key_id = ?), (SELECT revoke_reason FROM keys WHERE key_id = ?))
                """, arguments: [
                    key.keyID, key.keyPrefix, key.name, key.team, key.project, key.customer, Self.json(key.tags),
                    Self.json(key.models), key.readOnly, Self.milliseconds(key.createdAt),
                    key.expiresAt.map(Self.milliseconds), key.keyID, key.keyID,
                ])
        case .keyRevoked(let event):
            try db.execute(sql: "UPDATE keys SET revoked_at_ms = ?, revoke_reason = ? WHERE key_id = ?",
                           arguments: [Self.milliseconds(event.data.revokedAt), event.data.reason, event.data.keyID])
        case .budgetSet(let event):
            let budget = event.data
            let updatedAt = Self.milliseconds(budget.updatedAt)
            try db.execute(sql: """
                INSERT INTO budgets (budget_id, scope_kind, scope_id, period_kind, time_zone, limit_nano_usd, levels,
                    downgrade, on_no_downgrade, updated_at_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (budget_id) DO UPDATE SET
                    scope_kind = excluded.scope_kind, scope_id = excluded.scope_id,
                    period_kind = excluded.period_kind, time_zone = excluded.time_zone,
                    limit_nano_usd = excluded.limit_nano_usd, levels = excluded.levels,
                    downgrade = excluded.downgrade, on_no_downgrade = excluded.on_no_downgrade,
                    updated_at_ms = excluded.updated_at_ms,
                    deleted_at_ms = CASE WHEN budgets.deleted_at_ms < excluded.updated_at_ms THEN NULL
                                         ELSE budgets.deleted_at_ms END
                WHERE budgets.updated_at_ms <= excluded.updated_at_ms
                """, arguments: [
                    budget.budgetID, budget.scope.kind.rawValue, budget.scope.id, budget.periodKind.rawValue,
                    budget.timeZone, budget.limitNanoUSD.nanoUSD, Self.json(budget.levels),
                    Self.json(budget.downgrade), budget.onNoDowngrade.rawValue, updatedAt,
                ])
        case .budgetDeleted(let event):
            let deletedAt = Self.milliseconds(event.data.deletedAt)
            try db.execute(sql: """
                UPDATE budgets SET deleted_at_ms = ?, state = NULL, spent_nano_usd = NULL, remaining_nano_usd = NULL,
                    used_percent_bp = NULL, action = NULL, decided_at_ms = NULL
                WHERE budget_id = ? AND updated_at_ms <= ?
                """, arguments: [deletedAt, event.data.budgetID, deletedAt])
            if db.changesCount == 0 {
                // Deleted before we saw it set: remember the deletion so older decisions stay out.
                try db.execute(sql: """
                    INSERT OR IGNORE INTO budgets (budget_id, scope_kind, scope_id, period_kind, time_zone,
                        limit_nano_usd, levels, downgrade, on_no_downgrade, updated_at_ms, deleted_at_ms)
                    VALUES (?, 'global', '*', 'month', 'UTC', 0, '[]', '{}', 'block', 0, ?)
                    """, arguments: [event.data.budgetID, deletedAt])
            }
        case .routeSet, .routeDeleted, .alertRuleSet, .alertRuleDeleted:
            break
        }
    }

    // MARK: Helpers

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// `tags` as a JSON object with sorted keys (what `json(_:)` writes), without an encoder per request.
    static func tagsJSON(_ tags: [String: String]) -> String {
        var writer = CanonicalJSONWriter(capacity: 64)
        writer.stringMap(tags)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

/// Binds a cached statement's parameters in order and runs it with SQLite's own calls: the projector's
/// hot path, where building GRDB `StatementArguments` (boxing every value) cost more than the writes.
/// Only statements that are always bound in full this way go through it.
struct RawBinder {
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    let handle: OpaquePointer
    let statement: Statement
    var index: Int32 = 0

    init(_ statement: Statement) {
        self.statement = statement
        handle = statement.sqliteStatement
        sqlite3_reset(handle)
    }

    mutating func int(_ value: Int64) {
        index += 1
        sqlite3_bind_int64(handle, index, value)
    }

    mutating func int(_ value: Int64?) {
        if let value { int(value) } else { null() }
    }

    mutating func text(_ value: String?) {
        guard let value else { return null() }
        index += 1
        let position = index
        var text = value
        text.withUTF8 { bytes in
            if let base = bytes.baseAddress, bytes.count > 0 {
                _ = sqlite3_bind_text(handle, position, UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self),
                                      Int32(bytes.count), Self.transient)
            } else {
                _ = sqlite3_bind_text(handle, position, "", 0, Self.transient)
            }
        }
    }

    mutating func null() {
        index += 1
        sqlite3_bind_null(handle, index)
    }

    /// Steps through a query's rows, handing the statement to `body` for each (read it with
    /// `sqlite3_column_*`).
    func rows(_ db: Database, _ body: (OpaquePointer) throws -> Void) throws {
        defer { sqlite3_reset(handle) }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code),
                                    message: String(cString: sqlite3_errmsg(db.sqliteConnection)), sql: statement.sql)
            }
            try body(handle)
        }
    }

    func run(_ db: Database) throws {
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
        }
        sqlite3_reset(handle)
    }
}
