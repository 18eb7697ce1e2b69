public import Foundation

/// The data of an event on the control topic: a change to a key, budget, route or alert rule.
///
/// The control topic has one partition, so all control changes are totally ordered, and is
/// compacted by entity key (`key:<id>`, `budget:<id>`, `route:<id>`, `alert_rule:<id>`), so its
/// latest value per key is the entity's current definition (or its deletion). Every service folds it
/// at start.
public protocol ControlPayload: EventPayload {
    /// The entity this change is about: `key:<id>`, `budget:<id>`, `route:<id>` or
    /// `alert_rule:<id>`. It is the message key on the control topic.
    var entityKey: String { get }
}

extension ControlPayload {
    public static var topic: String { "control" }
    /// The entity key.
    public var messageKey: String { entityKey }
}

/// A `tollgate.control.key.created.v1` event.
public typealias KeyCreatedEvent = CloudEvent<KeyCreatedData>
/// A `tollgate.control.key.revoked.v1` event.
public typealias KeyRevokedEvent = CloudEvent<KeyRevokedData>
/// A `tollgate.control.budget.set.v1` event.
public typealias BudgetSetEvent = CloudEvent<BudgetSetData>
/// A `tollgate.control.budget.deleted.v1` event.
public typealias BudgetDeletedEvent = CloudEvent<BudgetDeletedData>
/// A `tollgate.control.route.set.v1` event.
public typealias RouteSetEvent = CloudEvent<RouteSetData>
/// A `tollgate.control.route.deleted.v1` event.
public typealias RouteDeletedEvent = CloudEvent<RouteDeletedData>

/// The data of `tollgate.control.key.created.v1`: a virtual key was created.
///
/// The event carries the SHA-256 of the secret (64 lowercase hex digits) and a short display prefix,
/// never the secret itself: the control topic is readable by every service. Decoding rejects a hash
/// that is not 64 lowercase hex digits and a prefix longer than 12 characters.
public struct KeyCreatedData: ControlPayload {
    public static let eventType = "tollgate.control.key.created.v1"
    /// `key:<key_id>`.
    public var entityKey: String { "key:" + keyID }

    /// The longest allowed ``keyPrefix``.
    public static let maxPrefixLength = 12

    /// The key's id.
    public var keyID: String
    /// SHA-256 of the secret key, 64 lowercase hex digits.
    public var keySHA256: String
    /// The first characters of the secret for display (such as `"tg-AbCd12"`), at most 12.
    public var keyPrefix: String
    /// A human name for the key.
    public var name: String?
    /// The team requests with this key are attributed to.
    public var team: String
    /// The project requests with this key are attributed to.
    public var project: String
    /// The end customer requests with this key are attributed to, if any.
    public var customer: String?
    /// Tags added to every request made with this key.
    public var tags: [String: String]
    /// The models this key may use; empty means all.
    public var models: [String]
    /// When the key stops working, if ever.
    public var expiresAt: Date?
    /// When the key was created.
    public var createdAt: Date
    /// Whether the key is only for the query API (it cannot call providers).
    public var readOnly: Bool

    /// Creates the data of a key-created event.
    public init(
        keyID: String, keySHA256: String, keyPrefix: String, name: String? = nil, team: String,
        project: String, customer: String? = nil, tags: [String: String] = [:],
        models: [String] = [], expiresAt: Date? = nil, createdAt: Date, readOnly: Bool = false
    ) {
        self.keyID = keyID
        self.keySHA256 = keySHA256
        self.keyPrefix = keyPrefix
        self.name = name
        self.team = team
        self.project = project
        self.customer = customer
        self.tags = tags
        self.models = models
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.readOnly = readOnly
    }

    /// Whether `text` is a SHA-256 as the contract writes it: 64 lowercase hex digits.
    public static func isValidSHA256(_ text: String) -> Bool {
        text.utf8.count == 64
            && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    enum CodingKeys: String, CodingKey {
        case keyID = "key_id"
        case keySHA256 = "key_sha256"
        case keyPrefix = "key_prefix"
        case name
        case team
        case project
        case customer
        case tags
        case models
        case expiresAt = "expires_at"
        case createdAt = "created_at"
        case readOnly = "read_only"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            keyID: try c.decode(String.self, forKey: .keyID),
            keySHA256: try c.decode(String.self, forKey: .keySHA256),
            keyPrefix: try c.decode(String.self, forKey: .keyPrefix),
            name: try c.decodeIfPresent(String.self, forKey: .name),
            team: try c.decode(String.self, forKey: .team),
            project: try c.decode(String.self, forKey: .project),
            customer: try c.decodeIfPresent(String.self, forKey: .customer),
            tags: try c.decode([String: String].self, forKey: .tags),
            models: try c.decode([String].self, forKey: .models),
            expiresAt: try c.decodeIfPresent(Date.self, forKey: .expiresAt),
            createdAt: try c.decode(Date.self, forKey: .createdAt),
            readOnly: try c.decode(Bool.self, forKey: .readOnly))
        guard Self.isValidSHA256(keySHA256) else {
            throw DecodingError.dataCorruptedError(
                forKey: .keySHA256, in: c, debugDescription: "key_sha256 must be 64 lowercase hex digits")
        }
        guard !keyPrefix.isEmpty, keyPrefix.count <= Self.maxPrefixLength else {
            throw DecodingError.dataCorruptedError(
                forKey: .keyPrefix, in: c,
                debugDescription: "key_prefix must be 1 to \(Self.maxPrefixLength) characters")
        }
    }
}

