import Foundation
import Testing
import TollgateEvents

@Suite struct PayloadTests {
    private func example(_ type: String, _ name: String = "full") throws -> Data {
        try #require(EventExamples.all.first { $0.type == type && $0.name == name }).json
    }

    /// The example of `type` with `edit` applied to its JSON.
    private func edited(_ type: String, _ name: String = "full", _ edit: (inout [String: Any]) -> Void) throws -> Data {
        var object = try #require(JSONSerialization.jsonObject(with: example(type, name)) as? [String: Any])
        edit(&object)
        return try JSONSerialization.data(withJSONObject: object)
    }

    @Test func controlEventsDecodeByType() throws {
        var seen: [String] = []
        for example in EventExamples.all where example.type.hasPrefix("tollgate.control.") {
            let event = try AnyControlEvent.decode(from: example.json)
            #expect(event.type == example.type)
            #expect(event.id == (try EventHeader.decode(from: example.json).id))
            #expect(try EventCoding.encode(event) == example.json)
            switch event {
            case .keyCreated(let e): #expect(event.entityKey == "key:" + e.data.keyID)
            case .keyRevoked(let e): #expect(event.entityKey == "key:" + e.data.keyID)
            case .budgetSet(let e): #expect(event.entityKey == "budget:" + e.data.budgetID)
            case .budgetDeleted(let e): #expect(event.entityKey == "budget:" + e.data.budgetID)
            case .routeSet(let e): #expect(event.entityKey == "route:" + e.data.routeID)
            case .routeDeleted(let e): #expect(event.entityKey == "route:" + e.data.routeID)
            case .alertRuleSet(let e): #expect(event.entityKey == "alert_rule:" + e.data.ruleID)
            case .alertRuleDeleted(let e): #expect(event.entityKey == "alert_rule:" + e.data.ruleID)
            }
            seen.append(event.type)
        }
        #expect(Set(seen) == Set(AnyControlEvent.eventTypes))
        #expect(AnyControlEvent.eventTypes.count == 8)
    }

