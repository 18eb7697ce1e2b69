import Foundation
import TollgateEvents
import TollgateProjections

extension Dashboard.Page {
    typealias Format = Dashboard.Format

    /// Rows a usage table shows before folding the rest into one "more" row.
    static let tableRows = 50

    /// The dashboard page for a report.
    static func dashboard(_ report: Dashboard.Report, principal: QueryPrincipal) -> String {
        var body = Dashboard.Layout.header(principal: principal) + "<main>"
        body.reserveCapacity(64 * 1024)
        body += filterForm(report.filters, options: report.options, range: (report.from, report.to))
        body += cards(report)
        body += spendOverTime(report)
        let totalCost = report.totals.costNanoUSD
        body += "<div class=\"grid2\">"
        body += "<section data-testid=\"teams\"><h2>Spend by team</h2>"
        body += Dashboard.Charts.horizontalBars(report.byTeam, label: "team", testID: "team-chart")
        body += usageTable(testID: "by-team", heading: "Team", rows: report.byTeam,
                           total: report.totals, shareBase: totalCost)
        body += "</section>"
        body += "<section data-testid=\"projects\"><h2>Spend by project</h2>"
        body += usageTable(testID: "by-project", heading: "Project", rows: report.byProject,
                           total: report.totals, shareBase: totalCost)
        body += "</section></div>"
        body += "<div class=\"grid2 row\">"
        body += "<section data-testid=\"keys\"><h2>Spend by key</h2>"
        body += usageTable(testID: "by-key", heading: "Key", rows: report.byKey,
                           total: report.totals, shareBase: totalCost) { id in
            guard let key = report.keys[id] else { return "<code>\(Format.escape(id))</code>" }
            let name = key.name.map { " \(Format.escape($0))" } ?? ""
            return "<code>\(Format.escape(id))</code>\(name) <span class=\"note\">\(Format.escape(key.keyPrefix))\u{2026}"
                + (key.status == "active" ? "" : " \(Format.escape(key.status))") + "</span>"
        }
        body += "</section>"
        body += "<section data-testid=\"customers\"><h2>Spend by customer</h2>"
        body += usageTable(testID: "by-customer", heading: "Customer", rows: report.byCustomer,
                           total: report.totals, shareBase: totalCost) { name in
            name.isEmpty ? "<span class=\"note\">(no customer)</span>" : Format.escape(name)
        }
        body += "</section></div>"
        body += "<div class=\"grid2 row\">"
        body += "<section data-testid=\"tags\"><h2>Spend by tag <small>a request with several tags counts under each; "
            + "share is of all spend</small></h2>"
        body += usageTable(testID: "by-tag", heading: "Tag", rows: report.byTag,
                           total: report.tagTotals, shareBase: totalCost, totalLabel: "Total over tags")
        body += "</section>"
        body += modelMix(report)
        body += "</div>"
        body += topRequests(report)
        body += budgets(report)
        body += alerts(report)
        body += "<p class=\"note\">Generated \(Format.second(report.now)) UTC. Money in US dollars to "
            + "\(Format.moneyDecimals) decimals, rounded half to even from exact nano-dollar sums. Usage without a "
            + "price (unpriced models) is counted in requests and tokens but not in spend.</p>"
        body += "</main>"
        return Dashboard.Layout.document(title: "Tollgate \u{2014} " + report.filters.period.label, body: body)
    }

    // MARK: Sections

