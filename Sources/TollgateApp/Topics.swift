public import TollgateEvents
public import TollgateLog

extension TopicDefinition {
    /// The log settings of this catalog topic under `prefix`.
    public func spec(prefix: String) -> TopicSpec {
        TopicSpec(name: fullName(prefix: prefix), partitions: partitions,
                  cleanupPolicy: cleanupPolicy == .compact ? .compact : .delete,
                  retentionMilliseconds: retentionMs < 0 ? nil : retentionMs)
    }
}

extension TopicCatalog {
    /// Every catalog topic as log settings, under `prefix`.
    public static func specs(prefix: String = defaultPrefix) -> [TopicSpec] {
        all.map { $0.spec(prefix: prefix) }
    }
}
