import CCurl
public import Foundation
import TollgateLog
import Synchronization

/// Sends alerts by e-mail over SMTP, with libcurl: the message described in ``EmailFormat``.
///
/// `smtp://` URLs are upgraded with STARTTLS (required unless the channel says `starttls: optional`);
/// `smtps://` URLs use TLS from the start. Certificates are verified against the system's authorities (and
/// the channel's `ca_file`). Each attempt is one connection; the transfer runs on a dispatch queue, off the
/// Swift concurrency pool, and is aborted when the task is cancelled.
///
/// An SMTP 5xx reply, a refused login, a missing STARTTLS where it is required and an unusable URL fail for
/// good; 4xx replies, connection errors and timeouts are retried.
public struct EmailSender: AlertSender {
    /// Where and how.
    public let target: EmailTarget
    let now: @Sendable () -> Date

    /// - Parameter now: The clock the `Date` header is written with.
    public init(target: EmailTarget, now: @escaping @Sendable () -> Date = { Date() }) {
        self.target = target
        self.now = now
    }

    public var kind: ChannelKind { .email }

    public func send(_ delivery: AlertDelivery) async -> DeliveryResult {
        let message = EmailFormat.message(for: delivery, from: target.from, to: target.to, date: now())
        let transfer = SMTPTransfer(
            url: target.smtpURL, requireTLS: target.starttls == .required, username: target.username,
            password: target.password, caFile: target.caFile, from: target.from.address,
            recipients: target.to.map(\.address), message: message.rendered(), timeout: target.timeout)
        do {
            try await SMTPClient.send(transfer)
            return .delivered
        } catch let error as SMTPError {
            if Task.isCancelled { return .retry(reason: "interrupted (shutting down)") }
            return error.isPermanent ? .failed(reason: error.description) : .retry(reason: error.description)
        } catch {
            return .retry(reason: "\(error)")
        }
    }
}

/// Why an SMTP exchange failed.
public struct SMTPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// libcurl's error code (`CURLcode`).
    public var curlCode: Int
    /// The server's last SMTP reply code, if it sent one (such as 550).
    public var replyCode: Int?
    /// libcurl's description of the error, and its detail.
    public var message: String
    /// Whether retrying cannot help.
    public var isPermanent: Bool

    public var description: String {
        "SMTP failed: \(message)" + (replyCode.map { " (last SMTP reply \($0))" } ?? "")
    }
}

/// One message to send.
struct SMTPTransfer: Sendable {
    var url: String
    var requireTLS: Bool
    var username: String?
    var password: String?
    var caFile: String?
    /// Envelope sender, `local@domain`.
    var from: String
    /// Envelope recipients, `local@domain`.
    var recipients: [String]
    /// The RFC 5322 message, CRLF line ends.
    var message: Data
    var timeout: Duration
}

/// SMTP over libcurl's easy interface. Every `curl_*` call of the package is in this file.
enum SMTPClient {
    /// `curl_global_init`, once per process, before the first handle.
    private static let globalInit: Int = Int(curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue)

    /// Sends one message; returns once the server accepted it.
    static func send(_ transfer: SMTPTransfer) async throws {
        let upload = CurlUpload(bytes: Array(transfer.message))
        try await withTaskCancellationHandler {
            try await Blocking.run { try perform(transfer, upload: upload) }
        } onCancel: {
            upload.aborted.store(true, ordering: .relaxed)
        }
    }

    /// The blocking exchange.
    static func perform(_ transfer: SMTPTransfer, upload: CurlUpload) throws(SMTPError) {
        guard globalInit == Int(CURLE_OK.rawValue) else {
            throw SMTPError(curlCode: globalInit, replyCode: nil, message: "curl_global_init failed", isPermanent: false)
        }
        guard let handle = curl_easy_init() else {
            throw SMTPError(curlCode: -1, replyCode: nil, message: "curl_easy_init failed", isPermanent: false)
        }
        defer { curl_easy_cleanup(handle) }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        defer { errorBuffer.deallocate() }
        errorBuffer[0] = 0
        var recipients: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(recipients) }
        for recipient in transfer.recipients { recipients = curl_slist_append(recipients, "<\(recipient)>") }

