import Foundation
import Testing
@testable import TollgateApp
import TollgateEvents
import TollgateLog

@Suite("App")
struct AppTests {
    @Test("tables align columns and right-align numbers")
    func table() {
        var table = TextTable(columns: ["topic", "messages"], rightAligned: [1])
        table.append(["tollgate.usage", "7"])
        table.append(["t", "12345"])
        #expect(table.render() == """
            topic           messages
            --------------  --------
            tollgate.usage         7
            t                  12345
            """)
    }

    @Test("the catalog's topics map to log settings with the prefix")
    func topicSpecs() {
        let specs = TopicCatalog.specs(prefix: "acme.")
        #expect(specs.count == TopicCatalog.all.count)
        let control = specs.first { $0.name == "acme.control" }
        #expect(control?.cleanupPolicy == .compact)
        #expect(control?.retentionMilliseconds == nil)
        #expect(specs.first { $0.name == "acme.usage" }?.retentionMilliseconds == Int64(2_592_000_000))
    }

    @Test("the dead-letter headers the runner writes are the ones the topic catalog documents")
    func deadLetterHeaders() {
        let documented = Set(TopicCatalog.named("deadletter")?.headers?.map(\.name) ?? [])
        let written: Set = [DeadLetter.reasonHeader, DeadLetter.topicHeader, DeadLetter.partitionHeader,
                            DeadLetter.offsetHeader, DeadLetter.groupHeader]
        #expect(documented == written)
        #expect(Set(DeadLetterHeader.allCases.map(\.rawValue)) == written)
    }

    @Test("readiness waits for every check")
    func readiness() {
        let readiness = Readiness(checks: ["log", "control"])
        #expect(!readiness.isReady)
        readiness.markReady("log")
        #expect(!readiness.isReady)
        readiness.markReady("control")
        #expect(readiness.isReady)
        readiness.markNotReady("log")
        #expect(readiness.status == ["log": false, "control": true])
    }

    @Test("benchmark latency percentiles use the nearest rank")
    func percentiles() {
        let latencies = (1...100).map { UInt64($0) * 1_000_000 }  // 1 ms ... 100 ms
        let result = LogBenchmark.withLatencies(
            LogBenchmark.Result(scenario: "s", messageBytes: 8, messages: 100), latencies.shuffled())
        #expect(result.latencyP50Milliseconds == 50)
        #expect(result.latencyP99Milliseconds == 99)
        #expect(result.latencyMaxMilliseconds == 100)
        let stamped = LogBenchmark.payload(size: 200)
        #expect(stamped.count == 200)
        #expect(LogBenchmark.stamp(of: stamped) != nil)
        #expect(LogBenchmark.stamp(of: Data([1, 2])) == nil)
    }
}
