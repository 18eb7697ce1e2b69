import Synchronization

/// A version counter that tasks can wait on: "wake me when something changed, or after a timeout".
///
/// In the embedded log it wakes in-process consumers as soon as the log appended to one of their topics
/// (one notifier per topic: a write to `usage` does not wake the readers of `control`). The writer signals
/// after every commit; an idle consumer waits for a signal or its timeout, whichever comes first. Appends by other processes are not signalled: consumers re-read the partition heads every
/// few milliseconds to see those (see ``EmbeddedLog/Configuration/crossProcessPollInterval``).
public final class ChangeNotifier: Sendable {
    private struct State {
        var version: UInt64 = 0
        var nextWaiterID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public var version: UInt64 { state.withLock { $0.version } }

    public func signal() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.version &+= 1
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when the version moved past `version`, after `timeout` (`nil`: none), or when the task is
    /// cancelled.
    public func wait(since version: UInt64, timeout: Duration?) async {
        guard let timeout else {
            await waitForChange(since: version)
            return
        }
        if timeout <= .zero { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.waitForChange(since: version) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns when any of the notifiers moved past its version, after `timeout`, or when the task is
    /// cancelled.
    public static func waitAny(_ notifiers: [(ChangeNotifier, UInt64)], timeout: Duration) async {
        if notifiers.count == 1 {
            await notifiers[0].0.wait(since: notifiers[0].1, timeout: timeout)
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            for (notifier, version) in notifiers {
                group.addTask { await notifier.waitForChange(since: version) }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForChange(since version: UInt64) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiterID &+= 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.version != version || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
