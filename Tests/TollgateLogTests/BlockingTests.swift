import Dispatch
import Testing
import TollgateLog
#if canImport(Glibc)
import Glibc
#endif

/// Blocking work runs off the caller's threads, below the priority of the event loops that carry calls.
@Suite struct BlockingTests {
    static func nice() -> Int32 {
        #if canImport(Glibc)
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #else
        return 0
        #endif
    }

    @Test func runsBelowTheDefaultPriority() async throws {
        let defaultNice = await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .default).async { continuation.resume(returning: Self.nice()) }
        }
        let blockingNice = await Blocking.run { Self.nice() }
        #expect(blockingNice > defaultNice)
        let thrown = try await Blocking.run { () throws -> Int32 in Self.nice() }
        #expect(thrown == blockingNice)
    }
}
