public import Foundation
import GRDB
import GRDBSQLite
import TollgateEvents
import TollgateLog

/// Reading the projections. Every method reads one WAL snapshot: consistent, and never waiting for the
/// projector's writes.
extension ProjectionStore {
    // MARK: Usage

    public func usage(_ query: UsageQuery) throws -> UsageResult {
        let hourMs = RollupGrain.hour.milliseconds
        let fromHour = Self.floorDiv(ProjectionBatch.milliseconds(query.from), hourMs)
        let toHour = Self.ceilDiv(ProjectionBatch.milliseconds(query.to), hourMs)
        return try pool.read { db in
            let filters = try Self.filterIDs(query.filter, db)
            let groupColumns = query.groupBy.flatMap { Self.columns($0) }
            var groups: [RollupKey: Measures] = [:]
            if let filters {
                let needed = Set(groupColumns + filters.map(\.0))
                let pieces = Self.pieces(query, fromHour: fromHour, toHour: toHour)
                if let cube = [RollupCube.team, .customerTotal, .main, .customer, .tag].first(where: { cube in
                    needed.isSubset(of: cube.dimensionColumns) && pieces.allSatisfy { cube.grains.contains($0.0) }
                }) {
                    try Self.sumRollups(cube, query: query, pieces: pieces, groupColumns: groupColumns,
                                        filters: filters, into: &groups, db)
                } else {
                    try Self.sumRequests(query: query, fromHour: fromHour, toHour: toHour,
                                         groupColumns: groupColumns, filters: filters, into: &groups, db)
                }
            }
            let names = try Self.strings(Set(groups.keys.flatMap(\.dimensions)), db)
            var rows: [UsageRow] = []
            var total = Measures()
            for (key, measures) in groups {
                var group: [String: String] = [:]
                var index = 0
                for dimension in query.groupBy {
                    if dimension == .tag {
                        group["tag"] = (names[key.dimensions[index]] ?? "?") + "=" + (names[key.dimensions[index + 1]] ?? "?")
                        index += 2
                    } else {
                        group[dimension.rawValue] = names[key.dimensions[index]] ?? "?"
                        index += 1
                    }
                }
                rows.append(UsageRow(bucketStart: Self.bucketStart(key.bucket, query.granularity), group: group,
                                     figures: Self.figures(measures)))
                total.add(measures)
            }
            rows.sort { lhs, rhs in
                if lhs.bucketStart != rhs.bucketStart {
                    return (lhs.bucketStart ?? .distantPast) < (rhs.bucketStart ?? .distantPast)
                }
                if lhs.figures.costNanoUSD.total != rhs.figures.costNanoUSD.total {
                    return lhs.figures.costNanoUSD.total > rhs.figures.costNanoUSD.total
                }
                return lhs.group.sorted { $0.key < $1.key }.map(\.value).lexicographicallyPrecedes(
                    rhs.group.sorted { $0.key < $1.key }.map(\.value))
            }
            var filter: [String: String] = [:]
            for (dimension, value) in query.filter.values { filter[dimension.rawValue] = value }
            return UsageResult(from: Date(milliseconds: fromHour * hourMs), to: Date(milliseconds: toHour * hourMs),
                               granularity: query.granularity, groupBy: query.groupBy, filter: filter,
                               rows: rows, totals: Self.figures(total))
        }
    }

    /// Sums rollup rows into `groups`. Whole UTC days come from the day table, the hours at either end of
    /// the range from the hour table. Rows are summed here rather than by SQLite's GROUP BY, which sorts
    /// every row with all its columns and is several times slower for these wide rows.
    /// The bucket ranges a query reads: whole UTC days from day rollups, the hours at either end (or every
    /// hour, for hourly buckets) from hour rollups.
    static func pieces(_ query: UsageQuery, fromHour: Int64, toHour: Int64) -> [(RollupGrain, Int64, Int64)] {
        var pieces: [(RollupGrain, Int64, Int64)] = []
        let firstDay = ceilDiv(fromHour, 24)
        let endDay = floorDiv(toHour, 24)
        if query.granularity != .hour && firstDay < endDay {
            if fromHour < firstDay * 24 { pieces.append((.hour, fromHour, firstDay * 24)) }
            pieces.append((.day, firstDay, endDay))
            if endDay * 24 < toHour { pieces.append((.hour, endDay * 24, toHour)) }
        } else {
            pieces.append((.hour, fromHour, toHour))
        }
        return pieces
    }

