import Crypto
import Foundation
import Testing
import TollgateEvents
@testable import TollgateNotify

/// HMAC-SHA256 as the webhook documentation tells a receiver to compute it, written independently of
/// `WebhookFormat`: key = the secret's UTF-8 bytes, message = timestamp, ".", body; lowercase hex.
func receiverSignature(secret: String, timestamp: String, body: Data) -> String {
    var message = Data(timestamp.utf8)
    message.append(contentsOf: Array(".".utf8))
    message.append(body)
    let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Data(secret.utf8)))
    return "sha256=" + Data(mac).map { String(format: "%02x", $0) }.joined()
}

/// Checks a received webhook exactly as the documentation says (steps 1 to 4).
func receiverVerifies(secret: String, headers: [String: String], body: Data, now: Date = Date()) -> Bool {
    guard let timestamp = headers["x-tollgate-timestamp"], let signature = headers["x-tollgate-signature"],
          let seconds = Double(timestamp), abs(now.timeIntervalSince1970 - seconds) <= 300 else { return false }
    let expected = Array(receiverSignature(secret: secret, timestamp: timestamp, body: body).utf8)
    let given = Array(signature.utf8)
    return expected.count == given.count && zip(expected, given).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
}

/// Decodes quoted-printable (for checking the e-mail body).
func decodeQuotedPrintable(_ text: String) -> String {
    var bytes: [UInt8] = []
    let input = Array(text.replacingOccurrences(of: "=\r\n", with: "").utf8)
    var index = 0
    while index < input.count {
        if input[index] == UInt8(ascii: "="), index + 2 < input.count,
           let value = UInt8(String(decoding: input[(index + 1)...(index + 2)], as: UTF8.self), radix: 16) {
            bytes.append(value)
            index += 3
        } else {
            bytes.append(input[index])
            index += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Decodes a header value made of RFC 2047 `B` encoded words separated by folding whitespace.
func decodeEncodedWords(_ value: String) -> String {
    var bytes: [UInt8] = []
    for word in value.split(whereSeparator: { $0 == " " || $0 == "\r" || $0 == "\n" || $0 == "\t" }) {
        guard word.hasPrefix("=?UTF-8?B?"), word.hasSuffix("?="),
              let data = Data(base64Encoded: String(word.dropFirst(10).dropLast(2))) else { return value }
        bytes += data
    }
    return String(decoding: bytes, as: UTF8.self)
}

@Suite("Webhook format")
struct WebhookFormatTests {
    let event = Samples.alert()

    @Test("the body is the alert's CloudEvent, canonical, plus three delivery extension attributes")
    func body() throws {
        let delivery = AlertDelivery(event: event, channel: "ops-hook", attempt: 3)
        let body = try WebhookFormat.body(for: delivery)
        let json = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(Set(json.keys) == ["data", "datacontenttype", "id", "source", "specversion", "subject", "time", "type",
                                   "tollgateattempt", "tollgatechannel", "tollgatedelivery"])
        #expect(json["type"] as? String == "tollgate.alert.v1")
        #expect(json["specversion"] as? String == "1.0")
        #expect(json["id"] as? String == "alert:budget-threshold|team:search|2026-11-01T00:00:00.000Z|80")
        #expect(json["tollgatedelivery"] as? String == "budget-threshold|team:search|2026-11-01T00:00:00.000Z|80#ops-hook")
        #expect(json["tollgatechannel"] as? String == "ops-hook")
        #expect(json["tollgateattempt"] as? Int == 3)
        let data = try #require(json["data"] as? [String: Any])
        #expect(data["alert_id"] as? String == event.data.alertID)
        #expect(data["severity"] as? String == "warning")
        #expect(data["raised_at"] as? String == "2026-11-29T08:00:03.050Z")

        // Without the extensions, the body is exactly the event's canonical JSON.
        var stripped = json
        for key in ["tollgateattempt", "tollgatechannel", "tollgatedelivery"] { stripped[key] = nil }
        let canonical = try #require(try JSONSerialization.jsonObject(with: EventCoding.encode(event)) as? [String: Any])
        #expect(NSDictionary(dictionary: stripped).isEqual(to: canonical))
        // Keys sorted, slashes unescaped, and the event's own decoder reads the body.
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.hasPrefix("{\"data\":{\"alert_id\":"))
        #expect(text.hasSuffix("\"tollgatedelivery\":\"\(delivery.id)\",\"type\":\"tollgate.alert.v1\"}"))
        #expect(text.contains("tollgate/alerts/test"))
        #expect(try EventCoding.decode(AlertData.self, from: body) == event)
        #expect(try WebhookFormat.body(for: delivery) == body)
    }

    @Test("headers carry the timestamp, the signature, the delivery id and the alert id")
    func headers() throws {
        let target = WebhookTarget(url: "https://hooks.example.com/in", secret: "s3cret", headers: ["X-Team": "platform"])
        let now = Date(timeIntervalSince1970: 1_795_939_210.9)
        let request = try WebhookFormat.request(for: AlertDelivery(event: event, channel: "ops-hook"), target: target,
                                                now: now)
        #expect(request.url == "https://hooks.example.com/in")
        #expect(request.header("Content-Type") == "application/cloudevents+json; charset=utf-8")
        #expect(request.header("X-Tollgate-Timestamp") == "1795939210")
        #expect(request.header("X-Tollgate-Delivery") == "budget-threshold|team:search|2026-11-01T00:00:00.000Z|80#ops-hook")
        #expect(request.header("X-Tollgate-Alert-Id") == "budget-threshold|team:search|2026-11-01T00:00:00.000Z|80")
        #expect(request.header("X-Tollgate-Attempt") == "1")
        #expect(request.header("X-Team") == "platform")
        #expect(request.header("X-Tollgate-Signature")
            == receiverSignature(secret: "s3cret", timestamp: "1795939210", body: request.body))
        let names = request.headers.map { $0.name.lowercased() }
        #expect(Set(names).count == names.count)
    }

    @Test("the documented verification accepts a signed body and refuses a tampered one, a wrong key and a stale timestamp")
    func verification() throws {
        let target = WebhookTarget(url: "https://hooks.example.com/in", secret: "k-123")
        let now = Date()
        let request = try WebhookFormat.request(for: AlertDelivery(event: event, channel: "c"), target: target, now: now)
        var headers: [String: String] = [:]
        for header in request.headers { headers[header.name.lowercased()] = header.value }
        #expect(receiverVerifies(secret: "k-123", headers: headers, body: request.body, now: now))
        var tampered = request.body
        tampered[tampered.count / 2] ^= 0x01
        #expect(!receiverVerifies(secret: "k-123", headers: headers, body: tampered, now: now))
        #expect(!receiverVerifies(secret: "k-124", headers: headers, body: request.body, now: now))
        #expect(!receiverVerifies(secret: "k-123", headers: headers, body: request.body, now: now.addingTimeInterval(400)))

        // The Swift helper agrees.
        let timestamp = try #require(request.header(WebhookFormat.timestampHeader))
        let signature = try #require(request.header(WebhookFormat.signatureHeader))
        #expect(WebhookFormat.verify(body: request.body, timestamp: timestamp, signature: signature, secret: "k-123", now: now))
        #expect(!WebhookFormat.verify(body: tampered, timestamp: timestamp, signature: signature, secret: "k-123", now: now))
        #expect(!WebhookFormat.verify(body: request.body, timestamp: timestamp, signature: signature, secret: "k-123",
                                      now: now.addingTimeInterval(-301)))
    }

    @Test("a known signature vector")
    func vector() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        #expect(WebhookFormat.signature(body: Data("{\"a\":1}".utf8), timestamp: "1700000000", secret: "secret")
            == receiverSignature(secret: "secret", timestamp: "1700000000", body: Data("{\"a\":1}".utf8)))
        #expect(WebhookFormat.signature(body: Data(), timestamp: "0", secret: "key").count == 7 + 64)
    }

    @Test("ids outside printable ASCII are percent-encoded in headers, exact in the body")
    func headerSafe() throws {
        let event = Samples.alert(scope: .team("zürich ops"))
        let request = try WebhookFormat.request(for: AlertDelivery(event: event, channel: "c"),
                                                target: WebhookTarget(url: "http://x", secret: "k"))
        let header = try #require(request.header("X-Tollgate-Alert-Id"))
        #expect(header == "budget-threshold|team:z%C3%BCrich%20ops|2026-11-01T00:00:00.000Z|80")
        #expect(header.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F })
        #expect(String(decoding: request.body, as: UTF8.self).contains("\"tollgatedelivery\":\"budget-threshold|team:z\u{fc}rich ops|2026-11-01T00:00:00.000Z|80#c\""))
        #expect(WebhookFormat.headerSafe("100%") == "100%25")
    }
}

