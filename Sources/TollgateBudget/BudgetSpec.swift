public import Foundation
public import TollgateEvents

/// Budget definitions written by people (the CLI, the admin API): parsing and validation.
public enum BudgetSpec {
    /// `global`, `key:<id>`, `project:<id>`, `team:<id>`, `customer:<id>` or `tag:<name>=<value>`.
    public static func scope(_ text: String) throws -> Scope {
        if text == "global" || text == "*" { return .global }
        guard let colon = text.firstIndex(of: ":") else { throw BudgetSpecError("scope '\(text)' is not kind:id") }
        let kind = String(text[..<colon])
        let id = String(text[text.index(after: colon)...])
        guard !id.isEmpty else { throw BudgetSpecError("scope '\(text)' has an empty id") }
        switch kind {
        case "key": return .key(id)
        case "project": return .project(id)
        case "team": return .team(id)
        case "customer": return .customer(id)
        case "tag":
            let parts = id.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else { throw BudgetSpecError("a tag scope is tag:name=value") }
            return .tag(name: String(parts[0]), value: String(parts[1]))
        default:
            throw BudgetSpecError("scope kind '\(kind)' is not one of global, key, project, team, customer, tag")
        }
    }

    /// `50:alert,90:downgrade,100:block`.
    public static func levels(_ text: String) throws -> [BudgetLevel] {
        try text.split(separator: ",").map { item in
            let parts = item.split(separator: ":")
            guard parts.count == 2, let percent = Int(parts[0].trimmingCharacters(in: .whitespaces)),
                  let action = BudgetLevel.Action(rawValue: parts[1].trimmingCharacters(in: .whitespaces)) else {
                throw BudgetSpecError("level '\(item)' is not percent:alert|downgrade|block")
            }
            return BudgetLevel(percent: percent, action: action)
        }
    }

    /// `gpt-4o=gpt-4o-mini,claude-opus-*=claude-sonnet-*`.
    public static func downgrade(_ text: String) throws -> [String: String] {
        var map: [String: String] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw BudgetSpecError("downgrade '\(item)' is not model=cheaper-model")
            }
            map[parts[0]] = parts[1]
        }
        return map
    }

    /// Every problem of a definition (empty when it is usable).
    public static func problems(_ budget: BudgetSetData) -> [String] {
        var problems: [String] = []
        let idCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.:"))
        if budget.budgetID.isEmpty || budget.budgetID.unicodeScalars.contains(where: { !idCharacters.contains($0) }) {
            problems.append("budget id must be letters, digits and - _ . :")
        }
        if budget.limitNanoUSD.nanoUSD <= 0 { problems.append("the limit must be above $0") }
        if TimeZone(identifier: budget.timeZone) == nil { problems.append("unknown time zone '\(budget.timeZone)'") }
        if budget.levels.isEmpty { problems.append("a budget needs at least one level") }
        for level in budget.levels where !BudgetLevel.percentRange.contains(level.percent) {
            problems.append("level \(level.percent) % is outside 1…1000")
        }
        if Set(budget.levels.map(\.percent)).count != budget.levels.count { problems.append("two levels share a percent") }
        return problems
    }
}

public struct BudgetSpecError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
