import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TollgateEvents
import TollgateIngress
import TollgateLog

/// `tollgate bench proxy`: the proxy's overhead, measured against the fake provider called directly.
///
/// Starts `tollgate fake-provider` and the proxies as child processes (so the figures include real
/// process boundaries and loopback TCP), then measures, with the same load:
/// - throughput and latency percentiles of non-streamed 1 KiB chat requests with `wrk` (64 connections,
///   and 1 connection for the added latency), for five targets in turn, each alone on the machine:
///   `direct` (the fake provider), `nginx` (nginx as a plain reverse proxy, when installed: the reference
///   the targets are stated against), `forwarder` (``BareForwarder``: Hummingbird and AsyncHTTPClient
///   forwarding with nothing else, the floor of these libraries), `ingress` (`tollgate ingress`: keys,
///   parsing, budgets, events to the log) and `tollgate` (`tollgate serve`: the same plus the cost, budget,
///   alerts and projector consumers in the same process);
/// - time to first byte of streamed responses (sequential requests);
/// - Tollgate's resident memory while it relays many concurrent slow streams.
public enum ProxyBenchmark {
    public struct Options: Sendable {
        public var binary: String
        public var seconds: Int = 10
        public var connections: Int = 64
        public var threads: Int = 2
        public var streams: Int = 1_000
        public var ttfbRequests: Int = 300

        public init(binary: String) { self.binary = binary }
    }

