import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import TollgateApp

@main
enum Entry {
    static func main() async {
        // Run Swift concurrency's global executor on SwiftNIO's event loops: HTTP handlers, upstream calls
        // and the proxy's tasks then stay on the threads that do the I/O instead of hopping between pools.
        // Blocking work never runs there: SQLite calls have their own threads and queues.
        if ProcessInfo.processInfo.environment["TOLLGATE_NIO_EXECUTOR"] != "0" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        let expanded: [String]
        let config: ConfigFile?
        do {
            (expanded, config) = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()),
                                                       environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            exit(64)
        }
        guard let config else { return await Tollgate.main(expanded) }
        // With a configuration file, a parse error about an option it added names the key and the file.
        let command: any ParsableCommand
        do {
            command = try Tollgate.parseAsRoot(expanded)
        } catch {
            let message = Tollgate.message(for: error)
            if let explained = config.explain(message) {
                FileHandle.standardError.write(Data("Error: \(explained)\n".utf8))
                exit(64)
            }
            Tollgate.exit(withError: error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var command = command
                try command.run()
            }
        } catch {
            Tollgate.exit(withError: error)
        }
    }
}

struct Tollgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate",
        abstract: "Tollgate: an LLM gateway that meters, prices and budgets every call.",
        discussion: """
            Every command also takes --config FILE (or TOLLGATE_CONFIG): its options in a YAML or JSON file, keys \
            in snake_case (data_dir, brokers, port, log_format, …; schemas/service-config.schema.json). The \
            command line overrides the environment, which overrides the file.
            """,
        subcommands: [Serve.self, IngressCommand.self, BudgetServiceCommand.self, LogCommand.self, EventsCommand.self, BenchCommand.self, FakeProviderCommand.self, KeysCommand.self, DevBrokerCommand.self, CostCommand.self, PricesCommand.self, BudgetsCommand.self, ProjectorCommand.self, AlertsCommand.self, QueryCommand.self, UsageCommand.self, TopCommand.self, ReplayCommand.self, ProjectionsCommand.self]
    )
}

/// Options every command that touches the log shares.
struct StorageOptions: ParsableArguments {
    @Option(help: "Where Tollgate keeps its data.")
    var dataDir: String = "./tollgate-data"

    @Option(help: "The embedded log's directory (default: <data-dir>/log). Processes sharing it share one log.")
    var logDir: String?

    @Option(help: "Prefix of every topic name.")
    var topicPrefix: String = "tollgate."

    var resolvedLogDirectory: String {
        logDir ?? URL(fileURLWithPath: dataDir).appendingPathComponent("log").path
    }
}

/// A consumer service's health, readiness and metrics endpoints, and its shutdown deadline.
struct EndpointOptions: ParsableArguments {
    @Option(help: "Address of the health and metrics endpoints.")
    var host: String = "127.0.0.1"

    @Option(help: "Port of GET /healthz, /readyz and /metrics (0: any free port; default: none).")
    var port: Int?

    @OptionGroup var shutdown: ShutdownOptions

    /// The host of service `name` with these settings.
    func serviceHost(_ name: String) -> ServiceHost {
        var host = ServiceHost(name: name)
        host.host = self.host
        host.port = port
        host.shutdownTimeout = .seconds(shutdown.shutdownTimeout)
        return host
    }
}

/// How long a service may take to stop on SIGTERM or SIGINT.
struct ShutdownOptions: ParsableArguments {
    @Option(help: "Seconds graceful shutdown (SIGTERM, SIGINT) may take: work in flight finishes and offsets are committed, then what is left is cancelled.")
    var shutdownTimeout: Int = 30

    func validate() throws {
        guard shutdownTimeout > 0 else { throw ValidationError("--shutdown-timeout must be positive") }
    }
}

struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env TOLLGATE_LOG_LEVEL).")
    var logLevel: String?

    @Option(help: "Log format: text, or json (one object per line, for log pipelines) (env TOLLGATE_LOG_FORMAT).")
    var logFormat: String?

    func validate() throws {
        let format = logFormat ?? ProcessInfo.processInfo.environment["TOLLGATE_LOG_FORMAT"] ?? "text"
        guard ["text", "json"].contains(format) else {
            throw ValidationError("--log-format (or TOLLGATE_LOG_FORMAT) must be text or json, not \(format)")
        }
        if let level = logLevel ?? ProcessInfo.processInfo.environment["TOLLGATE_LOG_LEVEL"],
           Logger.Level(rawValue: level) == nil {
            throw ValidationError("--log-level (or TOLLGATE_LOG_LEVEL) must be one of trace, debug, info, notice, "
                                  + "warning, error, critical, not \(level)")
        }
    }

    /// Sends logs to standard error at the chosen level and format, once per process.
    func bootstrap(default level: Logger.Level) -> Logger {
        let chosen = logLevel ?? ProcessInfo.processInfo.environment["TOLLGATE_LOG_LEVEL"]
        let resolved = chosen.flatMap(Logger.Level.init(rawValue:)) ?? level
        let json = (logFormat ?? ProcessInfo.processInfo.environment["TOLLGATE_LOG_FORMAT"]) == "json"
        LoggingBootstrap.once(level: resolved, json: json)
        var logger = Logger(label: "tollgate")
        logger.logLevel = resolved
        return logger
    }
}

enum LoggingBootstrap {
    private static let done = NSLock()
    nonisolated(unsafe) private static var bootstrapped = false

    static func once(level: Logger.Level, json: Bool = false) {
        done.lock()
        defer { done.unlock() }
        guard !bootstrapped else { return }
        bootstrapped = true
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Writes command output (data, not logs) to standard output.
enum Output {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        line(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