    static func cards(_ report: Dashboard.Report) -> String {
        let totals = report.totals
        let cost = totals.costNanoUSD
        var out = "<div class=\"cards\" data-testid=\"totals\">"
        out += card("Spend", Format.money(cost), testID: "total-cost", attribute: "data-cost-nano-usd=\"\(cost)\"")
        out += card("Requests", Format.count(totals.requests), testID: "total-requests",
                    attribute: "data-value=\"\(totals.requests)\"")
        let tokens = totals.tokens
        out += card("Tokens", Format.count(tokens), testID: "total-tokens", attribute: "data-value=\"\(tokens)\"")
        let average = totals.requests > 0 ? cost / totals.requests : 0
        out += card("Avg per request", Format.money(average), testID: "average-cost",
                    attribute: "data-cost-nano-usd=\"\(average)\"")
        out += card("Errors", Format.count(totals.errors) + " <small>(" + Format.share(totals.errors, of: totals.requests)
                    + ")</small>", testID: "total-errors", attribute: "data-value=\"\(totals.errors)\"")
        out += card("Blocked \u{00B7} unpriced", Format.count(totals.blocked) + " \u{00B7} " + Format.count(totals.unpriced),
                    testID: "total-blocked", attribute: "data-blocked=\"\(totals.blocked)\" data-unpriced=\"\(totals.unpriced)\"")
        return out + "</div>"
    }

    static func card(_ label: String, _ value: String, testID: String, attribute: String) -> String {
        "<div class=\"card\"><div class=\"label\">\(label)</div>"
            + "<div class=\"value\" data-testid=\"\(testID)\" \(attribute)>\(value)</div></div>"
    }

    static func spendOverTime(_ report: Dashboard.Report) -> String {
        let unit = report.granularity == .hour ? "hour" : "day"
        var out = "<section data-testid=\"spend-over-time\"><h2>Spend over time "
            + "<small>by \(unit) (UTC), stacked by served model</small></h2>"
        out += Dashboard.Charts.stackedBars(report)
        return out + "</section>"
    }

    /// A table of usage grouped by one dimension: requests, tokens, spend and share of all spend.
    static func usageTable(testID: String, heading: String, rows: [Dashboard.Group], total: Dashboard.Figures,
                           shareBase: Int64, totalLabel: String = "Total",
                           label: (String) -> String = { Format.escape($0) }) -> String {
        guard !rows.isEmpty else { return "<p class=\"empty\" data-testid=\"\(testID)\">No usage in this period.</p>" }
        var out = "<div class=\"scroll\"><table data-testid=\"\(testID)\"><thead><tr><th>\(heading)</th>"
            + "<th class=\"num\">Requests</th><th class=\"num\">Tokens</th><th class=\"num\">Spend</th>"
            + "<th class=\"num\">Share</th></tr></thead><tbody>"
        for row in rows.prefix(tableRows) {
            let name = row.name
            let figures = row.figures
            let cost = figures.costNanoUSD
            out += "<tr data-testid=\"usage-row\" data-name=\"\(Format.escape(name))\"><td class=\"name\">\(label(name))</td>"
                + "<td class=\"num\" data-value=\"\(figures.requests)\">\(Format.count(figures.requests))</td>"
                + "<td class=\"num\" data-value=\"\(figures.tokens)\">\(Format.count(figures.tokens))</td>"
                + "<td class=\"num\" data-cost-nano-usd=\"\(cost)\">\(Format.money(cost))</td>"
                + "<td class=\"num\">\(Format.share(cost, of: shareBase))</td></tr>"
        }
        if rows.count > tableRows {
            var requests: Int64 = 0
            var cost: Int64 = 0
            for row in rows.dropFirst(tableRows) {
                requests += row.figures.requests
                cost += row.figures.costNanoUSD
            }
            out += "<tr class=\"more\"><td>\(rows.count - tableRows) more</td>"
                + "<td class=\"num\">\(Format.count(requests))</td><td></td>"
                + "<td class=\"num\" data-cost-nano-usd=\"\(cost)\">\(Format.money(cost))</td>"
                + "<td class=\"num\">\(Format.share(cost, of: shareBase))</td></tr>"
        }
        let cost = total.costNanoUSD
        out += "</tbody><tfoot><tr class=\"total\" data-testid=\"total-row\"><td>\(totalLabel)</td>"
            + "<td class=\"num\" data-value=\"\(total.requests)\">\(Format.count(total.requests))</td>"
            + "<td class=\"num\" data-value=\"\(total.tokens)\">\(Format.count(total.tokens))</td>"
            + "<td class=\"num\" data-cost-nano-usd=\"\(cost)\">\(Format.money(cost))</td>"
            + "<td class=\"num\">\(Format.share(cost, of: shareBase))</td></tr></tfoot></table></div>"
        return out
    }

