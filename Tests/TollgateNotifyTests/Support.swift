import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import TollgateEvents
import TollgateLog
@testable import TollgateNotify

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

var testLogger: Logger {
    var logger = Logger(label: "tollgate.notify.test")
    logger.logLevel = .critical
    return logger
}

/// A fresh directory under the temporary directory.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-notify-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Alert events for tests.
enum Samples {
    static let raisedAt = Date(timeIntervalSince1970: 1_795_939_203.05)  // 2026-11-29T08:00:03.050Z
    static let periodStart = Date(timeIntervalSince1970: 1_793_491_200)  // 2026-11-01T00:00:00Z

    static func alert(rule: String = "budget-threshold", scope: Scope = .team("search"), level: Int? = 80,
                      severity: AlertData.Severity = .warning,
                      title: String = "Team search reached 80% of its monthly budget",
                      message: String = "Team search has spent $460.25 of $500.00 (92%) this month.",
                      observed: [String: AlertValue] = ["spent_nano_usd": 460_250_000_000, "used_percent_bp": 9205,
                                                        "limit": "$500.00", "downgrading": true]) -> AlertEvent {
        let id = AlertData.makeAlertID(ruleID: rule, scope: scope, periodStart: level == nil ? nil : periodStart,
                                       levelPercent: level)
        return AlertEvent(
            id: "alert:" + id, source: "tollgate/alerts/test", time: raisedAt.addingTimeInterval(0.05),
            subject: scope.description,
            data: AlertData(alertID: id, ruleID: rule, kind: .budgetThreshold, severity: severity, scope: scope,
                            periodStart: level == nil ? nil : periodStart, levelPercent: level, title: title,
                            message: message, observed: observed, raisedAt: raisedAt))
    }

    /// `count` distinct alerts (levels 1...count) for one team.
    static func alerts(_ count: Int, team: String = "search") -> [AlertEvent] {
        (1...count).map { alert(scope: .team(team), level: $0, title: "Team \(team) reached \($0)%") }
    }
}

/// Runs `body`, failing with a timeout error after `limit`.
func withTimeout<T: Sendable>(_ limit: Duration = .seconds(20), _ what: String,
                              _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TestFailure("timed out after \(limit) waiting for \(what)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A value behind a lock, shareable between tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    var value: Value {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }

    func withLock<Result: Sendable>(_ body: (inout sending Value) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }
}

/// Values recorded by a receiver, and waiting for them.
final class Recorder<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])
    private let wakeup = ChangeNotifier()

    /// Records `value`; returns how many values there are now.
    @discardableResult
    func append(_ value: Value) -> Int {
        let count = values.withLock { values -> Int in
            values.append(value)
            return values.count
        }
        wakeup.signal()
        return count
    }

    var all: [Value] { values.withLock { $0 } }

    /// Waits until `predicate` holds for the recorded values (up to `limit`), and returns them.
    @discardableResult
    func wait(_ what: String, limit: Duration = .seconds(20), until predicate: ([Value]) -> Bool) async throws -> [Value] {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: limit)
        while true {
            let version = wakeup.version
            let current = all
            if predicate(current) { return current }
            let now = clock.now
            if now >= end { throw TestFailure("timed out after \(limit) waiting for \(what); have \(current.count)") }
            await wakeup.wait(since: version, timeout: end - now)
        }
    }

    /// Waits for at least `count` values.
    @discardableResult
    func wait(count: Int, _ what: String, limit: Duration = .seconds(20)) async throws -> [Value] {
        try await wait(what, limit: limit) { $0.count >= count }
    }
}

/// Collects a deliverer's reports.
func recordReports(_ deliverer: Deliverer) -> Recorder<Deliverer.Report> {
    let recorder = Recorder<Deliverer.Report>()
    let stream = deliverer.reports()
    Task {
        for await report in stream { recorder.append(report) }
    }
    return recorder
}

/// A deliverer running in a service group, stopped with ``stop()``.
final class RunningDeliverer: Sendable {
    let deliverer: Deliverer
    let reports: Recorder<Deliverer.Report>
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(_ deliverer: Deliverer) {
        self.deliverer = deliverer
        reports = recordReports(deliverer)
        let group = ServiceGroup(configuration: .init(services: [.init(service: deliverer)], logger: testLogger))
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await withTimeout(.seconds(30), "the deliverer to stop") { [task] in try await task.value }
    }
}

// MARK: HTTP receivers

/// A request an HTTP receiver got.
struct ReceivedRequest: Sendable {
    var path: String
    /// Header values by lowercase name.
    var headers: [String: String]
    var body: Data

    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
}

/// What a receiver answers: status, headers, body.
struct Answer: Sendable {
    var status: Int
    var headers: [String: String] = [:]
    var body: String = ""

    static let ok = Answer(status: 200, body: "ok")
}

/// A Hummingbird server on 127.0.0.1 recording every POST, answering as `respond` says.
final class HTTPReceiver: Sendable {
    let port: Int
    let requests = Recorder<ReceivedRequest>()
    private let respond: Locked<@Sendable (ReceivedRequest, Int) async -> Answer>
    private let group: Mutex<ServiceGroup?> = Mutex(nil)
    private let task: Mutex<Task<Void, any Error>?> = Mutex(nil)

