import ArgumentParser
import Foundation
import TollgateApp
import TollgateEvents

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "The event contract (schemas/ in the repository).",
        subcommands: [Examples.self])

    struct Examples: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Example events encoded by this build; --json prints them as JSON lines {type, name, event}.")

        @Flag(help: "Print JSON lines instead of a table.") var json = false

        func run() async throws {
            if json {
                FileHandle.standardOutput.write(EventExamples.jsonLines())
                return
            }
            var table = TextTable(columns: ["type", "example", "bytes"], rightAligned: [2])
            for example in EventExamples.all {
                table.append([example.type, example.name, "\(example.json.count)"])
            }
            Output.line(table.render())
        }
    }
}