    static func modelMix(_ report: Dashboard.Report) -> String {
        var out = "<section data-testid=\"model-mix\"><h2>Model mix <small>served model: share of spend and of "
            + "requests</small></h2>"
        guard !report.byModel.isEmpty else { return out + "<p class=\"empty\">No usage in this period.</p></section>" }
        let totalCost = report.totals.costNanoUSD
        let totalRequests = report.totals.requests
        out += "<div class=\"scroll\"><table class=\"models\" data-testid=\"model-table\"><thead><tr><th>Model</th>"
            + "<th class=\"num\">Spend</th><th class=\"num\">Share</th><th class=\"barcell\"></th>"
            + "<th class=\"num\">Requests</th><th class=\"num\">Share</th><th class=\"barcell\"></th></tr></thead><tbody>"
        for row in report.byModel.prefix(tableRows) {
            let model = row.name
            let cost = row.figures.costNanoUSD
            let requests = row.figures.requests
            out += "<tr data-testid=\"usage-row\" data-name=\"\(Format.escape(model))\"><td class=\"name\">\(Format.escape(model))</td>"
                + "<td class=\"num\" data-cost-nano-usd=\"\(cost)\">\(Format.money(cost))</td>"
                + "<td class=\"num\">\(Format.share(cost, of: totalCost))</td><td>\(bar(cost, of: totalCost))</td>"
                + "<td class=\"num\" data-value=\"\(requests)\">\(Format.count(requests))</td>"
                + "<td class=\"num\">\(Format.share(requests, of: totalRequests))</td>"
                + "<td>\(bar(requests, of: totalRequests))</td></tr>"
        }
        if report.byModel.count > tableRows {
            out += "<tr class=\"more\"><td colspan=\"7\">\(report.byModel.count - tableRows) more models</td></tr>"
        }
        return out + "</tbody></table></div></section>"
    }

    static func bar(_ part: Int64, of whole: Int64) -> String {
        guard whole > 0, part > 0 else { return "" }
        return "<div class=\"bar\" style=\"width:\(Format.oneDecimal(Double(part) * 100 / Double(whole)))%\"></div>"
    }

    static func topRequests(_ report: Dashboard.Report) -> String {
        var out = "<section data-testid=\"top-requests\"><h2>Most expensive requests "
            + "<small>top \(Dashboard.Report.topRequests) in the period</small></h2>"
        guard !report.top.isEmpty else { return out + "<p class=\"empty\">No requests in this period.</p></section>" }
        out += "<table data-testid=\"top-requests-table\"><thead><tr><th>Request</th><th>Time (UTC)</th><th>Team</th>"
            + "<th>Project</th><th>Key</th><th>Model</th><th>Outcome</th><th class=\"num\">Tokens</th>"
            + "<th class=\"num\">Cost</th></tr></thead><tbody>"
        for record in report.top {
            let cost = record.costNanoUSD.total.nanoUSD
            var model = Format.escape(record.servedModel)
            if record.requestedModel != record.servedModel {
                model += " <span class=\"note\">asked " + Format.escape(record.requestedModel) + "</span>"
            }
            out += "<tr data-testid=\"top-request\" data-request-id=\"\(Format.escape(record.requestID))\">"
                + "<td class=\"mono\">\(Format.escape(record.requestID))</td>"
                + "<td class=\"num\">\(Format.second(record.receivedAt))</td>"
                + "<td class=\"name\">\(Format.escape(record.team))</td><td class=\"name\">\(Format.escape(record.project))</td>"
                + "<td class=\"mono\">\(Format.escape(record.keyID))</td><td>\(model)</td>"
                + "<td>\(Format.escape(record.outcome))</td>"
                + "<td class=\"num\" data-value=\"\(record.tokens.totalTokens)\">\(Format.count(record.tokens.totalTokens))</td>"
                + "<td class=\"num\" data-cost-nano-usd=\"\(cost)\">\(Format.money(cost))</td></tr>"
        }
        return out + "</tbody></table></section>"
    }