    /// Starts a receiver on `port` (0: any free port). `respond` gets each request and its number (1 for the first).
    init(port: Int = 0, respond: @escaping @Sendable (ReceivedRequest, Int) async -> Answer = { _, _ in .ok }) async throws {
        self.respond = Locked(respond)
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let requests = self.requests
        let respondBox = self.respond
        let router = Router()
        router.post("**") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let received = ReceivedRequest(path: request.uri.path, headers: headers, body: Data(buffer: body))
            let number = requests.append(received)
            let respond = respondBox.value
            let answer = await respond(received, number)
            var fields = HTTPFields()
            for (name, value) in answer.headers { fields[HTTPField.Name(name)!] = value }
            return Response(status: HTTPResponse.Status(code: answer.status), headers: fields,
                            body: ResponseBody(byteBuffer: ByteBuffer(string: answer.body)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                              onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: testLogger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: testLogger))
        self.group.withLock { $0 = group }
        task.withLock { $0 = Task { try await group.run() } }
        var bound = 0
        for await value in stream {
            bound = value
            break
        }
        guard bound > 0 else { throw TestFailure("the receiver did not start") }
        self.port = bound
    }

    func setRespond(_ respond: @escaping @Sendable (ReceivedRequest, Int) async -> Answer) {
        self.respond.value = respond
    }

    func url(_ path: String = "/hook") -> String { "http://127.0.0.1:\(port)\(path)" }

    func stop() async {
        if let group = group.withLock({ $0 }) { await group.triggerGracefulShutdown() }
        _ = try? await task.withLock({ $0 })?.value
    }
}

/// A TCP port that was free a moment ago (bound and released), for a receiver started later.
func freePort() async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    return port
}

// MARK: SMTP receiver

/// A small SMTP server on 127.0.0.1 (no TLS, no AUTH): records each message, answers as configured.
final class SMTPReceiver: Sendable {
    struct Mail: Sendable {
        var ehlo: String
        var from: String
        var recipients: [String]
        /// The message as received, dot-stuffing undone, CRLF line ends.
        var data: String

        /// Unfolded header values by lowercase name (the first of each).
        var headers: [String: String] {
            let head = data.components(separatedBy: "\r\n\r\n").first ?? ""
            var headers: [String: String] = [:]
            var last: String?
            for line in head.components(separatedBy: "\r\n") {
                if line.hasPrefix(" ") || line.hasPrefix("\t"), let last {
                    headers[last, default: ""] += line
                } else if let colon = line.firstIndex(of: ":") {
                    let name = line[..<colon].lowercased()
                    last = name
                    if headers[name] == nil {
                        headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    } else {
                        last = nil
                    }
                }
            }
            return headers
        }

        var body: String { data.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n") }
    }

    /// The replies to `RCPT TO` and to the end of `DATA`.
    struct Replies: Sendable {
        var rcpt = "250 2.1.5 OK"
        var data = "250 2.0.0 OK queued"
    }

    let port: Int
    let mails = Recorder<Mail>()
    let replies: Locked<Replies>
    private let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let task: Task<Void, Never>

    init(replies: Replies = Replies()) async throws {
        self.replies = Locked(replies)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        self.server = server
        port = server.channel.localAddress?.port ?? 0
        let mails = self.mails
        let repliesBox = self.replies
        task = Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask {
                            try? await Self.serve(connection, mails: mails, replies: repliesBox.value)
                        }
                    }
                }
            }
        }
    }

    var url: String { "smtp://127.0.0.1:\(port)" }

    func stop() async {
        try? await server.channel.close()
        await task.value
    }

    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, mails: Recorder<Mail>,
                              replies: Replies) async throws {
        try await connection.executeThenClose { inbound, outbound in
            func reply(_ text: String) async throws {
                try await outbound.write(ByteBuffer(string: text + "\r\n"))
            }
            try await reply("220 tollgate-test ESMTP ready")
            var pending = ByteBuffer()
            var mail = Mail(ehlo: "", from: "", recipients: [], data: "")
            var dataLines: [String]?
            for try await chunk in inbound {
                pending.writeImmutableBuffer(chunk)
                while let line = nextLine(&pending) {
                    if var lines = dataLines {
                        if line == "." {
                            mail.data = lines.joined(separator: "\r\n")
                            dataLines = nil
                            if replies.data.hasPrefix("250") { mails.append(mail) }
                            try await reply(replies.data)
                            mail = Mail(ehlo: mail.ehlo, from: "", recipients: [], data: "")
                        } else {
                            lines.append(line.hasPrefix(".") ? String(line.dropFirst()) : line)
                            dataLines = lines
                        }
                        continue
                    }
                    let upper = line.uppercased()
                    if upper.hasPrefix("EHLO") || upper.hasPrefix("HELO") {
                        mail.ehlo = String(line.dropFirst(5))
                        try await reply("250-tollgate-test greets you\r\n250-8BITMIME\r\n250 SIZE 10485760")
                    } else if upper.hasPrefix("MAIL FROM:") {
                        mail.from = String(line.dropFirst(10)).trimmingCharacters(in: .whitespaces)
                        try await reply("250 2.1.0 OK")
                    } else if upper.hasPrefix("RCPT TO:") {
                        mail.recipients.append(String(line.dropFirst(8)).trimmingCharacters(in: .whitespaces))
                        try await reply(replies.rcpt)
                    } else if upper == "DATA" {
                        dataLines = []
                        try await reply("354 End data with <CR><LF>.<CR><LF>")
                    } else if upper == "QUIT" {
                        try await reply("221 2.0.0 Bye")
                        return
                    } else if upper == "RSET" || upper == "NOOP" {
                        try await reply("250 2.0.0 OK")
                    } else {
                        try await reply("502 5.5.2 Command not recognized")
                    }
                }
            }
        }
    }

    private static func nextLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let index = view.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let length = index - view.startIndex
        var line = buffer.readString(length: length) ?? ""
        buffer.moveReaderIndex(forwardBy: 1)
        if line.hasSuffix("\r") { line.removeLast() }
        return line
    }
}
