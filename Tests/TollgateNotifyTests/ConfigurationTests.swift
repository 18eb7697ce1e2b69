import Foundation
import Testing
import TollgateEvents
@testable import TollgateNotify

@Suite("Channel configuration")
struct ConfigurationTests {
    static let json = """
        {
          "channels": {
            "ops-hook": {"type": "webhook", "url": "https://hooks.example.com/tollgate",
                         "secret_env": "HOOK_SECRET", "headers": {"X-Team": "platform"}, "timeout": "5s"},
            "search-slack": {"type": "slack", "url_env": "SLACK_URL", "scopes": ["team:search", "tag:*"],
                             "min_severity": "warning"},
            "oncall": {"type": "email", "smtp_url": "smtp://smtp.example.com:587", "username": "tollgate",
                       "password_env": "SMTP_PASSWORD", "from": "Tollgate <tollgate@example.com>",
                       "to": ["oncall@example.com"], "min_severity": "critical", "scopes": ["global"]}
          },
          "retry": {"base_delay": "500ms", "max_delay": "2m", "max_attempts": 8}
        }
        """

    static let environment = ["HOOK_SECRET": "hook-key", "SLACK_URL": "https://hooks.slack.com/services/T/B/x",
                              "SMTP_PASSWORD": "pw"]

    func decode(_ text: String) throws -> ChannelConfiguration {
        try JSONDecoder().decode(ChannelConfiguration.self, from: Data(text.utf8))
    }

