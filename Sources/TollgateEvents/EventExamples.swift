public import Foundation

/// One encoded example event.
public struct EventExample: Sendable, Hashable {
    /// The CloudEvents `type`.
    public let type: String
    /// A short name for the example (`"full"`, `"minimal"`, `"unpriced"`, …).
    public let name: String
    /// The encoded event, exactly as ``EventCoding/encode(_:)`` writes it.
    public let json: Data

    /// Creates an example.
    public init(type: String, name: String, json: Data) {
        self.type = type
        self.name = name
        self.json = json
    }
}

/// Example events of every type, built from Swift values.
///
/// For every type in ``EventRegistry`` there is a `"full"` example with every optional field set
/// (including the envelope's `subject`) and a `"minimal"` one with none set; usage events also have
/// an `"unpriced"` one, and alert rules one per group of kind-specific parameters (`"threshold"`,
/// `"burn_rate"`, `"spend_spike"`, `"latency_spike"`), which no single rule can carry together. Because they are encoded from the Swift types, validating them against the
/// JSON Schemas (`tollgate events examples --json`, checked by `Tests/python/test_schemas.py`)
/// proves that the schemas and the Swift types describe the same JSON.
///
/// ```swift
/// FileHandle.standardOutput.write(EventExamples.jsonLines())
/// ```
public enum EventExamples {
    /// Every example, grouped by type in ``EventRegistry`` order.
    public static let all: [EventExample] = build()

    /// The examples as JSON lines: one `{"event": {...}, "name": "...", "type": "..."}` object per
    /// line, each line ending in `\n`.
    public static func jsonLines() -> Data {
        var output = Data()
        for example in all {
            output.append(Data("{\"event\":".utf8))
            output.append(example.json)
            output.append(Data(",\"name\":\(quoted(example.name)),\"type\":\(quoted(example.type))}\n".utf8))
        }
        return output
    }