@Suite("Slack format")
struct SlackFormatTests {
    @Test("the message has a fallback text and header, section and context blocks")
    func structure() throws {
        let event = Samples.alert()
        let body = try SlackFormat.body(for: AlertDelivery(event: event, channel: "search-slack"))
        let message = try JSONDecoder().decode(SlackFormat.Message.self, from: body)
        #expect(message.text == "[warning] Team search reached 80% of its monthly budget (team:search)")
        #expect(message.blocks.map(\.type) == ["header", "section", "section", "section", "context"])
        let header = message.blocks[0]
        #expect(header.text == .init(type: "plain_text", text: ":warning: Team search reached 80% of its monthly budget", emoji: true))
        #expect(message.blocks[1].text == .mrkdwn("Team search has spent $460.25 of $500.00 (92%) this month."))
        let facts = try #require(message.blocks[2].fields)
        #expect(facts.allSatisfy { $0.type == "mrkdwn" })
        #expect(facts.map(\.text) == [
            "*Severity*\nwarning", "*Scope*\nteam:search", "*Rule*\nbudget-threshold", "*Kind*\nbudget_threshold",
            "*Level*\n80%", "*Period start*\n2026-11-01 00:00:00 UTC", "*Raised at*\n2026-11-29 08:00:03 UTC",
        ])
        #expect(message.blocks[3].fields?.map(\.text) == [
            "*downgrading*\ntrue", "*limit*\n$500.00", "*spent_nano_usd*\n$460.25", "*used_percent_bp*\n92.05%",
        ])
        let context = try #require(message.blocks[4].elements)
        #expect(context == [.mrkdwn("Tollgate alert budget-threshold|team:search|2026-11-01T00:00:00.000Z|80 · delivery to search-slack")])

        // The JSON uses Slack's field names and nothing else.
        let json = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(Set(json.keys) == ["text", "blocks"])
        let blocks = try #require(json["blocks"] as? [[String: Any]])
        #expect(Set(blocks[0].keys) == ["type", "text"])
        #expect(Set(blocks[2].keys) == ["type", "fields"])
        #expect(Set(blocks[4].keys) == ["type", "elements"])
    }

    @Test("text is escaped for mrkdwn and cut to Slack's limits")
    func limits() throws {
        let long = String(repeating: "é", count: 400)
        let event = Samples.alert(severity: .critical, title: "<!channel> & " + long, message: String(repeating: "m", count: 5_000),
                                  observed: Dictionary(uniqueKeysWithValues: (0..<23).map { ("k\($0)", AlertValue.int(Int64($0))) }))
        let message = SlackFormat.message(for: AlertDelivery(event: event, channel: "c"))
        let header = try #require(message.blocks[0].text?.text)
        #expect(header.count == SlackFormat.headerLimit)
        #expect(header.hasPrefix(":rotating_light: <!channel> & é"))  // plain_text is not mrkdwn: no escaping
        #expect(header.hasSuffix("…"))
        #expect(message.text.hasPrefix("[critical] &lt;!channel&gt; &amp; é"))
        #expect(try #require(message.blocks[1].text?.text).count == SlackFormat.sectionLimit)
        // 23 observations: three sections of at most ten fields.
        let observedSections = message.blocks.dropFirst(3).filter { $0.type == "section" }
        #expect(observedSections.map { $0.fields?.count ?? 0 } == [10, 10, 3])
        #expect(message.blocks.count <= 50)
    }
}

