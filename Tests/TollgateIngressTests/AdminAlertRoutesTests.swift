import Foundation
import Testing
import TollgateAlerts
import TollgateEvents
@testable import TollgateIngress

@Suite("Admin alert rules")
struct AdminAlertRoutesTests {
    static let admin = [("authorization", "Bearer admin-test-key"), ("content-type", "application/json")]

    static func put(_ harness: IngressHarness, _ id: String, _ body: String,
                    headers: [(String, String)] = admin) async throws -> IngressHarness.Reply {
        try await harness.call(.PUT, "/admin/alert-rules/\(id)", headers: headers, body: Data(body.utf8))
    }

    static func error(_ reply: IngressHarness.Reply) -> (type: String?, message: String?) {
        let error = reply.json?["error"] as? [String: Any]
        return (error?["type"] as? String, error?["message"] as? String)
    }

    static func rules(_ harness: IngressHarness) async throws -> [[String: Any]] {
        let reply = try await harness.call(.GET, "/admin/alert-rules", headers: [("x-api-key", "admin-test-key")])
        #expect(reply.status == 200)
        return reply.json?["rules"] as? [[String: Any]] ?? []
    }

    @Test("PUT stores a rule as a control event and answers with it; bad bodies get 400 naming the field")
    func put() async throws {
        let harness = try await IngressHarness()
        do {
            let good = try await Self.put(harness, "spend-per-key",
                                          #"{"kind": "spend_spike", "scope": "key:*", "factor": 2.5, "min_usd": "25"}"#)
            #expect(good.status == 200, "\(good.text)")
            #expect(good.json?["source"] as? String == "control")
            #expect((good.json?["parameters"] as? [String: String])?["factor"] == "2.5")
            let stored = try #require(harness.ingress.control.alertRules["spend-per-key"])
            #expect(stored.factorBP == 25_000)
            #expect(stored.minNanoUSD == Money(nanoUSD: 25_000_000_000))
            let events = try await harness.events("tollgate.control")
            #expect(events.contains { String(decoding: $0, as: UTF8.self).contains(#""rule_id":"spend-per-key""#) })

            let misplaced = try await Self.put(harness, "x", #"{"kind": "budget_action", "scope": "global", "factor": "3"}"#)
            #expect(misplaced.status == 400)
            #expect(Self.error(misplaced).type == "invalid_request")
            #expect(Self.error(misplaced).message?.hasPrefix("factor applies only to rules of kind") == true)

            let unknown = try await Self.put(harness, "x", #"{"kind": "spend_spike", "scope": "global", "factor_bp": 30000}"#)
            #expect(unknown.status == 400)
            #expect(Self.error(unknown).message?.contains("factor_bp") == true)

            let wrongType = try await Self.put(harness, "x", #"{"kind": "spend_spike", "scope": "global", "enabled": "yes"}"#)
            #expect(wrongType.status == 400)
            #expect(Self.error(wrongType).message?.contains("enabled") == true)

            let otherID = try await Self.put(harness, "x", #"{"id": "y", "kind": "unpriced_model", "scope": "global"}"#)
            #expect(otherID.status == 400)
            #expect(Self.error(otherID).message?.contains("id \"y\"") == true)

            let notJSON = try await Self.put(harness, "x", "kind: spend_spike")
            #expect(notJSON.status == 400)
            #expect(harness.ingress.control.alertRules["x"] == nil)
        } catch {
            await harness.shutdown()
            throw error
        }
        await harness.shutdown()
    }

    @Test("the alert rule routes need the admin key")
    func unauthorized() async throws {
        let harness = try await IngressHarness()
        do {
            let put = try await Self.put(harness, "x", #"{"kind": "unpriced_model", "scope": "global"}"#,
                                         headers: [("authorization", "Bearer wrong")])
            #expect(put.status == 401)
            #expect(Self.error(put).type == "authentication_error")
            let get = try await harness.call(.GET, "/admin/alert-rules")
            #expect(get.status == 401)
            let delete = try await harness.call(.DELETE, "/admin/alert-rules/default-burn-rate")
            #expect(delete.status == 401)
            #expect(harness.ingress.control.alertRules.isEmpty)
        } catch {
            await harness.shutdown()
            throw error
        }
        await harness.shutdown()
    }

    @Test("GET lists the built-in rules and overrides; DELETE of an override restores the built-in; 404 otherwise")
    func listAndDelete() async throws {
        let harness = try await IngressHarness()
        do {
            let initial = try await Self.rules(harness)
            #expect(initial.compactMap { $0["id"] as? String } == AlertRule.builtIn.map(\.ruleID).sorted())
            #expect(initial.allSatisfy { $0["source"] as? String == "built-in" })

            let off = try await Self.put(harness, "default-latency-spike", #"{"enabled": false}"#)
            #expect(off.status == 200, "\(off.text)")
            let listed = try await Self.rules(harness)
            #expect(listed.count == AlertRule.builtIn.count)
            let latency = try #require(listed.first { $0["id"] as? String == "default-latency-spike" })
            #expect(latency["source"] as? String == "control")
            #expect(latency["enabled"] as? Bool == false)
            #expect(latency["replaces_built_in"] as? Bool == true)
            #expect(latency["kind"] as? String == "latency_spike")

            let deleted = try await harness.call(.DELETE, "/admin/alert-rules/default-latency-spike", headers: Self.admin)
            #expect(deleted.status == 200)
            #expect(deleted.json?["deleted"] as? String == "default-latency-spike")
            #expect((deleted.json?["restored"] as? [String: Any])?["source"] as? String == "built-in")
            let restored = try #require(try await Self.rules(harness).first { $0["id"] as? String == "default-latency-spike" })
            #expect(restored["source"] as? String == "built-in")
            #expect(restored["enabled"] as? Bool == true)

            let again = try await harness.call(.DELETE, "/admin/alert-rules/default-latency-spike", headers: Self.admin)
            #expect(again.status == 404)
            #expect(Self.error(again).type == "not_found")
            #expect(Self.error(again).message?.contains("built-in") == true)
            let unknown = try await harness.call(.DELETE, "/admin/alert-rules/no-such-rule", headers: Self.admin)
            #expect(unknown.status == 404)
        } catch {
            await harness.shutdown()
            throw error
        }
        await harness.shutdown()
    }
}
