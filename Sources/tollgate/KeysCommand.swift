import ArgumentParser
import Foundation
import TollgateApp
import TollgateEvents
import TollgateIngress
import TollgateLog

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list and revoke virtual keys (written to the control topic of the log).",
        subcommands: [Create.self, List.self, Revoke.self])

    /// The log (embedded, or Kafka with `--brokers`), provisioned, and a writer of its control topic.
    static func open(_ storage: StorageOptions, _ kafka: KafkaOptions, _ logging: LoggingOptions) async throws
        -> (OpenedLog, ControlWriter) {
        let logger = logging.bootstrap(default: .warning)
        let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
        return (opened, ControlWriter(log: opened.log, topicPrefix: storage.topicPrefix,
                                      source: "tollgate/cli/\(ProcessInfo.processInfo.hostName)"))
    }

    static func table(_ rows: [KeyView]) -> String {
        var table = TextTable(columns: ["key id", "prefix", "name", "team", "project", "models", "expires", "status"])
        for row in rows {
            table.append([row.keyID, row.keyPrefix + "…", row.name ?? "-", row.team, row.project,
                          row.models.isEmpty ? "all" : row.models.joined(separator: ","),
                          row.expiresAt.map(EventTime.format) ?? "never",
                          row.revokedAt.map { "revoked \(EventTime.format($0))" } ?? (row.readOnly ? "read-only" : "active")])
        }
        return table.render()
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print its secret (shown only once).")

        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Option(help: "Team the key's calls are attributed to.") var team: String
        @Option(help: "Project the key's calls are attributed to.") var project: String
        @Option(help: "A name for people.") var name: String?
        @Option(help: "Customer the key's calls are attributed to.") var customer: String?
        @Option(help: "Comma-separated models the key may use (default: all).") var models: String?
        @Option(help: "Tags added to every call, as name=value,name=value.") var tags: String?
        @Option(help: "Expiry: an RFC 3339 time, or a duration such as 30d, 12h.") var expires: String?
        @Flag(help: "A key for the query API only.") var readOnly = false
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            guard !team.isEmpty, !project.isEmpty else { throw ValidationError("--team and --project must not be empty") }
            let expiry = try expires.map(Self.parseExpiry)
            var tagMap: [String: String] = [:]
            for pair in (tags ?? "").split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--tags takes name=value pairs") }
                tagMap[String(parts[0])] = String(parts[1])
            }
            let modelList = (models ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
            let (log, writer) = try await KeysCommand.open(storage, kafka, logging)
            defer { log.close() }
            let (secret, data) = VirtualKeys.create(team: team, project: project, name: name, customer: customer,
                                                    tags: tagMap, models: modelList, expiresAt: expiry,
                                                    readOnly: readOnly)
            try await writer.write(data)
            let row = KeyView(data, revokedAt: nil, secret: secret)
            if json {
                try Output.json(row)
            } else {
                Output.line(KeysCommand.table([row]))
                Output.line("\nsecret: \(secret)\nStore it now: Tollgate keeps only its SHA-256 and cannot show it again.")
            }
        }

        static func parseExpiry(_ text: String) throws -> Date {
            if let date = EventTime.parse(text) { return date }
            let units: [Character: Double] = ["m": 60, "h": 3_600, "d": 86_400]
            if let unit = text.last, let seconds = units[unit], let count = Double(text.dropLast()), count > 0 {
                return Date().addingTimeInterval(count * seconds)
            }
            throw ValidationError("--expires takes an RFC 3339 time or a duration like 30d, 12h, 90m")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")

        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Include revoked keys.") var all = false
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let (log, writer) = try await KeysCommand.open(storage, kafka, logging)
            defer { log.close() }
            var table = KeyTable()
            for event in try await writer.readAll() { table.apply(event) }
            let rows = table.entries.filter { all || $0.revokedAt == nil }.map { KeyView($0.data, revokedAt: $0.revokedAt) }
            if json { try Output.json(rows) } else { Output.line(KeysCommand.table(rows)) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key: it stops working everywhere within a second.")

        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Argument(help: "The key id (key_…).") var keyID: String
        @Option(help: "Why, for the record.") var reason: String?
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let (log, writer) = try await KeysCommand.open(storage, kafka, logging)
            defer { log.close() }
            var table = KeyTable()
            for event in try await writer.readAll() { table.apply(event) }
            guard let entry = table.entry(id: keyID) else { throw ValidationError("no key with id \(keyID)") }
            let now = Date()
            if entry.revokedAt == nil { try await writer.write(KeyRevokedData(keyID: keyID, revokedAt: now, reason: reason)) }
            let row = KeyView(entry.data, revokedAt: entry.revokedAt ?? now)
            if json { try Output.json(row) } else { Output.line(KeysCommand.table([row])) }
        }
    }
}
