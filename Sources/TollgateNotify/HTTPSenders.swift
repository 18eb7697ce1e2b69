public import AsyncHTTPClient
public import Foundation
import NIOCore

/// Sends alerts to a generic webhook: the signed CloudEvent described in ``WebhookFormat``.
public struct WebhookSender: AlertSender {
    /// Where and how.
    public let target: WebhookTarget
    let client: HTTPClient
    let now: @Sendable () -> Date

    /// - Parameters:
    ///   - client: A shared client (its redirect settings apply: with the default, redirects are followed).
    ///   - now: The clock signatures are dated with.
    public init(target: WebhookTarget, client: HTTPClient, now: @escaping @Sendable () -> Date = { Date() }) {
        self.target = target
        self.client = client
        self.now = now
    }

    public var kind: ChannelKind { .webhook }

    public func send(_ delivery: AlertDelivery) async -> DeliveryResult {
        let request: WebhookFormat.Request
        do {
            request = try WebhookFormat.request(for: delivery, target: target, now: now())
        } catch {
            return .failed(reason: "cannot encode the alert: \(error)")
        }
        return await HTTPPost.send(client: client, url: request.url, headers: request.headers, body: request.body,
                                   timeout: target.timeout)
    }
}

/// Sends alerts to a Slack incoming webhook, in the Block Kit message described in ``SlackFormat``.
public struct SlackSender: AlertSender {
    /// Where and how.
    public let target: SlackTarget
    let client: HTTPClient

    public init(target: SlackTarget, client: HTTPClient) {
        self.target = target
        self.client = client
    }

    public var kind: ChannelKind { .slack }

    public func send(_ delivery: AlertDelivery) async -> DeliveryResult {
        let body: Data
        do {
            body = try SlackFormat.body(for: delivery)
        } catch {
            return .failed(reason: "cannot encode the Slack message: \(error)")
        }
        return await HTTPPost.send(
            client: client, url: target.url,
            headers: [.init("Content-Type", "application/json; charset=utf-8"),
                      .init("User-Agent", WebhookFormat.userAgent)],
            body: body, timeout: target.timeout)
    }
}

extension ResolvedChannel {
    /// The sender for this channel. Webhook and Slack channels share `httpClient`; e-mail channels use
    /// libcurl.
    public func makeSender(httpClient: HTTPClient) -> any AlertSender {
        switch target {
        case .webhook(let target): WebhookSender(target: target, client: httpClient)
        case .slack(let target): SlackSender(target: target, client: httpClient)
        case .email(let target): EmailSender(target: target)
        }
    }
}

/// One POST and what its outcome means for a delivery.
enum HTTPPost {
    /// The most of an error answer's body kept for the reason.
    static let reasonBytes = 300

    static func send(client: HTTPClient, url: String, headers: [WebhookFormat.Header], body: Data,
                     timeout: Duration) async -> DeliveryResult {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for header in headers { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: .milliseconds(max(timeout.milliseconds, 1)))
            // Read (and so release) the whole body; keep its start for the reason.
            var start: [UInt8] = []
            do {
                for try await chunk in response.body where start.count < reasonBytes {
                    start += chunk.readableBytesView.prefix(reasonBytes - start.count)
                }
            } catch {
                // The status decides; a body cut short does not change it.
            }
            let retryAfter = response.headers.first(name: "retry-after").flatMap { parseRetryAfter($0, now: Date()) }
            return classify(status: Int(response.status.code), body: start, retryAfter: retryAfter)
        } catch {
            if Task.isCancelled { return .retry(reason: "interrupted (shutting down)") }
            return classify(error: error)
        }
    }

    /// 2xx: delivered. 408, 429 and 5xx: retry. Anything else: failed.
    static func classify(status: Int, body: [UInt8], retryAfter: Duration?) -> DeliveryResult {
        if (200..<300).contains(status) { return .delivered }
        var reason = "HTTP \(status)"
        let text = String(decoding: body, as: UTF8.self)
            .replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
            .trimmingCharacters(in: .whitespaces)
        if !text.isEmpty { reason += ": " + AlertText.truncated(text, to: 200) }
        if status == 408 || status == 429 || (500..<600).contains(status) {
            return .retry(reason: reason, retryAfter: retryAfter)
        }
        return .failed(reason: reason)
    }

    /// A URL the client cannot use fails for good; everything else (refused connections, timeouts, resets,
    /// TLS handshakes) is worth retrying.
    static func classify(error: any Error) -> DeliveryResult {
        if let error = error as? HTTPClientError {
            switch error {
            case .invalidURL, .emptyHost, .emptyScheme, .invalidRedirectConfiguration:
                return .failed(reason: "unusable URL: \(error)")
            case .redirectLimitReached, .redirectCycleDetected:
                return .failed(reason: "\(error)")
            default:
                if "\(error)".contains("unsupportedScheme") { return .failed(reason: "unusable URL: \(error)") }
            }
        }
        return .retry(reason: "request failed: \(error)")
    }

    /// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); `nil` when unreadable.
    static func parseRetryAfter(_ value: String, now: Date) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int64(text), seconds >= 0 { return .seconds(min(seconds, 86_400 * 365)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return .milliseconds(max(Int64(date.timeIntervalSince(now) * 1_000), 0))
    }
}
