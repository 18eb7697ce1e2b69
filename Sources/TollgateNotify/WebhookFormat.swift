import Crypto
public import Foundation
import TollgateEvents

/// What a generic webhook channel sends, and how a receiver checks it.
///
/// ## The request
///
/// Each alert is POSTed to the channel's URL as its `tollgate.alert.v1` CloudEvent in structured mode
/// (`Content-Type: application/cloudevents+json; charset=utf-8`): the event's canonical JSON (keys sorted,
/// times in RFC 3339 UTC with milliseconds) plus three CloudEvents extension attributes with delivery
/// metadata:
///
/// - `tollgatedelivery`: the delivery id, `<alert_id>#<channel>` (the same on every attempt);
/// - `tollgatechannel`: the channel's name;
/// - `tollgateattempt`: the attempt number, 1 for the first.
///
/// ```json
/// {"data":{"alert_id":"default-budget-threshold/search-monthly|team:search|2026-11-01T00:00:00.000Z|80","kind":"budget_threshold",
///  "level_percent":80,"message":"...","observed":{...},"period_start":"2026-11-01T00:00:00.000Z",
///  "raised_at":"2026-11-29T08:00:03.050Z","rule_id":"default-budget-threshold","scope":{"id":"search","kind":"team"},
///  "severity":"warning","title":"..."},"datacontenttype":"application/json",
///  "id":"alert:default-budget-threshold/search-monthly|team:search|2026-11-01T00:00:00.000Z|80","source":"tollgate/alerts/host-1",
///  "specversion":"1.0","subject":"team:search","time":"2026-11-29T08:00:03.100Z",
///  "tollgateattempt":1,"tollgatechannel":"ops-hook",
///  "tollgatedelivery":"default-budget-threshold/search-monthly|team:search|2026-11-01T00:00:00.000Z|80#ops-hook","type":"tollgate.alert.v1"}
/// ```
///
/// Headers:
///
/// - `X-Tollgate-Timestamp`: when this attempt was signed, in decimal Unix seconds;
/// - `X-Tollgate-Signature`: `sha256=` and the lowercase hex HMAC-SHA256 of `<timestamp>.<body>`;
/// - `X-Tollgate-Delivery`: the delivery id (the same on every attempt of an alert on a channel);
/// - `X-Tollgate-Alert-Id`: the alert id (the same for an alert on every channel);
/// - `X-Tollgate-Attempt`: the attempt number.
///
/// Header values are percent-encoded (`%XX`) for spaces, bytes outside printable ASCII and `%` itself; ids
/// made by Tollgate's rules are printable ASCII and appear unchanged. The body always has the exact ids.
///
/// ## Verifying a delivery
///
/// 1. Read the raw request body, byte for byte as received, before any JSON parsing, and the
///    `X-Tollgate-Timestamp` header.
/// 2. Compute HMAC-SHA256, with the channel's secret (its UTF-8 bytes) as the key, over the timestamp
///    header's value, one full stop (`.`), then the body bytes.
/// 3. Write the 32-byte result as 64 lowercase hex digits, prefix `sha256=`, and compare it with
///    `X-Tollgate-Signature` in constant time. If they differ, answer 401 and drop the request.
/// 4. Refuse timestamps more than 5 minutes away from your clock, so a captured request cannot be
///    replayed later.
/// 5. Drop duplicates by `X-Tollgate-Delivery` (or the body's `tollgatedelivery`): delivery is at least
///    once, so the same delivery can arrive again after a timeout or a restart of Tollgate.
///
/// In Python:
///
/// ```python
/// import hashlib, hmac, time
///
/// def verify(secret: str, headers, body: bytes) -> bool:
///     timestamp = headers["X-Tollgate-Timestamp"]
///     expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body,
///                                     hashlib.sha256).hexdigest()
///     return (hmac.compare_digest(expected, headers["X-Tollgate-Signature"])
///             and abs(time.time() - int(timestamp)) <= 300)
/// ```
///
/// In Swift, ``verify(body:timestamp:signature:secret:now:tolerance:)`` does steps 2 to 4.
///
/// ## The answer
///
/// Any 2xx answer means delivered. 408, 429 and 5xx answers, connection errors and timeouts are retried
/// with exponential back-off and jitter (a `Retry-After` header is honoured, capped at the retry policy's
/// `max_delay`); any other answer (4xx, 3xx) dead-letters the delivery at once with the status and the
/// start of the body as the reason.
public enum WebhookFormat {
    /// `X-Tollgate-Signature`.
    public static let signatureHeader = "X-Tollgate-Signature"
    /// `X-Tollgate-Timestamp`.
    public static let timestampHeader = "X-Tollgate-Timestamp"
    /// `X-Tollgate-Delivery`.
    public static let deliveryHeader = "X-Tollgate-Delivery"
    /// `X-Tollgate-Alert-Id`.
    public static let alertIDHeader = "X-Tollgate-Alert-Id"
    /// `X-Tollgate-Attempt`.
    public static let attemptHeader = "X-Tollgate-Attempt"
    /// The body's content type: a CloudEvent in structured mode.
    public static let contentType = "application/cloudevents+json; charset=utf-8"
    /// The `User-Agent` of every request.
    public static let userAgent = "Tollgate-Alerts/1"