/// The data of `tollgate.control.key.revoked.v1`: a virtual key stops working now.
public struct KeyRevokedData: ControlPayload {
    public static let eventType = "tollgate.control.key.revoked.v1"
    /// `key:<key_id>`.
    public var entityKey: String { "key:" + keyID }

    /// The key's id.
    public var keyID: String
    /// When the key was revoked.
    public var revokedAt: Date
    /// Why, in words.
    public var reason: String?

    /// Creates the data of a key-revoked event.
    public init(keyID: String, revokedAt: Date, reason: String? = nil) {
        self.keyID = keyID
        self.revokedAt = revokedAt
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case keyID = "key_id"
        case revokedAt = "revoked_at"
        case reason
    }
}

/// One level of a budget: at `percent` of the limit, take `action`.
///
/// `percent` is 1...1000 (levels above 100 % are allowed for soft limits); decoding rejects other
/// values.
public struct BudgetLevel: Sendable, Hashable, Codable {
    /// What happens when a level is reached.
    public enum Action: String, Sendable, Hashable, Codable, CaseIterable {
        /// Raise an alert.
        case alert
        /// Send requests to cheaper models.
        case downgrade
        /// Refuse requests.
        case block
    }

    /// The allowed range of ``percent``.
    public static let percentRange = 1...1000

    /// The level, in percent of the limit.
    public var percent: Int
    /// What happens at this level.
    public var action: Action

    /// Creates a level.
    public init(percent: Int, action: Action) {
        self.percent = percent
        self.action = action
    }

    enum CodingKeys: String, CodingKey {
        case percent
        case action
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            percent: try c.decode(Int.self, forKey: .percent),
            action: try c.decode(Action.self, forKey: .action))
        guard Self.percentRange.contains(percent) else {
            throw DecodingError.dataCorruptedError(
                forKey: .percent, in: c, debugDescription: "percent must be in 1...1000, got \(percent)")
        }
    }
}

/// The data of `tollgate.control.budget.set.v1`: a budget was created or changed.
///
/// The whole definition is carried every time (the latest event per `budget:<id>` is the
/// definition). Periods are calendar periods of `period_kind` in `time_zone`.
public struct BudgetSetData: ControlPayload {
    public static let eventType = "tollgate.control.budget.set.v1"
    /// `budget:<budget_id>`.
    public var entityKey: String { "budget:" + budgetID }

    /// The budget's id.
    public var budgetID: String
    /// What the budget covers.
    public var scope: Scope
    /// The kind of period the budget resets on.
    public var periodKind: PeriodKind
    /// The IANA time zone of the period boundaries, such as `"UTC"` or `"America/New_York"`.
    public var timeZone: String
    /// The limit per period.
    public var limitNanoUSD: Money
    /// The levels and their actions.
    public var levels: [BudgetLevel]
    /// The downgrade map (model → cheaper model) used by downgrade levels.
    public var downgrade: [String: String]
    /// What to do, when downgrading, with a model missing from `downgrade`.
    public var onNoDowngrade: OnNoDowngrade
    /// When the budget was last changed.
    public var updatedAt: Date

    /// Creates the data of a budget-set event.
    public init(
        budgetID: String, scope: Scope, periodKind: PeriodKind, timeZone: String,
        limitNanoUSD: Money, levels: [BudgetLevel], downgrade: [String: String] = [:],
        onNoDowngrade: OnNoDowngrade, updatedAt: Date
    ) {
        self.budgetID = budgetID
        self.scope = scope
        self.periodKind = periodKind
        self.timeZone = timeZone
        self.limitNanoUSD = limitNanoUSD
        self.levels = levels
        self.downgrade = downgrade
        self.onNoDowngrade = onNoDowngrade
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case budgetID = "budget_id"
        case scope
        case periodKind = "period_kind"
        case timeZone = "time_zone"
        case limitNanoUSD = "limit_nano_usd"
        case levels
        case downgrade
        case onNoDowngrade = "on_no_downgrade"
        case updatedAt = "updated_at"
    }
}

