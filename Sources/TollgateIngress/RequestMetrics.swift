import Metrics
import Synchronization
import TollgateEvents

/// The ingress's request metrics: `tollgate_requests_total` and the `tollgate_request_duration_seconds`
/// histogram, by provider, model and HTTP status, recorded when a call's response event is emitted (its
/// whole duration, streams included).
///
/// The model label is the served model (the requested one when none was served). Model names come from
/// clients, so the label set is bounded: the first ``maxModels`` distinct names get their own label, any
/// later one is counted as `other`, and a scrape can never grow without bound.
final class RequestMetrics: Sendable {
    static let maxModels = 200

    private struct Key: Hashable {
        var provider: Provider
        var model: String
        var status: Int
    }

    private struct State {
        var models = Set<String>()
        var metrics: [Key: (requests: Counter, duration: Timer)] = [:]
    }

    private let factory: any MetricsFactory
    private let state = Mutex(State())

    init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    func record(provider: Provider, model: String, status: Int, durationNanoseconds: Int64) {
        let (requests, duration) = state.withLock { state in
            var name = model.isEmpty ? "none" : model
            if !state.models.contains(name) {
                if state.models.count < Self.maxModels { state.models.insert(name) } else { name = "other" }
            }
            let key = Key(provider: provider, model: name, status: status)
            if let metrics = state.metrics[key] { return metrics }
            let dimensions = [("provider", provider.rawValue), ("model", name), ("status", String(status))]
            let metrics = (Counter(label: "tollgate_requests_total", dimensions: dimensions, factory: factory),
                           Timer(label: "tollgate_request_duration_seconds", dimensions: dimensions,
                                 preferredDisplayUnit: .seconds, factory: factory))
            state.metrics[key] = metrics
            return metrics
        }
        requests.increment()
        duration.recordNanoseconds(durationNanoseconds)
    }
}
