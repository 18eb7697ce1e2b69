import ArgumentParser
import Foundation
import Logging
import TollgateApp
import TollgateEvents
import TollgateLog

struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Inspect and use the message log directly: the embedded log, or Kafka with --brokers.",
        subcommands: [Topics.self, Produce.self, Consume.self])

    struct Topics: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the topics with their partitions and sizes.")

        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        struct Row: Encodable {
            var topic: String
            var partitions: Int
            var cleanupPolicy: String
            var retentionMs: Int64?
            var messages: Int64
            /// Unknown on Kafka (nil).
            var bytes: Int64?
            var highWatermarks: [Int64]
        }

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let opened = try OpenedLog(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            var rows: [Row] = []
            for spec in try await opened.log.topics() {
                var row = Row(topic: spec.name, partitions: spec.partitions, cleanupPolicy: spec.cleanupPolicy.rawValue,
                              retentionMs: spec.retentionMilliseconds, messages: 0, bytes: nil, highWatermarks: [])
                if let embedded = opened.log as? EmbeddedLog {
                    let stats = try await embedded.statistics(topic: spec.name)
                    row.messages = stats.map(\.messages).reduce(0, +)
                    row.bytes = stats.map(\.bytes).reduce(0, +)
                    row.highWatermarks = stats.map(\.high)
                } else {
                    let marks = try await opened.log.watermarks(topic: spec.name).sorted { $0.key < $1.key }
                    row.messages = marks.map { $0.value.high - $0.value.low }.reduce(0, +)
                    row.highWatermarks = marks.map(\.value.high)
                }
                rows.append(row)
            }
            if json {
                try Output.json(rows)
                return
            }
            var table = TextTable(columns: ["topic", "partitions", "policy", "retention", "messages", "bytes"],
                                  rightAligned: [1, 4, 5])
            for row in rows {
                table.append([row.topic, "\(row.partitions)", row.cleanupPolicy,
                              row.retentionMs.map { "\($0 / 3_600_000)h" } ?? "forever", "\(row.messages)",
                              row.bytes.map { "\($0)" } ?? "-"])
            }
            Output.line(table.render())
        }
    }

    struct Produce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append messages: the VALUE arguments, or one message per line of standard input.")

        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Option(help: "Topic, with its prefix.") var topic: String
        @Option(help: "Message key (chooses the partition).") var key: String?
        @Option(help: "Partition, overriding the key's.") var partition: Int?
        @Option(name: .customLong("header"), help: "A header as name=value (repeatable).") var headers: [String] = []
        @Flag(help: "Print JSON instead of a table.") var json = false
        @Argument(help: "Values; read from standard input when none is given.") var values: [String] = []

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let parsedHeaders = try headers.map { header -> MessageHeader in
                guard let equals = header.firstIndex(of: "=") else {
                    throw ValidationError("--header must be name=value, got '\(header)'")
                }
                return MessageHeader(String(header[..<equals]), String(header[header.index(after: equals)...]))
            }
            var lines = values
            if lines.isEmpty {
                while let line = readLine() { lines.append(line) }
            }
            let opened = try OpenedLog(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let acks = try await opened.log.produce(lines.map {
                OutgoingMessage(topic: topic, key: key.map { Data($0.utf8) }, value: Data($0.utf8),
                                headers: parsedHeaders, partition: partition)
            })
            if json {
                for ack in acks {
                    try Output.json(["topic": ack.topic, "partition": "\(ack.partition)", "offset": "\(ack.offset)"])
                }
                return
            }
            var table = TextTable(columns: ["topic", "partition", "offset"], rightAligned: [1, 2])
            for ack in acks { table.append([ack.topic, "\(ack.partition)", "\(ack.offset)"]) }
            Output.line(table.render())
        }
    }

    struct Consume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read messages in a consumer group, committing after each batch, and print them.")

        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Option(help: "Topic to read (repeatable).") var topic: [String]
        @Option(help: "Consumer group.") var group: String = "tollgate-cli"
        @Option(help: "Stable member identity (group.instance.id).") var instanceID: String?
        @Option(help: "Where to start: committed (resume), beginning, or end.") var from: String = "committed"
        @Option(help: "Stop after this many messages (0: no limit).") var max: Int = 0
        @Option(help: "Stop after this many milliseconds without a message (0: never).") var idleExitMs: Int = 0
        @Option(help: "Most messages per batch.") var batch: Int = 500
        @Option(help: "Session timeout in milliseconds.") var sessionTimeoutMs: Int = 10_000
        @Option(help: "Append 'topic<TAB>partition<TAB>offset<TAB>value' per processed message to this file.")
        var record: String?
        @Option(help: "Milliseconds of simulated work per message (for failure tests).") var delayMs: Int = 0
        @Flag(help: "Do not commit offsets.") var noCommit = false
        @Flag(help: "Print nothing per message.") var quiet = false
        @Flag(help: "Print JSON lines instead of a table.") var json = false

        func validate() throws {
            guard ["committed", "beginning", "end"].contains(from) else {
                throw ValidationError("--from must be committed, beginning or end")
            }
            guard batch > 0 else { throw ValidationError("--batch must be positive") }
        }

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let opened = try OpenedLog(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let consumer = try await opened.log.makeConsumer(ConsumerConfiguration(
                group: group, instanceID: instanceID, sessionTimeout: .milliseconds(sessionTimeoutMs),
                heartbeatInterval: .milliseconds(Swift.max(50, sessionTimeoutMs / 5))))
            try await consumer.subscribe(topic)
            switch from {
            case "beginning": try await consumer.seek(.beginning, partitions: nil)
            case "end": try await consumer.seek(.end, partitions: nil)
            default: break
            }
            let recorder = try record.map { path -> FileHandle in
                if !FileManager.default.fileExists(atPath: path) {
                    _ = FileManager.default.createFile(atPath: path, contents: nil)
                }
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                try handle.seekToEnd()
                return handle
            }
            let printer = MessagePrinter(json: json)
            if !quiet && !json { printer.header() }
            var processed = 0
            var lastMessage = ContinuousClock.now
            while max == 0 || processed < max {
                let messages = try await consumer.poll(maxMessages: max == 0 ? batch : Swift.min(batch, max - processed),
                                                       timeout: .milliseconds(200))
                if messages.isEmpty {
                    if idleExitMs > 0 && ContinuousClock.now - lastMessage > .milliseconds(idleExitMs) { break }
                    continue
                }
                lastMessage = ContinuousClock.now
                for message in messages {
                    if delayMs > 0 { try await Task.sleep(for: .milliseconds(delayMs)) }
                    // Written straight to the file (no buffering in this process), so a SIGKILL right after
                    // loses nothing that was recorded.
                    recorder?.write(Data(
                        "\(message.topic)\t\(message.partition)\t\(message.offset)\t\(MessagePrinter.text(message.value))\n".utf8))
                    if !quiet { try printer.print(message) }
                }
                processed += messages.count
                if !noCommit { try await consumer.commit(messages.nextOffsets) }
            }
            try recorder?.close()
            try await consumer.close()
        }
    }
}