/// The data of `tollgate.control.budget.deleted.v1`: a budget no longer applies.
public struct BudgetDeletedData: ControlPayload {
    public static let eventType = "tollgate.control.budget.deleted.v1"
    /// `budget:<budget_id>`.
    public var entityKey: String { "budget:" + budgetID }

    /// The budget's id.
    public var budgetID: String
    /// When it was deleted.
    public var deletedAt: Date

    /// Creates the data of a budget-deleted event.
    public init(budgetID: String, deletedAt: Date) {
        self.budgetID = budgetID
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case budgetID = "budget_id"
        case deletedAt = "deleted_at"
    }
}

/// A model a route may send requests to.
public struct RouteCandidate: Sendable, Hashable, Codable {
    /// The provider serving the model.
    public var provider: Provider
    /// The provider's model name.
    public var model: String

    /// Creates a candidate.
    public init(provider: Provider, model: String) {
        self.provider = provider
        self.model = model
    }

    enum CodingKeys: String, CodingKey {
        case provider
        case model
    }
}

/// How a route picks among its candidates.
public enum RouteStrategy: String, Sendable, Hashable, Codable, CaseIterable {
    /// The cheapest candidate whose predicted quality meets the threshold.
    case cheapestMeetingThreshold = "cheapest_meeting_threshold"
    /// Always the first candidate.
    case fixed
    /// Serve the first candidate, and compare others in the background (for the savings report).
    case shadow
}

/// The data of `tollgate.control.route.set.v1`: a routing policy was created or changed.
///
/// A route is an alias that clients send as the model (`"auto"`, `"fast-chat"`). `quality_threshold`
/// is 0...100; decoding rejects other values.
public struct RouteSetData: ControlPayload {
    public static let eventType = "tollgate.control.route.set.v1"
    /// `route:<route_id>`.
    public var entityKey: String { "route:" + routeID }

    /// The allowed range of ``qualityThreshold``.
    public static let qualityRange = 0...100

    /// The alias clients send as `model`.
    public var routeID: String
    /// The models the route may choose from, in preference order.
    public var candidates: [RouteCandidate]
    /// The minimum predicted quality (0...100) a candidate must reach.
    public var qualityThreshold: Int
    /// How the route picks.
    public var strategy: RouteStrategy
    /// Whether the route is active (a disabled route serves its first candidate).
    public var enabled: Bool
    /// When the route was last changed.
    public var updatedAt: Date

    /// Creates the data of a route-set event.
    public init(
        routeID: String, candidates: [RouteCandidate], qualityThreshold: Int,
        strategy: RouteStrategy, enabled: Bool, updatedAt: Date
    ) {
        self.routeID = routeID
        self.candidates = candidates
        self.qualityThreshold = qualityThreshold
        self.strategy = strategy
        self.enabled = enabled
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case routeID = "route_id"
        case candidates
        case qualityThreshold = "quality_threshold"
        case strategy
        case enabled
        case updatedAt = "updated_at"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            routeID: try c.decode(String.self, forKey: .routeID),
            candidates: try c.decode([RouteCandidate].self, forKey: .candidates),
            qualityThreshold: try c.decode(Int.self, forKey: .qualityThreshold),
            strategy: try c.decode(RouteStrategy.self, forKey: .strategy),
            enabled: try c.decode(Bool.self, forKey: .enabled),
            updatedAt: try c.decode(Date.self, forKey: .updatedAt))
        guard Self.qualityRange.contains(qualityThreshold) else {
            throw DecodingError.dataCorruptedError(
                forKey: .qualityThreshold, in: c,
                debugDescription: "quality_threshold must be in 0...100, got \(qualityThreshold)")
        }
    }
}

/// The data of `tollgate.control.route.deleted.v1`: a routing policy no longer exists.
public struct RouteDeletedData: ControlPayload {
    public static let eventType = "tollgate.control.route.deleted.v1"
    /// `route:<route_id>`.
    public var entityKey: String { "route:" + routeID }

    /// The route's id.
    public var routeID: String
    /// When it was deleted.
    public var deletedAt: Date

    /// Creates the data of a route-deleted event.
    public init(routeID: String, deletedAt: Date) {
        self.routeID = routeID
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case routeID = "route_id"
        case deletedAt = "deleted_at"
    }
}