    private static func quoted(_ text: String) -> String {
        // Encoding a String cannot fail.
        let data = (try? EventCoding.encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    private static func time(_ text: String) -> Date {
        guard let date = EventTime.parse(text) else { preconditionFailure("bad example time \(text)") }
        return date
    }

    private static func example<P: EventPayload>(_ name: String, _ event: CloudEvent<P>) -> EventExample {
        do {
            return EventExample(type: event.type, name: name, json: try EventCoding.encode(event))
        } catch {
            preconditionFailure("cannot encode example \(P.eventType) \(name): \(error)")
        }
    }

    // MARK: Values

    private static let sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

    private static var fullResponse: ResponseData {
        ResponseData(
            requestID: "req_01JDQ8Z4N6", keyID: "key_7Hq2", team: "search", project: "answers",
            customer: "acme", tags: ["feature": "summarize", "env": "prod"], provider: .openai,
            endpoint: "/v1/chat/completions", requestedModel: "auto", servedModel: "gpt-4o-mini-2024-07-18",
            stream: true, status: 200, outcome: .clientCancelled, errorType: "client_disconnected",
            serviceTier: "default",
            timings: .init(
                receivedAt: time("2026-11-29T08:00:00.123Z"),
                upstreamSentAt: time("2026-11-29T08:00:00.131Z"), firstByteMs: 412, durationMs: 2310,
                upstreamMs: 2295),
            usage: TokenUsage(
                inputTokens: 1200, cachedInputReadTokens: 2048, cacheWrite5mTokens: 512,
                cacheWrite1hTokens: 256, outputTokens: 300, reasoningTokens: 128,
                audioInputTokens: 40, audioOutputTokens: 20),
            usageSource: .estimated,
            routing: .init(
                policy: "auto", reason: "budget downgrade: team:search at 92%",
                downgradedFrom: "gpt-4o"))
    }

    private static var minimalResponse: ResponseData {
        ResponseData(
            requestID: "req_01JDQ8Z9XC", keyID: "key_9Lm4", team: "billing", project: "invoices",
            provider: .anthropic, endpoint: "/v1/messages", requestedModel: "claude-sonnet-4-5",
            servedModel: "claude-sonnet-4-5-20250929", stream: false, status: 200, outcome: .success,
            timings: .init(receivedAt: time("2026-11-29T08:01:00.000Z"), durationMs: 1830),
            usage: TokenUsage(inputTokens: 850, outputTokens: 210), usageSource: .provider)
    }

    private static func build() -> [EventExample] {
        var examples: [EventExample] = []

        // tollgate.request.v1
        examples.append(
            example(
                "full",
                RequestEvent(
                    id: "request:req_01JDQ8Z4N6", source: "tollgate/ingress/host-1",
                    time: time("2026-11-29T08:00:00.125Z"), subject: "search",
                    data: RequestData(
                        requestID: "req_01JDQ8Z4N6", keyID: "key_7Hq2", team: "search",
                        project: "answers", customer: "acme",
                        tags: ["feature": "summarize", "env": "prod"], provider: .openai,
                        endpoint: "/v1/chat/completions", requestedModel: "auto", stream: true,
                        maxOutputTokens: 1024, estimatedInputTokens: 3900,
                        reservedCostNanoUSD: Money(nanoUSD: 1_199_400),
                        receivedAt: time("2026-11-29T08:00:00.123Z")))))
        examples.append(
            example(
                "minimal",
                RequestEvent(
                    id: "request:req_01JDQ8Z9XC", source: "tollgate/ingress/host-2",
                    time: time("2026-11-29T08:01:00.002Z"),
                    data: RequestData(
                        requestID: "req_01JDQ8Z9XC", keyID: "key_9Lm4", team: "billing",
                        project: "invoices", provider: .anthropic, endpoint: "/v1/messages",
                        requestedModel: "claude-sonnet-4-5", stream: false, estimatedInputTokens: 850,
                        receivedAt: time("2026-11-29T08:01:00.000Z")))))

        // tollgate.response.v1
        examples.append(
            example(
                "full",
                ResponseEvent(
                    id: "response:req_01JDQ8Z4N6", source: "tollgate/ingress/host-1",
                    time: time("2026-11-29T08:00:02.434Z"), subject: "search", data: fullResponse)))
        examples.append(
            example(
                "minimal",
                ResponseEvent(
                    id: "response:req_01JDQ8Z9XC", source: "tollgate/ingress/host-2",
                    time: time("2026-11-29T08:01:01.831Z"), data: minimalResponse)))

        // tollgate.usage.v1
        let fullCost = CostBreakdown(
            input: Money(nanoUSD: 180_000), cachedInputRead: Money(nanoUSD: 153_600),
            cacheWrite5m: Money(nanoUSD: 76_800), cacheWrite1h: Money(nanoUSD: 76_800),
            output: Money(nanoUSD: 180_000), reasoning: Money(nanoUSD: 76_800),
            audioInput: Money(nanoUSD: 4_000), audioOutput: Money(nanoUSD: 8_000),
            total: Money(nanoUSD: 756_000))
        examples.append(
            example(
                "full",
                UsageEvent(
                    id: "usage:req_01JDQ8Z4N6", source: "tollgate/cost/host-1",
                    time: time("2026-11-29T08:00:02.500Z"), subject: "search",
                    data: UsageData(
                        response: fullResponse, costNanoUSD: fullCost, priced: true,
                        catalogVersion: "2026-11-15.1", pricedAt: time("2026-11-29T08:00:02.498Z"),
                        priceEffectiveDate: "2026-11-01"))))
        examples.append(
            example(
                "minimal",
                UsageEvent(
                    id: "usage:req_01JDQ8Z9XC", source: "tollgate/cost/host-1",
                    time: time("2026-11-29T08:01:01.900Z"),
                    data: UsageData(
                        response: minimalResponse,
                        costNanoUSD: CostBreakdown(perClass: [
                            .input: Money(nanoUSD: 2_550_000), .output: Money(nanoUSD: 3_150_000),
                        ]) ?? .zero,
                        priced: true, catalogVersion: "2026-11-15.1",
                        pricedAt: time("2026-11-29T08:01:01.899Z")))))
        var unpricedResponse = minimalResponse
        unpricedResponse.requestID = "req_01JDQ9A0QF"
        unpricedResponse.provider = .gemini
        unpricedResponse.endpoint = "/v1beta/models/gemini-9-ultra:generateContent"
        unpricedResponse.requestedModel = "gemini-9-ultra"
        unpricedResponse.servedModel = "gemini-9-ultra"
        examples.append(
            example(
                "unpriced",
                UsageEvent(
                    id: "usage:req_01JDQ9A0QF", source: "tollgate/cost/host-1",
                    time: time("2026-11-29T08:02:00.000Z"), subject: "billing",
                    data: UsageData(
                        response: unpricedResponse, costNanoUSD: .zero, priced: false,
                        unpricedReason: "model_not_in_catalog", catalogVersion: "2026-11-15.1",
                        pricedAt: time("2026-11-29T08:01:59.990Z")))))

        // tollgate.budget.decision.v1
        examples.append(
            example(
                "full",
                BudgetDecisionEvent(
                    id: "decision:budget_team_search:2026-11:1042", source: "tollgate/budget/host-1",
                    time: time("2026-11-29T08:00:03.000Z"), subject: "team:search",
                    data: BudgetDecisionData(
                        budgetID: "budget_team_search", scope: .team("search"),
                        period: BudgetPeriod(
                            kind: .month, timeZone: "Europe/Berlin",
                            start: time("2026-10-31T23:00:00.000Z"), end: time("2026-11-30T23:00:00.000Z")),
                        state: .downgrade, limitNanoUSD: Money(nanoUSD: 500_000_000_000),
                        spentNanoUSD: Money(nanoUSD: 460_250_000_000),
                        remainingNanoUSD: Money(nanoUSD: 39_750_000_000), usedPercentBP: 9205,
                        action: .downgrade, downgrade: ["gpt-4o": "gpt-4o-mini", "claude-opus-4-1": "claude-sonnet-4-5"],
                        onNoDowngrade: .pass,
                        watermark: .init(usageOffsets: [0: 1042, 1: 998, 7: 12], asOf: time("2026-11-29T08:00:02.990Z")),
                        decidedAt: time("2026-11-29T08:00:02.995Z")))))
        examples.append(
            example(
                "minimal",
                BudgetDecisionEvent(
                    id: "decision:budget_global:lifetime:77", source: "tollgate/budget/host-1",
                    time: time("2026-11-29T09:00:00.000Z"),
                    data: BudgetDecisionData(
                        budgetID: "budget_global", scope: .global,
                        period: BudgetPeriod(
                            kind: .lifetime, timeZone: "UTC", start: time("2026-01-01T00:00:00.000Z"), end: nil),
                        state: .blocked, limitNanoUSD: Money(nanoUSD: 10_000_000_000),
                        spentNanoUSD: Money(nanoUSD: 10_000_420_000),
                        remainingNanoUSD: Money(nanoUSD: -420_000), usedPercentBP: 10000,
                        action: .block, onNoDowngrade: .block,
                        watermark: .init(usageOffsets: [:], asOf: time("2026-11-29T08:59:59.000Z")),
                        decidedAt: time("2026-11-29T08:59:59.500Z")))))

        // tollgate.alert.v1
        let periodStart = time("2026-10-31T23:00:00.000Z")
        let thresholdID = AlertData.makeAlertID(
            ruleID: "budget-threshold", scope: .team("search"), periodStart: periodStart, levelPercent: 80)
        examples.append(
            example(
                "full",
                AlertEvent(
                    id: "alert:" + thresholdID, source: "tollgate/alerts/host-1",
                    time: time("2026-11-29T08:00:03.100Z"), subject: "team:search",
                    data: AlertData(
                        alertID: thresholdID, ruleID: "budget-threshold", kind: .budgetThreshold,
                        severity: .warning, scope: .team("search"), periodStart: periodStart,
                        levelPercent: 80, title: "Team search reached 80% of its monthly budget",
                        message: "Team search has spent $460.25 of $500.00 (92%) this month.",
                        observed: ["spent_nano_usd": 460_250_000_000, "used_percent_bp": 9205,
                                   "limit": "$500.00", "downgrading": true],
                        raisedAt: time("2026-11-29T08:00:03.050Z")))))
        let spikeID = AlertData.makeAlertID(
            ruleID: "error-rate", scope: .tag(name: "feature", value: "summarize"), periodStart: nil,
            levelPercent: nil)
        examples.append(
            example(
                "minimal",
                AlertEvent(
                    id: "alert:" + spikeID, source: "tollgate/alerts/host-1",
                    time: time("2026-11-29T08:10:00.000Z"),
                    data: AlertData(
                        alertID: spikeID, ruleID: "error-rate", kind: .errorRateSpike, severity: .critical,
                        scope: .tag(name: "feature", value: "summarize"),
                        title: "Error rate spike on feature=summarize",
                        message: "31% of requests failed in the last 5 minutes (usually 1%).",
                        raisedAt: time("2026-11-29T08:10:00.000Z")))))

        // tollgate.control.key.created.v1
        examples.append(
            example(
                "full",
                KeyCreatedEvent(
                    id: "key-created:key_7Hq2", source: "tollgate/admin/host-1",
                    time: time("2026-11-01T09:00:00.000Z"), subject: "key:key_7Hq2",
                    data: KeyCreatedData(
                        keyID: "key_7Hq2", keySHA256: sha256, keyPrefix: "tg-AbCd12", name: "search prod",
                        team: "search", project: "answers", customer: "acme",
                        tags: ["env": "prod"], models: ["gpt-4o", "gpt-4o-mini", "auto"],
                        expiresAt: time("2027-11-01T00:00:00.000Z"),
                        createdAt: time("2026-11-01T09:00:00.000Z"), readOnly: false))))
        examples.append(
            example(
                "minimal",
                KeyCreatedEvent(
                    id: "key-created:key_Q0r1", source: "tollgate/admin/host-1",
                    time: time("2026-11-02T10:00:00.000Z"),
                    data: KeyCreatedData(
                        keyID: "key_Q0r1",
                        keySHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
                        keyPrefix: "tg-Zx9Q", team: "platform", project: "dashboards",
                        createdAt: time("2026-11-02T10:00:00.000Z"), readOnly: true))))

        // tollgate.control.key.revoked.v1
        examples.append(
            example(
                "full",
                KeyRevokedEvent(
                    id: "key-revoked:key_7Hq2", source: "tollgate/admin/host-1",
                    time: time("2026-11-28T17:00:00.000Z"), subject: "key:key_7Hq2",
                    data: KeyRevokedData(
                        keyID: "key_7Hq2", revokedAt: time("2026-11-28T17:00:00.000Z"),
                        reason: "leaked in a public repository"))))
        examples.append(
            example(
                "minimal",
                KeyRevokedEvent(
                    id: "key-revoked:key_Q0r1", source: "tollgate/admin/host-1",
                    time: time("2026-11-28T18:00:00.000Z"),
                    data: KeyRevokedData(keyID: "key_Q0r1", revokedAt: time("2026-11-28T18:00:00.000Z")))))

        // tollgate.control.budget.set.v1
        examples.append(
            example(
                "full",
                BudgetSetEvent(
                    id: "budget-set:budget_team_search:3", source: "tollgate/admin/host-1",
                    time: time("2026-11-01T09:05:00.000Z"), subject: "budget:budget_team_search",
                    data: BudgetSetData(
                        budgetID: "budget_team_search", scope: .team("search"), periodKind: .month,
                        timeZone: "Europe/Berlin", limitNanoUSD: Money(nanoUSD: 500_000_000_000),
                        levels: [
                            .init(percent: 50, action: .alert), .init(percent: 80, action: .alert),
                            .init(percent: 90, action: .downgrade), .init(percent: 100, action: .block),
                        ],
                        downgrade: ["gpt-4o": "gpt-4o-mini", "claude-opus-4-1": "claude-sonnet-4-5"],
                        onNoDowngrade: .pass, updatedAt: time("2026-11-01T09:05:00.000Z")))))
        examples.append(
            example(
                "minimal",
                BudgetSetEvent(
                    id: "budget-set:budget_global:1", source: "tollgate/admin/host-1",
                    time: time("2026-01-01T00:00:00.000Z"),
                    data: BudgetSetData(
                        budgetID: "budget_global", scope: .global, periodKind: .lifetime,
                        timeZone: "UTC", limitNanoUSD: Money(nanoUSD: 10_000_000_000),
                        levels: [.init(percent: 100, action: .block)], onNoDowngrade: .block,
                        updatedAt: time("2026-01-01T00:00:00.000Z")))))

        // tollgate.control.budget.deleted.v1
        examples.append(
            example(
                "full",
                BudgetDeletedEvent(
                    id: "budget-deleted:budget_team_search", source: "tollgate/admin/host-1",
                    time: time("2026-12-01T09:00:00.000Z"), subject: "budget:budget_team_search",
                    data: BudgetDeletedData(
                        budgetID: "budget_team_search", deletedAt: time("2026-12-01T09:00:00.000Z")))))
        examples.append(
            example(
                "minimal",
                BudgetDeletedEvent(
                    id: "budget-deleted:budget_global", source: "tollgate/admin/host-1",
                    time: time("2026-12-02T09:00:00.000Z"),
                    data: BudgetDeletedData(
                        budgetID: "budget_global", deletedAt: time("2026-12-02T09:00:00.000Z")))))

        // tollgate.control.route.set.v1
        examples.append(
            example(
                "full",
                RouteSetEvent(
                    id: "route-set:auto:2", source: "tollgate/admin/host-1",
                    time: time("2026-11-20T12:00:00.000Z"), subject: "route:auto",
                    data: RouteSetData(
                        routeID: "auto",
                        candidates: [
                            .init(provider: .openai, model: "gpt-4o-mini"),
                            .init(provider: .anthropic, model: "claude-haiku-4-5"),
                            .init(provider: .gemini, model: "gemini-2.5-flash"),
                        ],
                        qualityThreshold: 80, strategy: .cheapestMeetingThreshold, enabled: true,
                        updatedAt: time("2026-11-20T12:00:00.000Z")))))
        examples.append(
            example(
                "minimal",
                RouteSetEvent(
                    id: "route-set:fast-chat:1", source: "tollgate/admin/host-1",
                    time: time("2026-11-21T12:00:00.000Z"),
                    data: RouteSetData(
                        routeID: "fast-chat", candidates: [.init(provider: .openai, model: "gpt-4o-mini")],
                        qualityThreshold: 0, strategy: .fixed, enabled: false,
                        updatedAt: time("2026-11-21T12:00:00.000Z")))))

        // tollgate.control.route.deleted.v1
        examples.append(
            example(
                "full",
                RouteDeletedEvent(
                    id: "route-deleted:fast-chat", source: "tollgate/admin/host-1",
                    time: time("2026-11-22T12:00:00.000Z"), subject: "route:fast-chat",
                    data: RouteDeletedData(routeID: "fast-chat", deletedAt: time("2026-11-22T12:00:00.000Z")))))
        examples.append(
            example(
                "minimal",
                RouteDeletedEvent(
                    id: "route-deleted:auto", source: "tollgate/admin/host-1",
                    time: time("2026-11-23T12:00:00.000Z"),
                    data: RouteDeletedData(routeID: "auto", deletedAt: time("2026-11-23T12:00:00.000Z")))))

        // tollgate.control.alert_rule.set.v1
        examples.append(
            example(
                "full",
                AlertRuleSetEvent(
                    id: "alert-rule-set:default-error-rate-spike:2", source: "tollgate/admin/host-1",
                    time: time("2026-11-24T12:00:00.000Z"), subject: "alert_rule:default-error-rate-spike",
                    data: AlertRuleSetData(
                        ruleID: "default-error-rate-spike", kind: .errorRateSpike, scope: .global, enabled: true,
                        severity: .critical, channels: ["oncall-slack", "pager-webhook"], factorBP: 40_000,
                        windowMinutes: 5, baselineWindows: 24, minRequests: 50, errorRateBP: 500,
                        updatedAt: time("2026-11-24T12:00:00.000Z")))))
        examples.append(
            example(
                "minimal",
                AlertRuleSetEvent(
                    id: "alert-rule-set:default-estimated-usage:1", source: "tollgate/admin/host-1",
                    time: time("2026-11-24T12:01:00.000Z"),
                    data: AlertRuleSetData(
                        ruleID: "default-estimated-usage", kind: .estimatedUsage, scope: .global, enabled: false,
                        updatedAt: time("2026-11-24T12:01:00.000Z")))))
        examples.append(
            example(
                "threshold",
                AlertRuleSetEvent(
                    id: "alert-rule-set:search-thresholds:1", source: "tollgate/admin/host-1",
                    time: time("2026-11-24T12:02:00.000Z"), subject: "alert_rule:search-thresholds",
                    data: AlertRuleSetData(
                        ruleID: "search-thresholds", kind: .budgetThreshold, scope: .team("search"),
                        channels: ["search-email"], levelsPercent: [25, 50, 75, 90, 100],
                        updatedAt: time("2026-11-24T12:02:00.000Z")))))
        examples.append(
            example(
                "burn_rate",
                AlertRuleSetEvent(
                    id: "alert-rule-set:default-burn-rate:2", source: "tollgate/admin/host-1",
                    time: time("2026-11-24T12:03:00.000Z"), subject: "alert_rule:default-burn-rate",
                    data: AlertRuleSetData(
                        ruleID: "default-burn-rate", kind: .burnRate, scope: .global, severity: .warning,
                        leadMs: 86_400_000, minElapsedBP: 500, updatedAt: time("2026-11-24T12:03:00.000Z")))))
        examples.append(
            example(
                "spend_spike",
                AlertRuleSetEvent(
                    id: "alert-rule-set:spend-spike-per-key:1", source: "tollgate/admin/host-1",
                    time: time("2026-11-24T12:04:00.000Z"), subject: "alert_rule:spend-spike-per-key",
                    data: AlertRuleSetData(
                        ruleID: "spend-spike-per-key", kind: .spendSpike, scope: Scope(kind: .key, id: "*"),
                        factorBP: 50_000, minNanoUSD: Money(nanoUSD: 25_000_000_000), baselineHours: 48,
                        updatedAt: time("2026-11-24T12:04:00.000Z")))))
        examples.append(
            example(
                "latency_spike",
                AlertRuleSetEvent(
                    id: "alert-rule-set:latency-summarize:1", source: "tollgate/admin/host-1",
                    time: time("2026-11-24T12:05:00.000Z"), subject: "alert_rule:latency-summarize",
                    data: AlertRuleSetData(
                        ruleID: "latency-summarize", kind: .latencySpike,
                        scope: .tag(name: "feature", value: "summarize"), factorBP: 25_000,
                        windowMinutes: 10, baselineWindows: 6, minRequests: 10, minLatencyMs: 5_000,
                        updatedAt: time("2026-11-24T12:05:00.000Z")))))

        // tollgate.control.alert_rule.deleted.v1
        examples.append(
            example(
                "full",
                AlertRuleDeletedEvent(
                    id: "alert-rule-deleted:search-thresholds", source: "tollgate/admin/host-1",
                    time: time("2026-11-25T12:00:00.000Z"), subject: "alert_rule:search-thresholds",
                    data: AlertRuleDeletedData(
                        ruleID: "search-thresholds", deletedAt: time("2026-11-25T12:00:00.000Z")))))
        examples.append(
            example(
                "minimal",
                AlertRuleDeletedEvent(
                    id: "alert-rule-deleted:latency-summarize", source: "tollgate/admin/host-1",
                    time: time("2026-11-25T12:01:00.000Z"),
                    data: AlertRuleDeletedData(
                        ruleID: "latency-summarize", deletedAt: time("2026-11-25T12:01:00.000Z")))))

        return examples
    }
}
