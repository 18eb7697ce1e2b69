import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Progress of a long-running command on standard error: a bar, the rate and an ETA, redrawn in place on
/// a terminal and printed as plain lines (at most every 2 s) otherwise, so logs of CI runs stay readable.
///
/// ```swift
/// let progress = ProgressReporter(label: "produce", total: 100_000)
/// progress.update(50_000)
/// progress.finish()
/// ```
public final class ProgressReporter: Sendable {
    private struct State {
        var done = 0
        var lastDraw: UInt64 = 0
        var finished = false
    }

    public let label: String
    public let total: Int
    private let start = LogBenchmark.monotonicNanoseconds()
    private let interactive = isatty(STDERR_FILENO) == 1
    private let state = Mutex(State())
    private let enabled: Bool

    public init(label: String, total: Int, enabled: Bool = true) {
        self.label = label
        self.total = max(total, 1)
        self.enabled = enabled
    }

    /// Records that `done` units are complete (monotonic: a lower value is ignored).
    public func update(_ done: Int) {
        guard enabled else { return }
        let now = LogBenchmark.monotonicNanoseconds()
        let line = state.withLock { state -> String? in
            state.done = max(state.done, done)
            let interval: UInt64 = interactive ? 100_000_000 : 2_000_000_000
            guard !state.finished, now - state.lastDraw >= interval else { return nil }
            state.lastDraw = now
            return render(done: state.done, now: now)
        }
        if let line { write(line, final: false) }
    }

    public func finish() {
        guard enabled else { return }
        let line = state.withLock { state -> String? in
            if state.finished { return nil }
            state.finished = true
            return render(done: state.done, now: LogBenchmark.monotonicNanoseconds())
        }
        if let line { write(line, final: true) }
    }

    private func render(done: Int, now: UInt64) -> String {
        let fraction = min(1, Double(done) / Double(total))
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let seconds = Double(now - start) / 1e9
        let rate = seconds > 0 ? Double(done) / seconds : 0
        let remaining = rate > 0 ? Double(total - done) / rate : 0
        let eta = done >= total ? "done" : "ETA \(Int(remaining.rounded()))s"
        return "\(label) [\(bar)] \(done)/\(total) \(Int(fraction * 100))% \(Int(rate))/s \(eta)"
    }

    private func write(_ line: String, final: Bool) {
        let text = interactive ? "\r\u{1B}[2K" + line + (final ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
