import ArgumentParser
import Foundation
import TollgateApp

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run Tollgate all-in-one on the embedded log (every service in this process).")

    @Option(help: "Address to listen on (0.0.0.0 accepts connections from other hosts).")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one, logged at start).")
    var port: Int = 4000

    @OptionGroup var storage: StorageOptions
    @OptionGroup var logging: LoggingOptions

    @Option(help: "Seconds graceful shutdown may take before the remaining work is cancelled.")
    var shutdownTimeout: Int = 30

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard shutdownTimeout > 0 else { throw ValidationError("--shutdown-timeout must be positive") }
    }

    func run() async throws {
        let logger = logging.bootstrap(default: .info)
        var options = AllInOne.Options()
        options.host = host
        options.port = port
        options.dataDirectory = storage.dataDir
        options.logDirectory = storage.logDir
        options.topicPrefix = storage.topicPrefix
        options.shutdownTimeout = .seconds(shutdownTimeout)
        try await AllInOne(options: options, logger: logger).run()
    }
}
