import MetricsTestKit
import Testing
import TollgateEvents
@testable import TollgateIngress

@Suite("Request metrics")
struct RequestMetricsTests {
    @Test("counts and durations by provider, model and status; model labels are bounded")
    func countsAndBoundedLabels() throws {
        let factory = TestMetrics()
        let metrics = RequestMetrics(factory: factory)
        metrics.record(provider: .openai, model: "gpt-4o", status: 200, durationNanoseconds: 1_500_000_000)
        metrics.record(provider: .openai, model: "gpt-4o", status: 200, durationNanoseconds: 500_000_000)
        metrics.record(provider: .anthropic, model: "", status: 401, durationNanoseconds: 1_000_000)
        let ok = try factory.expectCounter("tollgate_requests_total",
                                           [("provider", "openai"), ("model", "gpt-4o"), ("status", "200")])
        #expect(ok.totalValue == 2)
        let duration = try factory.expectTimer("tollgate_request_duration_seconds",
                                               [("provider", "openai"), ("model", "gpt-4o"), ("status", "200")])
        #expect(duration.values == [1_500_000_000, 500_000_000])
        #expect(try factory.expectCounter("tollgate_requests_total",
                                          [("provider", "anthropic"), ("model", "none"), ("status", "401")]).totalValue == 1)

        // Client-chosen model names cannot grow the label set without bound.
        for index in 0..<(RequestMetrics.maxModels + 50) {
            metrics.record(provider: .openai, model: "made-up-\(index)", status: 404, durationNanoseconds: 1)
        }
        let labelled = factory.counters.filter { $0.label == "tollgate_requests_total" }
        let models = Set(labelled.compactMap { counter in counter.dimensions.first { $0.0 == "model" }?.1 })
        #expect(models.count == RequestMetrics.maxModels + 1)  // the first 200 names, and "other"
        #expect(models.contains("other"))
        #expect(try factory.expectCounter("tollgate_requests_total",
                                          [("provider", "openai"), ("model", "other"), ("status", "404")]).totalValue == 52)
    }
}
