import Synchronization

/// What a process still waits for before it can serve: each component reports itself ready.
///
/// `/readyz` answers 200 once every registered check passed, 503 with the failing checks before.
public final class Readiness: Sendable {
    private let checks: Mutex<[String: Bool]>

    /// - Parameter checks: the names of the checks this process has, all not ready yet.
    public init(checks: [String]) {
        self.checks = Mutex(Dictionary(uniqueKeysWithValues: checks.map { ($0, false) }))
    }

    public func markReady(_ check: String) {
        checks.withLock { $0[check] = true }
    }

    public func markNotReady(_ check: String) {
        checks.withLock { $0[check] = false }
    }

    /// Every check with whether it passed.
    public var status: [String: Bool] { checks.withLock { $0 } }

    public var isReady: Bool { checks.withLock { $0.values.allSatisfy { $0 } } }
}
