import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import TollgateApp
import TollgateEvents
import TollgateIngress
import TollgateLog
import TollgateProjections
import TollgateQuery

/// Where the projections database is.
struct ProjectionsOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The projections database (default: <data-dir>/projections.sqlite; env TOLLGATE_PROJECTIONS).",
                               valueName: "path"))
    var projections: String?

    func path(_ storage: StorageOptions) -> String {
        projections ?? ProcessInfo.processInfo.environment["TOLLGATE_PROJECTIONS"]
            ?? URL(fileURLWithPath: storage.dataDir).appendingPathComponent("projections.sqlite").path
    }

    /// The database, read-only: it must exist (the projector creates it).
    func openForReading(_ storage: StorageOptions) throws -> ProjectionStore {
        var logger = Logger(label: "tollgate.projections")
        logger.logLevel = .warning
        do {
            return try ProjectionStore.open(path: path(storage), topicPrefix: storage.topicPrefix, readonly: true,
                                            logger: logger)
        } catch let error as ProjectionError {
            throw CommandFailure(error.description)
        }
    }
}

/// JSON for scripts: the API's field names, ISO 8601 times with milliseconds, sorted keys.
enum DataOutput {
    static func json(_ value: some Encodable) throws {
        let encoder = EventCoding.makeEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        Output.line(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func usd(_ nanoUSD: Int64, decimals: Int = 4) -> String {
        Money(nanoUSD: nanoUSD).formatted(decimals: decimals)
    }

    static func time(_ date: Date?) -> String {
        date.map(TextFormat.minute) ?? "-"
    }

    static func count(_ value: Int64) -> String {
        TextFormat.count(value)
    }
}

/// Filter options shared by `usage` and `top`.
struct FilterOptions: ParsableArguments {
    @Option(help: "Only this key id.") var key: String?
    @Option(help: "Only this team.") var team: String?
    @Option(help: "Only this project.") var project: String?
    @Option(help: "Only this customer.") var customer: String?
    @Option(help: "Only this tag, as name=value.") var tag: String?
    @Option(help: "Only this provider (openai, anthropic, gemini).") var provider: String?
    @Option(help: "Only this served model.") var model: String?

    var parameters: [String: String] {
        var parameters: [String: String] = [:]
        parameters["key"] = key
        parameters["team"] = team
        parameters["project"] = project
        parameters["customer"] = customer
        parameters["tag"] = tag
        parameters["provider"] = provider
        parameters["model"] = model
        return parameters
    }
}

struct RangeOptions: ParsableArguments {
    @Option(help: "How far back: 30m, 24h, 7d, 4w.") var since: String?
    @Option(help: "Start: 2026-11-01, 2026-11-01T12:00:00Z, or a duration back from now.") var from: String?
    @Option(help: "End (default: now), as --from.") var to: String?

    var parameters: [String: String] {
        var parameters: [String: String] = [:]
        parameters["since"] = since
        parameters["from"] = from
        parameters["to"] = to
        return parameters
    }
}

// MARK: - tollgate usage

struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Usage and cost from the projections, grouped by any dimensions.",
        discussion: """
            Examples: tollgate usage --by team,model --since 7d
                      tollgate usage --granularity day --since 30d --team search
                      tollgate usage --by customer --granularity day --since 7d --json
            Dimensions: key, team, project, customer, tag, provider, model, requested_model. Rollups are hourly, \
            so the range is widened to whole hours (UTC).
            """)

