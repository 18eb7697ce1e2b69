import Foundation
import TollgateEvents
import TollgateProjections

extension Dashboard {
    /// Formatting shared by the page and its charts. Money is formatted from integer nano-USD.
    enum Format {
        /// Decimals of every dollar amount on the page: `$12.3456` (rounded half to even, from nano-USD).
        static let moneyDecimals = 4

        /// Text for HTML and SVG: `&`, `<`, `>`, `"` and `'` escaped, so data can never become markup.
        static func escape(_ text: String) -> String {
            guard text.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 })
            else { return text }
            var out = ""
            out.reserveCapacity(text.utf8.count + 16)
            for scalar in text.unicodeScalars {
                switch scalar {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&quot;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out
        }

        static func money(_ nanoUSD: Int64, decimals: Int = moneyDecimals) -> String {
            Money(nanoUSD: nanoUSD).formatted(decimals: decimals)
        }

        static func count(_ value: Int64) -> String { TextFormat.count(value) }

        /// `part / whole` as a percentage with one decimal (`12.3%`); a ratio, so `Double` is fine.
        static func share(_ part: Int64, of whole: Int64) -> String {
            guard whole > 0 else { return "\u{2013}" }
            return oneDecimal(Double(part) * 100 / Double(whole)) + "%"
        }

        static func basisPoints(_ value: Int64) -> String { TextFormat.basisPoints(value) }

        static func oneDecimal(_ value: Double) -> String {
            let tenths = Int64((value * 10).rounded())
            return "\(tenths / 10).\(abs(tenths % 10))"
        }

        /// A coordinate for SVG: at most one decimal.
        static func coordinate(_ value: Double) -> String {
            let tenths = Int64((value * 10).rounded())
            return tenths % 10 == 0 ? String(tenths / 10) : oneDecimal(value)
        }

        static func minute(_ date: Date) -> String { TextFormat.minute(date) }

        /// `2026-11-29 08:00:05` (UTC).
        static func second(_ date: Date) -> String {
            let text = EventTime.format(date)
            return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(8))
        }