    @Test func controlDecodingRejectsOtherTypes() throws {
        #expect(
            throws: EventDecodingError.unknownEventType(
                found: UsageData.eventType, expectedOneOf: AnyControlEvent.eventTypes)
        ) {
            try AnyControlEvent.decode(from: example(UsageData.eventType))
        }
    }

    @Test func tokenClassesAreDisjointAndNamed() {
        #expect(TokenClass.allCases.map(\.rawValue) == [
            "input", "cached_input_read", "cache_write_5m", "cache_write_1h", "output", "reasoning",
            "audio_input", "audio_output",
        ])
        var usage = TokenUsage()
        for (index, tokenClass) in TokenClass.allCases.enumerated() { usage[tokenClass] = Int64(index + 1) }
        #expect(usage.inputTokens == 1 && usage.audioOutputTokens == 8)
        #expect(usage.totalTokens == 36)
    }

    @Test func tokenUsageJSONKeysAreTheClassesWithTokensSuffix() throws {
        let value = try JSONValue(parsing: EventCoding.encode(TokenUsage.zero))
        guard case .object(let object) = value else { Issue.record("not an object"); return }
        #expect(Set(object.keys) == Set(TokenClass.allCases.map { $0.rawValue + "_tokens" }))
        let cost = try JSONValue(parsing: EventCoding.encode(CostBreakdown.zero))
        guard case .object(let costObject) = cost else { Issue.record("not an object"); return }
        #expect(Set(costObject.keys) == Set(TokenClass.allCases.map(\.rawValue) + ["total"]))
    }

    @Test func costBreakdownTotals() throws {
        let cost = try #require(CostBreakdown(perClass: [.input: Money(nanoUSD: 5), .reasoning: Money(nanoUSD: 7)]))
        #expect(cost.total == Money(nanoUSD: 12))
        #expect(cost[.reasoning] == Money(nanoUSD: 7))
        #expect(cost.isConsistent)
        var broken = cost
        broken.total = Money(nanoUSD: 13)
        #expect(!broken.isConsistent)
        #expect(CostBreakdown(perClass: [.input: Money(nanoUSD: .max), .output: Money(nanoUSD: 1)]) == nil)
    }

    @Test func rejectsNegativeTokenCounts() throws {
        let data = try edited(ResponseData.eventType) { event in
            var data = event["data"] as! [String: Any]
            var usage = data["usage"] as! [String: Any]
            usage["reasoning_tokens"] = -1
            data["usage"] = usage
            event["data"] = data
        }
        #expect(throws: DecodingError.self) { try EventCoding.decode(ResponseData.self, from: data) }
    }

    @Test func rejectsBadKeyHashesAndLongPrefixes() throws {
        for hash in [String(repeating: "A", count: 64), String(repeating: "a", count: 63), "tg-live-secret"] {
            let data = try edited(KeyCreatedData.eventType) { event in
                var data = event["data"] as! [String: Any]
                data["key_sha256"] = hash
                event["data"] = data
            }
            #expect(throws: DecodingError.self) { try EventCoding.decode(KeyCreatedData.self, from: data) }
        }
        let data = try edited(KeyCreatedData.eventType) { event in
            var data = event["data"] as! [String: Any]
            data["key_prefix"] = "tg-live-0123456789abcdef"
            event["data"] = data
        }
        #expect(throws: DecodingError.self) { try EventCoding.decode(KeyCreatedData.self, from: data) }
        #expect(KeyCreatedData.isValidSHA256(String(repeating: "0f", count: 32)))
    }

    @Test func scopesHaveTheirShape() throws {
        #expect(Scope.global.description == "global:*")
        #expect(Scope.tag(name: "feature", value: "a=b").tag! == ("feature", "a=b"))
        #expect(Scope.team("search").isValid && Scope.global.isValid)
        let decoder = EventCoding.makeDecoder()
        for bad in [#"{"kind":"global","id":"x"}"#, #"{"kind":"tag","id":"novalue"}"#, #"{"kind":"tag","id":"=v"}"#,
                    #"{"kind":"team","id":""}"#, #"{"kind":"planet","id":"x"}"#] {
            #expect(throws: DecodingError.self, "\(bad)") { try decoder.decode(Scope.self, from: Data(bad.utf8)) }
        }
        #expect(try decoder.decode(Scope.self, from: Data(#"{"kind":"tag","id":"env="}"#.utf8)) == .tag(name: "env", value: ""))
    }

    @Test func lifetimePeriodsHaveNoEnd() throws {
        let decoder = EventCoding.makeDecoder()
        let lifetimeWithEnd = #"{"kind":"lifetime","time_zone":"UTC","start":"2026-01-01T00:00:00Z","end":"2027-01-01T00:00:00Z"}"#
        let monthWithoutEnd = #"{"kind":"month","time_zone":"UTC","start":"2026-01-01T00:00:00Z"}"#
        #expect(throws: DecodingError.self) { try decoder.decode(BudgetPeriod.self, from: Data(lifetimeWithEnd.utf8)) }
        #expect(throws: DecodingError.self) { try decoder.decode(BudgetPeriod.self, from: Data(monthWithoutEnd.utf8)) }
    }

    @Test func rangesAreChecked() throws {
        let decoder = EventCoding.makeDecoder()
        for percent in [0, 1001] {
            #expect(throws: DecodingError.self) {
                try decoder.decode(BudgetLevel.self, from: Data(#"{"percent":\#(percent),"action":"alert"}"#.utf8))
            }
        }
        let data = try edited(RouteSetData.eventType) { event in
            var data = event["data"] as! [String: Any]
            data["quality_threshold"] = 101
            event["data"] = data
        }
        #expect(throws: DecodingError.self) { try EventCoding.decode(RouteSetData.self, from: data) }
    }

    @Test func alertValuesAreBareJSON() throws {
        let observed: [String: AlertValue] = ["a": "x", "b": 42, "c": true, "d": 0, "e": false]
        let data = try EventCoding.encode(observed)
        #expect(String(decoding: data, as: UTF8.self) == #"{"a":"x","b":42,"c":true,"d":0,"e":false}"#)
        #expect(try EventCoding.makeDecoder().decode([String: AlertValue].self, from: data) == observed)
        #expect(throws: DecodingError.self) {
            try EventCoding.makeDecoder().decode(AlertValue.self, from: Data("1.5".utf8))
        }
    }

    @Test func alertIDsAreDeterministic() {
        let start = date("2026-11-01T00:00:00Z")
        let a = AlertData.makeAlertID(ruleID: "r", scope: .team("t"), periodStart: start, levelPercent: 80)
        #expect(a == "r|team:t|2026-11-01T00:00:00.000Z|80")
        #expect(a == AlertData.makeAlertID(ruleID: "r", scope: .team("t"), periodStart: start, levelPercent: 80))
        #expect(AlertData.makeAlertID(ruleID: "r", scope: .global, periodStart: nil, levelPercent: nil) == "r|global:*|-|-")
    }

    @Test func watermarkPartitionsAreStringKeys() throws {
        let watermark = BudgetDecisionData.Watermark(usageOffsets: [0: 5, 12: 7], asOf: date("2026-11-01T00:00:00Z"))
        let data = try EventCoding.encode(watermark)
        #expect(String(decoding: data, as: UTF8.self) == #"{"as_of":"2026-11-01T00:00:00.000Z","usage_offsets":{"0":5,"12":7}}"#)
        #expect(try EventCoding.makeDecoder().decode(BudgetDecisionData.Watermark.self, from: data) == watermark)
    }
}
