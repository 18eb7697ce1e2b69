import Foundation
import HTTPTypes
import Hummingbird
import TollgateBudget
import TollgateEvents
import TollgateProviders

/// Budget enforcement in the proxy: refusals in each provider's quota-error shape with
/// `x-tollgate-budget-*` headers, and the model rewrite of a downgrade.
extension Proxy {
    static let budgetIDHeader = HTTPField.Name("x-tollgate-budget-id")!
    static let budgetScopeHeader = HTTPField.Name("x-tollgate-budget-scope")!
    static let budgetLimitHeader = HTTPField.Name("x-tollgate-budget-limit-usd")!
    static let budgetSpentHeader = HTTPField.Name("x-tollgate-budget-spent-usd")!
    static let budgetResetHeader = HTTPField.Name("x-tollgate-budget-reset")!
    static let downgradedFromHeader = HTTPField.Name("x-tollgate-downgraded-from")!

    /// The message of a budget refusal: which budget, how much, and when it resets.
    static func budgetMessage(_ refusal: BudgetGuard.Refusal) -> String {
        let reset = refusal.resetsAt.map { " It resets at \(EventTime.format($0))." } ?? " It does not reset (lifetime budget)."
        switch refusal.reason {
        case "no_cheaper_model":
            return "Budget '\(refusal.budgetID)' (\(refusal.scope)) is at its downgrade level and this model has no "
                + "cheaper replacement; the budget blocks it (budget_exceeded).\(reset)"
        default:
            return "Budget '\(refusal.budgetID)' (\(refusal.scope)) has no room for this request: "
                + "\(refusal.spent.formatted(decimals: 4)) of \(refusal.limit.formatted(decimals: 2)) spent "
                + "(budget_exceeded).\(reset)"
        }
    }

    /// Adds the `x-tollgate-budget-*` headers of a refusal to a response.
    static func addBudgetHeaders(_ refusal: BudgetGuard.Refusal, to response: inout Response) {
        response.headers[budgetIDHeader] = refusal.budgetID
        response.headers[budgetScopeHeader] = refusal.scope.description
        response.headers[budgetLimitHeader] = refusal.limit.formatted(decimals: 9).replacingOccurrences(of: "$", with: "")
        response.headers[budgetSpentHeader] = refusal.spent.formatted(decimals: 9).replacingOccurrences(of: "$", with: "")
        if let reset = refusal.resetsAt { response.headers[budgetResetHeader] = EventTime.format(reset) }
        // The OpenAI SDKs read `retry-after`: the budget resets then, not sooner.
        if let reset = refusal.resetsAt {
            response.headers[.retryAfter] = "\(max(1, Int(reset.timeIntervalSinceNow.rounded(.up))))"
        }
    }

    /// A Gemini path with the model segment replaced (`…/models/gemini-2.5-pro:generateContent`).
    static func geminiPath(_ path: String, model: String, replacedBy target: String) -> String {
        guard let range = path.range(of: "/models/" + model + ":") else { return path }
        return path.replacingCharacters(in: range, with: "/models/" + target + ":")
    }
}