        static func day(_ date: Date) -> String { TextFormat.day(date) }
    }

    /// The page skeleton: head, styles, header with the principal and sign-out.
    enum Layout {
        static func document(title: String, body: String) -> String {
            """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="color-scheme" content="light">
            <link rel="icon" href="data:,">
            <title>\(Format.escape(title))</title>
            <style>\(css)</style>
            </head>
            <body>
            \(body)
            </body>
            </html>
            """
        }

        static func header(principal: QueryPrincipal?) -> String {
            var out = "<header class=\"top\"><h1>Tollgate <span>spend dashboard</span></h1>"
            if let principal {
                let who = switch principal {
                case .admin: "admin"
                case .readOnlyKey(let keyID): "read-only key " + keyID
                }
                out += "<div class=\"who\">Signed in as <b data-testid=\"principal\">\(Format.escape(who))</b>"
                out += "<form method=\"post\" action=\"/dashboard/logout\"><button type=\"submit\">Sign out</button></form></div>"
            }
            return out + "</header>"
        }

        static let css = """
            *{box-sizing:border-box}
            body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;\
            color:#1c2430;background:#f3f5f8}
            main{max-width:1340px;margin:0 auto;padding:8px 14px 32px}
            header.top{display:flex;align-items:center;justify-content:space-between;background:#1c2a3a;color:#fff;\
            padding:8px 18px}
            header.top h1{font-size:17px;margin:0;font-weight:600}
            header.top h1 span{font-weight:400;color:#aac4de}
            .who{display:flex;gap:10px;align-items:center;color:#d5e1ee}
            .who form{margin:0}
            button,select{font:inherit}
            button{background:#2f6fb3;color:#fff;border:0;border-radius:4px;padding:4px 12px;cursor:pointer}
            .who button{background:#3b4d63}
            form.filters{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-end;background:#fff;padding:10px 14px;\
            border:1px solid #dde3ea;border-radius:6px;margin:10px 0}
            form.filters label{display:flex;flex-direction:column;font-size:11px;color:#56657a;gap:2px}
            form.filters select{min-width:150px;max-width:320px;padding:3px}
            .range{margin-left:auto;color:#56657a;font-size:12px}
            .cards{display:grid;grid-template-columns:repeat(6,1fr);gap:10px;margin:10px 0}
            .card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:8px 12px}
            .card .label{font-size:11px;color:#56657a;text-transform:uppercase;letter-spacing:.04em}
            .card .value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
            section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:10px 14px;margin:10px 0;\
            min-width:0}
            section h2{font-size:14px;margin:0 0 8px;font-weight:600}
            section h2 small{font-weight:400;color:#6a7789;font-size:12px}
            .grid2{display:grid;grid-template-columns:1fr 1fr;gap:10px}
            .grid2>section{margin:0}
            .row{margin:10px 0}
            table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
            th,td{padding:3px 6px;border-bottom:1px solid #edf0f4;text-align:left;vertical-align:top}
            th{font-size:11px;color:#56657a;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
            td.num,th.num{text-align:right;white-space:nowrap}
            tr.total td{font-weight:600;border-top:2px solid #c9d2dc;border-bottom:0}
            td.name{max-width:300px;overflow-wrap:anywhere}
            td.mono,code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:12px}
            .scroll{max-height:380px;overflow:auto}
            .more td{color:#6a7789;font-style:italic}
            .bar{height:8px;background:#2f6fb3;border-radius:2px;min-width:1px}
            .barcell{width:12%}
            table.models td.name{white-space:nowrap}
            svg{display:block;width:100%;height:auto}
            svg text{font:11px system-ui,sans-serif;fill:#44526a}
            .legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0 0;padding:0;list-style:none;font-size:12px}
            .legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
            .state{display:inline-block;padding:0 7px;border-radius:9px;font-size:11px;font-weight:600;background:#e4e9ef}
            .state-ok{background:#dff3e4;color:#1d6b34}
            .state-alert{background:#fff1cc;color:#7a5600}
            .state-downgrade{background:#ffe2c7;color:#8a4300}
            .state-blocked,.sev-critical{background:#fbd9d9;color:#9b1c1c}
            .sev-warning{background:#fff1cc;color:#7a5600}
            .sev-info{background:#dfeafb;color:#1f4f8a}
            .error{background:#fdecec;border:1px solid #f2b8b8;color:#8b1c1c;padding:10px 14px;border-radius:6px;margin:10px 0}
            .note{color:#6a7789;font-size:12px}
            .empty{color:#6a7789;font-style:italic;padding:8px 0}
            .login{max-width:380px;margin:90px auto;background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:22px}
            .login h1{font-size:18px;margin:0 0 12px}
            .login label{display:block;margin:8px 0 4px;color:#56657a}
            .login input{width:100%;font:inherit;padding:6px}
            .login button{margin-top:12px;padding:6px 16px}
            """
    }

    /// The login page, the error page and the failure page.
    enum Page {
        static func login(error: String?) -> String {
            var body = "<div class=\"login\"><h1>Tollgate dashboard</h1>"
            if let error {
                body += "<div class=\"error\" role=\"alert\" data-testid=\"login-error\">\(Format.escape(error))</div>"
            }
            body += """
                <form method="post" action="/dashboard/login" data-testid="login-form">
                <label for="key">Admin key or read-only virtual key</label>
                <input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
                <button type="submit">Sign in</button>
                </form>
                <p class="note">The key is kept in an HttpOnly session cookie for this site only.</p>
                </div>
                """
            return Layout.document(title: "Sign in \u{2014} Tollgate", body: body)
        }

        static func errorPage(_ error: QueryError, principal: QueryPrincipal, options: Options) -> String {
            var body = Layout.header(principal: principal) + "<main>"
            body += filterForm(Filters(), options: options, range: nil)
            body += "<div class=\"error\" role=\"alert\" data-testid=\"error\" data-parameter=\"\(Format.escape(error.parameter))\">"
            body += "Invalid parameter <code>\(Format.escape(error.parameter))</code>: \(Format.escape(error.message))"
            body += " \u{2014} <a href=\"/dashboard\">show the default view</a></div></main>"
            return Layout.document(title: "Invalid filter \u{2014} Tollgate", body: body)
        }

        static func failurePage(_ message: String, principal: QueryPrincipal) -> String {
            let body = Layout.header(principal: principal)
                + "<main><div class=\"error\" role=\"alert\" data-testid=\"error\">\(Format.escape(message))</div></main>"
            return Layout.document(title: "Error \u{2014} Tollgate", body: body)
        }

        static func filterForm(_ filters: Filters, options: Options, range: (Date, Date)?) -> String {
            var out = "<form class=\"filters\" method=\"get\" action=\"/dashboard\" data-testid=\"filters\">"
            out += "<label>Period<select name=\"period\">"
            for period in Filters.Period.allCases {
                out += option(period.rawValue, period.label, selected: period == filters.period)
            }
            out += "</select></label>"
            let dropdowns: [(String, String, String?, [(id: String, label: String)])] = [
                ("team", "Team", filters.team, options.teams.map { ($0, $0) }),
                ("project", "Project", filters.project, options.projects.map { ($0, $0) }),
                ("key", "Key", filters.key, options.keys),
            ]
            for (name, label, selected, values) in dropdowns {
                out += "<label>\(label)<select name=\"\(name)\">" + option("", "All", selected: selected == nil)
                for value in values { out += option(value.id, value.label, selected: value.id == selected) }
                out += "</select></label>"
            }
            out += "<button type=\"submit\">Apply</button>"
            if let (from, to) = range {
                out += "<span class=\"range\" data-testid=\"range\">\(Format.minute(from)) \u{2013} \(Format.minute(to)) UTC</span>"
            }
            return out + "</form>"
        }

        static func option(_ value: String, _ label: String, selected: Bool) -> String {
            "<option value=\"\(Format.escape(value))\"\(selected ? " selected" : "")>\(Format.escape(label))</option>"
        }
    }
}
