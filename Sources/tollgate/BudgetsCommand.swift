public import ArgumentParser
import Foundation
import TollgateApp
import TollgateBudget
import TollgateEvents
import TollgateIngress
import TollgateLog

struct BudgetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "budgets",
        abstract: "Set, list and delete budgets (control events on the log; the budget service and ingress act on them).",
        subcommands: [Status.self, Set.self, List.self, Delete.self, Apply.self],
        defaultSubcommand: Status.self)

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply a budgets file (YAML or JSON): write the budgets that are new or changed.",
            discussion: """
                budgets:
                  - id: search-monthly
                    scope: team:search
                    limit_usd: "500"
                    period: month
                    time_zone: Europe/Berlin
                    levels: 50:alert,80:alert,90:downgrade,100:block
                    downgrade: {gpt-4o: gpt-4o-mini}
                """)
        @Argument(help: "The budgets file.") var file: String
        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let written: [String]
            do {
                written = try await BudgetsSetup.apply(file: file, log: opened.log, topicPrefix: storage.topicPrefix,
                                                       logger: logger,
                                                       source: "tollgate/cli/\(ProcessInfo.processInfo.hostName)")
            } catch let error as BudgetSpecError {
                throw CommandFailure(error.description)
            }
            if json {
                try Output.json(["written": written])
            } else {
                Output.line(written.isEmpty ? "every budget of \(file) is already in force"
                                            : "written: \(written.joined(separator: ", "))")
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or change a budget.",
            discussion: """
                Example: tollgate budgets set search-monthly --scope team:search --limit-usd 500 --period month \
                --levels 50:alert,80:alert,90:downgrade,100:block --downgrade gpt-4o=gpt-4o-mini,claude-opus-*=claude-sonnet-*
                """)

        @Argument(help: "The budget's id.") var id: String
        @Option(help: "global, key:<id>, project:<id>, team:<id>, customer:<id> or tag:<name>=<value>.") var scope: String
        @Option(help: "Limit per period in US dollars, such as 500 or 12.50.") var limitUsd: String
        @Option(help: "day, week, month or lifetime.") var period: PeriodKind = .month
        @Option(help: "IANA time zone of the period boundaries.") var timeZone: String = "UTC"
        @Option(help: "Levels as percent:action, comma-separated; action alert, downgrade or block.")
        var levels: String = "50:alert,80:alert,90:downgrade,100:block"
        @Option(help: "Downgrade map model=cheaper-model, comma-separated (prefix patterns with *); models it does not name use the catalog's default (`tollgate prices MODEL --json`: downgrade_to).")
        var downgrade: String = ""
        @Option(help: "At a downgrade level, for a model without a cheaper one: block or pass.")
        var onNoDowngrade: OnNoDowngrade = .pass
        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let limit: Money
            do { limit = try Money.parse(limitUsd) } catch { throw ValidationError("--limit-usd: \(error)") }
            let data: BudgetSetData
            do {
                data = BudgetSetData(budgetID: id, scope: try BudgetSpec.scope(scope), periodKind: period,
                                     timeZone: timeZone, limitNanoUSD: limit, levels: try BudgetSpec.levels(levels),
                                     downgrade: try BudgetSpec.downgrade(downgrade), onNoDowngrade: onNoDowngrade,
                                     updatedAt: Date())
            } catch let error as BudgetSpecError {
                throw ValidationError(error.description)
            }
            let problems = BudgetSpec.problems(data)
            guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
            let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let writer = ControlWriter(log: opened.log, topicPrefix: storage.topicPrefix,
                                       source: "tollgate/cli/\(ProcessInfo.processInfo.hostName)")
            try await writer.write(data)
            let row = Row(data, decision: nil)
            if json { try Output.json(row) } else { Output.line(BudgetsCommand.table([row])) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Budgets with their spend and state in the current period.")
        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let state = try await BudgetService.restore(log: opened.log, topicPrefix: storage.topicPrefix)
            let rows = state.budgets.values.sorted { $0.budgetID < $1.budgetID }.map { Row($0, decision: state.decisions[$0.budgetID]) }
            if json { try Output.json(rows) } else { Output.line(BudgetsCommand.table(rows)) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a budget.")
        @Argument(help: "The budget's id.") var id: String
        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let state = try await BudgetService.restore(log: opened.log, topicPrefix: storage.topicPrefix)
            guard state.budgets[id] != nil else { throw CommandFailure("no budget with id '\(id)'") }
            let writer = ControlWriter(log: opened.log, topicPrefix: storage.topicPrefix,
                                       source: "tollgate/cli/\(ProcessInfo.processInfo.hostName)")
            try await writer.write(BudgetDeletedData(budgetID: id, deletedAt: Date()))
            Output.line("budget \(id) deleted")
        }
    }

    struct Row: Encodable {
        var budgetID: String
        var scope: String
        var period: String
        var timeZone: String
        var limitNanoUsd: Int64
        var levels: [String]
        var downgrade: [String: String]
        var onNoDowngrade: String
        var state: String?
        var spentNanoUsd: Int64?
        var periodEnd: Date?

        init(_ data: BudgetSetData, decision: BudgetDecisionData?) {
            budgetID = data.budgetID
            scope = data.scope.description
            period = data.periodKind.rawValue
            timeZone = data.timeZone
            limitNanoUsd = data.limitNanoUSD.nanoUSD
            levels = data.levels.map { "\($0.percent):\($0.action.rawValue)" }
            downgrade = data.downgrade
            onNoDowngrade = data.onNoDowngrade.rawValue
            let current = decision.flatMap { decision in (decision.period.end.map { $0 > Date() } ?? true) ? decision : nil }
            state = current?.state.rawValue ?? (decision == nil ? nil : "ok")
            spentNanoUsd = current?.spentNanoUSD.nanoUSD ?? (decision == nil ? nil : 0)
            periodEnd = current?.period.end
        }
    }

    static func table(_ rows: [Row]) -> String {
        var table = TextTable(columns: ["budget", "scope", "period", "limit", "spent", "used", "state", "levels"],
                              rightAligned: [3, 4, 5])
        for row in rows {
            let used = row.spentNanoUsd.map { "\($0 * 100 / max(1, row.limitNanoUsd)) %" } ?? "-"
            table.append([row.budgetID, row.scope, "\(row.period) (\(row.timeZone))",
                          Money(nanoUSD: row.limitNanoUsd).formatted(decimals: 2),
                          row.spentNanoUsd.map { Money(nanoUSD: $0).formatted(decimals: 4) } ?? "-", used,
                          row.state ?? "no decision yet", row.levels.joined(separator: ",")])
        }
        return table.render()
    }
}

extension PeriodKind: ArgumentParser.ExpressibleByArgument {}
extension OnNoDowngrade: ArgumentParser.ExpressibleByArgument {}
