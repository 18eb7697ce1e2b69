import ArgumentParser
import Foundation
import TollgateAlerts
import TollgateApp
import TollgateEvents
import TollgateIngress

/// `tollgate alerts rules`: alert rules as control events (the alerts service acts on them).
struct AlertRulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Set, list and delete alert rules (control events on the log; the built-in rules apply unless replaced).",
        subcommands: [SetRule.self, ListRules.self, DeleteRule.self, ApplyRules.self],
        defaultSubcommand: ListRules.self)

    struct SetRule: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Create or change an alert rule (the whole definition: options left out take their defaults).",
            discussion: """
                Examples:
                  tollgate alerts rules set search-thresholds --kind budget_threshold --scope team:search --levels 25,50,75,90,100
                  tollgate alerts rules set spend-spike-per-key --kind spend_spike --scope 'key:*' --factor 2.5 --min-usd 25
                  tollgate alerts rules set default-latency-spike --disabled
                For a built-in rule id (default-...), --kind and --scope default to the built-in rule's.
                Kinds: \(AlertRuleSetData.ruleKinds.map(\.rawValue).joined(separator: ", ")).
                """)

        @Argument(help: "The rule's id (letters, digits, - _ . :).") var id: String
        @Option(help: "The kind of rule (required unless the id is a built-in rule's).") var kind: String?
        @Option(help: "global, <kind>:* (such as team:* or tag:feature=*), or one scope such as team:search.")
        var scope: String?
        @Option(help: "info, warning or critical (default: the kind's own).") var severity: String?
        @Option(help: "Delivery channel names, comma-separated (default: every channel that accepts the scope).")
        var channels: String?
        @Flag(help: "Set the rule without raising alerts (switches a built-in rule off).") var disabled = false
        @Option(help: "budget_threshold: levels in percent of the limit, comma-separated (default 50,80,100).")
        var levels: String?
        @Option(help: "spend_spike, error_rate_spike, latency_spike: factor over the baseline, such as 3 or 2.5 (default 3; latency 2).")
        var factor: String?
        @Option(help: "spend_spike: least spend in the hour that can alert, in dollars (default 10).") var minUsd: String?
        @Option(help: "spend_spike: hours in the baseline, 1...168 (default 24).") var baselineHours: Int?
        @Option(help: "error_rate_spike, latency_spike: window length in minutes, 1...60 (default 5).") var windowMinutes: Int?
        @Option(help: "error_rate_spike, latency_spike: windows in the baseline, 1...288 (default 12).") var baselineWindows: Int?
        @Option(help: "error_rate_spike, latency_spike: least requests in the window (default 20).") var minRequests: Int?
        @Option(help: "error_rate_spike: least error rate that can alert, in percent, such as 10 or 2.5 (default 10).")
        var errorRatePercent: String?
        @Option(help: "latency_spike: least mean latency that can alert, in milliseconds (default 2000).") var minLatencyMs: Int64?
        @Option(help: "burn_rate: alert when the budget runs out at least this long before its period ends, such as 1h, 30m, 1d (default 1h).")
        var lead: String?
        @Option(help: "burn_rate: forecast once this share of the period has elapsed, in percent (default 10).")
        var minElapsedPercent: String?
        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let data = try definition()
            let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let writer = ControlWriter(log: opened.log, topicPrefix: storage.topicPrefix,
                                       source: "tollgate/cli/\(ProcessInfo.processInfo.hostName)")
            try await writer.write(data)
            let view = AlertRuleView(AlertRule(data), source: .control)
            if json { try Output.json(view) } else { Output.line(AlertRulesCommand.table([view])) }
        }

        /// The rule the options describe; problems name the options.
        func definition(now: Date = Date()) throws -> AlertRuleSetData {
            var levelsPercent: [Int]?
            if let levels {
                let parts = levels.split(separator: ",", omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                let numbers = parts.compactMap { Int($0) }
                guard numbers.count == parts.count else {
                    throw ValidationError("--levels must be whole percentages separated by commas, such as 50,80,100; got \(levels)")
                }
                levelsPercent = numbers
            }
            let entry = AlertRuleEntry(
                id: id, kind: kind, scope: scope, enabled: !disabled, severity: severity,
                channels: channels.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
                levelsPercent: levelsPercent, factor: factor, minUSD: minUsd, baselineHours: baselineHours,
                windowMinutes: windowMinutes, baselineWindows: baselineWindows, minRequests: minRequests,
                errorRatePercent: errorRatePercent, minLatencyMs: minLatencyMs, lead: lead,
                minElapsedPercent: minElapsedPercent)
            do {
                return try entry.data(updatedAt: now)
            } catch let error as AlertRuleEntry.Invalid {
                throw ValidationError(error.problems.map(Self.inOptionTerms).joined(separator: "; "))
            }
        }

        /// A problem with its entry key replaced by the option (`factor must …` → `--factor must …`).
        static func inOptionTerms(_ problem: AlertRuleEntry.Problem) -> String {
            let option = switch problem.field {
            case "id": "the rule id"
            case "levels_percent": "--levels"
            default: "--" + problem.field.replacingOccurrences(of: "_", with: "-")
            }
            if problem.message.hasPrefix(problem.field + " ") {
                return option + problem.message.dropFirst(problem.field.count)
            }
            return "\(option): \(problem.message)"
        }
    }

    struct ListRules: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "Every alert rule in force: the built-in ones (unless replaced) and those set on the control topic.")
        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let views = try await AlertRulesSetup.effective(log: opened.log, topicPrefix: storage.topicPrefix)
            if json { try Output.json(["rules": views]) } else { Output.line(AlertRulesCommand.table(views)) }
        }
    }

    struct DeleteRule: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete",
            abstract: "Delete an alert rule; deleting one that replaced a built-in rule brings the built-in back.")
        @Argument(help: "The rule's id.") var id: String
        @OptionGroup var storage: StorageOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(default: .warning)
            let opened = try await OpenedLog.provisioned(storage: storage, kafka: kafka, logger: logger)
            defer { opened.close() }
            let rules = try await AlertRulesSetup.controlRules(log: opened.log, topicPrefix: storage.topicPrefix)
            let isBuiltIn = AlertRule.builtInIDs.contains(id)
            guard rules[id] != nil else {
                if isBuiltIn {
                    throw CommandFailure("\(id) is a built-in rule that nothing replaces: there is nothing to delete; "
                        + "to switch it off: tollgate alerts rules set \(id) --disabled")
                }
                throw CommandFailure("no alert rule with id '\(id)'")
            }
            let writer = ControlWriter(log: opened.log, topicPrefix: storage.topicPrefix,
                                       source: "tollgate/cli/\(ProcessInfo.processInfo.hostName)")
            try await writer.write(AlertRuleDeletedData(ruleID: id, deletedAt: Date()))
            Output.line("alert rule \(id) deleted" + (isBuiltIn ? "; the built-in rule is in force again" : ""))
        }
    }

    struct ApplyRules: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply",
            abstract: "Apply a rules file (YAML or JSON): write the rules that are new or changed.",
            discussion: """
                rules:
                  - id: search-thresholds
                    kind: budget_threshold
                    scope: team:search
                    levels_percent: [25, 50, 75, 90, 100]
                    channels: [search-email]
                  - id: spend-spike-per-key
                    kind: spend_spike
                    scope: key:*
                    factor: 2.5
                    min_usd: "25"
                  - id: default-estimated-usage
                    enabled: false
                Keys: \(AlertRuleEntry.keys.joined(separator: ", ")). Rules not in the file are left as they are.
                """)
        @Argument(help: "The rules file.") var file: String
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
                written = try await AlertRulesSetup.apply(file: file, log: opened.log, topicPrefix: storage.topicPrefix,
                                                          logger: logger,
                                                          source: "tollgate/cli/\(ProcessInfo.processInfo.hostName)")
            } catch let error as AlertRulesSetupError {
                throw CommandFailure(error.description)
            }
            if json {
                try Output.json(["written": written])
            } else {
                Output.line(written.isEmpty ? "every rule of \(file) is already in force"
                                            : "written: \(written.joined(separator: ", "))")
            }
        }
    }

    static func table(_ views: [AlertRuleView]) -> String {
        var table = TextTable(columns: ["rule", "kind", "scope", "enabled", "severity", "channels", "source", "parameters"])
        for view in views {
            let source = view.replacesBuiltIn ? "control (replaces built-in)" : view.source.rawValue
            table.append([view.id, view.kind, view.scope, view.enabled ? "yes" : "no", view.severity ?? "default",
                          view.channels.isEmpty ? "all" : view.channels.joined(separator: ","), source,
                          view.parameterText.isEmpty ? "-" : view.parameterText])
        }
        return table.render()
    }
}
