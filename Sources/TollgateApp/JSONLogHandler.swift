public import Foundation
public import Logging
import Synchronization
import TollgateEvents

/// Log lines as JSON objects, one per line on standard error, for log pipelines (`--log-format json`,
/// `TOLLGATE_LOG_FORMAT=json`): `time` (UTC, milliseconds), `level`, `logger` (the label), `message`,
/// `source` (the module), and every metadata item as a member of its own (`tollgate.request_id`,
/// `tollgate.service`, `kafka.topic`, …), keys sorted. Metadata values that are lists or dictionaries are
/// written as their text. A metadata key that clashes with one of the fixed members is written with a
/// `metadata.` prefix.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: Output

    /// Where lines go: standard error, or a closure (tests).
    public final class Output: Sendable {
        private let lock = Mutex(())
        private let write: @Sendable (String) -> Void

        public init(_ write: @escaping @Sendable (String) -> Void) { self.write = write }

        public static let standardError = Output { line in
            FileHandle.standardError.write(Data(line.utf8))
        }

        func emit(_ line: String) { lock.withLock { _ in write(line) } }
    }

    public init(label: String, output: Output = .standardError) {
        self.label = label
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static let fixed: Set<String> = ["time", "level", "logger", "message", "source"]

    public func log(event: LogEvent) {
        var members: [String: String] = [:]
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for (key, value) in merged {
            members[Self.fixed.contains(key) ? "metadata." + key : key] = Self.text(value)
        }
        members["time"] = EventTime.format(Date())
        members["level"] = event.level.rawValue
        members["logger"] = label
        members["message"] = event.message.description
        members["source"] = event.source
        var writer = CanonicalJSONWriter(capacity: 256)
        writer.stringMap(members)
        output.emit(String(decoding: writer.bytes, as: UTF8.self) + "\n")
    }

    static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array, .dictionary: value.description
        }
    }
}