    static func sumRollups(_ cube: RollupCube, query: UsageQuery, pieces: [(RollupGrain, Int64, Int64)],
                           groupColumns: [String], filters: [(String, Int64)],
                           into groups: inout [RollupKey: Measures], _ db: Database) throws {
        let measures = (ProjectionSchema.measureColumns + ProjectionSchema.maxColumns).joined(separator: ", ")
        let selected = (["bucket"] + groupColumns).joined(separator: ", ")
        let conditions = (["bucket >= ?", "bucket < ?"] + filters.map { "\($0.0) = ?" }).joined(separator: " AND ")
        for (grain, start, end) in pieces {
            let statement = try db.cachedStatement(sql: """
                SELECT \(selected), \(measures) FROM \(cube.table(grain)) WHERE \(conditions)
                """)
            var bind = RawBinder(statement)
            bind.int(start)
            bind.int(end)
            for filter in filters { bind.int(filter.1) }
            var key = RollupKey(table: 0, bucket: 0, dimensions: Array(repeating: 0, count: groupColumns.count))
            let base = Int32(1 + groupColumns.count)
            // Columns read straight from SQLite: GRDB's Row costs more than the sums for these wide rows.
            try bind.rows(db) { handle in
                let bucket = sqlite3_column_int64(handle, 0)
                switch (query.granularity, grain) {
                case (.total, _): key.bucket = 0
                case (.hour, _), (_, .day): key.bucket = rebucket(bucket, query.granularity)
                case (_, .hour): key.bucket = rebucket(floorDiv(bucket, 24), query.granularity)
                }
                for index in 0..<groupColumns.count {
                    key.dimensions[index] = sqlite3_column_int64(handle, Int32(1 + index))
                }
                var sum = Measures()
                for index in 0..<Measures.count { sum.sums[index] = sqlite3_column_int64(handle, base + Int32(index)) }
                sum.durationMax = sqlite3_column_int64(handle, base + Int32(Measures.count))
                groups[key, default: Measures()].add(sum)
            }
        }
    }

    /// Sums request rows into `groups`: the answer for combinations no rollup has (a customer by model,
    /// a tag by key). Slower, since it reads every request of the range.
    static func sumRequests(query: UsageQuery, fromHour: Int64, toHour: Int64, groupColumns: [String],
                            filters: [(String, Int64)], into groups: inout [RollupKey: Measures],
                            _ db: Database) throws {
        let usesTags = (groupColumns + filters.map(\.0)).contains { $0.hasPrefix("tag_") }
        func expression(_ column: String) -> String {
            switch column {
            case "tag_name": "(SELECT id FROM strings WHERE value = tags_each.key)"
            case "tag_value": "(SELECT id FROM strings WHERE value = tags_each.value)"
            default: "requests.\(column)"
            }
        }
        let hourMs = RollupGrain.hour.milliseconds
        let bucket = switch query.granularity {
        case .total: "0"
        case .hour: "requests.at_ms / \(hourMs)"
        case .day, .week, .month: "requests.at_ms / \(RollupGrain.day.milliseconds)"
        }
        let sums = """
            count(*), sum(outcome IN ('provider_error', 'gateway_error')), sum(outcome = 'blocked'),
            sum(usage_source = 'estimated'), sum(priced = 0), sum(input_tokens), sum(cached_input_read_tokens),
            sum(cache_write_5m_tokens), sum(cache_write_1h_tokens), sum(output_tokens), sum(reasoning_tokens),
            sum(audio_input_tokens), sum(audio_output_tokens), sum(cost_total), sum(cost_input),
            sum(cost_cached_input_read), sum(cost_cache_write_5m), sum(cost_cache_write_1h), sum(cost_output),
            sum(cost_reasoning), sum(cost_audio_input), sum(cost_audio_output), sum(duration_ms),
            sum(first_byte_ms), count(first_byte_ms), max(duration_ms)
            """
        let selected = ([bucket] + groupColumns.map(expression)).joined(separator: ", ")
        let conditions = (["requests.at_ms >= ?", "requests.at_ms < ?"] + filters.map { "\(expression($0.0)) = ?" })
            .joined(separator: " AND ")
        let groupBy = (1...(groupColumns.count + 1)).map(String.init).joined(separator: ", ")
        let rows = try Row.fetchCursor(db, sql: """
            SELECT \(selected), \(sums) FROM requests\(usesTags ? ", json_each(requests.tags) AS tags_each" : "")
            WHERE \(conditions) GROUP BY \(groupBy)
            """, arguments: StatementArguments([fromHour * hourMs, toHour * hourMs] + filters.map(\.1)))
        let base = 1 + groupColumns.count
        while let row = try rows.next() {
            var key = RollupKey(table: 0, bucket: rebucket(row[0], query.granularity), dimensions: [])
            for index in 0..<groupColumns.count { key.dimensions.append(row[1 + index] ?? -1) }
            var sum = Measures()
            for index in 0..<Measures.count {
                sum.sums[index] = row[base + index] ?? 0
            }
            sum.durationMax = row[base + Measures.count] ?? 0
            groups[key, default: Measures()].add(sum)
        }
    }

