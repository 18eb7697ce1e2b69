public import Foundation

/// A `tollgate.request.v1` event.
public typealias RequestEvent = CloudEvent<RequestData>
/// A `tollgate.response.v1` event.
public typealias ResponseEvent = CloudEvent<ResponseData>
/// A `tollgate.usage.v1` event.
public typealias UsageEvent = CloudEvent<UsageData>

/// The data of `tollgate.request.v1`: a request accepted by ingress, before it is forwarded.
///
/// Ingress emits it once the request is authenticated and admitted (before the upstream call). It
/// exists for in-flight tracking, audit and early reservation; the cost of a request is priced from
/// its ``ResponseData`` alone. Published on the `requests` topic keyed by team id; the event id is
/// `request:<request_id>`.
public struct RequestData: EventPayload {
    public static let eventType = "tollgate.request.v1"
    public static let topic = "requests"
    /// The team id.
    public var messageKey: String { team }

    /// The gateway's id for the request (also returned to the client).
    public var requestID: String
    /// The virtual key the request was made with (its id, never the secret).
    public var keyID: String
    /// The key's team.
    public var team: String
    /// The key's project.
    public var project: String
    /// The end customer the request is attributed to, if any (from the key or a request header).
    public var customer: String?
    /// Feature tags: the key's tags merged with the request's tag headers.
    public var tags: [String: String]
    /// The provider dialect the client spoke.
    public var provider: Provider
    /// The API path, such as `"/v1/chat/completions"`.
    public var endpoint: String
    /// The model the client asked for (possibly a route alias such as `"auto"`).
    public var requestedModel: String
    /// Whether the client asked for a streamed response.
    public var stream: Bool
    /// The request's output token limit, if it set one.
    public var maxOutputTokens: Int64?
    /// Ingress's estimate of the input tokens (from the body size and content).
    public var estimatedInputTokens: Int64
    /// The worst-case cost reserved against budgets before forwarding, if a budget applied.
    public var reservedCostNanoUSD: Money?
    /// When ingress received the request.
    public var receivedAt: Date

    /// Creates the data of a request event.
    public init(
        requestID: String, keyID: String, team: String, project: String, customer: String? = nil,
        tags: [String: String] = [:], provider: Provider, endpoint: String, requestedModel: String,
        stream: Bool, maxOutputTokens: Int64? = nil, estimatedInputTokens: Int64,
        reservedCostNanoUSD: Money? = nil, receivedAt: Date
    ) {
        self.requestID = requestID
        self.keyID = keyID
        self.team = team
        self.project = project
        self.customer = customer
        self.tags = tags
        self.provider = provider
        self.endpoint = endpoint
        self.requestedModel = requestedModel
        self.stream = stream
        self.maxOutputTokens = maxOutputTokens
        self.estimatedInputTokens = estimatedInputTokens
        self.reservedCostNanoUSD = reservedCostNanoUSD
        self.receivedAt = receivedAt
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id"
        case keyID = "key_id"
        case team
        case project
        case customer
        case tags
        case provider
        case endpoint
        case requestedModel = "requested_model"
        case stream
        case maxOutputTokens = "max_output_tokens"
        case estimatedInputTokens = "estimated_input_tokens"
        case reservedCostNanoUSD = "reserved_cost_nano_usd"
        case receivedAt = "received_at"
    }
}

/// The data of `tollgate.response.v1`: a finished request, self-contained so it can be priced alone.
///
/// Ingress emits it when the response to the client has ended (successfully or not), with who made
/// the request, what was asked for and served, how it ended, how long it took and the tokens by
/// class. The cost service prices it into a ``UsageData`` without needing the request event.
/// Published on the `responses` topic keyed by team id; the event id is `response:<request_id>`.
public struct ResponseData: EventPayload {
    public static let eventType = "tollgate.response.v1"
    public static let topic = "responses"
    /// The team id.
    public var messageKey: String { team }