/// Any event of the control topic, decoded by its `type`.
///
/// A service folding the control topic decodes each message with ``decode(from:)`` and switches:
///
/// ```swift
/// switch try AnyControlEvent.decode(from: bytes) {
/// case .keyCreated(let event): keys[event.data.keyID] = event.data
/// case .keyRevoked(let event): keys[event.data.keyID] = nil
/// case .budgetSet, .budgetDeleted, .routeSet, .routeDeleted, .alertRuleSet, .alertRuleDeleted: break
/// }
/// ```
///
/// A `type` that is not a control event type throws ``EventDecodingError/unknownEventType(found:expectedOneOf:)``.
/// Encoding writes the wrapped event unchanged.
public enum AnyControlEvent: Sendable, Hashable, Codable {
    /// A key was created.
    case keyCreated(KeyCreatedEvent)
    /// A key was revoked.
    case keyRevoked(KeyRevokedEvent)
    /// A budget was set.
    case budgetSet(BudgetSetEvent)
    /// A budget was deleted.
    case budgetDeleted(BudgetDeletedEvent)
    /// A route was set.
    case routeSet(RouteSetEvent)
    /// A route was deleted.
    case routeDeleted(RouteDeletedEvent)
    /// An alert rule was set.
    case alertRuleSet(AlertRuleSetEvent)
    /// An alert rule was deleted.
    case alertRuleDeleted(AlertRuleDeletedEvent)

    /// Every control event type, in the order of the cases.
    public static let eventTypes: [String] = [
        KeyCreatedData.eventType, KeyRevokedData.eventType, BudgetSetData.eventType,
        BudgetDeletedData.eventType, RouteSetData.eventType, RouteDeletedData.eventType,
        AlertRuleSetData.eventType, AlertRuleDeletedData.eventType,
    ]

    /// Decodes a control event from its JSON bytes.
    public static func decode(from data: Data) throws -> AnyControlEvent {
        try EventCoding.makeDecoder().decode(AnyControlEvent.self, from: data)
    }

    private enum TypeKey: String, CodingKey {
        case type
    }

    public init(from decoder: any Decoder) throws {
        let type = try decoder.container(keyedBy: TypeKey.self).decode(String.self, forKey: .type)
        switch type {
        case KeyCreatedData.eventType: self = .keyCreated(try KeyCreatedEvent(from: decoder))
        case KeyRevokedData.eventType: self = .keyRevoked(try KeyRevokedEvent(from: decoder))
        case BudgetSetData.eventType: self = .budgetSet(try BudgetSetEvent(from: decoder))
        case BudgetDeletedData.eventType: self = .budgetDeleted(try BudgetDeletedEvent(from: decoder))
        case RouteSetData.eventType: self = .routeSet(try RouteSetEvent(from: decoder))
        case RouteDeletedData.eventType: self = .routeDeleted(try RouteDeletedEvent(from: decoder))
        case AlertRuleSetData.eventType: self = .alertRuleSet(try AlertRuleSetEvent(from: decoder))
        case AlertRuleDeletedData.eventType: self = .alertRuleDeleted(try AlertRuleDeletedEvent(from: decoder))
        default: throw EventDecodingError.unknownEventType(found: type, expectedOneOf: Self.eventTypes)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .keyCreated(let event): try event.encode(to: encoder)
        case .keyRevoked(let event): try event.encode(to: encoder)
        case .budgetSet(let event): try event.encode(to: encoder)
        case .budgetDeleted(let event): try event.encode(to: encoder)
        case .routeSet(let event): try event.encode(to: encoder)
        case .routeDeleted(let event): try event.encode(to: encoder)
        case .alertRuleSet(let event): try event.encode(to: encoder)
        case .alertRuleDeleted(let event): try event.encode(to: encoder)
        }
    }

    /// The wrapped event's id.
    public var id: String {
        switch self {
        case .keyCreated(let e): e.id
        case .keyRevoked(let e): e.id
        case .budgetSet(let e): e.id
        case .budgetDeleted(let e): e.id
        case .routeSet(let e): e.id
        case .routeDeleted(let e): e.id
        case .alertRuleSet(let e): e.id
        case .alertRuleDeleted(let e): e.id
        }
    }

    /// The wrapped event's type.
    public var type: String {
        switch self {
        case .keyCreated(let e): e.type
        case .keyRevoked(let e): e.type
        case .budgetSet(let e): e.type
        case .budgetDeleted(let e): e.type
        case .routeSet(let e): e.type
        case .routeDeleted(let e): e.type
        case .alertRuleSet(let e): e.type
        case .alertRuleDeleted(let e): e.type
        }
    }

    /// The entity the event is about (`key:<id>`, `budget:<id>`, `route:<id>`, `alert_rule:<id>`): the
    /// message key.
    public var entityKey: String {
        switch self {
        case .keyCreated(let e): e.data.entityKey
        case .keyRevoked(let e): e.data.entityKey
        case .budgetSet(let e): e.data.entityKey
        case .budgetDeleted(let e): e.data.entityKey
        case .routeSet(let e): e.data.entityKey
        case .routeDeleted(let e): e.data.entityKey
        case .alertRuleSet(let e): e.data.entityKey
        case .alertRuleDeleted(let e): e.data.entityKey
        }
    }
}
