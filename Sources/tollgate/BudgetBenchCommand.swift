import ArgumentParser
import Foundation
import TollgateApp
import TollgateEvents
import TollgateLog

extension BenchCommand {
    struct BudgetBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "budget",
            abstract: "Decision latency: from a usage event crossing a block level to the ingress applying the decision.")

        @Option(help: "Level crossings to measure (one budget each).") var crossings: Int = 200
        @Option(help: "Engines, comma-separated: embedded, kafka (librdkafka's mock cluster).") var engines: String = "embedded,kafka"
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func validate() throws {
            guard (1...10_000).contains(crossings) else { throw ValidationError("--crossings must be 1…10,000") }
            for engine in engines.split(separator: ",") where !["embedded", "kafka"].contains(engine) {
                throw ValidationError("unknown engine '\(engine)'")
            }
        }

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            var results: [BudgetBenchmark.Result] = []
            for engine in engines.split(separator: ",").map(String.init) {
                let progress = ProgressReporter(label: "\(engine) crossings", total: crossings, enabled: !json)
                let directory = FileManager.default.temporaryDirectory
                    .appendingPathComponent("tollgate-bench-budget-\(UUID().uuidString)").path
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let log: any MessageLog
                var cluster: KafkaMockCluster?
                if engine == "kafka" {
                    let mock = try KafkaMockCluster()
                    cluster = mock
                    log = try KafkaLog(configuration: mock.configuration(), mockCluster: mock, logger: logger)
                } else {
                    log = try EmbeddedLog.open(directory: directory, logger: logger)
                }
                try await log.provision(TopicCatalog.specs())
                results.append(try await BudgetBenchmark.run(engine: engine, log: log, crossings: crossings,
                                                             logger: logger, progress: { progress.update($0) }))
                progress.finish()
                (log as? EmbeddedLog)?.close()
                withExtendedLifetime(cluster) {}
            }
            if json {
                try Output.json(results)
                return
            }
            var table = TextTable(columns: ["engine", "crossings", "p50 ms", "p99 ms", "max ms"], rightAligned: [1, 2, 3, 4])
            for result in results {
                table.append([result.engine, "\(result.crossings)", String(format: "%.1f", result.p50Milliseconds),
                              String(format: "%.1f", result.p99Milliseconds), String(format: "%.1f", result.maxMilliseconds)])
            }
            Output.line(table.render())
        }
    }
}
