import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TollgateApp
import TollgateEvents
import TollgateLog

/// `tollgate dev-broker`: librdkafka's mock Kafka cluster as a stand-alone process, for trying the
/// multi-process deployment (`tollgate serve --brokers …`, your own consumers, kcat) on one machine.
///
/// It creates every catalog topic through the mock API (the mock has no admin API, so clients cannot
/// create them), prints the bootstrap address on standard output and, with `--address-file`, writes it to
/// that file once the topics exist. Nothing is durable: every message, offset and group lives in this
/// process's memory and is gone when it stops.
struct DevBrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-broker",
        abstract: "Run librdkafka's mock Kafka cluster for local multi-process trials. NOT DURABLE.",
        discussion: """
            Listens on 127.0.0.1 on a random port (printed on standard output) and creates every catalog \
            topic. Everything is kept in memory and lost when the process stops; each partition keeps only \
            its newest ~5 MiB; there is no compaction and no admin API. For development only.
            """)

    @Option(help: "Number of mock brokers (1 or 3 are the tested values).")
    var brokers: Int = 1

    @Option(help: "Prefix of every topic name.")
    var topicPrefix: String = TopicCatalog.defaultPrefix

    @Option(help: "Also write the bootstrap address to this file (atomically, once the topics exist).")
    var addressFile: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...16).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 16") }
    }

    func run() async throws {
        let logger = logging.bootstrap(default: .info)
        logger.warning("dev-broker is NOT DURABLE: every message, offset and consumer group is lost when it stops; partitions keep only their newest ~5 MiB; for development only")
        let cluster = try KafkaMockCluster(brokers: brokers)
        let specs = TopicCatalog.specs(prefix: topicPrefix)
        for spec in specs {
            try cluster.createTopic(name: spec.name, partitions: spec.partitions)
        }
        // Announced from inside the service group, once SIGTERM and SIGINT are trapped: whoever reads the
        // address may stop the broker with a signal at once.
        let announce: @Sendable () throws -> Void = { [addressFile, brokers] in
            let address = cluster.bootstrapServers
            Output.line(address)
            if let addressFile { try Self.writeAtomically(address + "\n", to: addressFile) }
            logger.notice("dev broker is ready", metadata: [
                "kafka.bootstrap": "\(address)", "kafka.brokers": "\(brokers)", "kafka.topics": "\(specs.count)",
            ])
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: MockClusterService(cluster: cluster, announce: announce))],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        if let addressFile { try? FileManager.default.removeItem(atPath: addressFile) }
        logger.info("dev broker stopped")
    }

    /// Writes `text` to a temporary file next to `path` and renames it over `path`, so a reader never sees
    /// a partial address.
    static func writeAtomically(_ text: String, to path: String) throws {
        let target = URL(fileURLWithPath: path)
        let temporary = target.deletingLastPathComponent()
            .appendingPathComponent(".\(target.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        try Data(text.utf8).write(to: temporary)
        guard rename(temporary.path, target.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw ValidationError("cannot write the address file \(path): \(reason)")
        }
    }
}

/// Announces the mock cluster, then keeps it alive until graceful shutdown (SIGTERM, SIGINT).
private struct MockClusterService: Service {
    let cluster: KafkaMockCluster
    let announce: @Sendable () throws -> Void

    func run() async throws {
        try announce()
        try? await gracefulShutdown()
        withExtendedLifetime(cluster) {}
    }
}