    /// A filter as (column, string id) pairs, a tag as its name and value; `nil` when a value was never
    /// seen, so that no request can match.
    static func filterIDs(_ filter: UsageFilter, _ db: Database) throws -> [(String, Int64)]? {
        var pairs: [(String, Int64)] = []
        for (dimension, value) in filter.values.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let (name, tagValue) = splitTag(value)
            for (column, part) in zip(columns(dimension), dimension == .tag ? [name, tagValue] : [value]) {
                guard let id = try stringID(part, db) else { return nil }
                pairs.append((column, id))
            }
        }
        return pairs
    }

    static func column(_ dimension: UsageDimension) -> String {
        switch dimension {
        case .key: "key_id"
        case .team: "team"
        case .project: "project"
        case .customer: "customer"
        case .tag: "tag_name"
        case .provider: "provider"
        case .model: "served_model"
        case .requestedModel: "requested_model"
        }
    }

    static func columns(_ dimension: UsageDimension) -> [String] {
        dimension == .tag ? ["tag_name", "tag_value"] : [column(dimension)]
    }

    static func splitTag(_ value: String) -> (String, String) {
        guard let equals = value.firstIndex(of: "=") else { return (value, "") }
        return (String(value[..<equals]), String(value[value.index(after: equals)...]))
    }

    /// A bucket in hours (granularity hour) or days (the others) to the granularity's own unit: days for
    /// day, the Monday's day for week, the first of the month's day for month, 0 for total.
    static func rebucket(_ bucket: Int64, _ granularity: Granularity) -> Int64 {
        switch granularity {
        case .hour, .day, .total: return bucket
        case .week:
            // 1970-01-01 was a Thursday: day 4 (1970-01-05) is the first Monday.
            return bucket - floorMod(bucket - 4, 7)
        case .month:
            let (year, month, _) = EventTime.civil(fromDays: bucket)
            return EventTime.days(fromCivil: year, month, 1)
        }
    }

    static func bucketStart(_ bucket: Int64, _ granularity: Granularity) -> Date? {
        switch granularity {
        case .total: nil
        case .hour: Date(milliseconds: bucket * RollupGrain.hour.milliseconds)
        case .day, .week, .month: Date(milliseconds: bucket * RollupGrain.day.milliseconds)
        }
    }

    static func figures(_ measures: Measures) -> UsageFigures {
        let s = measures.sums
        let requests = s[0]
        return UsageFigures(
            requests: requests, errors: s[1], blocked: s[2], estimated: s[3], unpriced: s[4],
            tokens: TokenUsage(inputTokens: s[5], cachedInputReadTokens: s[6], cacheWrite5mTokens: s[7],
                               cacheWrite1hTokens: s[8], outputTokens: s[9], reasoningTokens: s[10],
                               audioInputTokens: s[11], audioOutputTokens: s[12]),
            costNanoUSD: CostBreakdown(
                input: Money(nanoUSD: s[14]), cachedInputRead: Money(nanoUSD: s[15]),
                cacheWrite5m: Money(nanoUSD: s[16]), cacheWrite1h: Money(nanoUSD: s[17]),
                output: Money(nanoUSD: s[18]), reasoning: Money(nanoUSD: s[19]),
                audioInput: Money(nanoUSD: s[20]), audioOutput: Money(nanoUSD: s[21]), total: Money(nanoUSD: s[13])),
            durationMsAvg: requests > 0 ? s[22] / requests : 0, durationMsMax: measures.durationMax,
            firstByteMsAvg: s[24] > 0 ? s[23] / s[24] : nil)
    }

    // MARK: Requests

    static let requestColumns = """
        request_id, at_ms, key_id, team, project, customer, tags, provider, endpoint, requested_model, served_model,
        downgraded_from, stream, status, outcome, error_type, service_tier, usage_source, priced, unpriced_reason,
        catalog_version, input_tokens, cached_input_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
        output_tokens, reasoning_tokens, audio_input_tokens, audio_output_tokens, cost_total, cost_input,
        cost_cached_input_read, cost_cache_write_5m, cost_cache_write_1h, cost_output, cost_reasoning,
        cost_audio_input, cost_audio_output, duration_ms, first_byte_ms, upstream_ms
        """

    public func requests(_ query: RequestsQuery) throws -> [RequestRecord] {
        try pool.read { db in
            guard let filters = try Self.filterIDs(query.filter, db) else { return [] }
            var conditions = ["at_ms >= ?", "at_ms < ?"]
            let from = ProjectionBatch.milliseconds(query.from)
            let to = ProjectionBatch.milliseconds(query.to)
            var arguments: [any DatabaseValueConvertible] = []
            for (column, id) in filters where !column.hasPrefix("tag_") {
                conditions.append("\(column) = ?")
                arguments.append(id)
            }
            if let tag = query.filter[.tag] {
                // Request rows keep their tags as JSON.
                let (name, value) = Self.splitTag(tag)
                conditions.append("EXISTS (SELECT 1 FROM json_each(requests.tags) WHERE key = ? AND value = ?)")
                arguments += [name, value]
            }
            let dayMs = RollupGrain.day.milliseconds
            let firstDay = Self.floorDiv(from, dayMs)
            let lastDay = Self.floorDiv(to - 1, dayMs)
            if query.order == .cost && lastDay - firstDay < 1_000 {
                // The most expensive of each UTC day, from the (day, cost) index, then the most expensive of
                // those: the overall top N is among each day's top N.
                var rows: [Row] = []
                for day in firstDay...lastDay {
                    rows += try Row.fetchAll(db.cachedStatement(sql: """
                        SELECT \(Self.requestColumns) FROM requests
                        WHERE at_ms / \(dayMs) = ? AND \(conditions.joined(separator: " AND "))
                        ORDER BY cost_total DESC, at_ms DESC LIMIT ?
                        """), arguments: StatementArguments([day, from, to] + arguments + [query.limit]))
                }
                rows.sort { lhs, rhs in
                    let (leftCost, rightCost) = (lhs[29] as Int64, rhs[29] as Int64)
                    return leftCost != rightCost ? leftCost > rightCost : (lhs[1] as Int64) > (rhs[1] as Int64)
                }
                return try Self.records(Array(rows.prefix(query.limit)), db)
            }
            let order = switch query.order {
            case .cost: "cost_total DESC, at_ms DESC"
            case .time: "at_ms DESC"
            case .duration: "duration_ms DESC, at_ms DESC"
            }
            let rows = try Row.fetchAll(db, sql: """
                SELECT \(Self.requestColumns) FROM requests WHERE \(conditions.joined(separator: " AND "))
                ORDER BY \(order) LIMIT ?
                """, arguments: StatementArguments([from, to] + arguments + [query.limit]))
            return try Self.records(rows, db)
        }
    }

    public func request(id: String) throws -> RequestRecord? {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT \(Self.requestColumns) FROM requests WHERE request_id = ?",
                                        arguments: [id])
            return try Self.records(rows, db).first
        }
    }

    static func records(_ rows: [Row], _ db: Database) throws -> [RequestRecord] {
        var ids = Set<Int64>()
        for row in rows {
            for index in [2, 3, 4, 5, 7, 8, 9, 10, 20] { ids.insert(row[index]) }
            if let downgraded: Int64 = row[11] { ids.insert(downgraded) }
        }
        let names = try strings(ids, db)
        func name(_ row: Row, _ index: Int) -> String { names[row[index] as Int64] ?? "?" }
        return rows.map { row in
            let customer = name(row, 5)
            let tags = (row[6] as String?).flatMap {
                try? JSONDecoder().decode([String: String].self, from: Data($0.utf8))
            } ?? [:]
            return RequestRecord(
                requestID: row[0], receivedAt: Date(milliseconds: row[1]), keyID: name(row, 2), team: name(row, 3),
                project: name(row, 4), customer: customer.isEmpty ? nil : customer, tags: tags,
                provider: name(row, 7), endpoint: name(row, 8), requestedModel: name(row, 9),
                servedModel: name(row, 10), downgradedFrom: (row[11] as Int64?).map { names[$0] ?? "?" },
                stream: row[12], status: row[13], outcome: row[14], errorType: row[15], serviceTier: row[16],
                usageSource: row[17], priced: row[18], unpricedReason: row[19], catalogVersion: name(row, 20),
                tokens: TokenUsage(inputTokens: row[21], cachedInputReadTokens: row[22], cacheWrite5mTokens: row[23],
                                   cacheWrite1hTokens: row[24], outputTokens: row[25], reasoningTokens: row[26],
                                   audioInputTokens: row[27], audioOutputTokens: row[28]),
                costNanoUSD: CostBreakdown(
                    input: Money(nanoUSD: row[30]), cachedInputRead: Money(nanoUSD: row[31]),
                    cacheWrite5m: Money(nanoUSD: row[32]), cacheWrite1h: Money(nanoUSD: row[33]),
                    output: Money(nanoUSD: row[34]), reasoning: Money(nanoUSD: row[35]),
                    audioInput: Money(nanoUSD: row[36]), audioOutput: Money(nanoUSD: row[37]),
                    total: Money(nanoUSD: row[29])),
                durationMs: row[38], firstByteMs: row[39], upstreamMs: row[40])
        }
    }

    // MARK: Budgets, alerts, keys

    public func budgets() throws -> [BudgetRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT budget_id, scope_kind, scope_id, period_kind, time_zone, limit_nano_usd, levels, downgrade,
                    on_no_downgrade, updated_at_ms, state, spent_nano_usd, remaining_nano_usd, used_percent_bp,
                    action, period_start_ms, period_end_ms, decided_at_ms
                FROM budgets WHERE deleted_at_ms IS NULL ORDER BY budget_id
                """).map { row in
                let decoder = JSONDecoder()
                let updated: Int64 = row[9]
                return BudgetRecord(
                    budgetID: row[0], scope: Scope(kind: Scope.Kind(rawValue: row[1]) ?? .global, id: row[2]),
                    periodKind: row[3], timeZone: row[4], limitNanoUSD: row[5],
                    levels: (try? decoder.decode([BudgetLevel].self, from: Data((row[6] as String).utf8))) ?? [],
                    downgrade: (try? decoder.decode([String: String].self, from: Data((row[7] as String).utf8))) ?? [:],
                    onNoDowngrade: row[8], updatedAt: updated > 0 ? Date(milliseconds: updated) : nil,
                    state: row[10], spentNanoUSD: row[11], remainingNanoUSD: row[12], usedPercentBP: row[13],
                    action: row[14], periodStart: (row[15] as Int64?).map(Date.init(milliseconds:)),
                    resetsAt: (row[16] as Int64?).map(Date.init(milliseconds:)),
                    decidedAt: (row[17] as Int64?).map(Date.init(milliseconds:)))
            }
        }
    }

    public func alerts(since: Date, limit: Int = 100) throws -> [AlertRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT alert_id, rule_id, kind, severity, scope_kind, scope_id, period_start_ms, level_percent, title,
                    message, observed, raised_at_ms
                FROM alerts WHERE raised_at_ms >= ? ORDER BY raised_at_ms DESC, alert_id LIMIT ?
                """, arguments: [ProjectionBatch.milliseconds(since), limit]).map { row in
                AlertRecord(
                    alertID: row[0], ruleID: row[1], kind: row[2], severity: row[3],
                    scope: Scope(kind: Scope.Kind(rawValue: row[4]) ?? .global, id: row[5]),
                    periodStart: (row[6] as Int64?).map(Date.init(milliseconds:)), levelPercent: row[7],
                    title: row[8], message: row[9],
                    observed: (try? EventCoding.makeDecoder().decode([String: AlertValue].self,
                                                                    from: Data((row[10] as String).utf8))) ?? [:],
                    raisedAt: Date(milliseconds: row[11]))
            }
        }
    }

    public func keys(now: Date = Date()) throws -> [KeyRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT key_id, key_prefix, name, team, project, customer, tags, models, read_only, created_at_ms,
                    expires_at_ms, revoked_at_ms, revoke_reason
                FROM keys ORDER BY team, project, created_at_ms, key_id
                """).map { row in
                let decoder = JSONDecoder()
                let expires = (row[10] as Int64?).map(Date.init(milliseconds:))
                let revoked = (row[11] as Int64?).map(Date.init(milliseconds:))
                let status = revoked != nil ? "revoked" : (expires.map { $0 <= now } ?? false) ? "expired" : "active"
                return KeyRecord(
                    keyID: row[0], keyPrefix: row[1], name: row[2], team: row[3], project: row[4], customer: row[5],
                    tags: (try? decoder.decode([String: String].self, from: Data((row[6] as String).utf8))) ?? [:],
                    models: (try? decoder.decode([String].self, from: Data((row[7] as String).utf8))) ?? [],
                    readOnly: row[8], createdAt: Date(milliseconds: row[9]), expiresAt: expires, revokedAt: revoked,
                    revokeReason: row[12], status: status)
            }
        }
    }

    /// Facts about the database: rows, size, how far it has read, what it rejected.
    public struct Status: Sendable, Hashable, Codable {
        public var requests: Int64
        public var firstRequestAt: Date?
        public var lastRequestAt: Date?
        public var rejected: Int64
        public var sizeBytes: Int64
        public var offsets: [String: Int64]

        enum CodingKeys: String, CodingKey {
            case requests
            case firstRequestAt = "first_request_at"
            case lastRequestAt = "last_request_at"
            case rejected
            case sizeBytes = "size_bytes"
            case offsets
        }
    }

    public func status() throws -> Status {
        try pool.read { db in
            // Request rows are never deleted, so the largest rowid is their count (count(*) reads them all).
            let row = try Row.fetchOne(db, sql: """
                SELECT coalesce(max(rowid), 0), (SELECT min(at_ms) FROM requests), (SELECT max(at_ms) FROM requests)
                FROM requests
                """)!
            let pages: Int64 = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let pageSize: Int64 = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            var offsets: [String: Int64] = [:]
            for (position, next) in try Self.offsets(db) { offsets[position.description] = next }
            return Status(
                requests: row[0], firstRequestAt: (row[1] as Int64?).map(Date.init(milliseconds:)),
                lastRequestAt: (row[2] as Int64?).map(Date.init(milliseconds:)),
                rejected: try Int64.fetchOne(db, sql: "SELECT count(*) FROM rejected") ?? 0,
                sizeBytes: pages * pageSize, offsets: offsets)
        }
    }

    // MARK: Helpers

    static func stringID(_ value: String, _ db: Database) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM strings WHERE value = ?"), arguments: [value])
    }

    static func strings(_ ids: Set<Int64>, _ db: Database) throws -> [Int64: String] {
        var names: [Int64: String] = [:]
        let list = Array(ids)
        for start in stride(from: 0, to: list.count, by: 500) {
            let chunk = Array(list[start..<min(start + 500, list.count)])
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            for row in try Row.fetchAll(db, sql: "SELECT id, value FROM strings WHERE id IN (\(marks))",
                                        arguments: StatementArguments(chunk)) {
                names[row[0]] = row[1]
            }
        }
        return names
    }

    static func floorDiv(_ value: Int64, _ divisor: Int64) -> Int64 {
        value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor)
    }

    static func ceilDiv(_ value: Int64, _ divisor: Int64) -> Int64 {
        -floorDiv(-value, divisor)
    }

    static func floorMod(_ value: Int64, _ divisor: Int64) -> Int64 {
        value - floorDiv(value, divisor) * divisor
    }
}

extension Date {
    init(milliseconds: Int64) {
        self.init(timeIntervalSince1970: TimeInterval(milliseconds) / 1000)
    }
}
