/// An aligned plain-text table for people; commands print JSON instead with `--json`.
///
/// ```swift
/// var table = TextTable(columns: ["topic", "partitions"], rightAligned: [1])
/// table.append(["tollgate.usage", "8"])
/// print(table.render())
/// ```
public struct TextTable: Sendable {
    public var columns: [String]
    public var rightAligned: Set<Int>
    public private(set) var rows: [[String]] = []

    public init(columns: [String], rightAligned: Set<Int> = []) {
        self.columns = columns
        self.rightAligned = rightAligned
    }

    public mutating func append(_ row: [String]) {
        precondition(row.count == columns.count, "a row has one cell per column")
        rows.append(row)
    }

    /// The table with a header line and a dashed rule, columns separated by two spaces.
    public func render() -> String {
        var widths = columns.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                if rightAligned.contains(index) { return padding + cell }
                return index == cells.count - 1 ? cell : cell + padding
            }.joined(separator: "  ")
        }
        var lines = [line(columns), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }
}
