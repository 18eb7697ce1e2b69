import AsyncHTTPClient
import Foundation
import MetricsTestKit
import Synchronization
import Testing
import TollgateEvents
@testable import TollgateNotify

/// Short back-off so that retries happen within a test's time.
let fastRetry = RetryPolicy(baseDelay: .milliseconds(20), maxDelay: .milliseconds(200), maxAttempts: 1_000)

func makeDeliverer(_ store: DeliveryStore, _ channels: [ResolvedChannel], retry: RetryPolicy = fastRetry,
                   maxInFlight: Int = 4, grace: Duration = .seconds(10),
                   metrics: TestMetrics = TestMetrics()) -> Deliverer {
    Deliverer(store: store, channels: channels, httpClient: .shared,
              configuration: .init(retry: retry, maxInFlightPerChannel: maxInFlight, shutdownGrace: grace),
              logger: testLogger, metricsFactory: metrics)
}

func webhook(_ name: String, _ receiver: HTTPReceiver, secret: String = "hook-secret",
             timeout: Duration = .seconds(5)) -> ResolvedChannel {
    ResolvedChannel(name: name, target: .webhook(WebhookTarget(url: receiver.url(), secret: secret, timeout: timeout)))
}

/// What Slack checks about an incoming-webhook message (the parts Tollgate uses), as problems.
func slackProblems(_ body: Data) -> [String] {
    guard let json = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else { return ["not a JSON object"] }
    var problems: [String] = []
    if (json["text"] as? String)?.isEmpty != false { problems.append("text missing") }
    guard let blocks = json["blocks"] as? [[String: Any]], !blocks.isEmpty, blocks.count <= 50 else {
        return problems + ["blocks missing or more than 50"]
    }
    func textObject(_ value: Any?, types: Set<String>, limit: Int) -> Bool {
        guard let object = value as? [String: Any], let type = object["type"] as? String, types.contains(type),
              let text = object["text"] as? String, !text.isEmpty, text.count <= limit else { return false }
        return Set(object.keys).isSubset(of: ["type", "text", "emoji", "verbatim"])
    }
    for (index, block) in blocks.enumerated() {
        switch block["type"] as? String {
        case "header":
            if !textObject(block["text"], types: ["plain_text"], limit: 150) { problems.append("blocks[\(index)]: bad header") }
        case "section":
            let fields = block["fields"] as? [Any]
            if block["text"] == nil && fields == nil { problems.append("blocks[\(index)]: empty section") }
            if let text = block["text"], !textObject(text, types: ["plain_text", "mrkdwn"], limit: 3000) {
                problems.append("blocks[\(index)]: bad section text")
            }
            if let fields, fields.count > 10 || !fields.allSatisfy({ textObject($0, types: ["plain_text", "mrkdwn"], limit: 2000) }) {
                problems.append("blocks[\(index)]: bad fields")
            }
        case "context":
            guard let elements = block["elements"] as? [Any], (1...10).contains(elements.count),
                  elements.allSatisfy({ textObject($0, types: ["plain_text", "mrkdwn"], limit: 3000) }) else {
                problems.append("blocks[\(index)]: bad context")
                continue
            }
        default:
            problems.append("blocks[\(index)]: unknown type")
        }
    }
    return problems
}

@Suite("Deliverer", .timeLimit(.minutes(2)))
struct DelivererTests {
    @Test("a committed alert reaches a webhook at once, signed as documented")
    func webhookDelivery() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let receiver = try await HTTPReceiver { request, _ in
            receiverVerifies(secret: "hook-secret", headers: request.headers, body: request.body)
                ? .ok : Answer(status: 401, body: "bad signature")
        }
        let metrics = TestMetrics()
        let running = RunningDeliverer(makeDeliverer(store, [webhook("ops-hook", receiver)], metrics: metrics))
        defer { Task { await receiver.stop() } }

        let event = Samples.alert()
        let committed = ContinuousClock.now
        try store.commit(deliveries: [try NewDelivery(event: event, channel: "ops-hook")], state: Data("s".utf8),
                         offsets: [OffsetKey(topic: "tollgate.usage", partition: 0): 1])
        let received = try await receiver.requests.wait(count: 1, "the webhook")
        let latency = ContinuousClock.now - committed
        #expect(latency < .seconds(1), "took \(latency)")
        try await running.reports.wait(count: 1, "the delivery report")
        try await running.stop()

