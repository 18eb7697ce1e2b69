import Foundation
import TollgateEvents
import TollgateProjections

extension Dashboard {
    /// The values the filter dropdowns offer: those seen in the period, and every known key.
    struct Options: Sendable {
        var teams: [String] = []
        var projects: [String] = []
        /// Key ids, each with a label (name, team and project) when the key is known.
        var keys: [(id: String, label: String)] = []
    }

    /// Summed figures of a group, as the page shows them: integer counts and nano-USD.
    struct Figures: Sendable, Hashable {
        var requests: Int64 = 0
        var errors: Int64 = 0
        var blocked: Int64 = 0
        var unpriced: Int64 = 0
        var tokens: Int64 = 0
        var costNanoUSD: Int64 = 0

        init() {}

        init(_ figures: UsageFigures) {
            requests = figures.requests
            errors = figures.errors
            blocked = figures.blocked
            unpriced = figures.unpriced
            tokens = figures.tokens.totalTokens
            costNanoUSD = figures.costNanoUSD.total.nanoUSD
        }

        static func += (lhs: inout Figures, rhs: Figures) {
            lhs.requests += rhs.requests
            lhs.errors += rhs.errors
            lhs.blocked += rhs.blocked
            lhs.unpriced += rhs.unpriced
            lhs.tokens += rhs.tokens
            lhs.costNanoUSD += rhs.costNanoUSD
        }
    }

    /// One row of a breakdown: a dimension value and its figures.
    struct Group: Sendable, Hashable {
        var name: String
        var figures: Figures

        /// Highest spend first, then more requests, then by name.
        static func ranked(_ sums: [String: Figures]) -> [Group] {
            sums.map { Group(name: $0.key, figures: $0.value) }.sorted { lhs, rhs in
                if lhs.figures.costNanoUSD != rhs.figures.costNanoUSD {
                    return lhs.figures.costNanoUSD > rhs.figures.costNanoUSD
                }
                if lhs.figures.requests != rhs.figures.requests { return lhs.figures.requests > rhs.figures.requests }
                return lhs.name < rhs.name
            }
        }
    }

    /// Everything the page shows, read from the store for one set of filters.
    ///
    /// Every figure comes from the rollups, not from single requests (except the most expensive ones):
    ///
    /// - one unfiltered ``ProjectionStore/usage(_:)`` grouped by key, team, project and model gives the
    ///   dropdowns and, with the filters applied here, the key, team, project and model breakdowns and the
    ///   totals (one scan of the main rollup instead of five);
    /// - one grouped by model in hourly or daily buckets gives the chart;
    /// - one each by customer and by tag (their own rollups).
    ///
    /// Money stays integer nano-USD throughout, so every sum is exact.
    struct Report: Sendable {
        static let topRequests = 20
        static let alertLimit = 50

        var filters: Filters
        var from: Date
        var to: Date
        var now: Date
        var granularity: Granularity
        /// Every bucket start of the range, empty ones included, oldest first.
        var buckets: [Date]
        /// Spend by bucket and served model.
        var series: [UsageRow]
        var totals: Figures
        var byModel: [Group]
        var byKey: [Group]
        var byTeam: [Group]
        var byProject: [Group]
        var byCustomer: [Group]
        var byTag: [Group]
        var tagTotals: Figures
        var top: [RequestRecord]
        var budgets: [BudgetRecord]
        var alerts: [AlertRecord]
        var keys: [String: KeyRecord]
        var options: Options

