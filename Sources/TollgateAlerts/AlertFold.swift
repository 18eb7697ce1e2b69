public import Foundation
public import TollgateEvents
public import TollgateLog

/// Folds budget decisions and usage into alerts (a pure fold; the alerts service does the I/O).
///
/// It reads three topics: `control` (alert rules and budgets), `budget-decisions` and `usage`, and
/// publishes `alert.v1` on `alerts`, keyed by alert id. Each enabled rule (see ``AlertRule``) is
/// evaluated on the inputs of its kind:
///
/// - **budget_threshold** (decisions): every level of the rule at or below the decision's
///   `used_percent_bp` raises once per budget period and level: several levels crossed in one jump
///   raise one alert each; a budget hovering around a level raises once.
/// - **budget_action** (decisions): a decision whose action is `downgrade` or `block` raises once per
///   period and action.
/// - **burn_rate** (decisions, budgets with an end): once at least `min_elapsed_bp` of the period has
///   elapsed, the spend so far is projected at its average rate; when the budget would run out at least
///   `lead_ms` before the period ends (and has not yet), it raises once per period, saying when.
/// - **spend_spike** (usage): spend per series (see ``AlertRule/series(of:)``) per UTC hour. An hour
///   whose spend reaches `max(min_nano_usd, factor × baseline)`, where the baseline is the average of
///   the previous `baseline_hours` hours, raises, once the series has `baseline_hours` of history. An
///   hour that continues a spike (the previous hour crossed too) does not raise again.
/// - **error_rate_spike** and **latency_spike** (usage): per series, provider and served model, per
///   window of `window_minutes` (epoch-aligned), against the previous `baseline_windows` windows. A
///   request counts for the error rate when it was answered, or failed at the gateway, or the provider
///   answered 429 or 5xx (those are the errors); client errors (other 4xx), cancelled and blocked
///   requests do not count. The error rate raises when the window has `min_requests`, a rate of at least
///   `error_rate_bp`, and — when the baseline has `min_requests` too — at least `factor` × the
///   baseline's rate. Latency is the time to first byte (the duration when none was sent) of successful
///   requests; it raises when the window's mean is at least `min_latency_ms` and `factor` × the
///   baseline's mean, both with `min_requests`. A window continuing a spike does not raise again.
/// - **unpriced_model** (`priced: false`) and **estimated_usage** (`usage_source: estimated`): once
///   per series, provider and served model per UTC day.
///
/// Alert ids come from ``TollgateEvents/AlertData/makeAlertID(ruleID:scope:periodStart:levelPercent:)``
/// with the period the alert is about (budget period, hour, window or day) as `periodStart`, so the same
/// condition never raises twice; the rule part names what the id has no other place for: the budget for
/// the budget kinds (`<rule_id>/<budget_id>`, and `<rule_id>/<budget_id>/<action>` for `budget_action`:
/// two budgets on one scope and period alert apart), the provider and model for the per-model kinds
/// (`<rule_id>/<provider>/<model>`).
/// Times are the events' (the request's receipt, the decision's `decided_at`), never the wall clock;
/// `raised_at` is the triggering event's time.
public struct AlertFold: EventFold {
    /// The topic name prefix.
    public let topicPrefix: String
    /// The CloudEvents `source` of the alerts.
    public let source: String

    /// A fold reading and writing topics with `topicPrefix`.
    public init(topicPrefix: String = TopicCatalog.defaultPrefix, source: String = "tollgate/alerts") {
        self.topicPrefix = topicPrefix
        self.source = source
    }

    /// The topics the fold reads: control, budget decisions and usage (with the prefix).
    public var inputTopics: [String] {
        [topicPrefix + "control", topicPrefix + BudgetDecisionData.topic, topicPrefix + UsageData.topic]
    }

    /// The topic alerts are published on (with the prefix).
    public var alertsTopic: String { topicPrefix + AlertData.topic }

    public enum Input: Sendable {
        case control(AnyControlEvent)
        case decision(BudgetDecisionData)
        case usage(id: String, UsageData)
        /// A compaction tombstone, or a message of another topic.
        case nothing
    }