    @Option(help: "Dimensions to group by, comma-separated.") var by: String?
    @Option(help: "Time buckets: hour, day, week, month, total.") var granularity: String?
    @OptionGroup var range: RangeOptions
    @OptionGroup var filters: FilterOptions
    @OptionGroup var storage: StorageOptions
    @OptionGroup var projections: ProjectionsOptions
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        var parameters = range.parameters.merging(filters.parameters) { $1 }
        parameters["group_by"] = by
        parameters["granularity"] = granularity
        let query: UsageQuery
        do {
            query = try QueryParameters.usage(parameters)
        } catch {
            throw CommandFailure("--\(error.parameter == "group_by" ? "by" : error.parameter): \(error.message)")
        }
        let result = try projections.openForReading(storage).usage(query)
        if json { return try DataOutput.json(result) }
        var columns = query.granularity == .total ? [] : [query.granularity.rawValue]
        columns += query.groupBy.map(\.rawValue)
        let firstNumber = columns.count
        columns += ["requests", "errors", "input tok", "output tok", "cost"]
        var table = TextTable(columns: columns, rightAligned: Set(firstNumber..<columns.count))
        func cells(_ figures: UsageFigures) -> [String] {
            [DataOutput.count(figures.requests), DataOutput.count(figures.errors),
             DataOutput.count(figures.tokens.inputTokens + figures.tokens.cachedInputReadTokens),
             DataOutput.count(figures.tokens.outputTokens + figures.tokens.reasoningTokens),
             DataOutput.usd(figures.costNanoUSD.total.nanoUSD)]
        }
        for row in result.rows {
            var line: [String] = []
            if let bucket = row.bucketStart {
                line.append(query.granularity == .hour ? TextFormat.minute(bucket) : TextFormat.day(bucket))
            }
            line += query.groupBy.map { row.group[$0.rawValue].map { $0.isEmpty ? "(none)" : $0 } ?? "-" }
            table.append(line + cells(row.figures))
        }
        var total = Array(repeating: "", count: firstNumber)
        if !total.isEmpty { total[0] = "total" }
        if !result.rows.isEmpty && firstNumber > 0 { table.append(total + cells(result.totals)) }
        Output.line("usage from \(DataOutput.time(result.from)) to \(DataOutput.time(result.to)) UTC")
        Output.line(table.render())
        if result.rows.isEmpty { Output.line("(no usage in this range)") }
        if result.totals.unpriced > 0 {
            Output.line("note: \(result.totals.unpriced) requests used models without a price; their cost is not included")
        }
    }
}

// MARK: - tollgate top

struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "The most expensive (or slowest, or newest) requests from the projections.",
        discussion: "Example: tollgate top --since 24h --limit 20 --team search")

    @Option(help: "Order: cost, duration or time.") var order: String = "cost"
    @Option(help: "How many requests (1-1000).") var limit: Int = 20
    @OptionGroup var range: RangeOptions
    @OptionGroup var filters: FilterOptions
    @OptionGroup var storage: StorageOptions
    @OptionGroup var projections: ProjectionsOptions
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        var parameters = range.parameters.merging(filters.parameters) { $1 }
        parameters["order"] = order
        parameters["limit"] = String(limit)
        let query: RequestsQuery
        do {
            query = try QueryParameters.requests(parameters)
        } catch {
            throw CommandFailure("--\(error.parameter): \(error.message)")
        }
        let requests = try projections.openForReading(storage).requests(query)
        if json { return try DataOutput.json(["requests": requests]) }
        var table = TextTable(columns: ["time (UTC)", "request", "team", "project", "model", "status", "tokens",
                                        "ms", "cost"], rightAligned: [5, 6, 7, 8])
        for request in requests {
            table.append([DataOutput.time(request.receivedAt), request.requestID, request.team, request.project,
                          request.servedModel, String(request.status), DataOutput.count(request.tokens.totalTokens),
                          DataOutput.count(request.durationMs), DataOutput.usd(request.costNanoUSD.total.nanoUSD, decimals: 6)])
        }
        Output.line(table.render())
        if requests.isEmpty { Output.line("(no requests in this range)") }
    }
}

// MARK: - tollgate budgets status

extension BudgetsCommand {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Budgets with their spend, what is left and when they reset (from the projections).")
        @OptionGroup var storage: StorageOptions
        @OptionGroup var projections: ProjectionsOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let budgets = try projections.openForReading(storage).budgets()
            if json { return try DataOutput.json(["budgets": budgets]) }
            var table = TextTable(columns: ["budget", "scope", "period", "limit", "spent", "left", "used", "state",
                                            "resets (UTC)"], rightAligned: [3, 4, 5, 6])
            for budget in budgets {
                let used = budget.usedPercentBP.map(TextFormat.basisPoints) ?? "-"
                table.append([budget.budgetID, budget.scope.description, budget.periodKind,
                              DataOutput.usd(budget.limitNanoUSD, decimals: 2),
                              budget.spentNanoUSD.map { DataOutput.usd($0, decimals: 2) } ?? "-",
                              budget.remainingNanoUSD.map { DataOutput.usd($0, decimals: 2) } ?? "-", used,
                              budget.state ?? "pending", budget.resetsAt.map { DataOutput.time($0) } ?? "never"])
            }
            Output.line(table.render())
            if budgets.isEmpty { Output.line("(no budgets: see tollgate budgets set --help)") }
        }
    }
}

// MARK: - tollgate projector