        static func load(store: ProjectionStore, filters: Filters, now: Date) throws -> Report {
            let (from, to) = filters.range(now: now)
            let granularity = filters.period.granularity
            let filter = filters.usageFilter

            // Key × team × project × model, unfiltered: dropdowns, four breakdowns and the totals.
            let cube = try store.usage(UsageQuery(from: from, to: to, groupBy: [.key, .team, .project, .model]))
            var teams = Set<String>(), projects = Set<String>(), keyIDs = Set<String>()
            var byKey: [String: Figures] = [:], byTeam: [String: Figures] = [:]
            var byProject: [String: Figures] = [:], byModel: [String: Figures] = [:]
            var totals = Figures()
            for row in cube.rows {
                let key = row.group["key"] ?? "", team = row.group["team"] ?? ""
                let project = row.group["project"] ?? "", model = row.group["model"] ?? ""
                teams.insert(team)
                projects.insert(project)
                keyIDs.insert(key)
                guard filters.key.map({ $0 == key }) ?? true, filters.team.map({ $0 == team }) ?? true,
                      filters.project.map({ $0 == project }) ?? true else { continue }
                let figures = Figures(row.figures)
                byKey[key, default: Figures()] += figures
                byTeam[team, default: Figures()] += figures
                byProject[project, default: Figures()] += figures
                byModel[model, default: Figures()] += figures
                totals += figures
            }

            func usage(_ groupBy: [UsageDimension], _ granularity: Granularity = .total) throws -> UsageResult {
                try store.usage(UsageQuery(from: from, to: to, groupBy: groupBy, granularity: granularity,
                                           filter: filter))
            }
            let series = try usage([.model], granularity)
            func groups(_ result: UsageResult, _ dimension: UsageDimension) -> [Group] {
                var sums: [String: Figures] = [:]
                for row in result.rows { sums[row.group[dimension.rawValue] ?? "", default: Figures()] += Figures(row.figures) }
                return Group.ranked(sums)
            }
            let byCustomer = groups(try usage([.customer]), .customer)
            let tags = try usage([.tag])
            let top = try store.requests(RequestsQuery(from: from, to: to, order: .cost, limit: topRequests,
                                                       filter: filter))
            let budgets = try store.budgets().filter { filters.includes($0.scope) }
            let alerts = try store.alerts(since: from, limit: alertLimit).filter { filters.includes($0.scope) }
            let keyList = try store.keys(now: now)
            var keys: [String: KeyRecord] = [:]
            for key in keyList { keys[key.keyID] = key }

            var options = Self.options(teams: teams, projects: projects, keyIDs: keyIDs, keyList: keyList)
            options.addSelected(filters)
            let step: TimeInterval = granularity == .hour ? 3_600 : 86_400
            let buckets = stride(from: from.timeIntervalSince1970, to: to.timeIntervalSince1970, by: step)
                .map(Date.init(timeIntervalSince1970:))
            return Report(
                filters: filters, from: from, to: to, now: now, granularity: granularity, buckets: buckets,
                series: series.rows, totals: totals, byModel: Group.ranked(byModel), byKey: Group.ranked(byKey),
                byTeam: Group.ranked(byTeam), byProject: Group.ranked(byProject), byCustomer: byCustomer,
                byTag: groups(tags, .tag), tagTotals: Figures(tags.totals), top: top, budgets: budgets,
                alerts: alerts, keys: keys, options: options)
        }

        /// The dropdown values over the filters' period (for the error page, which has no report).
        static func options(store: ProjectionStore, filters: Filters, now: Date) throws -> Options {
            let (from, to) = filters.range(now: now)
            let rows = try store.usage(UsageQuery(from: from, to: to, groupBy: [.team, .project, .key])).rows
            return Self.options(teams: Set(rows.compactMap { $0.group["team"] }),
                                projects: Set(rows.compactMap { $0.group["project"] }),
                                keyIDs: Set(rows.compactMap { $0.group["key"] }), keyList: try store.keys(now: now))
        }

        static func options(teams: Set<String>, projects: Set<String>, keyIDs: Set<String>,
                            keyList: [KeyRecord]) -> Options {
            var known: [String: KeyRecord] = [:]
            for key in keyList { known[key.keyID] = key }
            return Options(
                teams: teams.union(keyList.map(\.team)).sorted(),
                projects: projects.union(keyList.map(\.project)).sorted(),
                keys: keyIDs.union(keyList.map(\.keyID)).sorted().map { id in
                    guard let key = known[id] else { return (id, id) }
                    let name = key.name.map { " \u{2014} \($0)" } ?? ""
                    return (id, "\(id)\(name) (\(key.team)/\(key.project))")
                })
        }
    }
}

extension Dashboard.Options {
    /// A filter value nobody used in the period still shows, selected.
    mutating func addSelected(_ filters: Dashboard.Filters) {
        if let team = filters.team, !teams.contains(team) { teams.append(team) }
        if let project = filters.project, !projects.contains(project) { projects.append(project) }
        if let key = filters.key, !keys.contains(where: { $0.id == key }) { keys.append((key, key)) }
    }
}

extension Dashboard.Filters {
    /// Whether a budget or alert of this scope belongs on the page: all do without filters; with filters,
    /// the global ones and those of a filtered team, project or key.
    func includes(_ scope: Scope) -> Bool {
        guard isFiltered else { return true }
        switch scope.kind {
        case .global: return true
        case .team: return scope.id == team
        case .project: return scope.id == project
        case .key: return scope.id == key
        case .customer, .tag: return false
        }
    }
}