    public func decode(_ message: ConsumedMessage) throws -> Input {
        guard let value = message.value else { return .nothing }
        switch message.topic {
        case topicPrefix + "control":
            return .control(try AnyControlEvent.decode(from: value))
        case topicPrefix + BudgetDecisionData.topic:
            return .decision(try EventCoding.decode(BudgetDecisionData.self, from: value).data)
        case topicPrefix + UsageData.topic:
            let event = try EventCoding.decodeUsage(from: value)
            return .usage(id: event.id, event.data)
        default:
            return .nothing
        }
    }

    public func fold(_ state: inout State, _ input: Input, _ message: ConsumedMessage) -> [OutgoingMessage] {
        alerts(&state, input, message).compactMap(outgoing)
    }

    /// Forgets what the rules no longer need (old buckets, idle series, ids of past periods).
    public func finishBatch(_ state: inout State) -> [OutgoingMessage] {
        state.prune()
        return []
    }

    /// The alert event of an alert, keyed by its id.
    public func outgoing(_ alert: AlertData) -> OutgoingMessage? {
        let event = CloudEvent(id: "alert:" + alert.alertID, source: source, time: alert.raisedAt,
                               subject: alert.scope.description, data: alert)
        guard let value = try? EventCoding.encode(event) else { return nil }
        return OutgoingMessage(topic: alertsTopic, key: alert.alertID, value: value,
                               headers: [MessageHeader("content-type", "application/cloudevents+json"),
                                         MessageHeader("ce_type", AlertData.eventType)])
    }

    /// Applies one input and returns the alerts it raises (what ``fold(_:_:_:)`` publishes).
    public func alerts(_ state: inout State, _ input: Input, _ message: ConsumedMessage) -> [AlertData] {
        switch input {
        case .nothing:
            return []
        case .control(let event):
            state.apply(event)
            return []
        case .decision(let decision):
            guard state.advance(message) else { return [] }
            return Self.evaluate(decision, &state)
        case .usage(let id, let usage):
            guard state.advance(message), state.recentUsage.insert(id) else { return [] }
            return Self.evaluate(usage, &state)
        }
    }

    // MARK: Budget decisions

    static func evaluate(_ decision: BudgetDecisionData, _ state: inout State) -> [AlertData] {
        guard !state.deletedBudgets.contains(decision.budgetID) else { return [] }
        let at = AlertArithmetic.milliseconds(decision.decidedAt)
        state.observe(at)
        let until = decision.period.end.map {
            AlertArithmetic.saturatingAdd(AlertArithmetic.milliseconds($0), RaisedAlerts.graceMs)
        } ?? .max
        var alerts: [AlertData] = []
        for rule in state.rules where rule.selects(budgetScope: decision.scope) {
            switch rule.kind {
            case .budgetThreshold:
                for level in rule.levelsPercent where decision.usedPercentBP >= Int64(level) * 100 {
                    let id = AlertData.makeAlertID(ruleID: rule.id + "/" + decision.budgetID, scope: decision.scope,
                                                   periodStart: decision.period.start, levelPercent: level)
                    guard state.raised.raise(id, until: until, clock: state.clock) else { continue }
                    alerts.append(threshold(decision, rule: rule, level: level, id: id))
                }
            case .budgetAction:
                guard decision.action == .downgrade || decision.action == .block else { continue }
                let id = AlertData.makeAlertID(ruleID: rule.id + "/" + decision.budgetID + "/" + decision.action.rawValue,
                                               scope: decision.scope,
                                               periodStart: decision.period.start, levelPercent: nil)
                guard state.raised.raise(id, until: until, clock: state.clock) else { continue }
                alerts.append(action(decision, rule: rule, id: id))
            case .burnRate:
                guard let forecast = BurnForecast(decision, rule: rule) else { continue }
                let id = AlertData.makeAlertID(ruleID: rule.id + "/" + decision.budgetID, scope: decision.scope,
                                               periodStart: decision.period.start, levelPercent: nil)
                guard state.raised.raise(id, until: until, clock: state.clock) else { continue }
                alerts.append(burn(decision, forecast, rule: rule, id: id))
            default:
                continue
            }
        }
        return alerts
    }