struct ProjectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projector",
        abstract: "Run the projector alone: usage, budgets, alerts and keys into the projections database.",
        discussion: """
            Reads usage, budget-decisions, alerts and control, and applies each batch with its offsets in one \
            SQLite transaction. One projector per database; run another with its own database for another copy.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var projections: ProjectionsOptions
    @OptionGroup var endpoints: EndpointOptions

    func run() async throws {
        let logger = logging.bootstrap(default: .info)
        Observability.bootstrap()
        let backend = try await LogBackend.open(try kafka.backendSettings(storage), logger: logger)
        defer { backend.close() }
        let store = try ProjectionStore.open(path: projections.path(storage), topicPrefix: storage.topicPrefix,
                                             logger: logger)
        let readiness = Readiness(checks: ["log", "projections"])
        readiness.markReady("log")
        let host = endpoints.serviceHost("projector")
        try await host.run(
            services: [ProjectorService(log: backend.log, store: store, logger: logger,
                                        onCaughtUp: { readiness.markReady("projections") })],
            readiness: readiness, backend: backend, logger: logger)
    }
}

// MARK: - tollgate replay projector

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Rebuild a consumer's state from the log.",
        subcommands: [Projector.self])

    struct Projector: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "projector",
            abstract: "Rebuild the projections database from the log, with progress and an ETA.",
            discussion: """
                Writes a new database (default: <projections>.rebuilt) from everything the log still holds, then \
                stops. With --replace it then takes the place of the projections database: stop the projector \
                (or tollgate serve) first. The log keeps usage for its retention (30 days by default, see \
                schemas/topics.json); a rebuild cannot bring back what the log no longer has.
                """)
        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @OptionGroup var projections: ProjectionsOptions
        @Option(help: "Where to write the rebuilt database.") var output: String?
        @Flag(help: "Move the rebuilt database over the projections database when done.") var replace = false
        @Flag(help: "Print a JSON summary at the end.") var json = false

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let target = projections.path(storage)
            let output = self.output ?? target + ".rebuilt"
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: output + suffix) }
            let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let store = try ProjectionStore.open(path: output, topicPrefix: storage.topicPrefix, logger: logger)
            var total: Int64 = 0
            for topic in store.topics {
                for (_, marks) in try await opened.log.watermarks(topic: topic) { total += marks.high - marks.low }
            }
            let progress = ProgressReporter(label: "replay projector", total: Int(total))
            let done = Atomic<Int>(0)
            var configuration = ProjectorService.Configuration()
            configuration.stopWhenCaughtUp = true
            let started = ContinuousClock.now
            let service = ProjectorService(log: opened.log, store: store, configuration: configuration, logger: logger,
                                           onBatch: { update in
                                               progress.update(done.add(update.batchMessages, ordering: .relaxed).newValue)
                                           })
            try await service.run()
            progress.update(done.load(ordering: .relaxed))
            progress.finish()
            let elapsed = ContinuousClock.now - started
            let status = try store.status()
            try store.pool.close()
            if replace {
                for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: target + suffix) }
                if FileManager.default.fileExists(atPath: target) { try FileManager.default.removeItem(atPath: target) }
                try FileManager.default.moveItem(atPath: output, toPath: target)
                for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: output + suffix) }
            }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let summary = ReplaySummary(database: replace ? target : output, messages: done.load(ordering: .relaxed),
                                        requests: status.requests, seconds: (seconds * 100).rounded() / 100)
            if json { return try DataOutput.json(summary) }
            Output.line("rebuilt \(summary.database): \(DataOutput.count(Int64(summary.messages))) messages, "
                        + "\(DataOutput.count(summary.requests)) requests in \(String(format: "%.1f", seconds)) s")
        }
    }

    struct ReplaySummary: Encodable {
        var database: String
        var messages: Int
        var requests: Int64
        var seconds: Double
    }
}

// MARK: - tollgate query

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Serve the query API (/api/) and the dashboard (/dashboard) over a projections database.",
        discussion: """
            Authenticates with the admin key (TOLLGATE_ADMIN_KEY) or a read-only virtual key \
            (tollgate keys create --read-only), read from the control topic of the log (--data-dir or --brokers). \
            Run it next to a projector, on the machine that has its database.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var projections: ProjectionsOptions
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, logged at start).") var port: Int = 4001
    @OptionGroup var shutdown: ShutdownOptions

    func run() async throws {
        let logger = logging.bootstrap(default: .info)
        Observability.bootstrap()
        let store = try projections.openForReading(storage)
        let backend = try await LogBackend.open(try kafka.backendSettings(storage), logger: logger)
        defer { backend.close() }
        let readiness = Readiness(checks: ["log", "control"])
        readiness.markReady("log")
        let control = ControlPlane(log: backend.log, topicPrefix: storage.topicPrefix, logger: logger,
                                   onReady: { readiness.markReady("control") })
        let adminKey = ProcessInfo.processInfo.environment["TOLLGATE_ADMIN_KEY"]
        if adminKey?.isEmpty ?? true {
            logger.warning("TOLLGATE_ADMIN_KEY is not set: only read-only virtual keys can read the query API")
        }
        let authenticator = QuerySetup.authenticator(adminKey: adminKey, control: control)
        var host = ServiceHost(name: "query")
        host.host = self.host
        host.port = port
        host.shutdownTimeout = .seconds(shutdown.shutdownTimeout)
        host.routes = { router in QuerySetup.addRoutes(to: router, store: store, authenticator: authenticator) }
        try await host.run(services: [control], readiness: readiness, backend: backend, logger: logger)
    }
}