/// Prints consumed messages as aligned lines or JSON lines.
struct MessagePrinter {
    var json: Bool

    struct Line: Encodable {
        var topic: String
        var partition: Int
        var offset: Int64
        var timestampMs: Int64
        var key: String?
        var value: String?
        var valueEncoding: String
        var headers: [String: String]
    }

    static func text(_ data: Data?) -> String {
        guard let data else { return "null" }
        if let string = String(data: data, encoding: .utf8) { return string }
        return "base64:" + data.base64EncodedString()
    }

    func header() {
        Output.line(pad("topic", 28) + "  " + pad("partition", 9, right: true) + "  " + pad("offset", 10, right: true)
                    + "  " + pad("key", 20) + "  value")
    }

    func print(_ message: ConsumedMessage) throws {
        if json {
            let utf8 = message.value.flatMap { String(data: $0, encoding: .utf8) }
            try Output.json(Line(
                topic: message.topic, partition: message.partition, offset: message.offset,
                timestampMs: message.timestampMilliseconds, key: message.key.map { Self.text($0) },
                value: message.value.map { utf8 ?? $0.base64EncodedString() },
                valueEncoding: message.value == nil ? "null" : (utf8 == nil ? "base64" : "utf8"),
                headers: Dictionary(message.headers.map { ($0.name, Self.text($0.value)) },
                                    uniquingKeysWith: { first, _ in first })))
            return
        }
        Output.line(pad(message.topic, 28) + "  " + pad("\(message.partition)", 9, right: true) + "  "
                    + pad("\(message.offset)", 10, right: true) + "  " + pad(message.key.map { Self.text($0) } ?? "-", 20)
                    + "  " + Self.text(message.value))
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: Swift.max(0, width - text.count))
        return right ? padding + text : text + padding
    }
}

/// The embedded log of `--data-dir`/`--log-dir`, or Kafka when `--brokers` is given.
struct OpenedLog {
    /// The log with the catalog's topics provisioned (a fresh data directory has none yet; idempotent).
    static func provisioned(storage: StorageOptions, kafka: KafkaOptions, logger: Logger) async throws -> OpenedLog {
        let opened = try OpenedLog(storage: storage, kafka: kafka, logger: logger)
        do {
            try await opened.log.provision(TopicCatalog.specs(prefix: storage.topicPrefix))
        } catch {
            opened.close()
            throw error
        }
        return opened
    }

    let log: any MessageLog
    let close: () -> Void

    init(storage: StorageOptions, kafka: KafkaOptions, logger: Logger) throws {
        if kafka.resolvedBrokers != nil {
            log = try KafkaLog(configuration: try kafka.configuration(), logger: logger)
            close = {}
        } else {
            let embedded = try EmbeddedLog.open(directory: storage.resolvedLogDirectory, logger: logger)
            log = embedded
            close = { embedded.close() }
        }
    }
}