    private static func budgetFigures(_ decision: BudgetDecisionData) -> [String: AlertValue] {
        var observed: [String: AlertValue] = [
            "budget_id": .string(decision.budgetID),
            "spent_nano_usd": .int(decision.spentNanoUSD.nanoUSD),
            "limit_nano_usd": .int(decision.limitNanoUSD.nanoUSD),
            "remaining_nano_usd": .int(decision.remainingNanoUSD.nanoUSD),
            "used_percent_bp": .int(decision.usedPercentBP),
            "period_kind": .string(decision.period.kind.rawValue),
            "action": .string(decision.action.rawValue),
        ]
        if let end = decision.period.end { observed["period_end"] = .string(EventTime.format(end)) }
        return observed
    }

    private static func threshold(_ decision: BudgetDecisionData, rule: AlertRule, level: Int, id: String) -> AlertData {
        let who = AlertText.scopeName(decision.scope)
        let kind = decision.period.kind
        return AlertData(
            alertID: id, ruleID: rule.id, kind: .budgetThreshold, severity: rule.severity(level: level),
            scope: decision.scope, periodStart: decision.period.start, levelPercent: level,
            title: "\(who) reached \(level)% of its \(AlertText.adjective(kind)) budget",
            message: "\(who) has spent \(AlertText.dollars(decision.spentNanoUSD)) of "
                + "\(AlertText.dollars(decision.limitNanoUSD)) (\(AlertText.percent(decision.usedPercentBP))) "
                + "\(AlertText.when(kind)) (budget \(decision.budgetID)).",
            observed: budgetFigures(decision), raisedAt: decision.decidedAt)
    }

    private static func action(_ decision: BudgetDecisionData, rule: AlertRule, id: String) -> AlertData {
        let who = AlertText.scopeName(decision.scope)
        let kind = decision.period.kind
        let what = decision.action == .block
            ? "requests are refused" : "requests go to cheaper models"
        let until = decision.period.end.map { " until the period ends on \(AlertText.minute($0))" } ?? ""
        return AlertData(
            alertID: id, ruleID: rule.id, kind: .budgetAction, severity: rule.severity(action: decision.action),
            scope: decision.scope, periodStart: decision.period.start,
            title: "\(who)'s \(AlertText.adjective(kind)) budget is "
                + (decision.action == .block ? "blocking requests" : "downgrading requests"),
            message: "\(who) has spent \(AlertText.dollars(decision.spentNanoUSD)) of "
                + "\(AlertText.dollars(decision.limitNanoUSD)) (\(AlertText.percent(decision.usedPercentBP))) "
                + "\(AlertText.when(kind)) (budget \(decision.budgetID)): \(what)\(until).",
            observed: budgetFigures(decision), raisedAt: decision.decidedAt)
    }

    private static func burn(_ decision: BudgetDecisionData, _ forecast: BurnForecast, rule: AlertRule,
                             id: String) -> AlertData {
        let who = AlertText.scopeName(decision.scope)
        let kind = decision.period.kind
        var observed = budgetFigures(decision)
        observed["forecast_exhausted_at"] = .string(EventTime.format(forecast.exhaustedAt))
        observed["forecast_nano_usd"] = .int(forecast.projected.nanoUSD)
        observed["elapsed_bp"] = .int(forecast.elapsedBP)
        observed["lead_ms"] = .int(forecast.leadMs)
        let projected = forecast.projected.nanoUSD == .max ? "" : ", about \(AlertText.dollars(forecast.projected)) by the end"
        return AlertData(
            alertID: id, ruleID: rule.id, kind: .burnRate, severity: rule.severity(),
            scope: decision.scope, periodStart: decision.period.start,
            title: "\(who)'s \(AlertText.adjective(kind)) budget runs out on \(AlertText.minute(forecast.exhaustedAt))",
            message: "At the current rate (\(AlertText.dollars(decision.spentNanoUSD)) in the first "
                + "\(AlertText.duration(milliseconds: forecast.elapsedMs)) of the period), \(who.lowercasedFirst)'s "
                + "budget of \(AlertText.dollars(decision.limitNanoUSD)) (budget \(decision.budgetID)) runs out on "
                + "\(AlertText.minute(forecast.exhaustedAt)), \(AlertText.duration(milliseconds: forecast.leadMs)) "
                + "before the period ends on \(AlertText.minute(forecast.periodEnd))\(projected).",
            observed: observed, raisedAt: decision.decidedAt)
    }

    // MARK: Usage

