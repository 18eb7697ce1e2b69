public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization
public import TollgateEvents
public import TollgateLog
public import TollgatePricing

/// The cost service: consumes `response.v1`, publishes `usage.v1` (through ``CostFold``), commits after
/// each batch is published. Stateless apart from its consumer group's offsets, so it is restart-safe and
/// several instances share the work by partition.
///
/// Metrics: `tollgate_cost_priced_total`, `tollgate_cost_unpriced_total{provider,model,reason}`; a model
/// seen without a price is also logged at error level the first time in this process.
public struct CostService: Service {
    /// The consumer group every cost service instance joins.
    public static let group = "tollgate-cost"

    private let runner: ConsumerRunner<CostFold>

    public init(log: any MessageLog, pricer: Pricer, topicPrefix: String = TopicCatalog.defaultPrefix,
                instanceID: String? = nil, logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory,
                onCaughtUp: (@Sendable () -> Void)? = nil,
                onBatch: (@Sendable (CostFold.State, ConsumerRunner<CostFold>.BatchReport) async -> Void)? = nil) {
        var configuration = ConsumerRunner<CostFold>.Configuration(
            group: Self.group, topics: [topicPrefix + ResponseData.topic],
            deadLetterTopic: topicPrefix + "deadletter")
        configuration.batchSize = 2_000
        configuration.consumer.instanceID = instanceID
        configuration.consumer = configuration.consumer.gatheringBatches()
        let priced = Counter(label: "tollgate_cost_priced_total", factory: metricsFactory)
        let reported = Mutex(CostFold.State())
        var logger = logger
        logger[metadataKey: "tollgate.service"] = "cost"
        let serviceLogger = logger
        runner = ConsumerRunner(
            log: log, fold: CostFold(pricer: pricer, topicPrefix: topicPrefix), initialState: CostFold.State(),
            configuration: configuration, logger: logger, metricsFactory: metricsFactory, onCaughtUp: onCaughtUp,
            onBatch: { state, report in
                // The state counts since start; record what is new since the last batch.
                let (newPriced, newUnpriced) = reported.withLock { last -> (Int, [(CostFold.UnpricedModel, Int, Bool)]) in
                    defer { last = state }
                    let fresh = state.unpricedModels.compactMap { model, count -> (CostFold.UnpricedModel, Int, Bool)? in
                        let before = last.unpricedModels[model] ?? 0
                        return count > before ? (model, count - before, before == 0) : nil
                    }
                    return (state.priced - last.priced, fresh)
                }
                if newPriced > 0 { priced.increment(by: Int64(newPriced)) }
                for (model, count, firstTime) in newUnpriced {
                    Counter(label: "tollgate_cost_unpriced_total",
                            dimensions: [("provider", model.provider.rawValue), ("model", model.model),
                                         ("reason", model.reason)],
                            factory: metricsFactory).increment(by: Int64(count))
                    if firstTime {
                        serviceLogger.error("model without a price: usage published with priced=false", metadata: [
                            "tollgate.provider": "\(model.provider.rawValue)", "tollgate.model": "\(model.model)",
                            "tollgate.reason": "\(model.reason)",
                        ])
                    }
                }
                await onBatch?(state, report)
            })
    }

    public func run() async throws {
        try await runner.run()
    }
}
