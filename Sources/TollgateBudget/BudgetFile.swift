public import Foundation
public import TollgateEvents
import Yams

/// Budgets kept in a configuration file (YAML or JSON), applied as control events:
///
/// ```yaml
/// budgets:
///   - id: search-monthly
///     scope: team:search
///     limit_usd: "500"
///     period: month              # day, week, month, lifetime (default month)
///     time_zone: Europe/Berlin   # default UTC
///     levels: 50:alert,80:alert,90:downgrade,100:block
///     downgrade: {gpt-4o: gpt-4o-mini}
///     on_no_downgrade: pass      # or block
/// ```
public enum BudgetFile {
    struct Document: Decodable {
        var budgets: [Entry]
    }

    struct Entry: Decodable {
        var id: String
        var scope: String
        var limitUsd: String
        var period: PeriodKind?
        var timeZone: String?
        var levels: String?
        var downgrade: [String: String]?
        var onNoDowngrade: OnNoDowngrade?

        enum CodingKeys: String, CodingKey {
            case id, scope, period, levels, downgrade
            case limitUsd = "limit_usd"
            case timeZone = "time_zone"
            case onNoDowngrade = "on_no_downgrade"
        }
    }

    /// The budgets of a file, validated (every problem of every budget in one error).
    public static func load(_ url: URL, now: Date = Date()) throws -> [BudgetSetData] {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw BudgetSpecError("cannot read the budgets file \(url.path): \(error.localizedDescription)")
        }
        let document: Document
        do {
            document = try YAMLDecoder().decode(Document.self, from: text)
        } catch {
            throw BudgetSpecError("the budgets file \(url.path) is not valid: \(error)")
        }
        var problems: [String] = []
        var budgets: [BudgetSetData] = []
        for entry in document.budgets {
            do {
                let budget = BudgetSetData(
                    budgetID: entry.id, scope: try BudgetSpec.scope(entry.scope), periodKind: entry.period ?? .month,
                    timeZone: entry.timeZone ?? "UTC", limitNanoUSD: try Money.parse(entry.limitUsd),
                    levels: try BudgetSpec.levels(entry.levels ?? "50:alert,80:alert,90:downgrade,100:block"),
                    downgrade: entry.downgrade ?? [:], onNoDowngrade: entry.onNoDowngrade ?? .pass, updatedAt: now)
                problems += BudgetSpec.problems(budget).map { "\(entry.id): \($0)" }
                budgets.append(budget)
            } catch {
                problems.append("\(entry.id): \(error)")
            }
        }
        if Set(budgets.map(\.budgetID)).count != budgets.count { problems.append("two budgets share an id") }
        guard problems.isEmpty else { throw BudgetSpecError("budgets file \(url.path): " + problems.joined(separator: "; ")) }
        return budgets
    }

    /// The budgets of `desired` that are new or differ from `current` (ignoring when they were written):
    /// applying a file twice writes nothing the second time.
    public static func changes(current: [String: BudgetSetData], desired: [BudgetSetData]) -> [BudgetSetData] {
        desired.filter { budget in
            guard var known = current[budget.budgetID] else { return true }
            known.updatedAt = budget.updatedAt
            return known != budget
        }
    }
}
