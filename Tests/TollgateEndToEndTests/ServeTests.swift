import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TollgateEvents
import TollgateLog

@Suite("tollgate serve", .serialized)
struct ServeTests {
    @Test("serve answers health checks on 127.0.0.1, provisions the topics, and stops cleanly on SIGTERM")
    func serveHealthAndShutdown() async throws {
        let data = try TemporaryDirectory()
        let serve = try ChildProcess(["serve", "--port", "0", "--data-dir", data.path])
        let line = try await serve.waitForLine { $0.contains("tollgate is serving") }
        let port = try #require(line.firstMatch(of: /tollgate\.port=(\d+)/).map { String($0.1) })
        #expect(line.contains("tollgate.host=127.0.0.1"))

        let (health, healthResponse) = try await URLSession.shared.data(
            from: URL(string: "http://127.0.0.1:\(port)/healthz")!)
        #expect((healthResponse as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: health, as: UTF8.self) == #"{"status":"ok"}"#)
        let (ready, readyResponse) = try await URLSession.shared.data(
            from: URL(string: "http://127.0.0.1:\(port)/readyz")!)
        #expect((readyResponse as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: ready, as: UTF8.self).contains(#""status":"ready""#))
        let (metrics, metricsResponse) = try await URLSession.shared.data(
            from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        #expect((metricsResponse as? HTTPURLResponse)?.statusCode == 200)
        let exposition = String(decoding: metrics, as: UTF8.self)
        #expect(exposition.contains("# TYPE tollgate_events_published_total counter"))
        #expect(exposition.contains("tollgate_events_dropped_total 0"))

        // The embedded log holds every catalog topic, readable by another process right now.
        let log = try EmbeddedLog.open(directory: data.path + "/log")
        let topics = try await log.topics().map(\.name).sorted()
        #expect(topics == TopicCatalog.all.map { "tollgate." + $0.name }.sorted())
        #expect(try await log.topics().first { $0.name == "tollgate.control" }?.cleanupPolicy == .compact)

        serve.signal(SIGTERM)
        #expect(try await serve.waitForExit(timeout: .seconds(15)) == 0)
        #expect(serve.stderr.contains { $0.contains("tollgate stopped") })
    }

    @Test("serve --budgets applies a budgets file at start, and only what changed on the next start")
    func budgetsFile() async throws {
        let data = try TemporaryDirectory()
        let file = data.path + "/budgets.yaml"
        try """
            budgets:
              - id: search-monthly
                scope: team:search
                limit_usd: "500"
                levels: 80:alert,100:block
              - id: chat-daily
                scope: tag:feature=chat
                limit_usd: "20"
                period: day
            """.write(toFile: file, atomically: true, encoding: .utf8)
        for expectedWritten in [2, 0] {
            let serve = try ChildProcess(["serve", "--port", "0", "--data-dir", data.path, "--budgets", file])
            let applied = try await serve.waitForLine { $0.contains("budgets file applied") }
            #expect(applied.contains("tollgate.written=\(expectedWritten)"), "\(applied)")
            #expect(applied.contains("tollgate.budgets=2"))
            _ = try await serve.waitForLine { $0.contains("tollgate is serving") }
            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(15)) == 0)
        }
        // A bad file stops serve with a clear error instead of running without the budgets.
        try "budgets:\n  - id: x\n    scope: nowhere\n    limit_usd: \"1\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try ChildProcess(["serve", "--port", "0", "--data-dir", data.path, "--budgets", file])
        #expect(try await bad.waitForExit(timeout: .seconds(30)) != 0)
        #expect(bad.stderr.contains { $0.contains("scope") && $0.contains("nowhere") })
    }

    @Test("a port that is already taken is a clear error, not a hang")
    func portInUse() async throws {
        let data = try TemporaryDirectory()
        let first = try ChildProcess(["serve", "--port", "0", "--data-dir", data.path])
        let line = try await first.waitForLine { $0.contains("tollgate is serving") }
        let port = try #require(line.firstMatch(of: /tollgate\.port=(\d+)/).map { String($0.1) })
        let second = try ChildProcess(["serve", "--port", port, "--data-dir", data.path])
        #expect(try await second.waitForExit(timeout: .seconds(20)) != 0)
        #expect(second.stderr.joined(separator: "\n").lowercased().contains("address already in use"))
        first.signal(SIGTERM)
        #expect(try await first.waitForExit() == 0)
    }
}
