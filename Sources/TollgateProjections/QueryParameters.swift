public import Foundation
import TollgateEvents

/// Reading queries from name/value parameters: the query API's URL parameters and the CLI's options
/// share these rules, so both accept and reject the same things with the same messages.
///
/// - `since`: a duration back from now: `30m`, `24h`, `7d`, `4w` (minutes, hours, days, weeks).
/// - `from`, `to`: an instant (`2026-11-01T12:00:00Z`, fractions and offsets allowed), a UTC date
///   (`2026-11-01`, its midnight), or a duration back from now as for `since`. `since` and `from`
///   exclude each other. `to` defaults to now; `from` to `to` minus `defaultRange`.
/// - `group_by`: comma-separated ``UsageDimension`` names; `granularity`: a ``Granularity``.
/// - Filters: one parameter per dimension (`team=search`, `tag=feature=summarize`, `model=gpt-4o`).
public enum QueryParameters {
    public static let filterNames: [String: UsageDimension] = Dictionary(
        uniqueKeysWithValues: UsageDimension.allCases.map { ($0.rawValue, $0) })

    public static func usage(_ parameters: [String: String], now: Date = Date(),
                             defaultRange: TimeInterval = 7 * 86_400) throws(QueryError) -> UsageQuery {
        try known(parameters, ["from", "to", "since", "group_by", "granularity"] + Array(filterNames.keys))
        let (from, to) = try range(parameters, now: now, defaultRange: defaultRange)
        var groupBy: [UsageDimension] = []
        if let list = parameters["group_by"], !list.isEmpty {
            for name in list.split(separator: ",", omittingEmptySubsequences: false) {
                let trimmed = name.trimmingCharacters(in: .whitespaces)
                guard let dimension = UsageDimension(rawValue: trimmed) else {
                    throw QueryError(parameter: "group_by", message: "unknown dimension '\(trimmed)'; use any of "
                                     + UsageDimension.allCases.map(\.rawValue).joined(separator: ", "))
                }
                guard !groupBy.contains(dimension) else {
                    throw QueryError(parameter: "group_by", message: "'\(trimmed)' appears twice")
                }
                groupBy.append(dimension)
            }
        }
        let granularity = try choice(parameters, "granularity", default: Granularity.total)
        let filter = try self.filter(parameters)
        let dimensions = Set(groupBy).union(filter.values.keys)
        if dimensions.contains(.customer) && dimensions.contains(.tag) {
            let both = groupBy.contains(.customer) && groupBy.contains(.tag)
            let parameter = both ? "group_by" : groupBy.contains(.customer) ? "tag" : "customer"
            throw QueryError(parameter: parameter, message:
                "customer and tag cannot be combined in one usage query (group by or filter by one of them)")
        }
        if granularity == .hour {
            let hours = to.timeIntervalSince(from) / 3_600
            if hours > 24 * 93 {
                throw QueryError(parameter: "granularity",
                                 message: "hourly buckets are limited to 93 days; use day, week or month")
            }
        }
        return UsageQuery(from: from, to: to, groupBy: groupBy, granularity: granularity, filter: filter)
    }

    public static func requests(_ parameters: [String: String], now: Date = Date(),
                                defaultRange: TimeInterval = 86_400) throws(QueryError) -> RequestsQuery {
        try known(parameters, ["from", "to", "since", "order", "limit"] + Array(filterNames.keys))
        let (from, to) = try range(parameters, now: now, defaultRange: defaultRange)
        let order = try choice(parameters, "order", default: RequestOrder.time)
        var limit = 50
        if let text = parameters["limit"] {
            guard let value = Int(text), (1...RequestsQuery.maxLimit).contains(value) else {
                throw QueryError(parameter: "limit",
                                 message: "'\(text)' is not a whole number from 1 to \(RequestsQuery.maxLimit)")
            }
            limit = value
        }
        return RequestsQuery(from: from, to: to, order: order, limit: limit, filter: try filter(parameters))
    }

