import Foundation
import TollgateProjections

extension Dashboard {
    /// Inline SVG charts. Amounts stay integer nano-USD; only bar lengths are `Double`.
    enum Charts {
        typealias Format = Dashboard.Format

        /// Series colors; models beyond the first `palette.count - 1` share the last ("other").
        static let palette = ["#2f6fb3", "#e07b24", "#3a9a5b", "#c2414b", "#7d5bb5", "#1b9aa8", "#b8932b",
                              "#d46aa6", "#5d6d7e", "#a7b1bd"]

        /// Spend by bucket, stacked by served model, with a y axis in dollars, x labels and a legend.
        static func stackedBars(_ report: Report) -> String {
            // Series: models by spend in the period, the tail folded into "other".
            let ranked = report.byModel.map(\.name)
            let named = ranked.count <= palette.count ? ranked : Array(ranked.prefix(palette.count - 1))
            var seriesIndex: [String: Int] = [:]
            for (index, model) in named.enumerated() { seriesIndex[model] = index }
            let otherIndex = named.count
            let seriesCount = named.count + (ranked.count > named.count ? 1 : 0)

            // cost[bucket][series], exact.
            var bucketIndex: [Int64: Int] = [:]
            for (index, bucket) in report.buckets.enumerated() { bucketIndex[seconds(bucket)] = index }
            var costs = Array(repeating: Array(repeating: Int64(0), count: max(seriesCount, 1)),
                              count: report.buckets.count)
            for row in report.series {
                guard let start = row.bucketStart, let bucket = bucketIndex[seconds(start)] else { continue }
                let series = seriesIndex[row.group["model"] ?? ""] ?? otherIndex
                costs[bucket][series] += row.figures.costNanoUSD.total.nanoUSD
            }
            let bucketTotals = costs.map { $0.reduce(0, +) }
            let maximum = bucketTotals.max() ?? 0

            let width = 1280.0, height = 270.0
            let left = 78.0, right = 8.0, top = 10.0, bottom = 44.0
            let plotWidth = width - left - right, plotHeight = height - top - bottom
            let (step, axisMax) = axis(maximum)
            let decimals = axisDecimals(step)
            let hourly = report.granularity == .hour
            var out = "<svg data-testid=\"spend-chart\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" "
                + "aria-label=\"Spend by \(hourly ? "hour" : "day") stacked by model\" xmlns=\"http://www.w3.org/2000/svg\">"
            // Grid and y labels.
            var tick: Int64 = 0
            while tick <= axisMax {
                let y = top + plotHeight - plotHeight * Double(tick) / Double(axisMax)
                out += "<line x1=\"\(Format.coordinate(left))\" x2=\"\(Format.coordinate(width - right))\" "
                    + "y1=\"\(Format.coordinate(y))\" y2=\"\(Format.coordinate(y))\" stroke=\"\(tick == 0 ? "#8895a7" : "#e3e8ee")\"/>"
                out += "<text data-testid=\"y-label\" x=\"\(Format.coordinate(left - 6))\" y=\"\(Format.coordinate(y + 4))\" "
                    + "text-anchor=\"end\">\(Format.money(tick, decimals: decimals))</text>"
                tick += step
            }
            out += "<text x=\"12\" y=\"\(Format.coordinate(top + plotHeight / 2))\" text-anchor=\"middle\" "
                + "transform=\"rotate(-90 12 \(Format.coordinate(top + plotHeight / 2)))\">Spend (USD)</text>"
            // Bars.
            let count = max(report.buckets.count, 1)
            let slot = plotWidth / Double(count)
            let barWidth = max(slot * 0.72, 1)
            let labelEvery = max(1, Int((Double(count) / (hourly ? 12 : 15)).rounded(.up)))
            for (index, bucket) in report.buckets.enumerated() {
                let x = left + slot * Double(index) + (slot - barWidth) / 2
                var y = top + plotHeight
                let bucketLabel = hourly ? Format.minute(bucket) : Format.day(bucket)
                out += "<g data-testid=\"spend-bucket\" data-bucket=\"\(Format.escape(bucketLabel))\" "
                    + "data-cost-nano-usd=\"\(bucketTotals[index])\"><title>\(bucketLabel) UTC: "
                    + "\(Format.money(bucketTotals[index]))</title>"
                for series in 0..<seriesCount {
                    let cost = costs[index][series]
                    guard cost > 0 else { continue }
                    let barHeight = plotHeight * Double(cost) / Double(axisMax)
                    y -= barHeight
                    let model = series < named.count ? named[series] : "other"
                    out += "<rect data-testid=\"spend-bar\" data-model=\"\(Format.escape(model))\" "
                        + "data-cost-nano-usd=\"\(cost)\" x=\"\(Format.coordinate(x))\" y=\"\(Format.coordinate(y))\" "
                        + "width=\"\(Format.coordinate(barWidth))\" height=\"\(Format.coordinate(max(barHeight, 0.5)))\" "
                        + "fill=\"\(palette[min(series, palette.count - 1)])\"><title>\(Format.escape(model)), "
                        + "\(bucketLabel): \(Format.money(cost))</title></rect>"
                }
                out += "</g>"
                if index % labelEvery == 0 {
                    let text = hourly ? String(Format.minute(bucket).suffix(5)) : String(Format.day(bucket).dropFirst(5))
                    out += "<text data-testid=\"x-label\" x=\"\(Format.coordinate(left + slot * (Double(index) + 0.5)))\" "
                        + "y=\"\(Format.coordinate(top + plotHeight + 15))\" text-anchor=\"middle\">\(text)</text>"
                }
            }
            let axisTitle = hourly ? "Hour (UTC), \(Format.day(report.from)) \u{2013} \(Format.day(report.to))"
                : "Day (UTC)"
            out += "<text x=\"\(Format.coordinate(left + plotWidth / 2))\" y=\"\(Format.coordinate(height - 6))\" "
                + "text-anchor=\"middle\">\(axisTitle)</text></svg>"
            // Legend.
            out += "<ul class=\"legend\" data-testid=\"spend-legend\">"
            for series in 0..<seriesCount {
                let model = series < named.count ? named[series] : "other (\(ranked.count - named.count) models)"
                out += "<li><i style=\"background:\(palette[min(series, palette.count - 1)])\"></i>\(Format.escape(model))</li>"
            }
            if seriesCount == 0 { out += "<li class=\"note\">No spend in this period.</li>" }
            return out + "</ul>"
        }

