import Foundation
import Testing
import TollgateEvents

/// Holds the Swift types and the JSON Schemas in `schemas/` to the same JSON.
@Suite struct SchemaConformanceTests {
    @Test func schemaFilesAreExactlyTheRegisteredEventTypes() throws {
        let files = Repo.eventSchemaFiles
        #expect(!files.isEmpty, "no schemas found in \(Repo.schemas.path)")
        #expect(Set(files) == Set(EventRegistry.allTypes.values))
        #expect(EventRegistry.allTypes.count == EventRegistry.all.count, "duplicate event types")
        for (type, file) in EventRegistry.allTypes {
            let schema = try Repo.json(file)
            #expect(schema["properties"]?["type"]?["const"] == .string(type), "\(file)")
            #expect(schema["$id"] == .string("https://tollgate.dev/schemas/\(file)"))
            #expect(schema["title"] == .string(type))
        }
    }

    @Test func schemaFileNamesFollowTheRule() {
        #expect(EventRegistry.schemaFileName(for: "tollgate.usage.v1") == "usage.v1.schema.json")
        #expect(EventRegistry.allTypes["tollgate.control.key.created.v1"] == "control.key.created.v1.schema.json")
        #expect(EventRegistry.descriptor(for: "tollgate.budget.decision.v1")?.payloadType == BudgetDecisionData.self)
        #expect(EventRegistry.descriptor(for: "tollgate.nope.v1") == nil)
    }

    /// Every example in every schema decodes with the Swift type and re-encodes to the same JSON:
    /// a field the schema example has and the Swift type lacks (or the other way round) fails here.
    @Test(arguments: Repo.eventSchemaFiles)
    func schemaExamplesRoundTripThroughSwift(file: String) throws {
        let schema = try Repo.json(file)
        let type = try #require(schema["properties"]?["type"]?["const"]?.stringValue)
        let descriptor = try #require(EventRegistry.descriptor(for: type), "no Swift type for \(type)")
        let examples = try #require(schema["examples"]?.arrayValue, "\(file) has no examples")
        #expect(!examples.isEmpty)
        for (index, example) in examples.enumerated() {
            let reencoded = try JSONValue(parsing: roundTrip(descriptor.payloadType, example.encoded()))
            let differences = reencoded.differences(from: example)
            #expect(differences.isEmpty, "\(file) example \(index): \(differences)")
        }
    }

    /// The Swift examples cover every registered type, decode with their type, and encode back to
    /// the same bytes.
    @Test func swiftExamplesCoverEveryTypeAndRoundTrip() throws {
        for descriptor in EventRegistry.all {
            let names = EventExamples.all.filter { $0.type == descriptor.eventType }.map(\.name)
            #expect(names.contains("full") && names.contains("minimal"), "\(descriptor.eventType): \(names)")
        }
        #expect(EventExamples.all.contains { $0.type == UsageData.eventType && $0.name == "unpriced" })
        for example in EventExamples.all {
            let descriptor = try #require(EventRegistry.descriptor(for: example.type))
            #expect(try roundTrip(descriptor.payloadType, example.json) == example.json, "\(example.type) \(example.name)")
            #expect(try EventHeader.decode(from: example.json).type == example.type)
        }
    }

    /// The full example sets every optional field, the minimal one none: the encoded full example
    /// has strictly more keys.
    @Test func fullExamplesSetMoreThanMinimalOnes() throws {
        func keyCount(_ value: JSONValue) -> Int {
            switch value {
            case .object(let object): object.count + object.values.map(keyCount).reduce(0, +)
            case .array(let array): array.map(keyCount).reduce(0, +)
            default: 0
            }
        }
        for descriptor in EventRegistry.all {
            let examples = EventExamples.all.filter { $0.type == descriptor.eventType }
            let full = try #require(examples.first { $0.name == "full" })
            let minimal = try #require(examples.first { $0.name == "minimal" })
            let fullValue = try JSONValue(parsing: full.json)
            let minimalValue = try JSONValue(parsing: minimal.json)
            #expect(fullValue["subject"] != nil && minimalValue["subject"] == nil, "\(descriptor.eventType)")
            #expect(keyCount(fullValue) >= keyCount(minimalValue), "\(descriptor.eventType)")
        }
    }

    @Test func jsonLinesCarryTypeAndEvent() throws {
        let lines = String(decoding: EventExamples.jsonLines(), as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "")
        #expect(lines.count == EventExamples.all.count + 1)
        for (line, example) in zip(lines, EventExamples.all) {
            let value = try JSONValue(parsing: Data(line.utf8))
            #expect(value["type"] == .string(example.type))
            #expect(value["name"] == .string(example.name))
            #expect(value["event"] == (try JSONValue(parsing: example.json)))
        }
    }

    @Test func everyEventTypeIsOnItsTopic() throws {
        for descriptor in EventRegistry.all {
            let topic = try #require(TopicCatalog.named(descriptor.topic), "\(descriptor.topic)")
            #expect(topic.eventTypes.contains(descriptor.eventType))
            #expect(TopicCatalog.topic(forEventType: descriptor.eventType)?.name == descriptor.topic)
        }
        let carried = TopicCatalog.all.flatMap(\.eventTypes)
        #expect(carried.count == Set(carried).count, "an event type is on two topics")
        #expect(Set(carried) == Set(EventRegistry.allTypes.keys))
    }
}