    /// One row of the report.
    public struct Result: Sendable, Codable, Hashable {
        public var scenario: String
        public var target: String
        public var connections: Int
        public var requestsPerSecond: Double?
        public var p50Microseconds: Double?
        public var p99Microseconds: Double?
        public var residentMebibytes: Double?
        public var errors: Int?
        /// Throughput runs: CPU time (user + system) the target's server process spent per completed
        /// request — the fake provider for `direct`, `tollgate serve` for `tollgate`. Robust to a noisy
        /// machine, unlike req/s.
        public var cpuMicrosecondsPerRequest: Double?
        /// Throughput runs through tollgate: the fake provider's CPU time per request (the upstream's share).
        public var upstreamCPUMicrosecondsPerRequest: Double?
        /// Throughput runs: requests wrk completed.
        public var requests: Int?
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    public static func run(_ options: Options, progress: @escaping @Sendable (String) -> Void) async throws -> [Result] {
        guard let wrk = findExecutable("wrk") else {
            throw Failure(description: "wrk is not installed (apt-get install wrk; `ops/run bench` does it)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-bench-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let upstreamKey = "sk-bench-\(UUID().uuidString)"

        // A virtual key in each Tollgate's log, written before it starts.
        var secrets: [String: String] = [:]
        for name in ["serve", "ingress"] {
            let log = try EmbeddedLog.open(directory: directory.appendingPathComponent("\(name)/log").path)
            try await log.provision(TopicCatalog.specs())
            let (secret, data) = VirtualKeys.create(team: "bench", project: "bench")
            try await ControlWriter(log: log, topicPrefix: TopicCatalog.defaultPrefix, source: "tollgate/bench").write(data)
            log.close()
            secrets[name] = secret
        }

        progress("starting the fake provider, the references and tollgate")
        let fake = try ChildServer(binary: options.binary,
                                   arguments: ["fake-provider", "--port", "0", "--require-key", upstreamKey],
                                   environment: [:], readyMarker: "fake provider listening")
        defer { fake.stop() }
        let fakeURL = "http://127.0.0.1:\(try await fake.port())"
        let providerEnvironment = ["OPENAI_API_KEY": upstreamKey, "TOLLGATE_OPENAI_BASE_URL": fakeURL,
                                   "ANTHROPIC_API_KEY": upstreamKey, "GEMINI_API_KEY": upstreamKey]
        let forwarder = try ChildServer(binary: options.binary,
                                        arguments: ["bench", "forwarder", "--upstream", fakeURL, "--port", "0"],
                                        environment: [:], readyMarker: "forwarder listening")
        defer { forwarder.stop() }
        let forwarderURL = "http://127.0.0.1:\(try await forwarder.port())"
        let nginx = try NginxReference.start(directory: directory.appendingPathComponent("nginx"), upstream: fakeURL)
        defer { nginx?.stop() }
        if nginx == nil { progress("nginx is not installed: its reference rows are left out (apt-get install nginx-light)") }

        let message = String(repeating: "lorem ipsum ", count: 80)  // ~1 KiB body
        let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\#(message)"}]}"#
        var results: [Result] = []

        /// wrk at `options.connections` and at 1 connection against one target; CPU per request of the
        /// target's processes (`cpuPIDs`) and of the fake provider.
        func throughput(_ target: String, url: String, key: String, cpuPIDs: @escaping () -> [Int32]) throws {
            for connections in [options.connections, 1] {
                progress("wrk: \(target), \(connections) connection(s), \(options.seconds) s")
                let script = directory.appendingPathComponent("post-\(target).lua")
                try wrkScript(body: body, key: key).write(to: script, atomically: true, encoding: .utf8)
                let pids = cpuPIDs()
                let cpuBefore = (cpuSeconds(pids: pids), cpuSeconds(pid: fake.pid))
                let output = try runProcess(wrk, ["-t\(min(options.threads, connections))", "-c\(connections)",
                                                  "-d\(options.seconds)s", "--latency", "-s", script.path,
                                                  "\(url)/v1/chat/completions"])
                let cpuAfter = (cpuSeconds(pids: pids), cpuSeconds(pid: fake.pid))
                var result = parseWrk(output)
                if let requests = result.requests, requests > 0 {
                    func perRequest(_ before: Double?, _ after: Double?) -> Double? {
                        guard let before, let after else { return nil }
                        return ((after - before) * 1e6 / Double(requests) * 10).rounded() / 10
                    }
                    result.cpuMicrosecondsPerRequest = perRequest(cpuBefore.0, cpuAfter.0)
                    if target != "direct" { result.upstreamCPUMicrosecondsPerRequest = perRequest(cpuBefore.1, cpuAfter.1) }
                }
                result.scenario = "chat 1 KiB, non-streamed"
                result.target = target
                result.connections = connections
                results.append(result)
            }
        }

        try throughput("direct", url: fakeURL, key: upstreamKey) { [fake.pid] }
        if let nginx {
            try throughput("nginx", url: nginx.url, key: upstreamKey) { nginx.processIDs() }
        }
        try throughput("forwarder", url: forwarderURL, key: upstreamKey) { [forwarder.pid] }
        forwarder.stop()
        nginx?.stop()
        /// `tollgate <command>` on its own data directory (holding the key made for it above).
        func tollgate(_ command: String) throws -> ChildServer {
            try ChildServer(
                binary: options.binary,
                arguments: [command, "--port", "0", "--data-dir", directory.appendingPathComponent(command).path,
                            "--log-level", "info"],
                environment: providerEnvironment, readyMarker: "tollgate is serving")
        }
        // The ingress alone (events to the log; the consumers would run elsewhere). It stays up, idle, for
        // the time-to-first-byte runs.
        let ingress = try tollgate("ingress")
        defer { ingress.stop() }
        let ingressURL = "http://127.0.0.1:\(try await ingress.port())"
        try throughput("ingress", url: ingressURL, key: secrets["ingress"] ?? "") { [ingress.pid] }
        let serve = try tollgate("serve")
        defer { serve.stop() }
        let tollgateURL = "http://127.0.0.1:\(try await serve.port())"
        let secret = secrets["serve"] ?? ""
        try throughput("tollgate", url: tollgateURL, key: secret) { [serve.pid] }

        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: {
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool = .init(idleTimeout: .seconds(60),
                                                 concurrentHTTP1ConnectionsPerHostSoftLimit: options.streams + 16)
            configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
            return configuration
        }())
        do {
            let streamBody = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello there"}]}"#
            for (target, url, key) in [("direct", fakeURL, upstreamKey), ("ingress", ingressURL, secrets["ingress"] ?? ""),
                                       ("tollgate", tollgateURL, secret)] {
                progress("time to first byte: \(target), \(options.ttfbRequests) streams")
                var samples: [Double] = []
                for _ in 0..<options.ttfbRequests {
                    samples.append(try await timeToFirstByte(client, url: "\(url)/v1/chat/completions", key: key,
                                                             body: streamBody))
                }
                samples.sort()
                results.append(Result(scenario: "stream, time to first byte", target: target, connections: 1,
                                      p50Microseconds: samples[samples.count / 2],
                                      p99Microseconds: samples[min(samples.count - 1, samples.count * 99 / 100)]))
            }

            progress("memory: \(options.streams) concurrent slow streams through tollgate")
            let before = residentMebibytes(pid: serve.pid)
            let (peak, failures) = try await concurrentStreams(client, url: "\(tollgateURL)/v1/chat/completions", key: secret,
                                                               body: streamBody, count: options.streams, serve: serve)
            results.append(Result(scenario: "resident memory, idle", target: "tollgate", connections: 0,
                                  residentMebibytes: before))
            results.append(Result(scenario: "resident memory, \(options.streams) open streams", target: "tollgate",
                                  connections: options.streams, residentMebibytes: peak, errors: failures))
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return results
    }

    // MARK: wrk

    static func wrkScript(body: String, key: String) -> String {
        let escaped = body.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return """
            wrk.method = "POST"
            wrk.body = "\(escaped)"
            wrk.headers["Content-Type"] = "application/json"
            wrk.headers["Authorization"] = "Bearer \(key)"
            """
    }

    /// Requests/sec, completed requests and the 50th/99th latency percentiles from `wrk --latency` output.
    static func parseWrk(_ output: String) -> Result {
        var result = Result(scenario: "", target: "", connections: 0)
        for line in output.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count > 2, fields[1] == "requests", fields[2] == "in", let value = Int(fields[0]) {
                result.requests = value
            } else if line.hasPrefix("Requests/sec:"), let value = fields.last.flatMap({ Double($0) }) {
                result.requestsPerSecond = value
            } else if fields.count == 2, fields[0] == "50%" {
                result.p50Microseconds = microseconds(String(fields[1]))
            } else if fields.count == 2, fields[0] == "99%" {
                result.p99Microseconds = microseconds(String(fields[1]))
            } else if line.hasPrefix("Non-2xx or 3xx responses:"), let value = fields.last.flatMap({ Int($0) }) {
                result.errors = (result.errors ?? 0) + value
            } else if line.hasPrefix("Socket errors:") {
                let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
                result.errors = (result.errors ?? 0) + numbers.reduce(0, +)
            }
        }
        return result
    }

    /// `123.45us`, `1.20ms`, `2.00s` in microseconds.
    static func microseconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("us", 1), ("ms", 1_000), ("s", 1_000_000), ("m", 60_000_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let value = Double(text.dropLast(suffix.count)) { return value * factor }
        }
        return nil
    }