        /// Spend per group as horizontal bars, largest first (at most 12).
        static func horizontalBars(_ rows: [Group], label dimension: String, testID: String) -> String {
            let shown = Array(rows.prefix(12))
            guard !shown.isEmpty else { return "" }
            let maximum = shown.map(\.figures.costNanoUSD).max() ?? 0
            let width = 620.0, rowHeight = 20.0, labelWidth = 150.0, valueWidth = 92.0
            let height = rowHeight * Double(shown.count) + 4
            var out = "<svg data-testid=\"\(testID)\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" "
                + "aria-label=\"Spend by \(dimension)\" xmlns=\"http://www.w3.org/2000/svg\">"
            let barSpace = width - labelWidth - valueWidth - 8
            for (index, row) in shown.enumerated() {
                let name = row.name
                let cost = row.figures.costNanoUSD
                let y = 2 + rowHeight * Double(index)
                let length = maximum > 0 ? barSpace * Double(max(cost, 0)) / Double(maximum) : 0
                let label = name.count > 24 ? String(name.prefix(23)) + "\u{2026}" : name
                out += "<g data-testid=\"hbar\" data-name=\"\(Format.escape(name))\" data-cost-nano-usd=\"\(cost)\">"
                    + "<title>\(Format.escape(name)): \(Format.money(cost))</title>"
                    + "<text x=\"\(Format.coordinate(labelWidth - 6))\" y=\"\(Format.coordinate(y + 14))\" "
                    + "text-anchor=\"end\">\(Format.escape(label))</text>"
                    + "<rect x=\"\(Format.coordinate(labelWidth))\" y=\"\(Format.coordinate(y + 3))\" "
                    + "width=\"\(Format.coordinate(max(length, 0.5)))\" height=\"\(Format.coordinate(rowHeight - 6))\" "
                    + "fill=\"#2f6fb3\" rx=\"2\"/>"
                    + "<text x=\"\(Format.coordinate(labelWidth + length + 6))\" y=\"\(Format.coordinate(y + 14))\">"
                    + "\(Format.money(cost))</text></g>"
            }
            return out + "</svg>"
        }

        /// A y-axis step (1, 2 or 5 × 10ⁿ nano-USD) giving at most five intervals, and the axis top.
        static func axis(_ maximum: Int64) -> (step: Int64, top: Int64) {
            guard maximum > 0 else { return (250_000_000, 1_000_000_000) }
            var magnitude: Int64 = 1
            while true {
                for factor: Int64 in [1, 2, 5] {
                    let step = magnitude * factor
                    if step >= (maximum + 4) / 5 || step > Int64.max / 10 {
                        let top = (maximum + step - 1) / step * step
                        return (step, top)
                    }
                }
                magnitude *= 10
            }
        }

        /// Decimals that show every multiple of `step` exactly (at least two, at most nine).
        static func axisDecimals(_ step: Int64) -> Int {
            var decimals = 9
            var unit: Int64 = 1
            while decimals > 2 && step % (unit * 10) == 0 {
                unit *= 10
                decimals -= 1
            }
            return decimals
        }

        static func seconds(_ date: Date) -> Int64 {
            Int64(date.timeIntervalSince1970.rounded())
        }
    }
}
