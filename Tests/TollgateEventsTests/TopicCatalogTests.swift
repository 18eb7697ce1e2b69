import Foundation
import Testing
import TollgateEvents

@Suite struct TopicCatalogTests {
    /// `schemas/topics.json` says exactly what `TopicCatalog.all` says, field by field.
    @Test func topicsJSONEqualsTheSwiftCatalog() throws {
        let data = try Data(contentsOf: Repo.schemas.appendingPathComponent("topics.json"))
        let file = try JSONDecoder().decode(TopicCatalogDocument.self, from: data)
        #expect(file.prefixDefault == TopicCatalog.defaultPrefix)
        #expect(file.topics.map(\.name) == TopicCatalog.all.map(\.name))
        for (json, swift) in zip(file.topics, TopicCatalog.all) {
            #expect(json.name == swift.name)
            #expect(json.messageKey == swift.messageKey, "\(swift.name)")
            #expect(json.partitions == swift.partitions, "\(swift.name)")
            #expect(json.cleanupPolicy == swift.cleanupPolicy, "\(swift.name)")
            #expect(json.retentionMs == swift.retentionMs, "\(swift.name)")
            #expect(json.eventTypes == swift.eventTypes, "\(swift.name)")
            #expect(json.producer == swift.producer, "\(swift.name)")
            #expect(json.consumers == swift.consumers, "\(swift.name)")
            #expect(json.description == swift.description, "\(swift.name)")
            #expect(json.headers == swift.headers, "\(swift.name)")
        }
        #expect(file == TopicCatalog.document)
        // No keys in the file that the Swift type would drop.
        let differences = try JSONValue(parsing: data).differences(
            from: JSONValue(parsing: EventCoding.encode(TopicCatalog.document)))
        #expect(differences.isEmpty, "\(differences)")
    }

    @Test func catalogMatchesTheContract() throws {
        let day: Int64 = 86_400_000
        let expected: [(String, Int, TopicDefinition.CleanupPolicy, Int64)] = [
            ("requests", 8, .delete, 7 * day),
            ("responses", 8, .delete, 7 * day),
            ("usage", 8, .delete, 30 * day),
            ("budget-decisions", 4, .compact, -1),
            ("alerts", 4, .delete, 30 * day),
            ("control", 1, .compact, -1),
            ("deadletter", 1, .delete, 30 * day),
        ]
        #expect(TopicCatalog.all.map(\.name) == expected.map(\.0))
        for (name, partitions, policy, retention) in expected {
            let topic = try #require(TopicCatalog.named(name))
            #expect(topic.partitions == partitions, "\(name)")
            #expect(topic.cleanupPolicy == policy, "\(name)")
            #expect(topic.retentionMs == retention, "\(name)")
        }
        #expect(TopicCatalog.named("nope") == nil)
        #expect(TopicCatalog.named("usage")?.fullName() == "tollgate.usage")
        #expect(TopicCatalog.named("usage")?.fullName(prefix: "acme.") == "acme.usage")
        #expect(TopicCatalog.named("control")?.eventTypes == AnyControlEvent.eventTypes)
        #expect(TopicCatalog.named("deadletter")?.headers?.map(\.name) == DeadLetterHeader.allCases.map(\.rawValue))
    }

    @Test func payloadsNameTheirTopicAndKey() throws {
        for example in EventExamples.all {
            let header = try EventHeader.decode(from: example.json)
            let descriptor = try #require(EventRegistry.descriptor(for: header.type))
            #expect(TopicCatalog.named(descriptor.topic) != nil)
        }
        let usage = try EventCoding.decode(
            UsageData.self, from: #require(EventExamples.all.first { $0.type == UsageData.eventType }).json)
        #expect(usage.data.messageKey == usage.data.response.team)
        #expect(BudgetSetData.topic == "control")
        #expect(RouteDeletedData(routeID: "auto", deletedAt: .now).messageKey == "route:auto")
    }
}
