import Foundation
import Synchronization

/// A version counter a task can wait on: "wake me when something changed, or after a timeout".
///
/// The delivery store signals after every commit that queued deliveries; the deliverer waits on it between
/// rounds, so a new alert is sent at once rather than at the next poll.
final class Wakeup: Sendable {
    private struct State {
        var version: UInt64 = 0
        var nextWaiterID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    init() {}

    var version: UInt64 { state.withLock { $0.version } }

    func signal() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.version &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when the version moved past `version`, after `timeout` (if any), or when the task is cancelled.
    func wait(since version: UInt64, timeout: Duration?) async {
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