    static func evaluate(_ usage: UsageData, _ state: inout State) -> [AlertData] {
        let response = usage.response
        let at = AlertArithmetic.milliseconds(response.timings.receivedAt)
        state.observe(at)
        var alerts: [AlertData] = []
        for rule in state.rules {
            switch rule.kind {
            case .spendSpike:
                guard let scope = rule.series(of: response) else { continue }
                if let alert = spendSpike(rule: rule, scope: scope, usage: usage, at: at, &state) { alerts.append(alert) }
            case .errorRateSpike, .latencySpike:
                guard let scope = rule.series(of: response) else { continue }
                if let alert = trafficSpike(rule: rule, scope: scope, response: response, at: at, &state) {
                    alerts.append(alert)
                }
            case .unpricedModel:
                guard !usage.priced, let scope = rule.series(of: response) else { continue }
                if let alert = daily(rule: rule, scope: scope, usage: usage, at: at, &state) { alerts.append(alert) }
            case .estimatedUsage:
                guard response.usageSource == .estimated, let scope = rule.series(of: response) else { continue }
                if let alert = daily(rule: rule, scope: scope, usage: usage, at: at, &state) { alerts.append(alert) }
            default:
                continue
            }
        }
        return alerts
    }

    private static func spendSpike(rule: AlertRule, scope: Scope, usage: UsageData, at: Int64,
                                   _ state: inout State) -> AlertData? {
        let hour = AlertArithmetic.floorDivide(at, AlertArithmetic.hourMs)
        let baselineHours = Int64(rule.baselineHours)
        let key = scope.description
        var series = state.spend[rule.id]?[key] ?? SpendSeries(firstHour: hour, lastHour: hour)
        // Older than the baseline window of the latest hour: no longer part of any comparison.
        guard hour >= series.lastHour - baselineHours else { return nil }
        series.firstHour = min(series.firstHour, hour)
        series.lastHour = max(series.lastHour, hour)
        var bucket = series.hours[hour] ?? SpendSeries.Bucket()
        bucket.spentNanoUSD = AlertArithmetic.saturatingAdd(bucket.spentNanoUSD, max(0, usage.costNanoUSD.total.nanoUSD))
        var alert: AlertData?
        let hasHistory = hour - series.firstHour >= baselineHours
        if hasHistory && !bucket.crossed && bucket.spentNanoUSD > 0 {
            var total: Int64 = 0
            for previous in (hour - baselineHours)..<hour {
                total = AlertArithmetic.saturatingAdd(total, series.hours[previous]?.spentNanoUSD ?? 0)
            }
            let baseline = total / baselineHours
            let threshold = max(rule.minSpend.nanoUSD,
                                AlertArithmetic.multiplyDivide(baseline, rule.factorBP, 10_000) ?? .max)
            if bucket.spentNanoUSD >= threshold {
                bucket.crossed = true
                let continuing = series.hours[hour - 1]?.crossed == true
                let hourStart = hour * AlertArithmetic.hourMs
                let id = AlertData.makeAlertID(ruleID: rule.id, scope: scope,
                                               periodStart: AlertArithmetic.date(hourStart), levelPercent: nil)
                let until = AlertArithmetic.saturatingAdd(hourStart + AlertArithmetic.hourMs, RaisedAlerts.graceMs)
                if !continuing, state.raised.raise(id, until: until, clock: state.clock) {
                    alert = spendAlert(rule: rule, scope: scope, id: id, hourStart: hourStart,
                                       spent: bucket.spentNanoUSD, baseline: baseline, threshold: threshold,
                                       raisedAt: usage.response.timings.receivedAt)
                }
            }
        }
        series.hours[hour] = bucket
        state.spend[rule.id, default: [:]][key] = series
        return alert
    }

    private static func spendAlert(rule: AlertRule, scope: Scope, id: String, hourStart: Int64, spent: Int64,
                                   baseline: Int64, threshold: Int64, raisedAt: Date) -> AlertData {
        let who = AlertText.scopeName(scope)
        let start = AlertArithmetic.date(hourStart)
        let usual = baseline == 0
            ? "with no spend in the previous \(rule.baselineHours) hours"
            : "\(AlertText.factor(AlertArithmetic.basisPoints(spent, of: baseline))) its usual "
                + "\(AlertText.dollars(Money(nanoUSD: baseline))) an hour (average of the previous \(rule.baselineHours) hours)"
        return AlertData(
            alertID: id, ruleID: rule.id, kind: .spendSpike, severity: rule.severity(), scope: scope,
            periodStart: start,
            title: "\(who) is spending far more than usual",
            message: "\(who) has spent \(AlertText.dollars(Money(nanoUSD: spent))) in the hour from "
                + "\(AlertText.minute(start)), \(usual).",
            observed: [
                "spent_nano_usd": .int(spent), "baseline_nano_usd": .int(baseline),
                "threshold_nano_usd": .int(threshold), "factor_bp": .int(rule.factorBP),
                "baseline_hours": .int(Int64(rule.baselineHours)), "hour_start": .string(EventTime.format(start)),
            ],
            raisedAt: raisedAt)
    }

