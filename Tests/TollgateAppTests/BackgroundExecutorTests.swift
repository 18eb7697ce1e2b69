import Foundation
import ServiceLifecycle
import Testing
@testable import TollgateApp
#if canImport(Glibc)
import Glibc
#endif

/// The consumers' executor of `tollgate serve`: their tasks, children included, run on its own thread at
/// a lower priority, never on the caller's threads.
@Suite struct BackgroundExecutorTests {
    /// The calling thread's nice value (per thread on Linux).
    static func currentNice() -> Int32 {
        #if canImport(Glibc)
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #else
        return 0
        #endif
    }

    static func currentThread() -> UInt { UInt(pthread_self()) }

    struct Probe: Service {
        let seen: @Sendable (Int32, UInt) -> Void
        func run() async throws {
            seen(BackgroundExecutorTests.currentNice(), BackgroundExecutorTests.currentThread())
            // A child task keeps the preference.
            async let child = (BackgroundExecutorTests.currentNice(), BackgroundExecutorTests.currentThread())
            let (nice, thread) = await child
            seen(nice, thread)
            await withTaskGroup(of: (Int32, UInt).self) { group in
                for _ in 0..<4 { group.addTask { (BackgroundExecutorTests.currentNice(), BackgroundExecutorTests.currentThread()) } }
                for await (nice, thread) in group { seen(nice, thread) }
            }
        }
    }

    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [(Int32, UInt)] = []
        func add(_ nice: Int32, _ thread: UInt) { lock.withLock { values.append((nice, thread)) } }
        var all: [(Int32, UInt)] { lock.withLock { values } }
    }

    @Test func serviceAndChildTasksRunOnTheExecutorsThreadAtLowerPriority() async throws {
        // No suspension between reading the creating thread's priority and starting the executor's thread,
        // which inherits it.
        let base = Self.currentNice()
        let executor = BackgroundExecutor(name: "test.background")
        let seen = Seen()
        try await OnExecutor(Probe(seen: seen.add), executor: executor).run()

        let values = seen.all
        #expect(values.count == 6)
        #expect(values.allSatisfy { $0.0 == min(19, base + BackgroundExecutor.niceIncrement) })
        // One thread (the executor was made with one), not the test's.
        #expect(Set(values.map(\.1)).count == 1)
    }

    @Test func manyJobsAllRun() async throws {
        let executor = BackgroundExecutor(name: "test.background.many", threads: 2)
        let total = try await withTaskExecutorPreference(executor) {
            await withTaskGroup(of: Int.self) { group in
                for value in 1...5_000 { group.addTask { value } }
                return await group.reduce(0, +)
            }
        }
        #expect(total == 5_000 * 5_001 / 2)
    }
}
