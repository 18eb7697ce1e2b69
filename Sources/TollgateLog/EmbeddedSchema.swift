import GRDB

/// The on-disk layout of the embedded log: one SQLite database in WAL mode.
///
/// - `topics`, `partitions`: topic settings; per partition the high watermark (`next_offset`), the low
///   watermark (`start_offset`), the newest append time and the bytes retained.
/// - `messages`: one row per message, clustered by (partition, offset).
/// - `compact_keys`: for compacted topics, the newest offset of every key.
/// - `groups`, `group_members`, `group_assignments`, `group_offsets`: consumer groups, their live members
///   (with heartbeats), who owns which partition in the current generation, and committed offsets.
///
/// Migrations are append-only: never edit one that has shipped, add a new one.
enum EmbeddedSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE topics (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    partitions INTEGER NOT NULL CHECK (partitions > 0),
                    cleanup_policy TEXT NOT NULL CHECK (cleanup_policy IN ('delete', 'compact')),
                    retention_ms INTEGER,
                    retention_bytes INTEGER,
                    created_at INTEGER NOT NULL
                );
                CREATE TABLE partitions (
                    id INTEGER PRIMARY KEY,
                    topic_id INTEGER NOT NULL REFERENCES topics(id),
                    partition INTEGER NOT NULL,
                    next_offset INTEGER NOT NULL DEFAULT 0,
                    start_offset INTEGER NOT NULL DEFAULT 0,
                    last_timestamp INTEGER NOT NULL DEFAULT 0,
                    bytes INTEGER NOT NULL DEFAULT 0,
                    UNIQUE (topic_id, partition)
                );
                CREATE TABLE messages (
                    partition_id INTEGER NOT NULL,
                    offset INTEGER NOT NULL,
                    timestamp INTEGER NOT NULL,
                    size INTEGER NOT NULL,
                    key BLOB,
                    value BLOB,
                    headers BLOB,
                    PRIMARY KEY (partition_id, offset)
                ) WITHOUT ROWID;
                CREATE TABLE compact_keys (
                    partition_id INTEGER NOT NULL,
                    key BLOB NOT NULL,
                    latest_offset INTEGER NOT NULL,
                    PRIMARY KEY (partition_id, key)
                ) WITHOUT ROWID;
                CREATE TABLE groups (
                    group_id TEXT PRIMARY KEY,
                    generation INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE group_members (
                    group_id TEXT NOT NULL,
                    member_id TEXT NOT NULL,
                    topics TEXT NOT NULL,
                    heartbeat_at INTEGER NOT NULL,
                    session_timeout_ms INTEGER NOT NULL,
                    joined_at INTEGER NOT NULL,
                    PRIMARY KEY (group_id, member_id)
                ) WITHOUT ROWID;
                CREATE TABLE group_assignments (
                    group_id TEXT NOT NULL,
                    partition_id INTEGER NOT NULL,
                    member_id TEXT NOT NULL,
                    PRIMARY KEY (group_id, partition_id)
                ) WITHOUT ROWID;
                CREATE TABLE group_offsets (
                    group_id TEXT NOT NULL,
                    partition_id INTEGER NOT NULL,
                    next_offset INTEGER NOT NULL,
                    committed_at INTEGER NOT NULL,
                    PRIMARY KEY (group_id, partition_id)
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }
}
