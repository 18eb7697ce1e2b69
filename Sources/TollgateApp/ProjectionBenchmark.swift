import AsyncHTTPClient
import Foundation
import Hummingbird
public import Logging
import NIOCore
import ServiceLifecycle
import TollgateEvents
import TollgateLog
public import TollgatePricing
import TollgateProjections
import TollgateQuery

/// The projections benchmark: a database of generated requests written through the projector, then the
/// latency of the questions people ask of it, over HTTP as a browser or script would ask them.
///
/// - ingest: ``UsageGenerator`` events (encoded as the cost service encodes them) decoded and applied in
///   the projector's batches (20,000), decoding the next batch while the current one is written, as
///   ``ProjectorService`` does: decoding, request rows, rollups, offsets. Events are generated and encoded
///   beforehand, while the projector is idle, and that time is not counted.
/// - queries: `/api/usage` by team and model over the last 30 days (totals, and by day), the 50 most
///   expensive requests of the last 30 days (`/api/requests?order=cost`), and the dashboard page for 30
///   days, each asked `iterations` times after 3 warm-up calls, one at a time.
/// - size: the database file (after a checkpoint) per million requests.
public enum ProjectionBenchmark {
    public struct Ingest: Sendable, Codable {
        public var requests: Int
        public var days: Int
        public var seconds: Double
        public var eventsPerSecond: Int
        public var databaseBytes: Int64
        public var bytesPerMillionRequests: Int64

        enum CodingKeys: String, CodingKey {
            case requests, days, seconds
            case eventsPerSecond = "events_per_second"
            case databaseBytes = "database_bytes"
            case bytesPerMillionRequests = "bytes_per_million_requests"
        }
    }

    public struct QueryLatency: Sendable, Codable {
        public var name: String
        public var path: String
        public var iterations: Int
        public var p50Milliseconds: Double
        public var p99Milliseconds: Double
        public var maxMilliseconds: Double
        public var targetMilliseconds: Double?
        public var responseBytes: Int

        enum CodingKeys: String, CodingKey {
            case name, path, iterations
            case p50Milliseconds = "p50_ms"
            case p99Milliseconds = "p99_ms"
            case maxMilliseconds = "max_ms"
            case targetMilliseconds = "target_ms"
            case responseBytes = "response_bytes"
        }
    }

    /// Generates `requests` over `days` into a new database at `path` (an existing one is replaced).
    public static func ingest(requests: Int, days: Int, path: String, pricer: Pricer, logger: Logger,
                              progress: @Sendable (Int) -> Void) async throws -> Ingest {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        let store = try ProjectionStore.open(path: path, topicPrefix: UsageGenerator.seedPrefix, logger: logger)
        let generator = UsageGenerator(requests: requests, days: days, end: Date(), seed: 42,
                                       topicPrefix: UsageGenerator.seedPrefix, pricer: pricer)
        // The projector's pipeline, as ``ProjectorService`` runs it: batch N+1 is decoded (on every core) while
        // batch N is written. Events are generated beforehand, 10 batches at a time, while nothing of the
        // projector runs, and only the pipeline's time is counted: from the first decode of a round of 10
        // batches to the end of its last write, the pipeline filling and draining in every round.
        var spent: UInt64 = 0
        let batchSize = ProjectorService.Configuration().batchSize
        let round = batchSize * 10
        @Sendable func generate(_ range: Range<Int>) throws -> [ConsumedMessage] {
            try range.map { try generator.message($0) }
        }
        var done = 0
        while done < requests {
            let end = min(requests, done + round)
            // Generated on both cores, untimed.
            let first = done..<(done + (end - done) / 2)
            let half = first.upperBound
            async let firstHalf = Blocking.run { try generate(first) }
            let secondHalf = try await Blocking.run { try generate(half..<end) }
            let messages = try await firstHalf + secondHalf
            let start = LogBenchmark.monotonicNanoseconds()
            // Off the Swift concurrency pool (NIO's event loops in this process), on threads of their own.
            var writing: Task<Void, any Error>?
            for offset in stride(from: 0, to: messages.count, by: batchSize) {
                let slice = Array(messages[offset..<min(messages.count, offset + batchSize)])
                let decoded = await Blocking.run { store.decode(slice) }
                try await writing?.value
                writing = Task { try await Blocking.run { _ = try store.apply(decoded) } }
            }
            try await writing?.value
            spent += LogBenchmark.monotonicNanoseconds() - start
            done = end
            progress(done)
        }
        try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
        let seconds = Double(spent) / 1e9
        return Ingest(requests: requests, days: days, seconds: (seconds * 100).rounded() / 100,
                      eventsPerSecond: Int(Double(requests) / seconds), databaseBytes: bytes,
                      bytesPerMillionRequests: Int64(Double(bytes) / Double(requests) * 1_000_000))
    }

    /// Serves the database on a loopback port and times the queries.
    public static func queries(path: String, iterations: Int, logger: Logger) async throws -> [QueryLatency] {
        // Opened for writing once, so that a reused database from an older build is migrated first.
        _ = try ProjectionStore.open(path: path, topicPrefix: UsageGenerator.seedPrefix, logger: logger)
        let store = try ProjectionStore.open(path: path, topicPrefix: UsageGenerator.seedPrefix, readonly: true,
                                             logger: logger)
        let key = "bench-admin-key"
        let router = Router()
        QuerySetup.addRoutes(to: router, store: store, authenticator: QueryAuthenticator(adminKey: key) { _ in nil })
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
                              logger: logger)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let cases: [(String, String, Double?)] = [
            ("usage by team,model, 30 days", "/api/usage?since=30d&group_by=team,model", 50),
            ("usage by team,model per day, 30 days", "/api/usage?since=30d&group_by=team,model&granularity=day", nil),
            ("top 50 by cost, 30 days", "/api/requests?since=30d&order=cost&limit=50", 100),
            ("dashboard, 30 days", "/dashboard?period=30d", 200),
            ("dashboard, 24 hours", "/dashboard?period=24h", 200),
        ]
        var results: [QueryLatency] = []
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: logger))
                group.addTask { try await serviceGroup.run() }
                var listening = ports.makeAsyncIterator()
                let base = "http://127.0.0.1:\(await listening.next() ?? 0)"
                for (name, path, target) in cases {
                    var latencies: [Double] = []
                    var bytes = 0
                    for iteration in 0..<(iterations + 3) {
                        var request = HTTPClientRequest(url: base + path)
                        request.headers.add(name: "Authorization", value: "Bearer \(key)")
                        let start = LogBenchmark.monotonicNanoseconds()
                        let response = try await client.execute(request, timeout: .seconds(60))
                        let body = try await response.body.collect(upTo: 64 << 20)
                        let elapsed = Double(LogBenchmark.monotonicNanoseconds() - start) / 1e6
                        guard response.status == .ok else {
                            throw BenchmarkFailure("\(path) answered \(response.status.code): "
                                                   + String(buffer: body).prefix(300))
                        }
                        bytes = body.readableBytes
                        if iteration >= 3 { latencies.append(elapsed) }
                    }
                    latencies.sort()
                    func percentile(_ p: Double) -> Double {
                        (latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] * 100).rounded() / 100
                    }
                    results.append(QueryLatency(name: name, path: path, iterations: iterations,
                                                p50Milliseconds: percentile(0.5), p99Milliseconds: percentile(0.99),
                                                maxMilliseconds: percentile(1), targetMilliseconds: target,
                                                responseBytes: bytes))
                }
                await serviceGroup.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return results
    }
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