    static func budgets(_ report: Dashboard.Report) -> String {
        var out = "<section data-testid=\"budgets\"><h2>Budgets <small>current period of each"
            + (report.filters.isFiltered ? "; global ones and those of the filtered team, project or key" : "")
            + "</small></h2>"
        guard !report.budgets.isEmpty else { return out + "<p class=\"empty\">No budgets.</p></section>" }
        out += "<table data-testid=\"budgets-table\"><thead><tr><th>Budget</th><th>Scope</th><th>Period</th>"
            + "<th class=\"num\">Limit</th><th class=\"num\">Spent</th><th class=\"num\">Remaining</th>"
            + "<th class=\"num\">Used</th><th>State</th><th>Resets at (UTC)</th></tr></thead><tbody>"
        for budget in report.budgets {
            let dash = "\u{2013}"
            let state = budget.state ?? "undecided"
            out += "<tr data-testid=\"budget\" data-budget-id=\"\(Format.escape(budget.budgetID))\">"
                + "<td class=\"mono\">\(Format.escape(budget.budgetID))</td>"
                + "<td>\(Format.escape(budget.scope.description))</td>"
                + "<td>\(Format.escape(budget.periodKind)) <span class=\"note\">\(Format.escape(budget.timeZone))</span></td>"
                + "<td class=\"num\" data-cost-nano-usd=\"\(budget.limitNanoUSD)\">\(Format.money(budget.limitNanoUSD))</td>"
                + "<td class=\"num\"\(budget.spentNanoUSD.map { " data-cost-nano-usd=\"\($0)\"" } ?? "")>"
                + (budget.spentNanoUSD.map { Format.money($0) } ?? dash) + "</td>"
                + "<td class=\"num\">" + (budget.remainingNanoUSD.map { Format.money($0) } ?? dash) + "</td>"
                + "<td class=\"num\">" + (budget.usedPercentBP.map { Format.basisPoints($0) } ?? dash) + "</td>"
                + "<td><span class=\"state state-\(Format.escape(state))\" data-testid=\"budget-state\">"
                + "\(Format.escape(state))</span></td>"
                + "<td>" + (budget.resetsAt.map { Format.minute($0) } ?? (budget.periodKind == "lifetime" ? "never" : dash))
                + "</td></tr>"
        }
        return out + "</tbody></table></section>"
    }

    static func alerts(_ report: Dashboard.Report) -> String {
        var out = "<section data-testid=\"alerts\"><h2>Recent alerts <small>raised in the period, newest first"
            + (report.filters.isFiltered ? "; global ones and those of the filtered team, project or key" : "")
            + "</small></h2>"
        guard !report.alerts.isEmpty else { return out + "<p class=\"empty\">No alerts in this period.</p></section>" }
        out += "<table data-testid=\"alerts-table\"><thead><tr><th>Raised (UTC)</th><th>Severity</th><th>Kind</th>"
            + "<th>Scope</th><th>Alert</th></tr></thead><tbody>"
        for alert in report.alerts {
            out += "<tr data-testid=\"alert\" data-alert-id=\"\(Format.escape(alert.alertID))\">"
                + "<td class=\"num\">\(Format.minute(alert.raisedAt))</td>"
                + "<td><span class=\"state sev-\(Format.escape(alert.severity))\">\(Format.escape(alert.severity))</span></td>"
                + "<td>\(Format.escape(alert.kind))</td><td>\(Format.escape(alert.scope.description))</td>"
                + "<td><b>\(Format.escape(alert.title))</b><br><span class=\"note\">\(Format.escape(alert.message))</span></td>"
                + "</tr>"
        }
        return out + "</tbody></table></section>"
    }
}