    // MARK: Streams

    static func timeToFirstByte(_ client: HTTPClient, url: String, key: String, body: String) async throws -> Double {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "authorization", value: "Bearer \(key)")
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let start = ContinuousClock.now
        let response = try await client.execute(request, timeout: .seconds(30))
        var first: Double?
        for try await _ in response.body {
            if first == nil {
                let elapsed = ContinuousClock.now - start
                first = Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12
            }
        }
        return first ?? .nan
    }

    /// Opens `count` slow streams at once; once all have started, samples Tollgate's resident memory.
    static func concurrentStreams(_ client: HTTPClient, url: String, key: String, body: String, count: Int,
                                  serve: ChildServer) async throws -> (Double, Int) {
        let started = Counter()
        let failed = Counter()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<count {
                group.addTask {
                    var request = HTTPClientRequest(url: url)
                    request.method = .POST
                    request.headers.add(name: "authorization", value: "Bearer \(key)")
                    request.headers.add(name: "content-type", value: "application/json")
                    request.headers.add(name: "x-fake-mode", value: "slow_stream")
                    request.headers.add(name: "x-fake-delay-ms", value: "500")
                    request.body = .bytes(ByteBuffer(string: body))
                    do {
                        let response = try await client.execute(request, timeout: .seconds(60))
                        var counted = false
                        for try await _ in response.body where !counted {
                            _ = started.add(1)
                            counted = true
                        }
                    } catch {
                        _ = failed.add(1)
                    }
                }
            }
            // Wait (bounded) until every stream delivered its first bytes, then sample memory a few times.
            let clock = ContinuousClock()
            let end = clock.now.advanced(by: .seconds(60))
            while started.add(0) + failed.add(0) < count && clock.now < end {
                try await Task.sleep(for: .milliseconds(20))
            }
            var peak = 0.0
            for _ in 0..<5 {
                peak = max(peak, residentMebibytes(pid: serve.pid) ?? 0)
                try await Task.sleep(for: .milliseconds(100))
            }
            try await group.waitForAll()
            return (peak, failed.add(0))
        }
    }

    // MARK: Processes

    /// The summed CPU time of several processes, in seconds; `nil` when one of them cannot be read.
    static func cpuSeconds(pids: [Int32]) -> Double? {
        var total = 0.0
        for pid in pids {
            guard let seconds = cpuSeconds(pid: pid) else { return nil }
            total += seconds
        }
        return total
    }

    /// User plus system CPU time of a process so far, in seconds (from `/proc/<pid>/stat`).
    static func cpuSeconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After the command name: state is field 3, utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func residentMebibytes(pid: Int32) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kib = line.split(whereSeparator: { !$0.isNumber }).compactMap { Double($0) }.first ?? 0
            return (kib / 1024 * 10).rounded() / 10
        }
        return nil
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func runProcess(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}