@Suite("E-mail format")
struct EmailFormatTests {
    let from = try! MailAddress(parsing: "Tollgate Alerts <alerts@example.com>")
    let to = [try! MailAddress(parsing: "oncall@example.com"), try! MailAddress(parsing: "Fin Ops <finops@example.org>")]

    func render(_ event: AlertEvent, channel: String = "oncall") -> (message: EmailMessage, text: String) {
        let message = EmailFormat.message(for: AlertDelivery(event: event, channel: channel), from: from, to: to,
                                          date: Date(timeIntervalSince1970: 1_795_939_210))
        return (message, String(decoding: message.rendered(), as: UTF8.self))
    }

    func headers(_ text: String) -> [String: String] {
        let head = text.components(separatedBy: "\r\n\r\n")[0].replacingOccurrences(of: "\r\n ", with: " ")
        var headers: [String: String] = [:]
        for line in head.components(separatedBy: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        return headers
    }

    @Test("an RFC 5322 message with MIME headers and a quoted-printable UTF-8 body")
    func headersAndBody() throws {
        let (message, text) = render(Samples.alert())
        let headers = headers(text)
        #expect(headers["date"] == "Sun, 29 Nov 2026 08:00:10 +0000")
        #expect(headers["from"] == "Tollgate Alerts <alerts@example.com>")
        #expect(headers["to"] == "oncall@example.com, Fin Ops <finops@example.org>")
        #expect(headers["subject"] == "[Tollgate warning] Team search reached 80% of its monthly budget")
        #expect(headers["message-id"] == message.messageID)
        #expect(headers["mime-version"] == "1.0")
        #expect(headers["content-type"] == "text/plain; charset=utf-8")
        #expect(headers["content-transfer-encoding"] == "quoted-printable")
        #expect(headers["auto-submitted"] == "auto-generated")
        #expect(headers["x-tollgate-alert-id"] == "budget-threshold|team:search|2026-11-01T00:00:00.000Z|80")
        #expect(headers["x-tollgate-delivery"] == "budget-threshold|team:search|2026-11-01T00:00:00.000Z|80#oncall")
        // CRLF everywhere; no line over 78 characters in the head (but the ids, which have no space to fold at)
        // or 76 in the body.
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        let parts = text.components(separatedBy: "\r\n\r\n")
        #expect(parts[0].components(separatedBy: "\r\n").allSatisfy { $0.count <= 78 || $0.hasPrefix("X-Tollgate-") })
        let body = parts.dropFirst().joined(separator: "\r\n\r\n")
        #expect(body.components(separatedBy: "\r\n").allSatisfy { $0.count <= 76 })
        let decoded = decodeQuotedPrintable(body)
        #expect(decoded.contains("Team search has spent $460.25 of $500.00 (92%) this month."))
        #expect(decoded.contains("Scope:        team:search"))
        #expect(decoded.contains("  spent_nano_usd: $460.25"))
        #expect(decoded.contains("Alert id: budget-threshold|team:search|2026-11-01T00:00:00.000Z|80"))
    }

    @Test("Message-ID is derived from the alert id and the channel: the same on every attempt, different per channel")
    func messageID() {
        let event = Samples.alert()
        let first = render(event).message.messageID
        let again = EmailFormat.message(for: AlertDelivery(event: event, channel: "oncall", attempt: 5), from: from, to: to,
                                        date: Date()).messageID
        #expect(first == again)
        #expect(first != render(event, channel: "other").message.messageID)
        #expect(first != render(Samples.alert(level: 50)).message.messageID)
        #expect(first.hasPrefix("<alert.") && first.hasSuffix("@example.com>"))
        #expect(first.count == "<alert.".count + 32 + "@example.com>".count)
    }

    @Test("non-ASCII subjects and names are RFC 2047 encoded words that decode back")
    func nonASCII() throws {
        let title = "Équipe « recherche » a atteint 80 % de son budget mensuel — 東京チームの予算アラート 🚨"
        let sender = try MailAddress(parsing: "Péage Tollgate <alerts@example.com>")
        let message = EmailFormat.message(for: AlertDelivery(event: Samples.alert(title: title), channel: "c"),
                                          from: sender, to: to)
        let text = String(decoding: message.rendered(), as: UTF8.self)
        let head = text.components(separatedBy: "\r\n\r\n")[0]
        #expect(head.utf8.allSatisfy { $0 < 0x80 })
        #expect(head.components(separatedBy: "\r\n").allSatisfy { $0.count <= 78 || $0.hasPrefix("X-Tollgate-") })
        let subject = try #require(headers(text)["subject"])
        #expect(subject.hasPrefix("=?UTF-8?B?"))
        #expect(decodeEncodedWords(subject) == "[Tollgate warning] " + title)
        let fromHeader = try #require(headers(text)["from"])
        #expect(fromHeader.hasSuffix(" <alerts@example.com>"))
        #expect(decodeEncodedWords(String(fromHeader.dropLast(" <alerts@example.com>".count))) == "Péage Tollgate")
        #expect(decodeQuotedPrintable(text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n"))
            .hasPrefix(title + "\r\n"))
        // Every encoded word within RFC 2047's 75 characters.
        for word in subject.split(separator: " ") { #expect(word.count <= 75) }
    }

    @Test("quoted-printable keeps trailing spaces, '=' and long lines safe")
    func quotedPrintable() {
        let text = "a = b \nFrom here\n" + String(repeating: "x", count: 200) + "\n.leading dot"
        let encoded = EmailFormat.quotedPrintable(text)
        #expect(encoded.components(separatedBy: "\r\n").allSatisfy { $0.count <= 76 })
        #expect(encoded.hasPrefix("a =3D b=20\r\n=46rom here\r\n"))
        #expect(decodeQuotedPrintable(encoded) == text.replacingOccurrences(of: "\n", with: "\r\n"))
    }

    @Test("addresses parse with and without display names; bad ones are refused")
    func addresses() throws {
        #expect(try MailAddress(parsing: "ops@example.com") == MailAddress(address: "ops@example.com"))
        #expect(try MailAddress(parsing: "  Ops Team <ops@example.com> ") == MailAddress(address: "ops@example.com", displayName: "Ops Team"))
        #expect(try MailAddress(parsing: "\"Ops, Finance\" <ops@example.com>").displayName == "Ops, Finance")
        #expect(try MailAddress(parsing: "<ops@localhost>").address == "ops@localhost")
        for bad in ["", "ops", "ops@", "@example.com", "a b@example.com", "ops@exa mple.com", "ops@ex..com", "Ops <ops>",
                    "ü@example.com"] {
            #expect(throws: MailAddress.ParseError.self, "\(bad)") { try MailAddress(parsing: bad) }
        }
        #expect(MailAddress(address: "a@b.c", displayName: "Ops, Finance").headerValue == "\"Ops, Finance\" <a@b.c>")
    }
}

@Suite("Retry policy and HTTP outcomes")
struct RetryPolicyTests {
    @Test("the delay ceiling doubles from the base up to the cap; delays stay within it")
    func backoff() {
        let policy = RetryPolicy(baseDelay: .seconds(1), maxDelay: .seconds(300), maxAttempts: 12)
        #expect((1...11).map { policy.ceiling(afterAttempt: $0) }
            == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map { Duration.seconds($0) })
        #expect(policy.ceiling(afterAttempt: 500) == .seconds(300))
        var generator = SystemRandomNumberGenerator()
        var seen = Set<Int64>()
        for _ in 0..<200 {
            let delay = policy.delay(afterAttempt: 4, using: &generator)
            #expect(delay >= .zero && delay <= .seconds(8))
            seen.insert(delay.milliseconds)
        }
        #expect(seen.count > 50)  // jittered, not a constant
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(30)) >= .seconds(30))
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(3_600)) == .seconds(300))
        #expect(!policy.isExhausted(afterAttempt: 11))
        #expect(policy.isExhausted(afterAttempt: 12))
    }

    @Test("2xx delivers; 408, 429 and 5xx retry; other answers fail for good")
    func statuses() {
        #expect(HTTPPost.classify(status: 200, body: [], retryAfter: nil) == .delivered)
        #expect(HTTPPost.classify(status: 204, body: [], retryAfter: nil) == .delivered)
        for status in [408, 429, 500, 502, 503] {
            guard case .retry = HTTPPost.classify(status: status, body: [], retryAfter: nil) else {
                Issue.record("\(status) should be retried")
                continue
            }
        }
        #expect(HTTPPost.classify(status: 429, body: Array("slow down".utf8), retryAfter: .seconds(7))
            == .retry(reason: "HTTP 429: slow down", retryAfter: .seconds(7)))
        #expect(HTTPPost.classify(status: 404, body: Array("no_service\n".utf8), retryAfter: nil)
            == .failed(reason: "HTTP 404: no_service"))
        #expect(HTTPPost.classify(status: 400, body: [], retryAfter: nil) == .failed(reason: "HTTP 400"))
        #expect(HTTPPost.classify(status: 301, body: [], retryAfter: nil) == .failed(reason: "HTTP 301"))
    }

    @Test("Retry-After is read as seconds or as an HTTP date")
    func retryAfter() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(HTTPPost.parseRetryAfter("120", now: now) == .seconds(120))
        #expect(HTTPPost.parseRetryAfter("Tue, 14 Nov 2023 22:14:20 GMT", now: now) == .seconds(60))
        #expect(HTTPPost.parseRetryAfter("soon", now: now) == nil)
    }
}
