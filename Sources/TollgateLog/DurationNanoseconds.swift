extension Duration {
    /// Whole nanoseconds, saturating at `Int64.max`: for metrics timers (`recordNanoseconds`).
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : scaled &+ attoseconds / 1_000_000_000
    }
}