/// A `tollgate` child process that logs `tollgate.port=N` once it listens.
final class ChildServer: Sendable {
    private let process: Process
    private let lines: AsyncStream<String>
    private let readyMarker: String
    var pid: Int32 { process.processIdentifier }

    init(binary: String, arguments: [String], environment: [String: String], readyMarker: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardError = pipe
        self.lines = PipeLines.stream(pipe)
        self.readyMarker = readyMarker
        try process.run()
        self.process = process
    }

    /// The port from the `tollgate.port=N` metadata of the ready line.
    func port() async throws -> Int {
        for await line in lines where line.contains(readyMarker) {
            if let range = line.range(of: #"tollgate\.port=(\d+)"#, options: .regularExpression),
               let port = Int(line[range].dropFirst("tollgate.port=".count)) {
                return port
            }
        }
        throw ProxyBenchmark.Failure(description: "\(process.arguments?.first ?? "child") exited before listening")
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}

/// nginx as a plain reverse proxy in front of the fake provider: the reference the proxy targets are
/// stated against, measured on the same machine in the same run. Started only when nginx is installed.
final class NginxReference: Sendable {
    let url: String
    private let process: Process

    private init(url: String, process: Process) {
        self.url = url
        self.process = process
    }

    /// Starts nginx (`worker_processes auto`, keep-alive upstream connections, no buffering, no access log)
    /// with its files under `directory`; `nil` when there is no nginx binary.
    static func start(directory: URL, upstream: String) throws -> NginxReference? {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"]
        guard let binary = candidates.map({ "\($0)/nginx" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { return nil }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let port = try freePort()
        let upstreamHost = upstream.replacingOccurrences(of: "http://", with: "")
        let path = directory.path
        let configuration = """
            worker_processes auto;
            daemon off;
            pid \(path)/nginx.pid;
            error_log \(path)/error.log warn;
            events { worker_connections 4096; }
            http {
              access_log off;
              client_body_temp_path \(path)/body;
              proxy_temp_path \(path)/proxy;
              fastcgi_temp_path \(path)/fastcgi;
              uwsgi_temp_path \(path)/uwsgi;
              scgi_temp_path \(path)/scgi;
              upstream fake { server \(upstreamHost); keepalive 256; }
              server {
                listen 127.0.0.1:\(port);
                location / {
                  proxy_pass http://fake;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                  proxy_buffering off;
                }
              }
            }
            """
        let file = directory.appendingPathComponent("nginx.conf")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-p", path, "-c", file.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reference = NginxReference(url: "http://127.0.0.1:\(port)", process: process)
        // nginx says nothing when it listens: try to connect, for at most 10 s.
        let deadline = Date().addingTimeInterval(10)
        while !canConnect(port: port) {
            guard process.isRunning, Date() < deadline else {
                reference.stop()
                throw ProxyBenchmark.Failure(description: "nginx did not start; see \(path)/error.log")
            }
            usleep(20_000)
        }
        return reference
    }

    /// The master process and its workers.
    func processIDs() -> [Int32] {
        let master = process.processIdentifier
        var pids = [master]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == master { pids.append(pid) }
        }
        return pids
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()  // SIGTERM: nginx's fast shutdown
        process.waitUntilExit()
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProxyBenchmark.Failure(description: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw ProxyBenchmark.Failure(description: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
