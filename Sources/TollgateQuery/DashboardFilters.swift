import Foundation
import TollgateProjections

extension Dashboard {
    /// The dashboard's filters, read from its GET form.
    ///
    /// - `period`: `24h` (hourly bars: the current UTC hour and the 23 before it), `7d`, `30d` or `90d`
    ///   (daily bars: today, UTC, and the days before it). Default `7d`.
    /// - `team`, `project`, `key`: one value each; empty (the form's "All") means no filter.
    ///
    /// Any other parameter, a parameter given twice, or a value that is not one of these is an error naming
    /// the parameter, so a mistyped link never silently shows wider figures.
    struct Filters: Sendable, Hashable {
        enum Period: String, Sendable, Hashable, CaseIterable {
            case hours24 = "24h"
            case days7 = "7d"
            case days30 = "30d"
            case days90 = "90d"

            var label: String {
                switch self {
                case .hours24: "Last 24 hours"
                case .days7: "Last 7 days"
                case .days30: "Last 30 days"
                case .days90: "Last 90 days"
                }
            }

            /// Hourly buckets for periods of two days or less, daily ones otherwise.
            var granularity: Granularity { self == .hours24 ? .hour : .day }

            var days: Int64 {
                switch self {
                case .hours24: 1
                case .days7: 7
                case .days30: 30
                case .days90: 90
                }
            }
        }

        static let names = ["period", "team", "project", "key"]
        static let maxValueLength = 256

        var period: Period = .days7
        var team: String?
        var project: String?
        var key: String?

        var isFiltered: Bool { team != nil || project != nil || key != nil }

        var usageFilter: UsageFilter {
            var filter = UsageFilter()
            filter[.team] = team
            filter[.project] = project
            filter[.key] = key
            return filter
        }

        static func parse(_ parameters: [(String, String)]) throws(QueryError) -> Filters {
            var filters = Filters()
            var seen = Set<String>()
            for (name, value) in parameters {
                guard names.contains(name) else {
                    throw QueryError(parameter: name, message: "unknown parameter; the dashboard takes "
                                     + names.joined(separator: ", "))
                }
                guard seen.insert(name).inserted else {
                    throw QueryError(parameter: name, message: "given more than once")
                }
                switch name {
                case "period":
                    guard let period = Period(rawValue: value) else {
                        throw QueryError(parameter: "period", message: "'\(value.prefix(64))' is not one of "
                                         + Period.allCases.map(\.rawValue).joined(separator: ", "))
                    }
                    filters.period = period
                default:
                    guard !value.isEmpty else { continue }
                    guard value.count <= maxValueLength else {
                        throw QueryError(parameter: name, message: "longer than \(maxValueLength) characters")
                    }
                    guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                        throw QueryError(parameter: name, message: "contains control characters")
                    }
                    switch name {
                    case "team": filters.team = value
                    case "project": filters.project = value
                    default: filters.key = value
                    }
                }
            }
            return filters
        }

        /// The range shown, in whole UTC hours (24h) or days: it ends with the current hour or day.
        func range(now: Date) -> (from: Date, to: Date) {
            let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
            let unit: Int64 = period.granularity == .hour ? 3_600 : 86_400
            let end = (floorDiv(seconds, unit) + 1) * unit
            let count = period.granularity == .hour ? 24 : period.days
            let start = end - count * unit
            return (Date(timeIntervalSince1970: TimeInterval(start)), Date(timeIntervalSince1970: TimeInterval(end)))
        }

        /// The query string of these filters with some changed (links keep the other filters).
        func query(period: Period? = nil) -> String {
            var parts = ["period=" + (period ?? self.period).rawValue]
            for (name, value) in [("team", team), ("project", project), ("key", key)] {
                if let value { parts.append(name + "=" + Dashboard.urlEncode(value)) }
            }
            return parts.joined(separator: "&")
        }
    }

    static func floorDiv(_ value: Int64, _ divisor: Int64) -> Int64 {
        value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor)
    }

    static func urlEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        var ascii = CharacterSet()
        ascii.insert(charactersIn: Unicode.Scalar(0x21)...Unicode.Scalar(0x7E))
        return text.addingPercentEncoding(withAllowedCharacters: allowed.intersection(ascii)) ?? text
    }
}
