public import Foundation
import Synchronization

/// The lines written to a pipe (a child process's output), as they arrive.
///
/// Reading starts at once and never stops until the pipe closes, so a chatty child never blocks on a full
/// pipe even when nobody iterates the stream; lines are buffered until read.
public enum PipeLines {
    public static func stream(_ pipe: Pipe) -> AsyncStream<String> {
        let (lines, continuation) = AsyncStream.makeStream(of: String.self)
        let pending = Mutex(Data())
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                continuation.finish()
                return
            }
            let complete = pending.withLock { buffer -> [String] in
                buffer.append(data)
                var result: [String] = []
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    result.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...newline)
                }
                return result
            }
            for line in complete { continuation.yield(line) }
        }
        return lines
    }
}
