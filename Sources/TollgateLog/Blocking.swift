import Foundation

/// Blocking work (SQLite calls, decoding a batch, libcurl transfers) run on a dispatch queue and awaited. `tollgate serve` runs
/// Swift concurrency on SwiftNIO's event loops, which also carry the proxy's traffic: a query or a batch
/// write must never hold one of them.
public enum Blocking {
    public static func run<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try work() }) }
        }
    }

    public static func run<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async -> Value {
        await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(returning: work()) }
        }
    }
}