    private static func trafficSpike(rule: AlertRule, scope: Scope, response: ResponseData, at: Int64,
                                     _ state: inout State) -> AlertData? {
        let windowMs = Int64(rule.windowMinutes) * 60_000
        let window = AlertArithmetic.floorDivide(at, windowMs)
        let baselineWindows = Int64(rule.baselineWindows)
        let model = AlertText.model(response.provider, response.servedModel)
        let key = scope.description + "|" + model
        var series = state.traffic[rule.id]?[key] ?? TrafficSeries(lastWindow: window)
        guard window >= series.lastWindow - baselineWindows else { return nil }
        series.lastWindow = max(series.lastWindow, window)
        var bucket = series.windows[window] ?? TrafficSeries.Bucket()
        let counted: Bool
        if rule.kind == .errorRateSpike {
            switch response.outcome {
            case .success:
                bucket.requests += 1
                counted = true
            case .gatewayError:
                bucket.requests += 1
                bucket.errors += 1
                counted = true
            case .providerError where response.status == 429 || response.status >= 500:
                bucket.requests += 1
                bucket.errors += 1
                counted = true
            case .providerError, .clientCancelled, .blocked:
                counted = false
            }
        } else if response.outcome == .success {
            bucket.timed += 1
            bucket.latencySumMs = AlertArithmetic.saturatingAdd(
                bucket.latencySumMs, max(0, response.timings.firstByteMs ?? response.timings.durationMs))
            counted = true
        } else {
            counted = false
        }
        guard counted else { return nil }
        var baseline = TrafficSeries.Bucket()
        for previous in (window - baselineWindows)..<window {
            guard let old = series.windows[previous] else { continue }
            baseline.requests += old.requests
            baseline.errors += old.errors
            baseline.timed += old.timed
            baseline.latencySumMs = AlertArithmetic.saturatingAdd(baseline.latencySumMs, old.latencySumMs)
        }
        let minRequests = Int64(rule.minRequests)
        var crossing: [String: AlertValue]?
        if !bucket.crossed {
            if rule.kind == .errorRateSpike, bucket.requests >= minRequests {
                let rate = AlertArithmetic.basisPoints(bucket.errors, of: bucket.requests)
                let hasBaseline = baseline.requests >= minRequests
                let usual = AlertArithmetic.basisPoints(baseline.errors, of: baseline.requests)
                if rate >= Int64(rule.errorRateBP)
                    && (!hasBaseline || !AlertArithmetic.productLess(rate, 10_000, than: rule.factorBP, usual)) {
                    crossing = [
                        "requests": .int(bucket.requests), "errors": .int(bucket.errors), "error_rate_bp": .int(rate),
                        "baseline_requests": .int(baseline.requests),
                    ]
                    if hasBaseline { crossing?["baseline_error_rate_bp"] = .int(usual) }
                }
            } else if rule.kind == .latencySpike, bucket.timed >= minRequests, baseline.timed >= minRequests {
                let mean = bucket.latencySumMs / bucket.timed
                let usual = baseline.latencySumMs / baseline.timed
                if mean >= rule.minLatencyMs && !AlertArithmetic.productLess(mean, 10_000, than: rule.factorBP, usual) {
                    crossing = [
                        "requests": .int(bucket.timed), "mean_latency_ms": .int(mean),
                        "baseline_requests": .int(baseline.timed), "baseline_mean_latency_ms": .int(usual),
                    ]
                }
            }
        }
        var alert: AlertData?
        if var observed = crossing {
            bucket.crossed = true
            let windowStart = window * windowMs
            let id = AlertData.makeAlertID(ruleID: rule.id + "/" + model, scope: scope,
                                           periodStart: AlertArithmetic.date(windowStart), levelPercent: nil)
            let until = AlertArithmetic.saturatingAdd(windowStart + windowMs, RaisedAlerts.graceMs)
            let continuing = series.windows[window - 1]?.crossed == true
            if !continuing, state.raised.raise(id, until: until, clock: state.clock) {
                observed["provider"] = .string(response.provider.rawValue)
                observed["model"] = .string(response.servedModel)
                observed["window_minutes"] = .int(Int64(rule.windowMinutes))
                observed["baseline_windows"] = .int(Int64(rule.baselineWindows))
                observed["window_start"] = .string(EventTime.format(AlertArithmetic.date(windowStart)))
                observed["factor_bp"] = .int(rule.factorBP)
                alert = trafficAlert(rule: rule, scope: scope, model: model, id: id,
                                     windowStart: AlertArithmetic.date(windowStart), observed: observed,
                                     raisedAt: response.timings.receivedAt)
            }
        }
        series.windows[window] = bucket
        state.traffic[rule.id, default: [:]][key] = series
        return alert
    }