        let request = received[0]
        #expect(request.path == "/hook")
        #expect(receiverVerifies(secret: "hook-secret", headers: request.headers, body: request.body))
        var tampered = request.body
        tampered.append(contentsOf: Array(" ".utf8))
        #expect(!receiverVerifies(secret: "hook-secret", headers: request.headers, body: tampered))
        #expect(request.headers["x-tollgate-delivery"] == event.data.alertID + "#ops-hook")
        #expect(request.headers["x-tollgate-alert-id"] == event.data.alertID)
        #expect(request.headers["content-type"] == "application/cloudevents+json; charset=utf-8")
        #expect(try EventCoding.decode(AlertData.self, from: request.body) == event)
        #expect(running.reports.all.map(\.outcome) == [.delivered])
        #expect(try store.deliveries(alertID: event.data.alertID).map(\.state) == [.delivered])
        #expect(metrics.counterTotal(label: "tollgate_alert_deliveries_total",
                                     dimensions: [("channel", "ops-hook"), ("kind", "webhook"), ("outcome", "delivered")]) == 1)
    }

    @Test("Slack gets a valid Block Kit message")
    func slackDelivery() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let receiver = try await HTTPReceiver { request, _ in
            let problems = slackProblems(request.body)
            return problems.isEmpty && request.headers["content-type"] == "application/json; charset=utf-8"
                ? .ok : Answer(status: 400, body: "invalid_blocks: \(problems)")
        }
        defer { Task { await receiver.stop() } }
        let channel = ResolvedChannel(name: "slack", target: .slack(SlackTarget(url: receiver.url("/services/T/B/x"))))
        let running = RunningDeliverer(makeDeliverer(store, [channel]))
        let events = [Samples.alert(), Samples.alert(level: nil, severity: .critical, title: "Spend spike <@here> & co",
                                                      observed: [:])]
        try store.enqueue(events.map { try NewDelivery(event: $0, channel: "slack") })
        try await running.reports.wait(count: 2, "two Slack deliveries")
        try await running.stop()
        #expect(running.reports.all.map(\.outcome) == [.delivered, .delivered])
        #expect(receiver.requests.all.allSatisfy { slackProblems($0.body).isEmpty })
        #expect(receiver.requests.all.map(\.path) == ["/services/T/B/x", "/services/T/B/x"])
    }

    @Test("e-mail goes through libcurl to an SMTP server")
    func emailDelivery() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let smtp = try await SMTPReceiver()
        defer { Task { await smtp.stop() } }
        let target = EmailTarget(smtpURL: smtp.url, starttls: .optional, from: try MailAddress(parsing: "Tollgate <alerts@example.com>"),
                                 to: [try MailAddress(parsing: "oncall@example.com"), try MailAddress(parsing: "Fin <fin@example.org>")],
                                 timeout: .seconds(10))
        let running = RunningDeliverer(makeDeliverer(store, [ResolvedChannel(name: "oncall", target: .email(target))]))
        let event = Samples.alert(title: "Équipe search à 80 % du budget")
        try store.enqueue([try NewDelivery(event: event, channel: "oncall")])
        let mails = try await smtp.mails.wait(count: 1, "the e-mail")
        try await running.reports.wait(count: 1, "the delivery report")
        try await running.stop()

        #expect(running.reports.all.map(\.outcome) == [.delivered])
        let mail = mails[0]
        #expect(mail.from == "<alerts@example.com>")
        #expect(mail.recipients == ["<oncall@example.com>", "<fin@example.org>"])
        let headers = mail.headers
        #expect(headers["message-id"] == EmailFormat.messageID(deliveryID: event.data.alertID + "#oncall", domain: "example.com"))
        #expect(decodeEncodedWords(headers["subject"] ?? "") == "[Tollgate warning] Équipe search à 80 % du budget")
        #expect(headers["to"] == "oncall@example.com, Fin <fin@example.org>")
        #expect(decodeQuotedPrintable(mail.body).contains("Team search has spent $460.25 of $500.00 (92%) this month."))
        #expect(try store.deliveries(alertID: event.data.alertID).map(\.state) == [.delivered])
    }

    @Test("an SMTP 5xx reply dead-letters at once; a 4xx reply is retried until the server takes the message")
    func smtpReplies() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let rejecting = try await SMTPReceiver(replies: .init(rcpt: "550 5.1.1 No such user"))
        let busy = try await SMTPReceiver(replies: .init(data: "451 4.3.0 Try again later"))
        defer { Task { await rejecting.stop(); await busy.stop() } }
        func channel(_ name: String, _ receiver: SMTPReceiver) throws -> ResolvedChannel {
            ResolvedChannel(name: name, target: .email(EmailTarget(
                smtpURL: receiver.url, starttls: .optional, from: try MailAddress(parsing: "alerts@example.com"),
                to: [try MailAddress(parsing: "nobody@example.com")], timeout: .seconds(10))))
        }
        let metrics = TestMetrics()
        let running = RunningDeliverer(makeDeliverer(store, [try channel("rejecting", rejecting), try channel("busy", busy)],
                                                     metrics: metrics))
        let event = Samples.alert()
        try store.enqueue([try NewDelivery(event: event, channel: "rejecting"), try NewDelivery(event: event, channel: "busy")])
        try await running.reports.wait("a retry on busy and a dead letter on rejecting") { reports in
            reports.contains { $0.channel == "rejecting" && $0.outcome != .delivered }
                && reports.filter { $0.channel == "busy" }.count >= 2
        }
        busy.replies.withLock { $0.data = "250 2.0.0 OK queued" }
        try await running.reports.wait("busy to take the message") { reports in
            reports.contains { $0.channel == "busy" && $0.outcome == .delivered }
        }
        try await running.stop()

        let reports = running.reports.all
        let rejected = reports.filter { $0.channel == "rejecting" }
        #expect(rejected.count == 1)
        guard case .dead(let reason) = rejected.first?.outcome else {
            Issue.record("not dead-lettered: \(rejected)")
            return
        }
        #expect(reason.contains("550"))
        let busyReports = reports.filter { $0.channel == "busy" }
        #expect(busyReports.dropLast().allSatisfy {
            if case .retrying(let reason, _) = $0.outcome { return reason.contains("451") } else { return false }
        })
        #expect(busy.mails.all.count == 1)
        #expect(rejecting.mails.all.isEmpty)
        #expect(metrics.counterTotal(label: "tollgate_alert_dead_letters_total", dimensions: [("channel", "rejecting")]) == 1)
        #expect(try store.deadLetters().map(\.channel) == ["rejecting"])
    }

    @Test("while a receiver answers 503, alerts are retried; each arrives once when it recovers")
    func retryThenSuccess() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let failures = 12
        let receiver = try await HTTPReceiver { _, number in
            number <= failures ? Answer(status: 503, headers: ["Retry-After": "0"], body: "down") : .ok
        }
        defer { Task { await receiver.stop() } }
        let metrics = TestMetrics()
        let running = RunningDeliverer(makeDeliverer(store, [webhook("hook", receiver)], metrics: metrics))
        let events = Samples.alerts(5)
        try store.enqueue(events.map { try NewDelivery(event: $0, channel: "hook") })
        try await running.reports.wait("five deliveries") { $0.filter { $0.outcome == .delivered }.count == 5 }
        try await running.stop()

        let accepted = receiver.requests.all.dropFirst(failures).map { $0.headers["x-tollgate-delivery"] ?? "" }
        #expect(accepted.count == 5)
        #expect(Set(accepted) == Set(events.map { $0.data.alertID + "#hook" }))
        #expect(receiver.requests.all.count == failures + 5)
        #expect(metrics.counterTotal(label: "tollgate_alert_deliveries_total", dimensions: [("outcome", "retried")]) == Int64(failures))
        #expect(try store.counts() == [.delivered: 5])
        let attempts = try events.flatMap { try store.deliveries(alertID: $0.data.alertID) }.map(\.attempts).reduce(0, +)
        #expect(attempts == failures + 5)
    }

    @Test("a receiver that is down for a while gets every alert exactly once after it comes back")
    func receiverDownThenUp() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let port = try await freePort()
        let channel = ResolvedChannel(name: "hook", target: .webhook(WebhookTarget(
            url: "http://127.0.0.1:\(port)/hook", secret: "hook-secret", timeout: .seconds(1))))
        let running = RunningDeliverer(makeDeliverer(store, [channel]))
        let events = Samples.alerts(6)
        try store.enqueue(events.map { try NewDelivery(event: $0, channel: "hook") })
        // Connection refused, again and again.
        try await running.reports.wait("failed attempts while down") { reports in
            Set(reports.filter { if case .retrying = $0.outcome { true } else { false } }.map(\.alertID)).count == 6
                && reports.count >= 12
        }
        #expect(running.reports.all.allSatisfy { $0.outcome != .delivered })
        let receiver = try await HTTPReceiver(port: port) { request, _ in
            receiverVerifies(secret: "hook-secret", headers: request.headers, body: request.body) ? .ok : Answer(status: 401)
        }
        defer { Task { await receiver.stop() } }
        try await running.reports.wait("six deliveries") { $0.filter { $0.outcome == .delivered }.count == 6 }
        try await running.stop()

        let ids = receiver.requests.all.map { $0.headers["x-tollgate-delivery"] ?? "" }
        #expect(ids.count == 6)
        #expect(Set(ids) == Set(events.map { $0.data.alertID + "#hook" }))
        #expect(try store.counts() == [.delivered: 6])
    }

    @Test("a permanent 4xx dead-letters at once, with the reason and the metrics")
    func permanentFailure() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let receiver = try await HTTPReceiver { _, _ in Answer(status: 410, body: "channel_is_archived") }
        defer { Task { await receiver.stop() } }
        let metrics = TestMetrics()
        let running = RunningDeliverer(makeDeliverer(store, [webhook("archived", receiver)], metrics: metrics))
        let event = Samples.alert()
        try store.enqueue([try NewDelivery(event: event, channel: "archived")])
        try await running.reports.wait(count: 1, "the dead letter")
        try await running.stop()

        #expect(running.reports.all.map(\.outcome) == [.dead(reason: "HTTP 410: channel_is_archived")])
        #expect(receiver.requests.all.count == 1)
        let dead = try store.deadLetters()
        #expect(dead.map(\.alertID) == [event.data.alertID])
        #expect(dead.first?.lastError == "HTTP 410: channel_is_archived")
        #expect(dead.first?.attempts == 1 && dead.first?.deadAt != nil)
        #expect(try metrics.expectCounter("tollgate_alert_dead_letters_total", [("channel", "archived")]).totalValue == 1)
        #expect(try metrics.expectCounter("tollgate_alert_deliveries_total",
                                          [("channel", "archived"), ("kind", "webhook"), ("outcome", "dead")]).totalValue == 1)
        #expect(metrics.counterTotal(label: "tollgate_alert_deliveries_total", dimensions: [("outcome", "delivered")]) == 0)
        #expect(try metrics.expectGauge("tollgate_alert_deliveries_pending").lastValue == 0)
    }

    @Test("after the retry budget a delivery is dead-lettered with its last error")
    func retryBudget() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let receiver = try await HTTPReceiver { _, _ in Answer(status: 500, body: "boom") }
        defer { Task { await receiver.stop() } }
        let metrics = TestMetrics()
        let retry = RetryPolicy(baseDelay: .milliseconds(10), maxDelay: .milliseconds(50), maxAttempts: 3)
        let running = RunningDeliverer(makeDeliverer(store, [webhook("flaky", receiver)], retry: retry, metrics: metrics))
        let event = Samples.alert()
        try store.enqueue([try NewDelivery(event: event, channel: "flaky")])
        try await running.reports.wait(count: 3, "three attempts")
        try await running.stop()

        let outcomes = running.reports.all.map(\.outcome)
        #expect(outcomes.count == 3)
        #expect(running.reports.all.map(\.attempt) == [1, 2, 3])
        #expect(outcomes.last == .dead(reason: "gave up after 3 attempts; last error: HTTP 500: boom"))
        #expect(receiver.requests.all.count == 3)
        #expect(try store.deadLetters().first?.attempts == 3)
        #expect(metrics.counterTotal(label: "tollgate_alert_dead_letters_total", dimensions: [("channel", "flaky")]) == 1)
        #expect(metrics.counterTotal(label: "tollgate_alert_deliveries_total", dimensions: [("outcome", "retried")]) == 2)
    }

    @Test("after a restart, pending and interrupted deliveries are sent; delivered ones never again")
    func restart() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("d.sqlite").path
        let events = Samples.alerts(4)
        do {
            // The previous run: one delivered, one in flight when the process died, two pending.
            let store = try DeliveryStore.open(path: path, logger: testLogger)
            try store.enqueue(events.map { try NewDelivery(event: $0, channel: "hook") })
            let claimed = try store.claimDue(now: Date(), slots: ["hook": 2])
            try store.markDelivered(alertID: claimed[0].alertID, channel: "hook", now: Date())
            #expect(try store.counts() == [.delivered: 1, .sending: 1, .pending: 2])
        }
        let delivered = try #require(try DeliveryStore.open(path: path, logger: testLogger).recent(limit: 10)
            .first { $0.deliveries.first?.state == .delivered })

        let receiver = try await HTTPReceiver()
        defer { Task { await receiver.stop() } }
        let store = try DeliveryStore.open(path: path, logger: testLogger)
        let running = RunningDeliverer(makeDeliverer(store, [webhook("hook", receiver)]))
        try await running.reports.wait(count: 3, "three deliveries")
        try await running.stop()

        let ids = receiver.requests.all.map { $0.headers["x-tollgate-delivery"] ?? "" }
        #expect(ids.count == 3)
        #expect(Set(ids) == Set(events.map { $0.data.alertID + "#hook" }).subtracting([delivered.alertID + "#hook"]))
        #expect(try store.counts() == [.delivered: 4])
        // A third run has nothing to send.
        let again = RunningDeliverer(makeDeliverer(try DeliveryStore.open(path: path, logger: testLogger), [webhook("hook", receiver)]))
        try await again.stop()
        #expect(receiver.requests.all.count == 3)
    }

    @Test("shutdown waits for attempts in flight up to the grace, then leaves them to the next start")
    func shutdownGrace() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("d.sqlite").path
        let store = try DeliveryStore.open(path: path, logger: testLogger)
        // The first request hangs (a slow receiver); later ones are answered at once.
        let receiver = try await HTTPReceiver { _, number in
            if number == 1 { try? await Task.sleep(for: .seconds(2)) }  // a slow receiver
            return .ok
        }
        defer { Task { await receiver.stop() } }
        let running = RunningDeliverer(makeDeliverer(store, [webhook("hook", receiver, timeout: .seconds(30))],
                                                     grace: .milliseconds(200)))
        let event = Samples.alert()
        try store.enqueue([try NewDelivery(event: event, channel: "hook")])
        try await receiver.requests.wait(count: 1, "the hanging request")
        try await running.stop()
        #expect(running.reports.all.map(\.outcome) == [.interrupted])
        let status = try #require(try store.deliveries(alertID: event.data.alertID).first)
        #expect(status.state == .pending && status.attempts == 0)

        let next = RunningDeliverer(makeDeliverer(try DeliveryStore.open(path: path, logger: testLogger), [webhook("hook", receiver)]))
        try await next.reports.wait(count: 1, "the delivery after the restart")
        try await next.stop()
        #expect(next.reports.all.map(\.outcome) == [.delivered])
        // The receiver saw the delivery id twice (at least once) and can drop the duplicate by it.
        #expect(Set(receiver.requests.all.map { $0.headers["x-tollgate-delivery"] ?? "" }) == [event.data.alertID + "#hook"])
    }

    @Test("no more than the configured attempts are in flight per channel")
    func boundedConcurrency() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try DeliveryStore.open(path: directory.appendingPathComponent("d.sqlite").path, logger: testLogger)
        let inFlight = Mutex((now: 0, most: 0))
        let receiver = try await HTTPReceiver { _, _ in
            inFlight.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            try? await Task.sleep(for: .milliseconds(50))  // a slow receiver
            inFlight.withLock { $0.now -= 1 }
            return .ok
        }
        defer { Task { await receiver.stop() } }
        let running = RunningDeliverer(makeDeliverer(store, [webhook("hook", receiver)], maxInFlight: 2))
        try store.enqueue(Samples.alerts(10).map { try NewDelivery(event: $0, channel: "hook") })
        try await running.reports.wait(count: 10, "ten deliveries")
        try await running.stop()
        #expect(inFlight.withLock { $0.most } <= 2)
        #expect(receiver.requests.all.count == 10)
    }
}