    /// How a request ended.
    public enum Outcome: String, Sendable, Hashable, Codable, CaseIterable {
        /// The provider answered with a success status and the response reached the client.
        case success
        /// The provider answered with an error (4xx/5xx from upstream).
        case providerError = "provider_error"
        /// Tollgate failed (upstream unreachable, timeout, internal error).
        case gatewayError = "gateway_error"
        /// The client went away before the response ended.
        case clientCancelled = "client_cancelled"
        /// Tollgate refused the request (budget blocked, model not allowed, invalid key).
        case blocked
    }

    /// Where the token counts came from.
    public enum UsageSource: String, Sendable, Hashable, Codable, CaseIterable {
        /// Reported by the provider.
        case provider
        /// Estimated by Tollgate (for example a stream cut off before the usage chunk).
        case estimated
        /// No usage: nothing was generated or nothing could be counted; all counts are zero.
        case none
    }

    /// When things happened while serving the request.
    ///
    /// Durations are whole milliseconds measured from `received_at` on ingress's monotonic clock.
    public struct Timings: Sendable, Hashable, Codable {
        /// When ingress received the request.
        public var receivedAt: Date
        /// When ingress sent the request upstream; absent if it never did (blocked, failed early).
        public var upstreamSentAt: Date?
        /// Milliseconds from `received_at` to the first response byte sent to the client; absent if
        /// no byte was sent.
        public var firstByteMs: Int64?
        /// Milliseconds from `received_at` to the end of the response to the client.
        public var durationMs: Int64
        /// Milliseconds spent waiting on the provider (from sending upstream to its last byte);
        /// absent if the request never went upstream.
        public var upstreamMs: Int64?

        /// Creates timings.
        public init(
            receivedAt: Date, upstreamSentAt: Date? = nil, firstByteMs: Int64? = nil,
            durationMs: Int64, upstreamMs: Int64? = nil
        ) {
            self.receivedAt = receivedAt
            self.upstreamSentAt = upstreamSentAt
            self.firstByteMs = firstByteMs
            self.durationMs = durationMs
            self.upstreamMs = upstreamMs
        }

        enum CodingKeys: String, CodingKey {
            case receivedAt = "received_at"
            case upstreamSentAt = "upstream_sent_at"
            case firstByteMs = "first_byte_ms"
            case durationMs = "duration_ms"
            case upstreamMs = "upstream_ms"
        }
    }

    /// How the router chose the served model, when a routing policy or a budget downgrade applied.
    public struct Routing: Sendable, Hashable, Codable {
        /// The policy that chose: a route id (such as `"auto"`) or `"budget_downgrade"`.
        public var policy: String
        /// Why this model was chosen, in words (for example "cheapest meeting threshold 80").
        public var reason: String
        /// The model the request would have used without the downgrade, if one happened.
        public var downgradedFrom: String?

        /// Creates routing information.
        public init(policy: String, reason: String, downgradedFrom: String? = nil) {
            self.policy = policy
            self.reason = reason
            self.downgradedFrom = downgradedFrom
        }

        enum CodingKeys: String, CodingKey {
            case policy
            case reason
            case downgradedFrom = "downgraded_from"
        }
    }

    /// The gateway's id for the request.
    public var requestID: String
    /// The virtual key's id.
    public var keyID: String
    /// The key's team.
    public var team: String
    /// The key's project.
    public var project: String
    /// The end customer, if any.
    public var customer: String?
    /// Feature tags.
    public var tags: [String: String]
    /// The provider that served (or would have served) the request.
    public var provider: Provider
    /// The API path, such as `"/v1/chat/completions"`.
    public var endpoint: String
    /// The model the client asked for (possibly a route alias).
    public var requestedModel: String
    /// The model that served the request, as the provider named it (such as a dated snapshot);
    /// the requested model (or routed model) when the provider did not say.
    public var servedModel: String
    /// Whether the response was streamed.
    public var stream: Bool
    /// The HTTP status sent to the client.
    public var status: Int
    /// How the request ended.
    public var outcome: Outcome
    /// The error type, for failed requests (such as `"rate_limit_error"`).
    public var errorType: String?
    /// The provider's service tier, if it reported one (`"default"`, `"flex"`, `"priority"`,
    /// `"batch"`, …); it can change the price.
    public var serviceTier: String?
    /// Timings.
    public var timings: Timings
    /// Tokens by class.
    public var usage: TokenUsage
    /// Where the token counts came from.
    public var usageSource: UsageSource
    /// Routing information, when a route or downgrade chose the model.
    public var routing: Routing?

