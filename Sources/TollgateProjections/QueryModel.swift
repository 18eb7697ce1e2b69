public import Foundation
public import TollgateEvents

/// A dimension usage can be grouped or filtered by.
public enum UsageDimension: String, Sendable, Hashable, Codable, CaseIterable {
    case key
    case team
    case project
    case customer
    /// A feature tag, as `name=value`. A request with two tags counts once under each.
    case tag
    case provider
    /// The model that served the request.
    case model
    /// The model the client asked for (differs from `model` after a downgrade or a route).
    case requestedModel = "requested_model"
}

/// The time buckets of a usage query. Buckets are UTC.
public enum Granularity: String, Sendable, Hashable, Codable, CaseIterable {
    case hour
    case day
    /// ISO weeks, starting Monday 00:00 UTC.
    case week
    case month
    /// One bucket for the whole range.
    case total
}

/// Filters of a usage or requests query: each set one must match exactly.
public struct UsageFilter: Sendable, Hashable, Codable {
    public var values: [UsageDimension: String]

    public init(_ values: [UsageDimension: String] = [:]) {
        self.values = values
    }

    public subscript(dimension: UsageDimension) -> String? {
        get { values[dimension] }
        set { values[dimension] = newValue }
    }
}

/// A question about usage: a time range, the dimensions to group by, a granularity and filters.
public struct UsageQuery: Sendable, Hashable {
    public var from: Date
    public var to: Date
    public var groupBy: [UsageDimension]
    public var granularity: Granularity
    public var filter: UsageFilter

    public init(from: Date, to: Date, groupBy: [UsageDimension] = [], granularity: Granularity = .total,
                filter: UsageFilter = UsageFilter()) {
        self.from = from
        self.to = to
        self.groupBy = groupBy
        self.granularity = granularity
        self.filter = filter
    }
}

/// Summed figures of a set of requests.
public struct UsageFigures: Sendable, Hashable, Codable {
    public var requests: Int64
    /// Requests that ended in a provider or gateway error.
    public var errors: Int64
    /// Requests refused by a budget.
    public var blocked: Int64
    /// Requests whose usage was estimated by Tollgate (the provider reported none).
    public var estimated: Int64
    /// Requests of a model without a price: their cost is not in `cost_nano_usd`.
    public var unpriced: Int64
    public var tokens: TokenUsage
    public var costNanoUSD: CostBreakdown
    public var durationMsAvg: Int64
    public var durationMsMax: Int64
    /// Mean time to the first byte, over the requests that have one; `nil` when none has.
    public var firstByteMsAvg: Int64?

    enum CodingKeys: String, CodingKey {
        case requests, errors, blocked, estimated, unpriced, tokens
        case costNanoUSD = "cost_nano_usd"
        case durationMsAvg = "duration_ms_avg"
        case durationMsMax = "duration_ms_max"
        case firstByteMsAvg = "first_byte_ms_avg"
    }
}

/// One row of a usage answer: a time bucket (absent for `total`), the group's dimension values, figures.
public struct UsageRow: Sendable, Hashable, Codable {
    public var bucketStart: Date?
    public var group: [String: String]
    public var figures: UsageFigures

    enum CodingKeys: String, CodingKey {
        case bucketStart = "bucket_start"
        case group
        case figures
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(bucketStart, forKey: .bucketStart)
        try container.encode(group, forKey: .group)
        try container.encode(figures, forKey: .figures)
    }
}

/// The answer to a ``UsageQuery``.
public struct UsageResult: Sendable, Hashable, Codable {
    /// The range answered: the asked range widened to whole hours, since rollups are hourly.
    public var from: Date
    public var to: Date
    public var granularity: Granularity
    public var groupBy: [UsageDimension]
    public var filter: [String: String]
    /// Rows by bucket, then by cost (highest first).
    public var rows: [UsageRow]
    /// The sum of the rows. Grouped by tag, a request with several tags counts once per tag.
    public var totals: UsageFigures

    enum CodingKeys: String, CodingKey {
        case from, to, granularity
        case groupBy = "group_by"
        case filter, rows, totals
    }
}

/// How to order a list of requests.
public enum RequestOrder: String, Sendable, Hashable, Codable, CaseIterable {
    /// Most expensive first.
    case cost
    /// Newest first.
    case time
    /// Slowest first.
    case duration
}

/// A question about single requests.
public struct RequestsQuery: Sendable, Hashable {
    public var from: Date
    public var to: Date
    public var order: RequestOrder
    public var limit: Int
    public var filter: UsageFilter

    public static let maxLimit = 1_000

    public init(from: Date, to: Date, order: RequestOrder = .time, limit: Int = 50, filter: UsageFilter = UsageFilter()) {
        self.from = from
        self.to = to
        self.order = order
        self.limit = limit
        self.filter = filter
    }
}

