import ArgumentParser
import Foundation
import TollgateApp

extension BenchCommand {
    struct CostBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cost",
            abstract: "The cost service's throughput on the embedded log (events priced per second).")

        @Option(help: "Response events to price.") var events: Int = 200_000
        @OptionGroup var pricing: PricingOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func validate() throws {
            guard (1...5_000_000).contains(events) else { throw ValidationError("--events must be 1…5,000,000") }
        }

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("tollgate-bench-cost-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let progress = ProgressReporter(label: "pricing", total: events, enabled: !json)
            let results = try await CostBenchmark.run(events: events, pricer: try pricing.pricer(), directory: directory,
                                                      logger: logger, progress: { progress.update($0) })
            progress.finish()
            if json {
                try Output.json(results)
                return
            }
            var table = TextTable(columns: ["scenario", "events", "seconds", "events/s"], rightAligned: [1, 2, 3])
            for result in results {
                table.append([result.scenario, "\(result.events)", String(format: "%.2f", result.seconds),
                              "\(result.eventsPerSecond)"])
            }
            Output.line(table.render())
        }
    }
}
