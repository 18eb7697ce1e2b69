public import Foundation

/// One server-sent event, with the exact bytes it arrived as (so it can be relayed unchanged).
public struct SSEEvent: Sendable, Hashable {
    /// The event's bytes as received, including the blank line that ended it.
    public var raw: Data
    /// The `event:` field, if any.
    public var event: String?
    /// The `data:` lines joined with `\n`.
    public var data: String

    public init(raw: Data, event: String?, data: String) {
        self.raw = raw
        self.event = event
        self.data = data
    }
}
