import GRDB

/// The projector's SQLite database (WAL): materialized views of the log for the query API, the CLI and
/// the dashboard.
///
/// - `meta`: the database's identity (`projector_group`, the consumer group it reads with) and facts.
/// - `offsets`: per topic partition, the next offset to apply. It is written in the same transaction as
///   the rows a batch changes, so a batch is applied exactly once whatever the log's own commit says.
/// - `strings`: every dimension value (key id, team, project, customer, provider, model, tag name and
///   value) once, referred to by integer id from the other tables, which keeps rows and rollups small.
/// - `requests`: one row per request (no bodies): attribution, outcome, tokens and cost by class, timings;
///   indexed by request id (ULIDs: in time order), by time, and by (UTC day, cost) for the most expensive.
/// - `rollup_{main,team,customer,tag}_{hour,day}`, `rollup_customer_total_day`: sums by hour and by UTC day, one family
///   per set of dimensions (``RollupCube``): `main` key, team, project, provider, requested and served
///   model; `team` team, project, provider, served model; `customer` customer, team, project;
///   `customer_total` customer (by day only); `tag` one tag (name and value), team, project, a request with two tags
///   counting once under each.
/// - `budgets`, `alerts`, `keys`: the newest state of each (keys without any secret or hash).
/// - `rejected`: messages that could not be applied (undecodable), kept with the reason, never dropped
///   silently.
///
/// Migrations are append-only: never edit one that has shipped, add a new one. They run at open, so an
/// upgrade needs no hand work.
enum ProjectionSchema {
    static let measureColumns: [String] = [
        "requests", "errors", "blocked", "estimated", "unpriced",
        "input_tokens", "cached_input_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
        "output_tokens", "reasoning_tokens", "audio_input_tokens", "audio_output_tokens",
        "cost_total", "cost_input", "cost_cached_input_read", "cost_cache_write_5m", "cost_cache_write_1h",
        "cost_output", "cost_reasoning", "cost_audio_input", "cost_audio_output",
        "duration_ms_sum", "first_byte_ms_sum", "first_byte_count",
    ]
    /// Measures combined with `max` rather than `+`.
    static let maxColumns: [String] = ["duration_ms_max"]

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                CREATE TABLE offsets (
                    topic TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    next_offset INTEGER NOT NULL,
                    PRIMARY KEY (topic, partition)
                ) WITHOUT ROWID;
                CREATE TABLE strings (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE);
                CREATE TABLE requests (
                    request_id TEXT NOT NULL UNIQUE,
                    at_ms INTEGER NOT NULL,
                    key_id INTEGER NOT NULL,
                    team INTEGER NOT NULL,
                    project INTEGER NOT NULL,
                    customer INTEGER NOT NULL,
                    tags TEXT,
                    provider INTEGER NOT NULL,
                    endpoint INTEGER NOT NULL,
                    requested_model INTEGER NOT NULL,
                    served_model INTEGER NOT NULL,
                    downgraded_from INTEGER,
                    stream INTEGER NOT NULL,
                    status INTEGER NOT NULL,
                    outcome TEXT NOT NULL,
                    error_type TEXT,
                    service_tier TEXT,
                    usage_source TEXT NOT NULL,
                    priced INTEGER NOT NULL,
                    unpriced_reason TEXT,
                    catalog_version INTEGER NOT NULL,
                    input_tokens INTEGER NOT NULL,
                    cached_input_read_tokens INTEGER NOT NULL,
                    cache_write_5m_tokens INTEGER NOT NULL,
                    cache_write_1h_tokens INTEGER NOT NULL,
                    output_tokens INTEGER NOT NULL,
                    reasoning_tokens INTEGER NOT NULL,
                    audio_input_tokens INTEGER NOT NULL,
                    audio_output_tokens INTEGER NOT NULL,
                    cost_total INTEGER NOT NULL,
                    cost_input INTEGER NOT NULL,
                    cost_cached_input_read INTEGER NOT NULL,
                    cost_cache_write_5m INTEGER NOT NULL,
                    cost_cache_write_1h INTEGER NOT NULL,
                    cost_output INTEGER NOT NULL,
                    cost_reasoning INTEGER NOT NULL,
                    cost_audio_input INTEGER NOT NULL,
                    cost_audio_output INTEGER NOT NULL,
                    duration_ms INTEGER NOT NULL,
                    first_byte_ms INTEGER,
                    upstream_ms INTEGER
                );
                CREATE INDEX requests_at ON requests (at_ms);
                CREATE INDEX requests_cost ON requests (cost_total, at_ms);
                CREATE TABLE budgets (
                    budget_id TEXT PRIMARY KEY,
                    scope_kind TEXT NOT NULL,
                    scope_id TEXT NOT NULL,
                    period_kind TEXT NOT NULL,
                    time_zone TEXT NOT NULL,
                    limit_nano_usd INTEGER NOT NULL,
                    levels TEXT NOT NULL,
                    downgrade TEXT NOT NULL,
                    on_no_downgrade TEXT NOT NULL,
                    updated_at_ms INTEGER NOT NULL,
                    deleted_at_ms INTEGER,
                    state TEXT,
                    spent_nano_usd INTEGER,
                    remaining_nano_usd INTEGER,
                    used_percent_bp INTEGER,
                    action TEXT,
                    period_start_ms INTEGER,
                    period_end_ms INTEGER,
                    decided_at_ms INTEGER
                ) WITHOUT ROWID;
                CREATE TABLE alerts (
                    alert_id TEXT PRIMARY KEY,
                    rule_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    severity TEXT NOT NULL,
                    scope_kind TEXT NOT NULL,
                    scope_id TEXT NOT NULL,
                    period_start_ms INTEGER,
                    level_percent INTEGER,
                    title TEXT NOT NULL,
                    message TEXT NOT NULL,
                    observed TEXT NOT NULL,
                    raised_at_ms INTEGER NOT NULL
                );
                CREATE INDEX alerts_raised ON alerts (raised_at_ms);
                CREATE TABLE keys (
                    key_id TEXT PRIMARY KEY,
                    key_prefix TEXT NOT NULL,
                    name TEXT,
                    team TEXT NOT NULL,
                    project TEXT NOT NULL,
                    customer TEXT,
                    tags TEXT NOT NULL,
                    models TEXT NOT NULL,
                    read_only INTEGER NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    expires_at_ms INTEGER,
                    revoked_at_ms INTEGER,
                    revoke_reason TEXT
                ) WITHOUT ROWID;
                CREATE TABLE rejected (
                    topic TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    offset INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    rejected_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (topic, partition, offset)
                ) WITHOUT ROWID;
                """)
            for cube in [RollupCube.main, .team, .customer, .tag] {
                for grain in RollupGrain.allCases { try createRollup(cube, grain, db) }
            }
        }
        // v2: spend by customer alone (the dashboard's question), in far fewer rows than per customer,
        // team and project; filled from those. By day only: hours come from the customer family.
        migrator.registerMigration("v2") { db in
            for grain in RollupCube.customerTotal.grains {
                try createRollup(.customerTotal, grain, db)
                let sums = measureColumns.map { "SUM(\($0))" } + maxColumns.map { "MAX(\($0))" }
                try db.execute(sql: """
                    INSERT INTO \(RollupCube.customerTotal.table(grain))
                    SELECT bucket, customer, \(sums.joined(separator: ", ")) FROM \(RollupCube.customer.table(grain))
                    GROUP BY bucket, customer
                    """)
            }
        }
        // v3: the most expensive requests by UTC day: (day, cost) entries are inserted where today's are, not
        // all over an index of every request's cost, which made each batch rewrite pages across all of it.
        migrator.registerMigration("v3") { db in
            try db.execute(sql: """
                DROP INDEX requests_cost;
                CREATE INDEX requests_day_cost ON requests (at_ms / 86400000, cost_total, at_ms);
                """)
        }
        return migrator
    }

    static func createRollup(_ cube: RollupCube, _ grain: RollupGrain, _ db: Database) throws {
        let dims = cube.dimensionColumns.map { "\($0) INTEGER NOT NULL" }.joined(separator: ", ")
        let measures = (measureColumns + maxColumns).map { "\($0) INTEGER NOT NULL" }.joined(separator: ", ")
        let key = (["bucket"] + cube.dimensionColumns).joined(separator: ", ")
        try db.execute(sql: """
            CREATE TABLE \(cube.table(grain)) (
                bucket INTEGER NOT NULL, \(dims), \(measures), PRIMARY KEY (\(key))
            ) WITHOUT ROWID
            """)
    }
}

/// The time grain of a rollup table: its `bucket` counts hours or UTC days since 1970.
public enum RollupGrain: String, Sendable, CaseIterable {
    case hour
    case day

    public var milliseconds: Int64 { self == .hour ? 3_600_000 : 86_400_000 }
}

/// A family of rollup tables: which dimensions its rows are keyed by. A query reads the smallest family
/// that has every dimension it groups or filters by (``ProjectionStore/usage(_:)``), or the `requests`
/// table when none has.
enum RollupCube: String, Sendable, CaseIterable {
    /// Every dimension of a request but customer and tags.
    case main
    /// Team, project, provider and served model: the common questions, in far fewer rows than `main`.
    case team
    /// Per customer (the empty string for requests without one), with team and project.
    case customer
    /// Per tag (name and value), with team and project.
    case tag
    /// Per customer alone.
    case customerTotal = "customer_total"

    var dimensionColumns: [String] {
        switch self {
        case .main: ["key_id", "team", "project", "provider", "requested_model", "served_model"]
        case .team: ["team", "project", "provider", "served_model"]
        case .customer: ["customer", "team", "project"]
        case .tag: ["tag_name", "tag_value", "team", "project"]
        case .customerTotal: ["customer"]
        }
    }

    /// The grains the family is kept at.
    var grains: [RollupGrain] {
        self == .customerTotal ? [.day] : RollupGrain.allCases
    }

    func table(_ grain: RollupGrain) -> String { "rollup_\(rawValue)_\(grain.rawValue)" }
}
