import ArgumentParser
import Foundation
import Yams

/// `--config FILE` (or `TOLLGATE_CONFIG`, for the service commands): a service's options in one YAML (or JSON) file, documented by
/// `schemas/service-config.schema.json`.
///
/// Keys are the command's long options in snake_case (`data_dir`, `brokers`, `port`, `log_format`,
/// `alerts_file`, …); values are strings, numbers, booleans (flags) or lists (repeatable options such as
/// `kafka_property`). Precedence: the command line, then the environment, then the file, then the
/// defaults. The environment variable of a key is the one its option already reads
/// (`TOLLGATE_KAFKA_BROKERS` for `brokers`, `TOLLGATE_LOG_LEVEL` for `log_level`, …), else
/// `TOLLGATE_<KEY>` (`TOLLGATE_PORT`, `TOLLGATE_DATA_DIR`). A key the command does not have is an error
/// naming the key and the file.
struct ConfigFile {
    /// Keys whose options read an environment variable of another name.
    static let environmentNames: [String: String] = [
        "brokers": "TOLLGATE_KAFKA_BROKERS", "pricing": "TOLLGATE_PRICING_FILE", "budgets": "TOLLGATE_BUDGETS_FILE",
        "replicas": "TOLLGATE_INGRESS_REPLICAS",
    ]

    /// The commands `TOLLGATE_CONFIG` applies to (`alerts` only as the service: `alerts` or `alerts run`).
    static let serviceCommands: Set<String> = ["serve", "ingress", "cost", "budget", "alerts", "projector", "query"]

    static func environmentName(_ key: String) -> String {
        environmentNames[key] ?? "TOLLGATE_" + key.uppercased()
    }

    let path: String
    /// The flags the file (or the environment over it) adds, in the file's key order.
    let keys: [String]

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// `arguments` with the file's options added after the subcommand (before the command line's own), and
    /// `--config` removed; the file, or `nil` when there is none.
    static func expand(_ arguments: [String], environment: [String: String]) throws -> ([String], ConfigFile?) {
        var arguments = arguments
        // TOLLGATE_CONFIG applies to the service commands only: a one-off command run beside a service (keys,
        // budgets, usage) in the same environment must not take the service's file.
        let names = arguments.prefix { !$0.hasPrefix("-") }
        let service = names.first.map { serviceCommands.contains($0) && !(names.first == "alerts" && names.count > 1
                                                                         && names.dropFirst().first != "run") } ?? false
        var path = service ? environment["TOLLGATE_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } : nil
        if let index = arguments.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) {
            if arguments[index] == "--config" {
                guard index + 1 < arguments.count else { throw Failure(description: "--config needs a file") }
                path = arguments[index + 1]
                arguments.removeSubrange(index...(index + 1))
            } else {
                path = String(arguments[index].dropFirst("--config=".count))
                arguments.remove(at: index)
            }
        }
        guard let path else { return (arguments, nil) }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Failure(description: "cannot read the configuration file \(path): \(error.localizedDescription)")
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw Failure(description: "the configuration file \(path) is not valid YAML: \(error)")
        }
        guard let mapping = node?.mapping else {
            throw Failure(description: "the configuration file \(path) must be a mapping of option names to values")
        }
        let given = Set(arguments.filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=").first ?? "") })
        var added: [String] = []
        var keys: [String] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.string, key.range(of: #"^[a-z][a-z0-9_]*$"#, options: .regularExpression) != nil else {
                throw Failure(description: "configuration file \(path): bad key '\(keyNode.string ?? "?")' "
                              + "(option names in snake_case, such as data_dir)")
            }
            guard key != "config" else {
                throw Failure(description: "configuration file \(path): 'config' cannot be set in a configuration file")
            }
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            keys.append(key)
            if given.contains(flag) { continue }  // the command line wins
            if let overridden = environment[environmentName(key)], !overridden.isEmpty, value.sequence == nil {
                added += [flag, overridden]
                continue
            }
            switch value {
            case .scalar(let scalar):
                if let bool = Bool.construct(from: scalar), scalar.style == .plain,
                   ["true", "false", "yes", "no", "on", "off"].contains(scalar.string.lowercased()) {
                    if bool { added.append(flag) }
                } else {
                    added += [flag, scalar.string]
                }
            case .sequence(let items):
                for item in items {
                    guard let text = item.scalar?.string else {
                        throw Failure(description: "configuration file \(path): \(key) must be a list of values")
                    }
                    added += [flag, text]
                }
            default:
                throw Failure(description: "configuration file \(path): \(key) must be a value or a list of values")
            }
        }
        // After the subcommand's name(s): the leading arguments that are not options.
        let insertAt = arguments.firstIndex(where: { $0.hasPrefix("-") }) ?? arguments.count
        arguments.insert(contentsOf: added, at: insertAt)
        return (arguments, ConfigFile(path: path, keys: keys))
    }

    /// An ArgumentParser message about an option the file added, said in the file's terms.
    func explain(_ message: String) -> String? {
        for key in keys {
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            if message.contains("'\(flag)'") || message.contains("\(flag) ") || message.hasSuffix(flag) {
                if message.localizedCaseInsensitiveContains("unknown option") {
                    return "configuration file \(path): unknown key '\(key)' for this command (see --help for its options)"
                }
                return "configuration file \(path): \(key): \(message)"
            }
        }
        return nil
    }
}