    @Test("a configuration decodes, validates and resolves its secrets from the environment")
    func resolve() throws {
        let configuration = try decode(Self.json)
        try configuration.validate()
        #expect(configuration.retry == RetryPolicy(baseDelay: .milliseconds(500), maxDelay: .seconds(120), maxAttempts: 8))
        let channels = try configuration.resolve(environment: Self.environment)
        #expect(channels.map(\.name) == ["oncall", "ops-hook", "search-slack"])
        #expect(channels.map(\.kind) == [.email, .webhook, .slack])
        guard case .email(let email) = channels[0].target, case .webhook(let hook) = channels[1].target,
              case .slack(let slack) = channels[2].target else {
            Issue.record("wrong targets")
            return
        }
        #expect(email == EmailTarget(smtpURL: "smtp://smtp.example.com:587", starttls: .required, username: "tollgate",
                                     password: "pw", from: MailAddress(address: "tollgate@example.com", displayName: "Tollgate"),
                                     to: [MailAddress(address: "oncall@example.com")], timeout: .seconds(30)))
        #expect(hook == WebhookTarget(url: "https://hooks.example.com/tollgate", secret: "hook-key",
                                      headers: ["X-Team": "platform"], timeout: .seconds(5)))
        #expect(slack == SlackTarget(url: "https://hooks.slack.com/services/T/B/x", timeout: .seconds(10)))
        // Descriptions never show secrets.
        let described = channels.map(\.description).joined(separator: " ")
        #expect(!described.contains("hook-key") && !described.contains("/services/") && !described.contains("pw@"))
        // And the configuration encodes back to itself.
        let encoded = try JSONEncoder().encode(configuration)
        #expect(try JSONDecoder().decode(ChannelConfiguration.self, from: encoded) == configuration)
    }

    @Test("an unset environment variable is an error naming the field and the variable")
    func missingEnvironment() throws {
        let configuration = try decode(Self.json)
        let error = try #require(throws: ChannelConfigurationError.self) {
            try configuration.resolve(environment: ["SLACK_URL": "https://hooks.slack.com/services/T/B/x", "SMTP_PASSWORD": ""])
        }
        #expect(error.problems == [
            .init(field: "channels.oncall.password_env", reason: "environment variable SMTP_PASSWORD is not set (or is empty)"),
            .init(field: "channels.ops-hook.secret_env", reason: "environment variable HOOK_SECRET is not set (or is empty)"),
        ])
    }

    @Test("validation names every bad field")
    func validation() throws {
        let configuration = try decode("""
            {"channels": {
              "hook": {"type": "webhook", "url": "ftp://example.com", "headers": {"Content-Type": "x", "Bad Name": "v"}},
              "slack": {"type": "slack", "url": "https://hooks.slack.com/x", "url_env": "SLACK", "timeout": 0},
              "mail": {"type": "email", "smtp_url": "http://mail.example.com", "password": "p", "from": "nobody",
                       "to": [], "scopes": ["team:", "planet:mars"]},
              "bad name!": {"type": "slack", "url_env": "1X"}
            }, "retry": {"max_attempts": 0}}
            """)
        let error = try #require(throws: ChannelConfigurationError.self) { try configuration.validate() }
        let fields = error.problems.map(\.field)
        #expect(fields == [
            "channels.bad name!", "channels.bad name!.url_env",
            "channels.hook.url", "channels.hook.secret", "channels.hook.headers.Bad Name", "channels.hook.headers.Content-Type",
            "channels.mail.scopes[0]", "channels.mail.scopes[1]", "channels.mail.smtp_url", "channels.mail.username",
            "channels.mail.from", "channels.mail.to",
            "channels.slack.url", "channels.slack.timeout",
            "retry.max_attempts",
        ])
        #expect(error.description.contains("channels.hook.url: must be an http:// or https:// URL with a host (got \"ftp://example.com\")"))
        #expect(error.problems.first { $0.field == "channels.hook.secret" }?.reason == "required (or secret_env, naming an environment variable)")
    }

    @Test("unknown fields and unknown channel types are decoding errors that name them")
    func unknownFields() throws {
        let misspelt = try #require(throws: DecodingError.self) {
            try decode(#"{"channels": {"h": {"type": "webhook", "url": "https://x", "secret-env": "S"}}}"#)
        }
        #expect("\(misspelt)".contains("unknown field \"secret-env\" in a webhook channel"))
        #expect(throws: DecodingError.self) {
            try decode(#"{"channels": {"h": {"type": "pager", "url": "https://x"}}}"#)
        }
        let topLevel = try #require(throws: DecodingError.self) { try decode(#"{"channel": {}}"#) }
        #expect("\(topLevel)".contains("unknown field \"channel\""))
    }

    @Test("durations read as 500ms, 10s, 5m, 1h or seconds")
    func durations() throws {
        #expect(ConfigDuration(parsing: "500ms")?.duration == .milliseconds(500))
        #expect(ConfigDuration(parsing: "10s")?.duration == .seconds(10))
        #expect(ConfigDuration(parsing: "5m")?.duration == .seconds(300))
        #expect(ConfigDuration(parsing: "1h")?.duration == .seconds(3_600))
        #expect(ConfigDuration(parsing: "2.5")?.duration == .milliseconds(2_500))
        #expect(ConfigDuration(parsing: "soon") == nil)
        #expect(ConfigDuration(parsing: "-1s") == nil)
        #expect(ConfigDuration(.seconds(300)).description == "5m")
        #expect(ConfigDuration(.milliseconds(1_500)).description == "1500ms")
        let decoded = try JSONDecoder().decode([ConfigDuration].self, from: Data(#"["10s", 3]"#.utf8))
        #expect(decoded.map(\.duration) == [.seconds(10), .seconds(3)])
    }

    @Test("channels take alerts by scope and severity")
    func routing() throws {
        let configuration = try decode(Self.json)
        let warningTeam = Samples.alert(scope: .team("search"), severity: .warning)
        #expect(configuration.channelNames(for: warningTeam.data) == ["ops-hook", "search-slack"])
        let infoTeam = Samples.alert(scope: .team("search"), severity: .info)
        #expect(configuration.channelNames(for: infoTeam.data) == ["ops-hook"])
        let criticalGlobal = Samples.alert(scope: .global, severity: .critical)
        #expect(configuration.channelNames(for: criticalGlobal.data) == ["oncall", "ops-hook"])
        let criticalTag = Samples.alert(scope: .tag(name: "feature", value: "summarize"), severity: .critical)
        #expect(configuration.channelNames(for: criticalTag.data) == ["ops-hook", "search-slack"])
        let otherTeam = Samples.alert(scope: .team("ads"), severity: .critical)
        #expect(configuration.channelNames(for: otherTeam.data) == ["ops-hook"])

        let deliveries = try configuration.deliveries(for: warningTeam)
        #expect(deliveries.map(\.channel) == ["ops-hook", "search-slack"])
        #expect(deliveries.allSatisfy { $0.alertID == warningTeam.data.alertID && $0.scope == "team:search" })
        #expect(try EventCoding.decode(AlertData.self, from: deliveries[0].event) == warningTeam)

        #expect(ScopeFilter(parsing: "global") == .scope(.global))
        #expect(ScopeFilter(parsing: "team:*") == .kind(.team))
        #expect(ScopeFilter(parsing: "tag:feature=summarize") == .scope(.tag(name: "feature", value: "summarize")))
        #expect(ScopeFilter(parsing: "tag:feature") == nil)
        #expect(ScopeFilter(parsing: "search") == nil)
    }
}
