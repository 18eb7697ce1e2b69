import Foundation
public import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A task executor of its own threads, at a lower scheduling priority, for the work of a process that
/// must not delay its HTTP traffic.
///
/// `tollgate serve` runs Swift concurrency on SwiftNIO's event loops, the threads that carry every
/// proxied call. The consumers that run next to the proxy (cost, budget, alerts, projector) would fold
/// their batches on those same threads, so a call arriving during a batch waited for it. Their tasks
/// run here instead (``OnExecutor``), on threads of their own (one per core in `serve`): the kernel then
/// schedules the proxy's threads as soon as a socket is ready, and when the cores are short, the threads here yield to them (`nice` +5: about a quarter of
/// the CPU against a busy event loop, never starved). Blocking calls (SQLite) keep running on their own
/// threads, as everywhere.
public final class BackgroundExecutor: TaskExecutor, @unchecked Sendable {
    private struct Queue {
        var jobs: [UnownedJob] = []
        var head = 0

        mutating func pop() -> UnownedJob? {
            guard head < jobs.count else { return nil }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1_024 && head * 2 >= jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    /// How much lower than the process's threads the executor's threads run (`nice` increment).
    public static let niceIncrement: Int32 = 5

    private let queue = Mutex(Queue())
    private let available = DispatchSemaphore(value: 0)
    private let threadCount: Int

    /// Starts `threads` threads named `name`. They live as long as the process: an executor is made once,
    /// at start, for the process's background services.
    public init(name: String, threads: Int = 1) {
        threadCount = max(1, threads)
        for index in 0..<threadCount {
            let threadName = threadCount == 1 ? name : "\(name)-\(index)"
            let thread = Thread { [self] in
                #if canImport(Glibc)
                // On Linux the nice value is per thread: `who` 0 is the calling thread.
                let which = __priority_which_t(PRIO_PROCESS.rawValue)
                _ = setpriority(which, 0, getpriority(which, 0) + Self.niceIncrement)
                #endif
                self.work()
            }
            thread.name = threadName
            thread.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.withLock { $0.jobs.append(job) }
        available.signal()
    }

    private func work() {
        while true {
            available.wait()
            if let job = queue.withLock({ $0.pop() }) {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }
}

/// Runs a service's tasks (and the child tasks they start) on an executor of their own.
public struct OnExecutor: Service {
    public let service: any Service
    public let executor: any TaskExecutor

    public init(_ service: any Service, executor: any TaskExecutor) {
        self.service = service
        self.executor = executor
    }

    public func run() async throws {
        try await withTaskExecutorPreference(executor) {
            try await service.run()
        }
    }
}
