import Foundation
public import Hummingbird
import TollgateAlerts
import TollgateEvents

/// Alert rules in the admin API (same authentication and error shape as the keys and budgets):
///
/// - `PUT /admin/alert-rules/{rule_id}` with an ``AlertRuleEntry`` as JSON, such as
///   `{"kind": "spend_spike", "scope": "team:*", "factor": "4", "min_usd": "25"}` or, for a built-in
///   rule, `{"enabled": false}` → 200 with the rule as ``AlertRuleView``. The id is the path's (a body
///   `id` must match it). 400 `invalid_request` names the field.
/// - `GET /admin/alert-rules` → `{"rules": [...]}`: every rule in force, the built-in ones included, each
///   with its `source` (`built-in` or `control`).
/// - `DELETE /admin/alert-rules/{rule_id}` → 200 `{"deleted": id, "restored"?: built-in rule}`; deleting a
///   rule that replaced a built-in one brings that back. 404 for an id without a control rule.
public enum AdminAlertRoutes {
    public static func add<Context: RequestContext>(to router: Router<Context>, adminKey: String?,
                                                    control: ControlPlane, writer: ControlWriter) {
        let group = router.group("/admin")
        group.put("/alert-rules/{id}") { request, context in
            if let refusal = AdminRoutes.authorize(request, adminKey: adminKey) { return refusal }
            let id = context.parameters.get("id") ?? ""
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: 1 << 20) } catch {
                return AdminRoutes.failure(413, "request_too_large", "The request body is over 1 MiB.")
            }
            var entry: AlertRuleEntry
            do {
                // The entry's keys are snake_case already: no key conversion.
                entry = try JSONDecoder().decode(AlertRuleEntry.self, from: Data(buffer: body))
            } catch {
                return AdminRoutes.failure(400, "invalid_request",
                                           "Body must be a JSON alert rule: \(AlertRuleEntry.message(for: error))")
            }
            if let bodyID = entry.id, bodyID != id {
                return AdminRoutes.failure(400, "invalid_request", "id \"\(bodyID)\" in the body differs from the path's \"\(id)\"")
            }
            entry.id = id
            let data: AlertRuleSetData
            do { data = try entry.data(updatedAt: Date()) } catch {
                return AdminRoutes.failure(400, "invalid_request", "\(error)")
            }
            do {
                let event = try await writer.write(data)
                control.apply([event])
            } catch {
                return AdminRoutes.failure(503, "log_unavailable", "The alert rule could not be stored: \(error)")
            }
            return AdminRoutes.json(200, AlertRuleView(AlertRule(data), source: .control))
        }
        group.get("/alert-rules") { request, _ in
            if let refusal = AdminRoutes.authorize(request, adminKey: adminKey) { return refusal }
            return AdminRoutes.json(200, ["rules": AlertRuleView.effective(overrides: control.alertRules)])
        }
        group.delete("/alert-rules/{id}") { request, context in
            if let refusal = AdminRoutes.authorize(request, adminKey: adminKey) { return refusal }
            let id = context.parameters.get("id") ?? ""
            guard control.alertRules[id] != nil else {
                let hint = AlertRule.builtInIDs.contains(id)
                    ? " It is a built-in rule: to switch it off, PUT {\"enabled\": false}." : ""
                return AdminRoutes.failure(404, "not_found", "No alert rule with id '\(id)' is set.\(hint)")
            }
            do {
                let event = try await writer.write(AlertRuleDeletedData(ruleID: id, deletedAt: Date()))
                control.apply([event])
            } catch {
                return AdminRoutes.failure(503, "log_unavailable", "The deletion could not be stored: \(error)")
            }
            let restored = AlertRule.builtIn.first { $0.ruleID == id }.map { AlertRuleView(AlertRule($0), source: .builtIn) }
            return AdminRoutes.json(200, Deleted(deleted: id, restored: restored))
        }
    }

    struct Deleted: Encodable {
        var deleted: String
        /// The built-in rule back in force, if the deleted rule replaced one.
        var restored: AlertRuleView?
    }
}