    private static func trafficAlert(rule: AlertRule, scope: Scope, model: String, id: String, windowStart: Date,
                                     observed: [String: AlertValue], raisedAt: Date) -> AlertData {
        let on = scope.kind == .global ? model : "\(model) (\(AlertText.scopeName(scope).lowercasedFirst))"
        let minutes = rule.windowMinutes
        let baselineMinutes = rule.windowMinutes * rule.baselineWindows
        func int(_ name: String) -> Int64 {
            if case .int(let value) = observed[name] { return value }
            return 0
        }
        let title: String
        let message: String
        if rule.kind == .errorRateSpike {
            let usual = observed["baseline_error_rate_bp"] == nil
                ? "with too few requests before to compare"
                : "usually \(AlertText.percent(int("baseline_error_rate_bp"))) (previous \(baselineMinutes) minutes)"
            title = "Error rate spike on \(on)"
            message = "\(AlertText.percent(int("error_rate_bp"))) of requests to \(on) failed in the \(minutes) "
                + "minutes from \(AlertText.clock(windowStart)) (\(int("errors")) of \(int("requests"))), \(usual)."
        } else {
            title = "Latency spike on \(on)"
            message = "Requests to \(on) took \(int("mean_latency_ms")) ms on average in the \(minutes) minutes from "
                + "\(AlertText.clock(windowStart)) (\(int("requests")) requests), usually "
                + "\(int("baseline_mean_latency_ms")) ms (previous \(baselineMinutes) minutes)."
        }
        return AlertData(alertID: id, ruleID: rule.id, kind: rule.kind, severity: rule.severity(), scope: scope,
                         periodStart: windowStart, title: title, message: message, observed: observed,
                         raisedAt: raisedAt)
    }

    private static func daily(rule: AlertRule, scope: Scope, usage: UsageData, at: Int64,
                              _ state: inout State) -> AlertData? {
        let response = usage.response
        let dayStart = AlertArithmetic.floorDivide(at, AlertArithmetic.dayMs) * AlertArithmetic.dayMs
        let model = AlertText.model(response.provider, response.servedModel)
        let start = AlertArithmetic.date(dayStart)
        let id = AlertData.makeAlertID(ruleID: rule.id + "/" + model, scope: scope, periodStart: start,
                                       levelPercent: nil)
        let until = AlertArithmetic.saturatingAdd(dayStart + AlertArithmetic.dayMs, RaisedAlerts.graceMs)
        guard state.raised.raise(id, until: until, clock: state.clock) else { return nil }
        let on = scope.kind == .global ? "" : " for \(AlertText.scopeName(scope).lowercasedFirst)"
        var observed: [String: AlertValue] = [
            "provider": .string(response.provider.rawValue), "model": .string(response.servedModel),
            "requested_model": .string(response.requestedModel), "request_id": .string(response.requestID),
            "day": .string(String(EventTime.format(start).prefix(10))),
        ]
        let title: String
        let message: String
        if rule.kind == .unpricedModel {
            observed["priced"] = .bool(false)
            observed["catalog_version"] = .string(usage.catalogVersion)
            if let reason = usage.unpricedReason { observed["unpriced_reason"] = .string(reason) }
            title = "No price for \(model)"
            message = "\(model) served a request\(on) (\(response.requestID)) that the price catalog "
                + "\(usage.catalogVersion) cannot price (\(usage.unpricedReason ?? "unknown reason")): its cost "
                + "counts as $0, so budgets and reports miss it until the catalog has the model. "
                + "Raised once per model per day."
        } else {
            observed["usage_source"] = .string(response.usageSource.rawValue)
            title = "Estimated usage for \(model)"
            message = "The tokens of a request to \(model)\(on) (\(response.requestID)) were estimated by "
                + "Tollgate, not reported by the provider (for example a stream cut off before its usage): "
                + "its cost may be off. Raised once per model per day."
        }
        return AlertData(alertID: id, ruleID: rule.id, kind: rule.kind, severity: rule.severity(), scope: scope,
                         periodStart: start, title: title, message: message, observed: observed,
                         raisedAt: response.timings.receivedAt)
    }
}