    /// Creates the data of a response event.
    public init(
        requestID: String, keyID: String, team: String, project: String, customer: String? = nil,
        tags: [String: String] = [:], provider: Provider, endpoint: String, requestedModel: String,
        servedModel: String, stream: Bool, status: Int, outcome: Outcome, errorType: String? = nil,
        serviceTier: String? = nil, timings: Timings, usage: TokenUsage, usageSource: UsageSource,
        routing: Routing? = nil
    ) {
        self.requestID = requestID
        self.keyID = keyID
        self.team = team
        self.project = project
        self.customer = customer
        self.tags = tags
        self.provider = provider
        self.endpoint = endpoint
        self.requestedModel = requestedModel
        self.servedModel = servedModel
        self.stream = stream
        self.status = status
        self.outcome = outcome
        self.errorType = errorType
        self.serviceTier = serviceTier
        self.timings = timings
        self.usage = usage
        self.usageSource = usageSource
        self.routing = routing
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id"
        case keyID = "key_id"
        case team
        case project
        case customer
        case tags
        case provider
        case endpoint
        case requestedModel = "requested_model"
        case servedModel = "served_model"
        case stream
        case status
        case outcome
        case errorType = "error_type"
        case serviceTier = "service_tier"
        case timings
        case usage
        case usageSource = "usage_source"
        case routing
    }
}

/// The data of `tollgate.usage.v1`: a response with its price.
///
/// The cost service emits one per ``ResponseData``, carrying the whole response so that downstream
/// consumers (budget, alerts, projector, your own) need nothing else. A model missing from the
/// catalog is never priced as $0 silently: `priced` is false, `unpriced_reason` says why and every
/// cost is zero, and the alerts service raises it. Published on the `usage` topic keyed by team id;
/// the event id is `usage:<request_id>`.
public struct UsageData: EventPayload {
    public static let eventType = "tollgate.usage.v1"
    public static let topic = "usage"
    /// The team id.
    public var messageKey: String { response.team }

    /// The priced response.
    public var response: ResponseData
    /// The cost by token class; all zero when not priced.
    public var costNanoUSD: CostBreakdown
    /// Whether the catalog had a price for the served model (and every class used).
    public var priced: Bool
    /// Why the response is not priced (such as `"model_not_in_catalog"`); absent when priced.
    public var unpricedReason: String?
    /// The version of the pricing catalog used.
    public var catalogVersion: String
    /// When the cost service priced the response.
    public var pricedAt: Date
    /// The effective date of the price used, `YYYY-MM-DD`; absent when not priced.
    public var priceEffectiveDate: String?

    /// Creates the data of a usage event.
    public init(
        response: ResponseData, costNanoUSD: CostBreakdown, priced: Bool,
        unpricedReason: String? = nil, catalogVersion: String, pricedAt: Date,
        priceEffectiveDate: String? = nil
    ) {
        self.response = response
        self.costNanoUSD = costNanoUSD
        self.priced = priced
        self.unpricedReason = unpricedReason
        self.catalogVersion = catalogVersion
        self.pricedAt = pricedAt
        self.priceEffectiveDate = priceEffectiveDate
    }

    enum CodingKeys: String, CodingKey {
        case response
        case costNanoUSD = "cost_nano_usd"
        case priced
        case unpricedReason = "unpriced_reason"
        case catalogVersion = "catalog_version"
        case pricedAt = "priced_at"
        case priceEffectiveDate = "price_effective_date"
    }
}
