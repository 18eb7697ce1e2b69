/// One event type of the contract: its `type` string, Swift payload, schema file and topic.
///
/// The payload type is kept as a metatype so generic code can work on every event type:
///
/// ```swift
/// func check<P: EventPayload>(_ payload: P.Type, _ bytes: Data) throws {
///     _ = try EventCoding.decode(payload, from: bytes)
/// }
/// for descriptor in EventRegistry.all { try check(descriptor.payloadType, bytes) }
/// ```
public struct EventTypeDescriptor: Sendable {
    /// The CloudEvents `type`, such as `"tollgate.usage.v1"`.
    public let eventType: String
    /// The Swift payload type.
    public let payloadType: any EventPayload.Type

    /// Describes a payload type.
    public init(_ payloadType: any EventPayload.Type) {
        self.eventType = payloadType.eventType
        self.payloadType = payloadType
    }

    /// The schema's file name in `schemas/`, such as `"usage.v1.schema.json"`.
    public var schemaFile: String { EventRegistry.schemaFileName(for: eventType) }

    /// The topic the type is published on, without prefix.
    public var topic: String { payloadType.topic }
}

/// Every event type of the contract.
///
/// The registry is the single list that tests hold the `schemas/` directory and the topic catalog
/// against: each registered type has exactly one schema file and appears on exactly one topic.
public enum EventRegistry {
    /// Every event type, in a stable order (traffic, budget, alerts, control).
    public static let all: [EventTypeDescriptor] = [
        EventTypeDescriptor(RequestData.self),
        EventTypeDescriptor(ResponseData.self),
        EventTypeDescriptor(UsageData.self),
        EventTypeDescriptor(BudgetDecisionData.self),
        EventTypeDescriptor(AlertData.self),
        EventTypeDescriptor(KeyCreatedData.self),
        EventTypeDescriptor(KeyRevokedData.self),
        EventTypeDescriptor(BudgetSetData.self),
        EventTypeDescriptor(BudgetDeletedData.self),
        EventTypeDescriptor(RouteSetData.self),
        EventTypeDescriptor(RouteDeletedData.self),
        EventTypeDescriptor(AlertRuleSetData.self),
        EventTypeDescriptor(AlertRuleDeletedData.self),
    ]

    /// Every event type mapped to its schema file name (`"tollgate.usage.v1"` →
    /// `"usage.v1.schema.json"`).
    public static let allTypes: [String: String] = Dictionary(
        uniqueKeysWithValues: all.map { ($0.eventType, $0.schemaFile) })

    /// The descriptor of an event type, or `nil` if the type is not part of the contract.
    public static func descriptor(for eventType: String) -> EventTypeDescriptor? {
        all.first { $0.eventType == eventType }
    }

    /// The schema file name of an event type: the type without its `tollgate.` prefix, plus
    /// `.schema.json`.
    public static func schemaFileName(for eventType: String) -> String {
        let prefix = "tollgate."
        let name = eventType.hasPrefix(prefix) ? String(eventType.dropFirst(prefix.count)) : eventType
        return name + ".schema.json"
    }
}