/// The burn-rate forecast of a budget decision: the spend so far projected to the period's end at its
/// average rate since the period started, all in integer milliseconds and nano-USD.
///
/// With spend `S` after `e` ms of a period of `T` ms and a limit `L`, the budget runs out `e × L / S` ms
/// after the start (rounded down to the millisecond) and the period's projected spend is `S × T / e`.
/// There is a forecast (an alert) only for a period with an end, a positive limit, spend below it,
/// at least `min_elapsed_bp` of the period elapsed, and an exhaustion at least `lead_ms` before the end.
public struct BurnForecast: Sendable, Hashable {
    /// When the budget runs out at the current rate.
    public var exhaustedAt: Date
    /// The period's end.
    public var periodEnd: Date
    /// The spend projected to the period's end (`Int64.max` nano-USD if it overflows).
    public var projected: Money
    /// Milliseconds elapsed in the period at the decision.
    public var elapsedMs: Int64
    /// The elapsed share of the period, in basis points (rounded down).
    public var elapsedBP: Int64
    /// Milliseconds from the exhaustion to the period's end.
    public var leadMs: Int64

    /// The forecast of a decision under a burn-rate rule, or `nil` when there is nothing to forecast
    /// or the budget lasts (see the type's discussion).
    public init?(_ decision: BudgetDecisionData, rule: AlertRule) {
        guard let end = decision.period.end else { return nil }
        let start = AlertArithmetic.milliseconds(decision.period.start)
        let endMs = AlertArithmetic.milliseconds(end)
        let now = AlertArithmetic.milliseconds(decision.decidedAt)
        let spent = decision.spentNanoUSD.nanoUSD
        let limit = decision.limitNanoUSD.nanoUSD
        let total = endMs - start
        let elapsed = now - start
        guard total > 0, elapsed > 0, now < endMs, limit > 0, spent > 0, spent < limit else { return nil }
        let elapsedBP = AlertArithmetic.basisPoints(elapsed, of: total)
        guard elapsedBP >= Int64(rule.minElapsedBP) else { return nil }
        // Runs out at start + elapsed × limit / spent; alert when that is before end − lead, i.e.
        // elapsed × limit < (total − lead) × spent.
        let horizon = total - rule.leadMs
        guard horizon > 0, AlertArithmetic.productLess(elapsed, limit, than: horizon, spent),
              let offset = AlertArithmetic.multiplyDivide(elapsed, limit, spent)
        else { return nil }
        exhaustedAt = AlertArithmetic.date(start + offset)
        periodEnd = end
        projected = Money(nanoUSD: AlertArithmetic.multiplyDivide(spent, total, elapsed) ?? .max)
        elapsedMs = elapsed
        self.elapsedBP = elapsedBP
        leadMs = total - offset
    }
}

extension AlertFold.State {
    /// Folds a message's offset in; false when the message was folded before (a reprocessed batch).
    mutating func advance(_ message: ConsumedMessage) -> Bool {
        let key = "\(message.topic)#\(message.partition)"
        if let next = watermarks[key], message.offset < next { return false }
        watermarks[key] = message.offset + 1
        return true
    }

    /// Moves the clock to an event's time (it never goes back).
    mutating func observe(_ milliseconds: Int64) {
        clock = max(clock ?? milliseconds, milliseconds)
    }
}

extension String {
    /// The string with its first character lowercased: `Team search` → `team search`.
    var lowercasedFirst: String {
        guard let first else { return self }
        return first.lowercased() + dropFirst()
    }
}
