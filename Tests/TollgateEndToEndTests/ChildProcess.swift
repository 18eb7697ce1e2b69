import Foundation
import Synchronization
import Testing
import TollgateApp
import TollgateLog

/// The `tollgate` binary built next to this test bundle (or `TOLLGATE_BIN`).
func tollgateBinary() throws -> URL {
    if let path = ProcessInfo.processInfo.environment["TOLLGATE_BIN"] {
        return URL(fileURLWithPath: path)
    }
    let testBinary = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    var directory = testBinary.deletingLastPathComponent()
    // On Linux the test bundle is an executable in the build directory; elsewhere it may be nested.
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("tollgate")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw ChildProcess.Failure("no tollgate binary next to \(testBinary.path); run `swift build` first or set TOLLGATE_BIN")
}

/// A `tollgate` process started by a test, with its standard error readable line by line.
final class ChildProcess: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    let process: Process
    private let collector: LineCollector
    private let exited: AsyncStream<Int32>
    private let exitStatus = Mutex<Int32?>(nil)

    init(_ arguments: [String], stdout: FileHandle? = nil) throws {
        let process = Process()
        process.executableURL = try tollgateBinary()
        process.arguments = arguments
        process.standardOutput = stdout ?? FileHandle.nullDevice
        let pipe = Pipe()
        process.standardError = pipe
        let collector = LineCollector()
        let lines = PipeLines.stream(pipe)
        // Collects stderr for the test's whole life; each new line wakes `waitForLine`.
        Task {
            for await line in lines { collector.append(line) }
            collector.finish()
        }
        let (exited, exit) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { process in
            exit.yield(process.terminationStatus)
            exit.finish()
        }
        try process.run()
        self.process = process
        self.collector = collector
        self.exited = exited
    }

    var stderr: [String] { collector.lines }

    /// Waits until a line of standard error matches, or fails after `timeout` (woken by each new line, not
    /// by a timer).
    func waitForLine(timeout: Duration = .seconds(30), where matches: (String) -> Bool) async throws -> String {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        while true {
            let version = collector.changed.version
            if let line = stderr.first(where: matches) { return line }
            if !process.isRunning && collector.finished {
                throw Failure("process exited (\(process.terminationStatus)); stderr:\n\(stderr.joined(separator: "\n"))")
            }
            let now = clock.now
            if now >= end {
                throw Failure("no matching line within \(timeout); stderr:\n\(stderr.joined(separator: "\n"))")
            }
            await collector.changed.wait(since: version, timeout: min(end - now, .milliseconds(500)))
        }
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// The exit status (or the signal that ended the process), waiting up to `timeout`.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        if let status = exitStatus.withLock({ $0 }) { return status }
        let status = try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask { for await status in self.exited { return status }; return nil }
            group.addTask { try await Task.sleep(for: timeout); return nil }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let status else {
            signal(SIGKILL)
            throw Failure("process still running after \(timeout)")
        }
        exitStatus.withLock { $0 = status }
        return status
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A directory removed when the last reference goes away.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tollgate-e2e-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The lines a child wrote so far, with a notifier for the next one.
final class LineCollector: Sendable {
    private let state = Mutex((lines: [String](), finished: false))
    let changed = ChangeNotifier()

    var lines: [String] { state.withLock { $0.lines } }
    var finished: Bool { state.withLock { $0.finished } }

    func append(_ line: String) {
        state.withLock { $0.lines.append(line) }
        changed.signal()
    }

    /// The pipe closed: the child will write no more.
    func finish() {
        state.withLock { $0.finished = true }
        changed.signal()
    }
}
