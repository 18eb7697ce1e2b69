import Foundation
import GRDB
import Logging
import Synchronization

extension EmbeddedLog {
    /// Copies the WAL back into the database file (a SQLite checkpoint) on a thread of its own, so the
    /// writer only appends.
    ///
    /// Left to SQLite, the commit that takes the WAL past `wal_autocheckpoint` pages runs the checkpoint
    /// itself, inline, holding up every producer waiting on the writer. Here the writer signals after each
    /// commit and this thread runs a `PASSIVE` checkpoint on its own connection: it runs alongside appends
    /// and readers, copies what no reader still needs, and the next one catches up with the rest. Signals
    /// that arrive while a checkpoint runs are coalesced into one more, and checkpoints are at least
    /// ``minimumInterval`` apart: each one costs two fsyncs, and at low rates (an ingress commits a few
    /// events every few milliseconds) one per commit cost the ingress about a fifth of its CPU. The writer
    /// keeps a high ``EmbeddedLog/fallbackAutocheckpointPages`` as a safety net should this thread fall far
    /// behind.
    final class Checkpointer: Sendable {
        private struct State {
            var pending = false
            var started = false
            var stopping = false
        }

        private let path: String
        private let configuration: GRDB.Configuration
        private let logger: Logger
        private let state = Mutex(State())
        private let wakeup = DispatchSemaphore(value: 0)
        private let finished = DispatchSemaphore(value: 0)
        /// Signalled after each checkpoint.
        let completed = ChangeNotifier()
        /// Least time between two checkpoints.
        static let minimumInterval: Duration = .milliseconds(100)

        init(path: String, configuration: GRDB.Configuration, logger: Logger) {
            self.path = path
            self.configuration = configuration
            self.logger = logger
        }

        func start() {
            let shouldStart = state.withLock { state -> Bool in
                if state.started || state.stopping { return false }
                state.started = true
                return true
            }
            guard shouldStart else { return }
            let thread = Thread { [self] in self.loop() }
            thread.name = "tollgate.log.checkpoint"
            thread.start()
        }

        /// Asks for a checkpoint (after a commit).
        func signal() {
            let wake = state.withLock { state -> Bool in
                if state.pending || state.stopping { return false }
                state.pending = true
                return true
            }
            if wake { wakeup.signal() }
        }

        /// Stops the thread after the checkpoint in progress, if any. Blocks until it has stopped.
        func stop() {
            let wait = state.withLock { state -> Bool in
                defer { state.stopping = true }
                return state.started && !state.stopping
            }
            guard wait else { return }
            wakeup.signal()
            finished.wait()
        }

        private func loop() {
            defer { finished.signal() }
            let connection: DatabaseQueue
            do {
                connection = try DatabaseQueue(path: path, configuration: configuration)
            } catch {
                logger.error("cannot open the checkpoint connection; the writer checkpoints inline",
                             metadata: ["log.error": "\(error)"])
                return
            }
            let clock = ContinuousClock()
            var last: ContinuousClock.Instant?
            while true {
                wakeup.wait()
                if let last, case let remainder = Self.minimumInterval - (clock.now - last), remainder > .zero {
                    // Only `stop()` signals while a checkpoint is pending: this wait ends early for it alone.
                    _ = wakeup.wait(timeout: .now() + .nanoseconds(Int(remainder.nanosecondsClamped)))
                }
                let stopping = state.withLock { state -> Bool in
                    state.pending = false
                    return state.stopping
                }
                if stopping { return }
                last = clock.now
                do {
                    try connection.writeWithoutTransaction { db in
                        try db.execute(sql: "PRAGMA wal_checkpoint(PASSIVE)")
                    }
                    completed.signal()
                } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                    // Another process is checkpointing: it copies these frames too.
                    logger.debug("log checkpoint skipped", metadata: ["log.error": "\(error)"])
                } catch {
                    logger.warning("log checkpoint failed", metadata: ["log.error": "\(error)"])
                }
            }
        }
    }
}
