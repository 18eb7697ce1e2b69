import Foundation

/// Blocking work (SQLite calls, decoding a batch, libcurl transfers) run on a dispatch queue and awaited. `tollgate serve` runs
/// Swift concurrency on SwiftNIO's event loops, which also carry the proxy's traffic: a query or a batch
/// write must never hold one of them.
///
/// The queue's quality of service is `utility`, which libdispatch on Linux runs at nice +2: below the
/// event loops (nice 0), so when the cores are short a projector batch or a dashboard query yields to the
/// proxied calls. (`userInitiated`, used before, runs at nice −2, ahead of them.)
public enum Blocking {
    static let qos = DispatchQoS.QoSClass.utility

    public static func run<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: qos).async { continuation.resume(with: Result { try work() }) }
        }
    }

    public static func run<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async -> Value {
        await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: qos).async { continuation.resume(returning: work()) }
        }
    }
}
