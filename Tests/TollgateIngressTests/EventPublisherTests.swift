import Foundation
import Logging
import MetricsTestKit
import Synchronization
import Testing
import TollgateEvents
@testable import TollgateIngress
import TollgateLog

/// A sink that refuses while closed (as a full spool does) and records what it took.
final class GateSink: EventSink {
    private let state = Mutex<(open: Bool, taken: [OutgoingMessage])>((false, []))
    let changed = ChangeNotifier()

    func setOpen(_ open: Bool) { state.withLock { $0.open = open } }
    var taken: [OutgoingMessage] { state.withLock { $0.taken } }

    func append(_ messages: [OutgoingMessage]) async throws {
        defer { changed.signal() }
        try state.withLock { state in
            guard state.open else { throw Spool.SpoolError.full(messages: 1, bytes: 1) }
            state.taken += messages
        }
    }
}

@Suite("EventPublisher")
struct EventPublisherTests {
    @Test("when the sink refuses for long, the queue overflows loudly: counted, metered, and reported by an alert event")
    func dropsAreReported() async throws {
        let sink = GateSink()
        let metrics = TestMetrics()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let publisher = EventPublisher(sink: sink, capacity: 10, logger: logger, metricsFactory: metrics)
        let runner = Task { try await publisher.run() }
        for index in 0..<25 {
            publisher.publish(OutgoingMessage(topic: "tollgate.responses", key: "team", value: Data("\(index)".utf8)))
        }
        // The drain task may have taken a batch (up to 10) to the refusing sink meanwhile: 5 to 15 dropped.
        #expect((5...15).contains(publisher.dropped))
        let dropped = publisher.dropped
        #expect(try metrics.expectCounter("tollgate_events_dropped_total").totalValue == Int64(dropped))

        sink.setOpen(true)
        // Generous bounds: the suite runs next to others on a loaded machine; the retry back-off is ≤ 2 s.
        #expect(await publisher.flush(timeout: .seconds(60)))
        // The alert is queued after the batch that went through: flush once more for it.
        #expect(await publisher.flush(timeout: .seconds(60)))
        let taken = sink.taken
        let alerts = taken.filter { $0.topic == "tollgate.alerts" }
        #expect(alerts.count == 1)
        let alert = try EventCoding.decode(AlertData.self, from: try #require(alerts.first?.value))
        #expect(alert.data.kind == .eventsDropped)
        #expect(alert.data.severity == .critical)
        #expect(alert.data.observed["dropped_events"] == .int(Int64(dropped)))
        // Everything not dropped arrived, in order.
        let values = taken.filter { $0.topic == "tollgate.responses" }.map { String(decoding: $0.value!, as: UTF8.self) }
        #expect(values.count == 25 - dropped)
        #expect(values.compactMap(Int.init) == values.compactMap(Int.init).sorted())
        #expect(try metrics.expectCounter("tollgate_events_published_total").totalValue == Int64(taken.count))
        runner.cancel()
        try await runner.value
    }
}