    /// A request ready to send.
    public struct Request: Sendable, Hashable {
        /// Where to POST.
        public var url: String
        /// The headers, in order.
        public var headers: [Header]
        /// The body.
        public var body: Data

        /// The value of the first header named `name` (case-insensitive).
        public func header(_ name: String) -> String? {
            headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
        }
    }

    /// One header.
    public struct Header: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The body: the alert's CloudEvent JSON with the delivery extension attributes, keys sorted.
    public static func body(for delivery: AlertDelivery) throws -> Data {
        try EventCoding.encode(Body(delivery: delivery))
    }

    /// The signature header's value for `body` signed at `timestamp`:
    /// `sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
    public static func signature(body: Data, timestamp: String, secret: String) -> String {
        var message = Data(timestamp.utf8)
        message.append(UInt8(ascii: "."))
        message.append(body)
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + Data(code).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// Checks a received delivery as the documentation's steps 2 to 4 say: the signature matches (compared in
    /// constant time) and the timestamp is within `tolerance` of `now`.
    public static func verify(body: Data, timestamp: String, signature: String, secret: String,
                              now: Date = Date(), tolerance: Duration = .seconds(300)) -> Bool {
        guard let seconds = Int64(timestamp),
              abs(now.timeIntervalSince1970 - Double(seconds)) <= Double(tolerance.components.seconds) else {
            return false
        }
        let expected = Array(Self.signature(body: body, timestamp: timestamp, secret: secret).utf8)
        let given = Array(signature.utf8)
        guard expected.count == given.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(expected, given) { difference |= a ^ b }
        return difference == 0
    }

    /// The complete request for one attempt, signed at `now`.
    public static func request(for delivery: AlertDelivery, target: WebhookTarget, now: Date = Date()) throws -> Request {
        let body = try body(for: delivery)
        let timestamp = String(Int64(now.timeIntervalSince1970.rounded(.down)))
        var headers = [
            Header("Content-Type", contentType),
            Header("User-Agent", userAgent),
        ]
        for name in target.headers.keys.sorted() { headers.append(Header(name, target.headers[name]!)) }
        headers += [
            Header(timestampHeader, timestamp),
            Header(signatureHeader, signature(body: body, timestamp: timestamp, secret: target.secret)),
            Header(deliveryHeader, headerSafe(delivery.id)),
            Header(alertIDHeader, headerSafe(delivery.alertID)),
            Header(attemptHeader, String(delivery.attempt)),
        ]
        return Request(url: target.url, headers: headers, body: body)
    }

    /// `text` with spaces, bytes outside printable ASCII, and `%`, written as `%XX`.
    public static func headerSafe(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            if byte > 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                output.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                output += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return output
    }

    /// The event's own members, then the extension attributes: one JSON object (keys sorted by the encoder).
    struct Body: Encodable {
        let delivery: AlertDelivery

        enum Extension: String, CodingKey {
            case delivery = "tollgatedelivery"
            case channel = "tollgatechannel"
            case attempt = "tollgateattempt"
        }

        func encode(to encoder: any Encoder) throws {
            try delivery.event.encode(to: encoder)
            var container = encoder.container(keyedBy: Extension.self)
            try container.encode(delivery.id, forKey: .delivery)
            try container.encode(delivery.channel, forKey: .channel)
            try container.encode(delivery.attempt, forKey: .attempt)
        }
    }
}
