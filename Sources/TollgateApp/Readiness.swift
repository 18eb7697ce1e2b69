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

    private let details = Mutex<[String: @Sendable () -> String]>([:])

    /// Adds an informational line to `/readyz` that does not change readiness (for example that budgets
    /// are enforced from the local ledger because the budget service is behind).
    public func addDetail(_ name: String, _ describe: @escaping @Sendable () -> String) {
        details.withLock { $0[name] = describe }
    }

    /// Sets an informational line to a fixed value.
    public func setDetail(_ name: String, _ value: String) {
        addDetail(name) { value }
    }

    /// The informational lines, evaluated now.
    public var detailValues: [String: String] { details.withLock { $0 }.mapValues { $0() } }

    /// Every check with whether it passed.
    public var status: [String: Bool] { checks.withLock { $0 } }

    public var isReady: Bool { checks.withLock { $0.values.allSatisfy { $0 } } }
}
