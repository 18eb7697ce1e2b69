import ArgumentParser
import Foundation
import TollgateApp

extension BenchCommand {
    struct ProjectorBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "projector",
            abstract: "Projections: ingest rate through the projector, query and dashboard latency, size.",
            discussion: """
                Generates --requests synthetic requests over --days into a new database (written through the \
                projector's store), then serves it on a loopback port and times /api/usage by team and model \
                over 30 days, the 50 most expensive requests of 30 days, and the dashboard. --reuse skips the \
                generation when the database exists (it is kept after the run).
                """)

        @Option(help: "Requests to generate.") var requests: Int = 10_000_000
        @Option(help: "Days they are spread over.") var days: Int = 90
        @Option(help: "The database (default: a file in the temporary directory, deleted afterwards).") var db: String?
        @Flag(help: "Use the existing database at --db instead of generating one.") var reuse = false
        @Option(help: "Timed calls per query.") var iterations: Int = 50
        @OptionGroup var pricing: PricingOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of tables.") var json = false

        func validate() throws {
            guard (1...50_000_000).contains(requests) else { throw ValidationError("--requests must be 1…50,000,000") }
            guard (1...3_650).contains(days) else { throw ValidationError("--days must be 1…3,650") }
            guard (1...10_000).contains(iterations) else { throw ValidationError("--iterations must be 1…10,000") }
            if reuse && db == nil { throw ValidationError("--reuse needs --db") }
        }

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let path = db ?? FileManager.default.temporaryDirectory
                .appendingPathComponent("tollgate-bench-projector-\(UUID().uuidString).sqlite").path
            defer {
                if db == nil { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
            }
            var ingest: ProjectionBenchmark.Ingest?
            if !(reuse && FileManager.default.fileExists(atPath: path)) {
                let progress = ProgressReporter(label: "ingest", total: requests, enabled: !json)
                ingest = try await ProjectionBenchmark.ingest(requests: requests, days: days, path: path,
                                                        pricer: try pricing.pricer(), logger: logger,
                                                        progress: { progress.update($0) })
                progress.finish()
            }
            let queries = try await ProjectionBenchmark.queries(path: path, iterations: iterations, logger: logger)
            if json {
                struct Report: Encodable {
                    var ingest: ProjectionBenchmark.Ingest?
                    var queries: [ProjectionBenchmark.QueryLatency]
                }
                try DataOutput.json(Report(ingest: ingest, queries: queries))
                return
            }
            if let ingest {
                var table = TextTable(columns: ["requests", "days", "ingest s", "events/s", "database MiB", "MiB per 1M requests"],
                                      rightAligned: [0, 1, 2, 3, 4, 5])
                table.append([DataOutput.count(Int64(ingest.requests)), "\(ingest.days)", String(format: "%.1f", ingest.seconds),
                              DataOutput.count(Int64(ingest.eventsPerSecond)),
                              DataOutput.count(ingest.databaseBytes / 1_048_576),
                              DataOutput.count(ingest.bytesPerMillionRequests / 1_048_576)])
                Output.line(table.render())
                Output.line("")
            }
            var table = TextTable(columns: ["query", "p50 ms", "p99 ms", "max ms", "target p99", "bytes"],
                                  rightAligned: [1, 2, 3, 4, 5])
            for query in queries {
                table.append([query.name, String(format: "%.2f", query.p50Milliseconds),
                              String(format: "%.2f", query.p99Milliseconds), String(format: "%.2f", query.maxMilliseconds),
                              query.targetMilliseconds.map { String(format: "≤ %.0f", $0) } ?? "-",
                              DataOutput.count(Int64(query.responseBytes))])
            }
            Output.line(table.render())
        }
    }
}
