public import Foundation
public import Hummingbird
import TollgateBudget
import TollgateEvents

/// Budgets in the admin API (same authentication and error shape as the keys):
///
/// - `PUT /admin/budgets/{budget_id}` `{"scope": "team:search", "limit_usd": "500", "period": "month",
///   "time_zone"?: "UTC", "levels"?: "50:alert,80:alert,90:downgrade,100:block",
///   "downgrade"?: {"gpt-4o": "gpt-4o-mini"}, "on_no_downgrade"?: "pass"}` → 200 with the budget.
/// - `GET /admin/budgets` → `{"budgets": [...]}` with each budget's spend and state this period, as this
///   ingress knows them (latest decision plus its own ledger).
/// - `DELETE /admin/budgets/{budget_id}` → 200; 404 for an unknown budget.
public enum AdminBudgetRoutes {
    public static func add<Context: RequestContext>(to router: Router<Context>, adminKey: String?,
                                                    budgets: BudgetPlane, control: ControlPlane, writer: ControlWriter) {
        let group = router.group("/admin")
        group.put("/budgets/{id}") { request, context in
            if let refusal = AdminRoutes.authorize(request, adminKey: adminKey) { return refusal }
            let id = context.parameters.get("id") ?? ""
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: 1 << 20) } catch {
                return AdminRoutes.failure(413, "request_too_large", "The request body is over 1 MiB.")
            }
            let input: SetBudget
            do {
                input = try JSONDecoder.admin.decode(SetBudget.self, from: Data(buffer: body))
            } catch {
                return AdminRoutes.failure(400, "invalid_request", "Body must be JSON with scope and limit_usd: \(error)")
            }
            let data: BudgetSetData
            do {
                data = BudgetSetData(
                    budgetID: id, scope: try BudgetSpec.scope(input.scope), periodKind: input.period ?? .month,
                    timeZone: input.timeZone ?? "UTC", limitNanoUSD: try Money.parse(input.limitUsd),
                    levels: try BudgetSpec.levels(input.levels ?? "50:alert,80:alert,90:downgrade,100:block"),
                    downgrade: input.downgrade ?? [:], onNoDowngrade: input.onNoDowngrade ?? .pass, updatedAt: Date())
            } catch {
                return AdminRoutes.failure(400, "invalid_request", "\(error)")
            }
            let problems = BudgetSpec.problems(data)
            guard problems.isEmpty else {
                return AdminRoutes.failure(400, "invalid_request", problems.joined(separator: "; "))
            }
            do {
                let event = try await writer.write(data)
                control.apply([event])
            } catch {
                return AdminRoutes.failure(503, "log_unavailable", "The budget could not be stored: \(error)")
            }
            return AdminRoutes.json(200, BudgetView(data, guardian: budgets.snapshot))
        }
        group.get("/budgets") { request, _ in
            if let refusal = AdminRoutes.authorize(request, adminKey: adminKey) { return refusal }
            let guardian = budgets.snapshot
            return AdminRoutes.json(200, ["budgets": guardian.budgets.values.sorted { $0.budgetID < $1.budgetID }
                .map { BudgetView($0, guardian: guardian) }])
        }
        group.delete("/budgets/{id}") { request, context in
            if let refusal = AdminRoutes.authorize(request, adminKey: adminKey) { return refusal }
            let id = context.parameters.get("id") ?? ""
            guard budgets.snapshot.budgets[id] != nil else {
                return AdminRoutes.failure(404, "not_found", "No budget with id '\(id)'.")
            }
            do {
                let event = try await writer.write(BudgetDeletedData(budgetID: id, deletedAt: Date()))
                control.apply([event])
            } catch {
                return AdminRoutes.failure(503, "log_unavailable", "The deletion could not be stored: \(error)")
            }
            return AdminRoutes.json(200, ["deleted": id])
        }
    }

    struct SetBudget: Decodable {
        var scope: String
        var limitUsd: String
        var period: PeriodKind?
        var timeZone: String?
        var levels: String?
        var downgrade: [String: String]?
        var onNoDowngrade: OnNoDowngrade?
    }
}

/// A budget as the admin API shows it.
public struct BudgetView: Encodable, Sendable {
    public var budgetID: String
    public var scope: String
    public var period: String
    public var timeZone: String
    public var limitNanoUsd: Int64
    public var levels: [String]
    public var downgrade: [String: String]
    public var onNoDowngrade: String
    /// Spend this period per the latest decision, and this ingress's reservations and recent costs on top.
    public var decidedSpentNanoUsd: Int64
    public var localSpentNanoUsd: Int64
    public var state: String?
    public var decidedAt: Date?

    init(_ data: BudgetSetData, guardian: BudgetGuard) {
        let now = Date()
        budgetID = data.budgetID
        scope = data.scope.description
        period = data.periodKind.rawValue
        timeZone = data.timeZone
        limitNanoUsd = data.limitNanoUSD.nanoUSD
        levels = data.levels.map { "\($0.percent):\($0.action.rawValue)" }
        downgrade = data.downgrade
        onNoDowngrade = data.onNoDowngrade.rawValue
        decidedSpentNanoUsd = guardian.decidedSpend(data, now: now)
        localSpentNanoUsd = guardian.localSpend(data, now: now)
        let decision = guardian.decisions[data.budgetID]
        state = decision?.state.rawValue
        decidedAt = decision?.decidedAt
    }
}