// MARK: - tollgate projections

struct ProjectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections",
        abstract: "Inspect the projections database, or fill one with synthetic traffic.",
        subcommands: [Status.self, Seed.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rows, size and log offsets of the projections database.")
        @OptionGroup var storage: StorageOptions
        @OptionGroup var projections: ProjectionsOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let store = try projections.openForReading(storage)
            let status = try store.status()
            if json { return try DataOutput.json(status) }
            var table = TextTable(columns: ["fact", "value"])
            table.append(["database", store.path])
            table.append(["requests", DataOutput.count(status.requests)])
            table.append(["first request", DataOutput.time(status.firstRequestAt)])
            table.append(["last request", DataOutput.time(status.lastRequestAt)])
            table.append(["rejected messages", DataOutput.count(status.rejected)])
            table.append(["size", "\(DataOutput.count(status.sizeBytes / 1_048_576)) MiB"])
            for (partition, next) in status.offsets.sorted(by: { $0.key < $1.key }) {
                table.append(["next offset \(partition)", DataOutput.count(next)])
            }
            Output.line(table.render())
        }
    }

    struct Seed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write synthetic usage through the projector into a database (demos, tests, benchmarks).",
            discussion: """
                The events are what the cost service would publish (priced with the built-in catalog), spread \
                evenly over --days up to --end; the same --seed gives the same events. --events-out writes them \
                as JSON lines too, so a test can check the projections against them.
                """)
        @Option(help: "The database to write (created if needed).") var db: String
        @Option(help: "How many requests.") var requests: Int = 10_000
        @Option(help: "Over how many days.") var days: Int = 14
        @Option(help: "Seed of the generator.") var seed: UInt64 = 1
        @Option(help: "The newest time (default: now), ISO 8601.") var end: String?
        @Option(help: "Also write the events as JSON lines to this file.") var eventsOut: String?
        @OptionGroup var pricing: PricingOptions
        @Flag(help: "Print a JSON summary.") var json = false

        func run() async throws {
            guard requests > 0, days > 0 else { throw CommandFailure("--requests and --days must be positive") }
            var endDate = Date()
            if let end {
                guard let parsed = EventTime.parse(end) else { throw CommandFailure("--end: '\(end)' is not an ISO 8601 time") }
                endDate = parsed
            }
            var logger = Logger(label: "tollgate.projections")
            logger.logLevel = .warning
            // Seeded messages carry their own topic names, so their offsets never mix with the log's.
            let store = try ProjectionStore.open(path: db, topicPrefix: UsageGenerator.seedPrefix, logger: logger)
            let generator = UsageGenerator(requests: requests, days: days, end: endDate, seed: seed,
                                           topicPrefix: UsageGenerator.seedPrefix, pricer: try pricing.pricer())
            var out: FileHandle?
            if let eventsOut {
                FileManager.default.createFile(atPath: eventsOut, contents: nil)
                out = FileHandle(forWritingAtPath: eventsOut)
            }
            defer { try? out?.close() }
            let progress = ProgressReporter(label: "seed", total: requests)
            var batch: [ConsumedMessage] = []
            for index in 0..<requests {
                let message = try generator.message(index)
                if let out, let value = message.value { out.write(value + Data("\n".utf8)) }
                batch.append(message)
                if batch.count == 5_000 || index == requests - 1 {
                    try store.apply(batch)
                    batch.removeAll(keepingCapacity: true)
                    progress.update(index + 1)
                }
            }
            progress.finish()
            let status = try store.status()
            if json { return try DataOutput.json(status) }
            Output.line("wrote \(DataOutput.count(status.requests)) requests to \(db)")
        }
    }
}