/// One request as the projections hold it (no bodies).
public struct RequestRecord: Sendable, Hashable, Codable {
    public var requestID: String
    public var receivedAt: Date
    public var keyID: String
    public var team: String
    public var project: String
    public var customer: String?
    public var tags: [String: String]
    public var provider: String
    public var endpoint: String
    public var requestedModel: String
    public var servedModel: String
    public var downgradedFrom: String?
    public var stream: Bool
    public var status: Int
    public var outcome: String
    public var errorType: String?
    public var serviceTier: String?
    public var usageSource: String
    public var priced: Bool
    public var unpricedReason: String?
    public var catalogVersion: String
    public var tokens: TokenUsage
    public var costNanoUSD: CostBreakdown
    public var durationMs: Int64
    public var firstByteMs: Int64?
    public var upstreamMs: Int64?

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id"
        case receivedAt = "received_at"
        case keyID = "key_id"
        case team, project, customer, tags, provider, endpoint
        case requestedModel = "requested_model"
        case servedModel = "served_model"
        case downgradedFrom = "downgraded_from"
        case stream, status, outcome
        case errorType = "error_type"
        case serviceTier = "service_tier"
        case usageSource = "usage_source"
        case priced
        case unpricedReason = "unpriced_reason"
        case catalogVersion = "catalog_version"
        case tokens
        case costNanoUSD = "cost_nano_usd"
        case durationMs = "duration_ms"
        case firstByteMs = "first_byte_ms"
        case upstreamMs = "upstream_ms"
    }
}

/// A budget with its newest decision: how much is spent and left, and when it resets.
public struct BudgetRecord: Sendable, Hashable, Codable {
    public var budgetID: String
    public var scope: Scope
    public var periodKind: String
    public var timeZone: String
    public var limitNanoUSD: Int64
    public var levels: [BudgetLevel]
    public var downgrade: [String: String]
    public var onNoDowngrade: String
    public var updatedAt: Date?
    /// `ok`, `alert`, `downgrade` or `blocked`; `nil` until the budget service has decided once.
    public var state: String?
    public var spentNanoUSD: Int64?
    public var remainingNanoUSD: Int64?
    public var usedPercentBP: Int64?
    public var action: String?
    public var periodStart: Date?
    /// When the current period ends and spend starts again from zero; `nil` for lifetime budgets.
    public var resetsAt: Date?
    public var decidedAt: Date?

    enum CodingKeys: String, CodingKey {
        case budgetID = "budget_id"
        case scope
        case periodKind = "period_kind"
        case timeZone = "time_zone"
        case limitNanoUSD = "limit_nano_usd"
        case levels, downgrade
        case onNoDowngrade = "on_no_downgrade"
        case updatedAt = "updated_at"
        case state
        case spentNanoUSD = "spent_nano_usd"
        case remainingNanoUSD = "remaining_nano_usd"
        case usedPercentBP = "used_percent_bp"
        case action
        case periodStart = "period_start"
        case resetsAt = "resets_at"
        case decidedAt = "decided_at"
    }
}

/// An alert raised (the `alert.v1` event, as projected).
public struct AlertRecord: Sendable, Hashable, Codable {
    public var alertID: String
    public var ruleID: String
    public var kind: String
    public var severity: String
    public var scope: Scope
    public var periodStart: Date?
    public var levelPercent: Int?
    public var title: String
    public var message: String
    public var observed: [String: AlertValue]
    public var raisedAt: Date

    enum CodingKeys: String, CodingKey {
        case alertID = "alert_id"
        case ruleID = "rule_id"
        case kind, severity, scope
        case periodStart = "period_start"
        case levelPercent = "level_percent"
        case title, message, observed
        case raisedAt = "raised_at"
    }
}

/// A virtual key as the projections hold it: never its secret or hash.
public struct KeyRecord: Sendable, Hashable, Codable {
    public var keyID: String
    public var keyPrefix: String
    public var name: String?
    public var team: String
    public var project: String
    public var customer: String?
    public var tags: [String: String]
    public var models: [String]
    public var readOnly: Bool
    public var createdAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?
    public var revokeReason: String?
    /// `active`, `revoked` or `expired` (as of the query).
    public var status: String

    enum CodingKeys: String, CodingKey {
        case keyID = "key_id"
        case keyPrefix = "key_prefix"
        case name, team, project, customer, tags, models
        case readOnly = "read_only"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case revokedAt = "revoked_at"
        case revokeReason = "revoke_reason"
        case status
    }
}

/// A query that cannot be answered as asked: which parameter, and why.
public struct QueryError: Error, Sendable, Hashable, CustomStringConvertible {
    public var parameter: String
    public var message: String

    public init(parameter: String, message: String) {
        self.parameter = parameter
        self.message = message
    }

    public var description: String { "\(parameter): \(message)" }
}
