import ArgumentParser
import Foundation
import Hummingbird
import TollgateApp
import TollgateIngress
import TollgateLog

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print figures.",
        subcommands: [LogBench.self, ProxyBench.self, KafkaBench.self, CostBench.self, BudgetBench.self, ProjectorBench.self, LogConsumerChild.self,
                      ForwarderChild.self])

    struct LogBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "log",
            abstract: "Embedded log: produce/consume throughput and delivery latency, in process and across processes.")

        @Option(help: "Messages per throughput run.") var messages: Int = 100_000
        @Option(help: "Produce rate of the latency runs (messages per second).") var rate: Int = 5_000
        @Option(help: "Duration of each latency run in seconds.") var seconds: Int = 5
        @Option(help: "Message sizes in bytes, comma-separated.") var sizes: String = "200,2048"
        @Option(help: "Scenarios, comma-separated: in-process, cross-process.")
        var scenarios: String = "in-process,cross-process"
        @Option(help: "Log directory to benchmark in (default: a new temporary directory, removed afterwards).")
        var logDir: String?
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func validate() throws {
            guard (1...5_000_000).contains(messages) else { throw ValidationError("--messages must be 1...5000000") }
            guard (1...200_000).contains(rate) else { throw ValidationError("--rate must be 1...200000") }
            guard (1...120).contains(seconds) else { throw ValidationError("--seconds must be 1...120") }
            guard !parsedSizes.isEmpty, parsedSizes.allSatisfy({ (8...1_048_576).contains($0) }) else {
                throw ValidationError("--sizes must be byte counts between 8 and 1048576")
            }
            guard parsedScenarios.allSatisfy({ ["in-process", "cross-process"].contains($0) }) else {
                throw ValidationError("--scenarios takes in-process and/or cross-process")
            }
        }

        var parsedSizes: [Int] { sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
        var parsedScenarios: [String] { scenarios.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let directory = logDir ?? FileManager.default.temporaryDirectory
                .appendingPathComponent("tollgate-bench-\(UUID().uuidString)").path
            defer { if logDir == nil { try? FileManager.default.removeItem(atPath: directory) } }
            let log = try EmbeddedLog.open(directory: directory, logger: logger)
            defer { log.close() }
            let latencyCount = rate * seconds
            var results: [LogBenchmark.Result] = []
            let run = UUID().uuidString.prefix(8).lowercased()

            for size in parsedSizes {
                for scenario in parsedScenarios {
                    let crossProcess = scenario == "cross-process"
                    // Throughput: produce flat out while a consumer reads.
                    let topic = try await LogBenchmark.makeTopic(log, name: "bench-\(run)-\(scenario)-\(size)-tput")
                    let progress = ProgressReporter(label: "\(scenario) \(size)B throughput", total: messages,
                                                    enabled: !json)
                    let (produceRate, measured) = try await runScenario(
                        log: log, directory: directory, topic: topic, count: messages, crossProcess: crossProcess,
                        progress: progress
                    ) {
                        try await LogBenchmark.produceFlat(out: log, topic: topic, count: messages, size: size,
                                                           progress: { progress.update($0 / 2) })
                    }
                    progress.finish()
                    results.append(LogBenchmark.Result(
                        scenario: "\(scenario) throughput", messageBytes: size, messages: measured.messages,
                        producePerSecond: produceRate, consumePerSecond: measured.consumePerSecond))

                    // Latency: paced producer.
                    let paced = try await LogBenchmark.makeTopic(log, name: "bench-\(run)-\(scenario)-\(size)-lat")
                    let latencyProgress = ProgressReporter(label: "\(scenario) \(size)B latency @\(rate)/s",
                                                           total: latencyCount, enabled: !json)
                    let (_, timed) = try await runScenario(
                        log: log, directory: directory, topic: paced, count: latencyCount, crossProcess: crossProcess,
                        progress: latencyProgress
                    ) {
                        try await LogBenchmark.producePaced(to: log, topic: paced, count: latencyCount, size: size,
                                                            perSecond: rate)
                        return rate
                    }
                    latencyProgress.finish()
                    results.append(LogBenchmark.withLatencies(LogBenchmark.Result(
                        scenario: "\(scenario) latency", messageBytes: size, messages: timed.messages,
                        targetRate: rate), timed.latenciesNanoseconds))
                }
            }
            print(results)
        }

        /// Starts a consumer (in this process or a child process), runs `produce` once it is ready, and
        /// returns the producer's figure with the consumer's measurement.
        private func runScenario(log: EmbeddedLog, directory: String, topic: String, count: Int, crossProcess: Bool,
                             progress: ProgressReporter,
                             produce: @escaping @Sendable () async throws -> Int) async throws
            -> (Int, LogBenchmark.ConsumerMeasurement) {
            let deadline = Duration.seconds(120)
            if !crossProcess {
                let ready = ReadySignal()
                async let measurement = LogBenchmark.consume(
                    from: log, topic: topic, group: "bench-\(topic)", count: count, deadline: deadline,
                    ready: { ready.fire() }, progress: { progress.update(count / 2 + $0 / 2) })
                await ready.wait()
                let produced = try await produce()
                return (produced, try await measurement)
            }
            let child = try ChildConsumer(directory: directory, topic: topic, count: count,
                                          deadlineSeconds: Int(deadline.components.seconds))
            try await child.waitUntilReady()
            let produced = try await produce()
            let measurement = try await child.result()
            progress.update(count)
            return (produced, measurement)
        }

        private func print(_ results: [LogBenchmark.Result]) {
            if json {
                try? Output.json(results)
                return
            }
            func ms(_ value: Double?) -> String { value.map { String(format: "%.2f", $0) } ?? "-" }
            var table = TextTable(
                columns: ["scenario", "bytes", "messages", "produce msg/s", "consume msg/s", "rate", "p50 ms",
                          "p99 ms", "max ms"],
                rightAligned: [1, 2, 3, 4, 5, 6, 7, 8])
            for result in results {
                table.append([result.scenario, "\(result.messageBytes)", "\(result.messages)",
                              result.producePerSecond.map(String.init) ?? "-",
                              result.consumePerSecond.map(String.init) ?? "-",
                              result.targetRate.map { "\($0)/s" } ?? "max", ms(result.latencyP50Milliseconds),
                              ms(result.latencyP99Milliseconds), ms(result.latencyMaxMilliseconds)])
            }
            Output.line(table.render())
        }
    }

    struct ProxyBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "proxy",
            abstract: "Proxy overhead: wrk against the fake provider directly, through nginx and a bare forwarder (the references), and through tollgate ingress and serve.")

        @Option(help: "Seconds per wrk run.") var seconds: Int = 10
        @Option(help: "Connections of the throughput runs.") var connections: Int = 64
        @Option(help: "Concurrent slow streams for the memory figure.") var streams: Int = 1_000
        @Option(help: "Sequential streamed requests for the time-to-first-byte figure.") var ttfbRequests: Int = 300
        @Flag(help: "Print JSON instead of a table.") var json = false

        func validate() throws {
            guard (1...300).contains(seconds) else { throw ValidationError("--seconds must be 1...300") }
            guard (1...4_096).contains(connections) else { throw ValidationError("--connections must be 1...4096") }
            guard (1...10_000).contains(streams) else { throw ValidationError("--streams must be 1...10000") }
            guard (1...100_000).contains(ttfbRequests) else { throw ValidationError("--ttfb-requests must be 1...100000") }
        }

        func run() async throws {
            LoggingBootstrap.once(level: .warning)
            var options = ProxyBenchmark.Options(
                binary: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path)
            options.seconds = seconds
            options.connections = connections
            options.streams = streams
            options.ttfbRequests = ttfbRequests
            let quiet = json
            let results = try await ProxyBenchmark.run(options) { step in
                if !quiet { FileHandle.standardError.write(Data("bench: \(step)\n".utf8)) }
            }
            if json {
                try Output.json(results)
                return
            }
            func us(_ value: Double?) -> String { value.map { String(format: "%.0f", $0) } ?? "-" }
            var table = TextTable(columns: ["scenario", "target", "conns", "req/s", "p50 µs", "p99 µs", "CPU µs/req",
                                            "RSS MiB", "errors"],
                                  rightAligned: [2, 3, 4, 5, 6, 7, 8])
            for result in results {
                table.append([result.scenario, result.target, "\(result.connections)",
                              result.requestsPerSecond.map { String(format: "%.0f", $0) } ?? "-",
                              us(result.p50Microseconds), us(result.p99Microseconds), us(result.cpuMicrosecondsPerRequest),
                              result.residentMebibytes.map { String(format: "%.1f", $0) } ?? "-",
                              result.errors.map(String.init) ?? "0"])
            }
            Output.line(table.render())
        }
    }

    struct KafkaBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kafka",
            abstract: "Kafka engine: KafkaLog produce/consume throughput next to raw librdkafka, on an in-process mock cluster.")

        @Option(help: "Messages per produce phase (the consume phases read what was produced).")
        var messages: Int = 1_000_000
        @Option(help: "Value size in bytes.") var valueBytes: Int = 200
        @Option(help: "Distinct message keys.") var keys: Int = 1_000
        @Option(help: "Partitions of each benchmark topic.") var partitions: Int = 64
        @Option(help: "Messages per KafkaLog.produce call.") var batchSize: Int = 5_000
        @Option(help: """
            KafkaLog.produce calls in flight at once (default: 100,000 messages awaiting acknowledgement, as many \
            as raw librdkafka's queue holds).
            """)
        var inFlight: Int = 20
        @Option(help: "Seconds any one phase may run before it is cut short.") var timeLimit: Int = 60
        @Option(help: "Rounds of the four phases (raw and Swift alternate); each phase reports its median and best round.")
        var rounds: Int = 3
        @Flag(help: "Run the produce phases only (for profiling the producers).") var produceOnly = false
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func validate() throws {
            guard (1...20_000_000).contains(messages) else { throw ValidationError("--messages must be 1...20000000") }
            guard (1...1_000_000).contains(valueBytes) else { throw ValidationError("--value-bytes must be 1...1000000") }
            guard (1...1_000_000).contains(keys) else { throw ValidationError("--keys must be 1...1000000") }
            guard (1...1_000).contains(partitions) else { throw ValidationError("--partitions must be 1...1000") }
            guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1...100000") }
            guard (1...64).contains(inFlight) else { throw ValidationError("--in-flight must be 1...64") }
            guard (1...3_600).contains(timeLimit) else { throw ValidationError("--time-limit must be 1...3600") }
            guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be 1...20") }
        }

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            var options = KafkaBenchmark.Options()
            options.messages = messages
            options.valueBytes = valueBytes
            options.keys = keys
            options.partitions = partitions
            options.batchSize = batchSize
            options.inFlight = inFlight
            options.timeLimit = .seconds(timeLimit)
            options.rounds = rounds
            options.consume = !produceOnly
            let report = try await KafkaBenchmark.run(options, showProgress: !json, logger: logger)
            if json {
                try Output.json(report)
                return
            }
            var table = TextTable(
                columns: ["phase", "engine", "messages", "seconds", "msg/s", "MB/s", "swift/raw", "CPU µs/msg",
                          "best msg/s", "best swift/raw"],
                rightAligned: [2, 3, 4, 5, 6, 7, 8, 9])
            for result in report.results {
                table.append([
                    result.phase, result.engine == "swift" ? (result.phase == "produce" ? "KafkaLog" : "KafkaConsumer")
                        : "raw librdkafka",
                    "\(result.messages)\(result.truncated ? " (time limit)" : "")",
                    String(format: "%.2f", result.seconds), String(format: "%.0f", result.messagesPerSecond),
                    String(format: "%.1f", result.megabytesPerSecond),
                    result.ratioToRaw.map { String(format: "%.0f %%", $0 * 100) } ?? "-",
                    String(format: "%.2f", result.cpuMicrosecondsPerMessage),
                    String(format: "%.0f", result.bestMessagesPerSecond),
                    result.bestRatioToRaw.map { String(format: "%.0f %%", $0 * 100) } ?? "-",
                ])
            }
            Output.line(table.render())
            Output.line("""
                mock cluster: 1 broker, \(partitions) partitions, \(valueBytes)-byte values, \(keys) keys; \
                producers idempotent, acks=all, lz4, linger 5 ms; KafkaLog: \(batchSize) messages per call, \
                \(inFlight) calls in flight; median (and best) of \(rounds) rounds; MB/s counts value bytes (10^6 B); \
                CPU: whole process (mock broker included) per message
                """)
        }
    }

    /// The bare forwarder `tollgate bench proxy` measures the ingress against (``BareForwarder``).
    struct ForwarderChild: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "forwarder",
            abstract: "Internal: the bare Hummingbird + AsyncHTTPClient forwarder of `bench proxy` (no metering).",
            shouldDisplay: false)

        @Option(help: "Upstream base URL, http://host:port.") var upstream: String
        @Option(help: "Port to listen on (0 picks a free one, logged as tollgate.port).") var port: Int = 0
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            try await BareForwarder.application(upstream: upstream, port: port, logger: logger).runService()
        }
    }

    /// The consumer side of the cross-process scenarios, run as a child of `tollgate bench log`.
    struct LogConsumerChild: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "log-consumer", abstract: "Internal: the consumer process of `bench log`.",
            shouldDisplay: false)

        @Option var logDir: String
        @Option var topic: String
        @Option var count: Int
        @Option var deadlineSeconds: Int = 120
        @Option var resultFile: String
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let log = try EmbeddedLog.open(directory: logDir, logger: logger)
            defer { log.close() }
            let measurement = try await LogBenchmark.consume(
                from: log, topic: topic, group: "bench-\(topic)", count: count,
                deadline: .seconds(deadlineSeconds), ready: { Output.line("ready") })
            try JSONEncoder().encode(measurement).write(to: URL(fileURLWithPath: resultFile))
        }
    }
}