        let context = Unmanaged.passUnretained(upload).toOpaque()
        let timeout = max(transfer.timeout.milliseconds, 1)
        var setup: [(String, CURLcode)] = [
            ("URL", tg_curl_setopt_string(handle, CURLOPT_URL, transfer.url)),
            ("PROTOCOLS_STR", tg_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "smtp,smtps")),
            ("NOSIGNAL", tg_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)),
            ("USE_SSL", tg_curl_setopt_long(handle, CURLOPT_USE_SSL,
                                            Int(transfer.requireTLS ? CURLUSESSL_ALL.rawValue : CURLUSESSL_TRY.rawValue))),
            ("MAIL_FROM", tg_curl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(transfer.from)>")),
            ("MAIL_RCPT", tg_curl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients)),
            ("UPLOAD", tg_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)),
            ("READFUNCTION", tg_curl_setopt_readfunction(handle, curlRead)),
            ("READDATA", tg_curl_setopt_pointer(handle, CURLOPT_READDATA, context)),
            ("NOPROGRESS", tg_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)),
            ("XFERINFOFUNCTION", tg_curl_setopt_xferinfofunction(handle, curlProgress)),
            ("XFERINFODATA", tg_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context)),
            ("TIMEOUT_MS", tg_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout))),
            ("CONNECTTIMEOUT_MS", tg_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(min(timeout, 10_000)))),
            ("ERRORBUFFER", tg_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))),
        ]
        if let username = transfer.username {
            setup.append(("USERNAME", tg_curl_setopt_string(handle, CURLOPT_USERNAME, username)))
        }
        if let password = transfer.password {
            setup.append(("PASSWORD", tg_curl_setopt_string(handle, CURLOPT_PASSWORD, password)))
        }
        if let caFile = transfer.caFile {
            setup.append(("CAINFO", tg_curl_setopt_string(handle, CURLOPT_CAINFO, caFile)))
        }
        if let (option, code) = setup.first(where: { $0.1 != CURLE_OK }) {
            throw SMTPError(curlCode: Int(code.rawValue), replyCode: nil,
                            message: "cannot set CURLOPT_\(option): \(String(cString: curl_easy_strerror(code)))",
                            isPermanent: true)
        }

        let result = withExtendedLifetime(upload) { curl_easy_perform(handle) }
        if result == CURLE_OK { return }
        var reply = 0
        _ = tg_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &reply)
        let detail = String(cString: errorBuffer)
        var message = String(cString: curl_easy_strerror(result))
        if !detail.isEmpty, detail != message { message += ": " + detail }
        let permanentCodes: Set<UInt32> = [
            CURLE_URL_MALFORMAT.rawValue, CURLE_UNSUPPORTED_PROTOCOL.rawValue, CURLE_LOGIN_DENIED.rawValue,
            CURLE_USE_SSL_FAILED.rawValue,
        ]
        throw SMTPError(curlCode: Int(result.rawValue), replyCode: reply > 0 ? reply : nil, message: message,
                        isPermanent: permanentCodes.contains(result.rawValue) || (500..<600).contains(reply))
    }
}

/// The message being uploaded, and the flag that aborts the transfer.
///
/// `@unchecked Sendable`: `bytes` is immutable; `offset` is read and written only by ``curlRead``, which
/// libcurl calls on the one thread running `curl_easy_perform`; `aborted` is atomic.
final class CurlUpload: @unchecked Sendable {
    let bytes: [UInt8]
    var offset = 0
    let aborted = Atomic<Bool>(false)

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }
}

/// `CURLOPT_READFUNCTION`: copies the next part of the message into libcurl's buffer; 0 at the end.
private func curlRead(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                      _ context: UnsafeMutableRawPointer?) -> Int {
    guard let buffer, let context else { return Int(CURL_READFUNC_ABORT) }
    let upload = Unmanaged<CurlUpload>.fromOpaque(context).takeUnretainedValue()
    if upload.aborted.load(ordering: .relaxed) { return Int(CURL_READFUNC_ABORT) }
    let length = min(size * count, upload.bytes.count - upload.offset)
    if length > 0 {
        upload.bytes.withUnsafeBytes { source in
            UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + upload.offset, byteCount: length)
        }
        upload.offset += length
    }
    return length
}

/// `CURLOPT_XFERINFOFUNCTION`: a non-zero answer aborts the transfer (the task was cancelled).
private func curlProgress(_ context: UnsafeMutableRawPointer?, _ downloadTotal: curl_off_t, _ downloaded: curl_off_t,
                          _ uploadTotal: curl_off_t, _ uploaded: curl_off_t) -> Int32 {
    guard let context else { return 0 }
    return Unmanaged<CurlUpload>.fromOpaque(context).takeUnretainedValue().aborted.load(ordering: .relaxed) ? 1 : 0
}
