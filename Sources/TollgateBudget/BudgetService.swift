public import Logging
public import Metrics
public import ServiceLifecycle
public import TollgateEvents
public import TollgateLog

/// The budget service: restores its state from the control topic (budget definitions) and the
/// compacted decisions topic (spend and watermark per budget), then folds `usage.v1` with ``BudgetFold``
/// in the consumer group `tollgate-budget`, publishing decisions after each batch and committing after
/// they are acknowledged.
public struct BudgetService: Service {
    public static let group = "tollgate-budget"

    let log: any MessageLog
    let topicPrefix: String
    let instanceID: String?
    let logger: Logger
    let metricsFactory: any MetricsFactory
    let onBatch: (@Sendable (BudgetFold.State, ConsumerRunner<BudgetFold>.BatchReport) async -> Void)?
    let onCaughtUp: (@Sendable () -> Void)?

    public init(log: any MessageLog, topicPrefix: String = TopicCatalog.defaultPrefix, instanceID: String? = nil,
                logger: Logger, metricsFactory: any MetricsFactory = MetricsSystem.factory,
                onCaughtUp: (@Sendable () -> Void)? = nil,
                onBatch: (@Sendable (BudgetFold.State, ConsumerRunner<BudgetFold>.BatchReport) async -> Void)? = nil) {
        self.onCaughtUp = onCaughtUp
        self.log = log
        self.topicPrefix = topicPrefix
        self.instanceID = instanceID
        var logger = logger
        logger[metadataKey: "tollgate.service"] = "budget"
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.onBatch = onBatch
    }

    /// The state held in the log: budgets from the control topic, spend from the latest decisions.
    public static func restore(log: any MessageLog, topicPrefix: String) async throws -> BudgetFold.State {
        let control = try await log.readToEnd(topic: topicPrefix + "control").compactMap { message in
            message.value.flatMap { try? AnyControlEvent.decode(from: $0) }
        }
        var latest: [String: BudgetDecisionData?] = [:]
        for message in try await log.readToEnd(topic: topicPrefix + BudgetDecisionData.topic) {
            guard let key = message.key.map({ String(decoding: $0, as: UTF8.self) }) else { continue }
            latest[key] = message.value.flatMap { try? EventCoding.decode(BudgetDecisionData.self, from: $0).data }
        }
        var state = BudgetFold.State(control: control, decisions: latest.values.compactMap { $0 })
        // The cost service publishes a usage event again when it crashed between publishing and committing;
        // the copy lands above the watermarks. The ids of the events just below them (already counted) are
        // remembered, so that such a copy is not counted twice across this service's restart.
        var below: [Int: Int64] = [:]
        for ledger in state.ledgers.values {
            for (partition, next) in ledger.watermark { below[partition] = max(below[partition] ?? 0, next) }
        }
        if !below.isEmpty {
            let from = below.mapValues { max(0, $0 - Self.recentLookback) }
            for message in try await log.read(topic: topicPrefix + UsageData.topic, from: from, to: below) {
                guard let value = message.value, let id = try? EventCoding.decodeUsage(from: value).id else { continue }
                _ = state.recent.insert(id)
            }
        }
        return state
    }

    /// Usage events per partition read back at start, below the restored watermarks, to recognize copies.
    static let recentLookback: Int64 = 10_000

    public func run() async throws {
        let state = try await Self.restore(log: log, topicPrefix: topicPrefix)
        logger.info("budget state restored", metadata: [
            "tollgate.budgets": "\(state.budgets.count)", "tollgate.ledgers": "\(state.ledgers.count)",
        ])
        var configuration = ConsumerRunner<BudgetFold>.Configuration(
            group: Self.group, topics: [topicPrefix + "control", topicPrefix + UsageData.topic],
            deadLetterTopic: topicPrefix + "deadletter")
        configuration.batchSize = 2_000
        configuration.pollTimeout = .milliseconds(20)
        configuration.consumer.instanceID = instanceID
        configuration.consumer = configuration.consumer.gatheringBatches()
        let runner = ConsumerRunner(log: log, fold: BudgetFold(topicPrefix: topicPrefix), initialState: state,
                                    configuration: configuration, logger: logger, metricsFactory: metricsFactory,
                                    onCaughtUp: onCaughtUp, onBatch: onBatch)
        try await runner.run()
    }
}
