public import Foundation
public import TollgateEvents
public import TollgateLog
public import TollgatePricing

/// Prices `response.v1` events into `usage.v1` events: a pure fold (no I/O), run by ``CostService``.
///
/// The usage event's id is `usage:<request_id>`, so a response priced twice (a batch reprocessed after a
/// crash) yields the same id and downstream consumers drop the duplicate. A response whose model or token
/// class has no price is published with `priced: false` and the reason, never with an invented figure;
/// the fold counts those per model in its state for metrics and logs.
public struct CostFold: EventFold {
    public let pricer: Pricer
    public let topicPrefix: String
    public let source: String
    /// The clock for `priced_at` (tests pin it).
    public let now: @Sendable () -> Date

    public init(pricer: Pricer, topicPrefix: String = TopicCatalog.defaultPrefix, source: String = "tollgate/cost",
                now: @escaping @Sendable () -> Date = Date.init) {
        self.pricer = pricer
        self.topicPrefix = topicPrefix
        self.source = source
        self.now = now
    }

    /// What the service has priced since it started.
    public struct State: Sendable, Hashable {
        public var priced = 0
        public var unpriced = 0
        /// Unpriced responses by provider, model and reason.
        public var unpricedModels: [UnpricedModel: Int] = [:]

        public init() {}
    }

    public struct UnpricedModel: Sendable, Hashable {
        public var provider: Provider
        public var model: String
        public var reason: String
    }

    public func decode(_ message: ConsumedMessage) throws -> CloudEvent<ResponseData> {
        try EventCoding.decodeResponse(from: message.value ?? Data())
    }

    public func fold(_ state: inout State, _ input: CloudEvent<ResponseData>,
                     _ message: ConsumedMessage) -> [OutgoingMessage] {
        let usage = price(input.data)
        if usage.priced {
            state.priced += 1
        } else {
            state.unpriced += 1
            state.unpricedModels[UnpricedModel(provider: usage.response.provider, model: Self.model(of: usage.response),
                                               reason: usage.unpricedReason ?? "unknown"), default: 0] += 1
        }
        let event = CloudEvent(id: "usage:\(input.data.requestID)", source: source, time: usage.pricedAt, data: usage)
        return [OutgoingMessage(
            topic: topicPrefix + UsageData.topic, key: Data(usage.messageKey.utf8),
            value: EventCoding.encodeCanonical(event),
            headers: usage.priced ? Self.pricedHeaders : Self.unpricedHeaders)]
    }

    /// The headers of every usage message, made once (their bytes are shared, not rebuilt per event).
    static let pricedHeaders = headers(priced: true)
    static let unpricedHeaders = headers(priced: false)

    private static func headers(priced: Bool) -> [MessageHeader] {
        [MessageHeader("content-type", "application/cloudevents+json"), MessageHeader("ce_type", UsageData.eventType),
         MessageHeader("tollgate-priced", priced ? "true" : "false")]
    }

    /// The model a response is priced as: the one the provider served, else the one requested.
    static func model(of response: ResponseData) -> String {
        response.servedModel.isEmpty ? response.requestedModel : response.servedModel
    }

    /// The usage data of one response.
    public func price(_ response: ResponseData) -> UsageData {
        let pricedAt = now()
        if response.usage == .zero {
            // No tokens: a true $0 whatever the model (refused, failed before the provider billed).
            return UsageData(response: response, costNanoUSD: .zero, priced: true,
                             catalogVersion: pricer.catalog.catalogVersion, pricedAt: pricedAt,
                             priceEffectiveDate: nil)
        }
        let quote = pricer.quote(provider: response.provider, model: Self.model(of: response), usage: response.usage,
                                 at: response.timings.receivedAt, serviceTier: response.serviceTier)
        return UsageData(response: response, costNanoUSD: quote.cost, priced: quote.priced,
                         unpricedReason: quote.unpricedReason, catalogVersion: pricer.catalog.catalogVersion,
                         pricedAt: pricedAt, priceEffectiveDate: quote.effectiveFrom)
    }
}