    /// The value of a parameter that names one of a fixed set, or `fallback` when absent.
    static func choice<Value: RawRepresentable & CaseIterable>(
        _ parameters: [String: String], _ name: String, default fallback: Value
    ) throws(QueryError) -> Value where Value.RawValue == String {
        guard let text = parameters[name] else { return fallback }
        guard let value = Value(rawValue: text) else {
            throw QueryError(parameter: name, message: "'\(text)' is not one of "
                             + Value.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return value
    }

    /// Rejects parameters this query does not know, so a typo is a 400 and not a silently wider answer.
    public static func known(_ parameters: [String: String], _ names: [String]) throws(QueryError) {
        for name in parameters.keys.sorted() where !names.contains(name) {
            throw QueryError(parameter: name, message: "unknown parameter; this query takes "
                             + names.sorted().joined(separator: ", "))
        }
    }

    static func filter(_ parameters: [String: String]) throws(QueryError) -> UsageFilter {
        var filter = UsageFilter()
        for (name, dimension) in filterNames {
            guard let value = parameters[name] else { continue }
            guard !value.isEmpty else {
                throw QueryError(parameter: name, message: "must not be empty")
            }
            if dimension == .tag {
                guard let equals = value.firstIndex(of: "="), equals != value.startIndex else {
                    throw QueryError(parameter: "tag", message: "'\(value)' is not name=value (e.g. feature=search)")
                }
            }
            filter[dimension] = value
        }
        return filter
    }

    static func range(_ parameters: [String: String], now: Date,
                      defaultRange: TimeInterval) throws(QueryError) -> (Date, Date) {
        if parameters["since"] != nil && parameters["from"] != nil {
            throw QueryError(parameter: "since", message: "give since or from, not both")
        }
        var to = now
        if let text = parameters["to"] {
            to = try instant(text, parameter: "to", now: now)
        }
        var from = to.addingTimeInterval(-defaultRange)
        if let text = parameters["since"] {
            guard let seconds = duration(text) else {
                throw QueryError(parameter: "since", message: "'\(text)' is not a duration such as 30m, 24h, 7d or 4w")
            }
            from = now.addingTimeInterval(-seconds)
        } else if let text = parameters["from"] {
            from = try instant(text, parameter: "from", now: now)
        }
        guard from < to else {
            throw QueryError(parameter: parameters["from"] != nil ? "from" : "to",
                             message: "the range is empty: from \(EventTime.format(from)) is not before to \(EventTime.format(to))")
        }
        guard to.timeIntervalSince(from) <= 3_660 * 86_400 else {
            throw QueryError(parameter: "from", message: "the range is longer than ten years")
        }
        return (from, to)
    }

    /// `30m`, `24h`, `7d`, `4w` in seconds.
    public static func duration(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let count = Int(text.dropLast()), count > 0, count <= 100_000 else { return nil }
        switch unit {
        case "m": return TimeInterval(count) * 60
        case "h": return TimeInterval(count) * 3_600
        case "d": return TimeInterval(count) * 86_400
        case "w": return TimeInterval(count) * 7 * 86_400
        default: return nil
        }
    }

    static func instant(_ text: String, parameter: String, now: Date) throws(QueryError) -> Date {
        if let seconds = duration(text) { return now.addingTimeInterval(-seconds) }
        if let date = EventTime.parse(text) { return date }
        let day = text.split(separator: "-")
        if day.count == 3, let year = Int(day[0]), let month = Int(day[1]), let dayOfMonth = Int(day[2]),
           day[0].count == 4, (1...12).contains(month), (1...31).contains(dayOfMonth) {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            if let date = calendar.date(from: DateComponents(year: year, month: month, day: dayOfMonth)),
               calendar.component(.day, from: date) == dayOfMonth {
                return date
            }
        }
        throw QueryError(parameter: parameter, message:
            "'\(text)' is not a time: use 2026-11-01T12:00:00Z, 2026-11-01 (UTC midnight) or a duration back from now such as 24h")
    }
}
