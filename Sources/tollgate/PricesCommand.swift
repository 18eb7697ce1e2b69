public import ArgumentParser
import Foundation
import Logging
import TollgateApp
import TollgateEvents
import TollgateLog
import TollgatePricing

/// `tollgate prices`: the price catalog, and the models seen in traffic without a price.
struct PricesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prices",
        abstract: "List the price catalog, look up a model, or list models seen without a price.",
        discussion: """
            Prices are US dollars per million tokens, in force on --at (default today, UTC). \
            `tollgate prices gpt-4o` shows every dated entry of a model (id or alias) with its long-context, \
            batch and service-tier prices; a name that matches no id or alias lists the models containing it. \
            `--unpriced` reads the usage topic and lists the models that responses were not priced for.
            """)

    @Argument(help: "A model id or alias (or part of one).") var model: String?
    @Option(help: "Only this provider: openai, anthropic or gemini.") var provider: Provider?
    @Option(help: "The day whose prices to show, YYYY-MM-DD (default: today, UTC).") var at: String?
    @Flag(help: "List models seen in traffic (the usage topic) that have no price.") var unpriced = false
    @Flag(help: "Print JSON instead of a table.") var json = false
    @OptionGroup var pricing: PricingOptions
    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let at, EventTime.parse(at + "T00:00:00Z") == nil { throw ValidationError("--at must be YYYY-MM-DD") }
    }

    func run() async throws {
        let logger = logging.bootstrap(default: .warning)
        if unpriced {
            try await listUnpriced(logger: logger)
            return
        }
        let pricer = try pricing.pricer()
        let day = at ?? Pricer.day(Date())
        let models = pricer.catalog.models.filter { provider == nil || $0.provider == provider }
        guard let model else {
            try printList(models, day: day, version: pricer.catalog.catalogVersion)
            return
        }
        let exact = Provider.allCases.filter { provider == nil || $0 == provider }
            .compactMap { pricer.model(provider: $0, name: model) }
        if exact.isEmpty {
            let matches = models.filter { ([$0.id] + $0.aliases).contains { $0.localizedCaseInsensitiveContains(model) } }
            if matches.isEmpty {
                throw CommandFailure("no model in catalog \(pricer.catalog.catalogVersion) is named like '\(model)'. "
                    + "Add it in a pricing file (--pricing) to price its traffic.")
            }
            try printList(matches, day: day, version: pricer.catalog.catalogVersion)
            return
        }
        try printDetail(exact, version: pricer.catalog.catalogVersion)
    }

    // MARK: The catalog

    /// Dollars per million tokens of every class, `null` where the class is not billed.
    struct ClassRow: Encodable {
        var input: String?
        var cachedInputRead: String?
        var cacheWrite5m: String?
        var cacheWrite1h: String?
        var output: String?
        var reasoning: String?
        var audioInput: String?
        var audioOutput: String?

        init(_ prices: Catalog.ClassPrices) {
            input = prices[.input]?.description
            cachedInputRead = prices[.cachedInputRead]?.description
            cacheWrite5m = prices[.cacheWrite5m]?.description
            cacheWrite1h = prices[.cacheWrite1h]?.description
            output = prices[.output]?.description
            // Billed at the output price unless the catalog says otherwise.
            reasoning = (prices[.reasoning] ?? prices[.output])?.description
            audioInput = prices[.audioInput]?.description
            audioOutput = prices[.audioOutput]?.description
        }

        enum CodingKeys: String, CodingKey {
            case input, output, reasoning
            case cachedInputRead = "cached_input_read"
            case cacheWrite5m = "cache_write_5m"
            case cacheWrite1h = "cache_write_1h"
            case audioInput = "audio_input"
            case audioOutput = "audio_output"
        }

        /// Every class, `null` where it is not billed.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(input, forKey: .input)
            try container.encode(cachedInputRead, forKey: .cachedInputRead)
            try container.encode(cacheWrite5m, forKey: .cacheWrite5m)
            try container.encode(cacheWrite1h, forKey: .cacheWrite1h)
            try container.encode(output, forKey: .output)
            try container.encode(reasoning, forKey: .reasoning)
            try container.encode(audioInput, forKey: .audioInput)
            try container.encode(audioOutput, forKey: .audioOutput)
        }

        var cells: [String] {
            [input, cachedInputRead, cacheWrite5m, cacheWrite1h, output, reasoning, audioInput, audioOutput].map { $0 ?? "-" }
        }
    }

    static let classColumns = ["input", "cached", "write 5m", "write 1h", "output", "reasoning", "audio in", "audio out"]

    struct ListRow: Encodable {
        var provider: String
        var model: String
        var aliases: [String]
        var kind: String
        var effectiveFrom: String?
        var perMillionUsd: ClassRow?
    }

    func printList(_ models: [Catalog.Model], day: String, version: String) throws {
        let rows = models.map { model in
            let entry = model.entry(on: day)
            return ListRow(provider: model.provider.rawValue, model: model.id, aliases: model.aliases,
                           kind: model.kind.rawValue, effectiveFrom: entry?.effectiveFrom,
                           perMillionUsd: entry.map { ClassRow($0.perMillion) })
        }
        if json {
            struct Document: Encodable {
                var catalogVersion: String
                var day: String
                var models: [ListRow]
            }
            try Output.json(Document(catalogVersion: version, day: day, models: rows))
            return
        }
        var table = TextTable(columns: ["provider", "model", "kind", "since"] + Self.classColumns,
                              rightAligned: Set(4..<12))
        for row in rows {
            table.append([row.provider, row.model, row.kind, row.effectiveFrom ?? "not yet"]
                         + (row.perMillionUsd?.cells ?? Array(repeating: "-", count: 8)))
        }
        Output.line("catalog \(version), US$ per million tokens on \(day); \"-\": not billed (tokens there are unpriced)")
        Output.line(table.render())
    }

    struct DetailEntry: Encodable {
        var effectiveFrom: String
        var source: String
        var note: String?
        var perMillionUsd: ClassRow
        var longContext: LongContext?
        var batch: ClassRow?
        var serviceTiers: [String: ClassRow]?

        struct LongContext: Encodable {
            var aboveInputTokens: Int64
            var perMillionUsd: ClassRow
        }
    }

    struct Detail: Encodable {
        var catalogVersion: String
        var provider: String
        var model: String
        var aliases: [String]
        var kind: String
        var prices: [DetailEntry]
    }

    func printDetail(_ models: [Catalog.Model], version: String) throws {
        let details = models.map { model in
            Detail(catalogVersion: version, provider: model.provider.rawValue, model: model.id, aliases: model.aliases,
                   kind: model.kind.rawValue, prices: model.prices.map { entry in
                DetailEntry(
                    effectiveFrom: entry.effectiveFrom, source: entry.source, note: entry.note,
                    perMillionUsd: ClassRow(entry.perMillion),
                    longContext: entry.longContext.map {
                        .init(aboveInputTokens: $0.aboveInputTokens, perMillionUsd: ClassRow($0.perMillion.over(entry.perMillion)))
                    },
                    batch: entry.batch.map { ClassRow($0.over(entry.perMillion)) },
                    serviceTiers: entry.serviceTiers?.mapValues { ClassRow($0.over(entry.perMillion)) })
            })
        }
        if json {
            try Output.json(details.count == 1 ? AnyEncodable(details[0]) : AnyEncodable(details))
            return
        }
        for detail in details {
            Output.line("\(detail.provider) \(detail.model) (\(detail.kind))"
                        + (detail.aliases.isEmpty ? "" : ", also \(detail.aliases.joined(separator: ", "))")
                        + " — catalog \(version), US$ per million tokens")
            var table = TextTable(columns: ["from", "prices"] + Self.classColumns, rightAligned: Set(2..<10))
            for entry in detail.prices {
                table.append([entry.effectiveFrom, "standard"] + entry.perMillionUsd.cells)
                if let long = entry.longContext {
                    table.append(["", "prompt > \(long.aboveInputTokens)"] + long.perMillionUsd.cells)
                }
                if let batch = entry.batch { table.append(["", "batch"] + batch.cells) }
                for (tier, prices) in (entry.serviceTiers ?? [:]).sorted(by: { $0.key < $1.key }) {
                    table.append(["", "tier \(tier)"] + prices.cells)
                }
            }
            Output.line(table.render())
            for entry in detail.prices {
                Output.line("  from \(entry.effectiveFrom): \(entry.source)" + (entry.note.map { " — \($0)" } ?? ""))
            }
        }
    }

    // MARK: Unpriced traffic

    struct UnpricedRow: Encodable {
        var provider: String
        var model: String
        var reason: String
        var responses: Int
        var firstSeen: Date
        var lastSeen: Date
    }

    func listUnpriced(logger: Logger) async throws {
        let opened = try OpenedLog(storage: storage, kafka: kafka, logger: logger)
        defer { opened.close() }
        let topic = storage.topicPrefix + UsageData.topic
        let marks = try await opened.log.watermarks(topic: topic)
        let total = marks.values.reduce(0) { $0 + Int($1.high - $1.low) }
        let consumer = try await opened.log.makeConsumer(ConsumerConfiguration(
            group: "tollgate-prices-\(UUID().uuidString.prefix(8))", sessionTimeout: .seconds(6),
            heartbeatInterval: .seconds(1)))
        try await consumer.subscribe([topic])
        try await consumer.seek(.beginning, partitions: nil)
        let progress = ProgressReporter(label: "reading \(topic)", total: total, enabled: !json)
        var rows: [String: UnpricedRow] = [:]
        var read = 0
        var next: [Int: Int64] = [:]
        let deadline = ContinuousClock.now.advanced(by: .seconds(300))
        while marks.contains(where: { (next[$0.key] ?? $0.value.low) < $0.value.high }) && ContinuousClock.now < deadline {
            let batch = try await consumer.poll(maxMessages: 5_000, timeout: .milliseconds(500))
            for message in batch {
                next[message.partition] = message.offset + 1
                read += 1
                // Priced usage needs no decoding: the header says so.
                if message.header("tollgate-priced") == Data("true".utf8) { continue }
                guard let value = message.value,
                      let usage = try? EventCoding.decode(UsageData.self, from: value).data, !usage.priced else { continue }
                let model = usage.response.servedModel.isEmpty ? usage.response.requestedModel : usage.response.servedModel
                let reason = usage.unpricedReason ?? "unknown"
                let key = "\(usage.response.provider.rawValue)|\(model)|\(reason)"
                let seen = usage.response.timings.receivedAt
                if var row = rows[key] {
                    row.responses += 1
                    row.firstSeen = min(row.firstSeen, seen)
                    row.lastSeen = max(row.lastSeen, seen)
                    rows[key] = row
                } else {
                    rows[key] = UnpricedRow(provider: usage.response.provider.rawValue, model: model, reason: reason,
                                            responses: 1, firstSeen: seen, lastSeen: seen)
                }
            }
            progress.update(read)
        }
        progress.finish()
        try await consumer.close()
        let sorted = rows.values.sorted { ($0.responses, $0.model) > ($1.responses, $1.model) }
        if json {
            try Output.json(sorted)
            return
        }
        if sorted.isEmpty {
            Output.line("every one of \(read) usage events was priced")
            return
        }
        var table = TextTable(columns: ["provider", "model", "reason", "responses", "first seen", "last seen"],
                              rightAligned: [3])
        for row in sorted {
            table.append([row.provider, row.model, row.reason, "\(row.responses)", EventTime.format(row.firstSeen),
                          EventTime.format(row.lastSeen)])
        }
        Output.line(table.render())
        Output.line("Price them in a pricing file (--pricing, schemas/catalog.schema.json) and restart the cost service.")
    }
}

extension Provider: ArgumentParser.ExpressibleByArgument {}

/// Lets `Output.json` print one detail or a list.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// A failure worth one clear line (no usage text).
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