/// A one-shot signal between two tasks.
final class ReadySignal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self)
    }

    func fire() {
        continuation.yield()
        continuation.finish()
    }

    func wait() async {
        for await _ in stream { return }
    }
}

/// `tollgate bench log-consumer` in a child process. It says "ready" on its standard output once it is
/// subscribed, and writes its measurement to a result file before it exits.
final class ChildConsumer: Sendable {
    private let process: Process
    private let lines: AsyncStream<String>
    private let exited: AsyncStream<Int32>
    private let resultPath: String

    init(directory: String, topic: String, count: Int, deadlineSeconds: Int) throws {
        resultPath = URL(fileURLWithPath: directory).appendingPathComponent("\(topic).result.json").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = ["bench", "log-consumer", "--log-dir", directory, "--topic", topic,
                             "--count", "\(count)", "--deadline-seconds", "\(deadlineSeconds)",
                             "--result-file", resultPath]
        let pipe = Pipe()
        process.standardOutput = pipe
        let lines = PipeLines.stream(pipe)
        let (exited, exit) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { process in
            exit.yield(process.terminationStatus)
            exit.finish()
        }
        try process.run()
        self.process = process
        self.lines = lines
        self.exited = exited
    }

    func waitUntilReady() async throws {
        for await line in lines where line == "ready" { return }
        throw ValidationError("the consumer process exited before it was ready")
    }

    func result() async throws -> LogBenchmark.ConsumerMeasurement {
        var status: Int32 = -1
        for await code in exited { status = code }
        guard status == 0, let data = FileManager.default.contents(atPath: resultPath) else {
            throw ValidationError("the consumer process failed (status \(status))")
        }
        try? FileManager.default.removeItem(atPath: resultPath)
        return try JSONDecoder().decode(LogBenchmark.ConsumerMeasurement.self, from: data)
    }
}
