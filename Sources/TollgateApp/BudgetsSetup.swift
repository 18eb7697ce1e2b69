public import Foundation
public import Logging
import TollgateBudget
import TollgateEvents
import TollgateIngress
public import TollgateLog

/// Applies a budgets file to the log: writes a control event for each budget that is new or changed.
public enum BudgetsSetup {
    /// Returns the ids of the budgets written (empty when the log already matches the file).
    @discardableResult
    public static func apply(file: String, log: any MessageLog, topicPrefix: String, logger: Logger,
                             source: String = "tollgate/config") async throws -> [String] {
        let desired = try BudgetFile.load(URL(fileURLWithPath: file))
        let writer = ControlWriter(log: log, topicPrefix: topicPrefix, source: source)
        var current: [String: BudgetSetData] = [:]
        for event in try await writer.readAll() {
            switch event {
            case .budgetSet(let set): current[set.data.budgetID] = set.data
            case .budgetDeleted(let deleted): current[deleted.data.budgetID] = nil
            default: continue
            }
        }
        let changed = BudgetFile.changes(current: current, desired: desired)
        for budget in changed { try await writer.write(budget) }
        logger.info("budgets file applied", metadata: [
            "tollgate.file": "\(file)", "tollgate.budgets": "\(desired.count)", "tollgate.written": "\(changed.count)",
        ])
        return changed.map(\.budgetID)
    }
}
