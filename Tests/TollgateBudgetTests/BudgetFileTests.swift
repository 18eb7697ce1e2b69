import Foundation
import Testing
import TollgateEvents
@testable import TollgateBudget

@Suite("Budgets file")
struct BudgetFileTests {
    func write(_ text: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("budgets-\(UUID()).yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test("a YAML file becomes budget definitions; applying it twice changes nothing the second time")
    func loadAndChanges() throws {
        let url = try write("""
            budgets:
              - id: search-monthly
                scope: team:search
                limit_usd: "500.25"
                period: month
                time_zone: Europe/Berlin
                levels: 50:alert,90:downgrade,100:block
                downgrade: {gpt-4o: gpt-4o-mini}
              - id: chat-daily
                scope: tag:feature=chat
                limit_usd: "20"
                period: day
            """)
        defer { try? FileManager.default.removeItem(at: url) }
        let budgets = try BudgetFile.load(url)
        #expect(budgets.map(\.budgetID) == ["search-monthly", "chat-daily"])
        #expect(budgets[0].limitNanoUSD.nanoUSD == 500_250_000_000 && budgets[0].timeZone == "Europe/Berlin")
        #expect(budgets[0].levels.map(\.percent) == [50, 90, 100] && budgets[0].downgrade == ["gpt-4o": "gpt-4o-mini"])
        #expect(budgets[1].scope == .tag(name: "feature", value: "chat") && budgets[1].periodKind == .day)
        #expect(BudgetFile.changes(current: [:], desired: budgets).count == 2)
        var current = Dictionary(uniqueKeysWithValues: budgets.map { ($0.budgetID, $0) })
        current["chat-daily"]!.updatedAt = Date(timeIntervalSince1970: 0)
        #expect(BudgetFile.changes(current: current, desired: budgets).isEmpty)
        current["chat-daily"]!.limitNanoUSD = Money(wholeUSD: 10)!
        #expect(BudgetFile.changes(current: current, desired: budgets).map(\.budgetID) == ["chat-daily"])
    }

    @Test("every problem of a bad file is reported at once, and nothing is returned")
    func problems() throws {
        let url = try write("""
            budgets:
              - id: a
                scope: galaxy:far
                limit_usd: "1"
              - id: b
                scope: team:x
                limit_usd: "0"
                time_zone: Mars/Base
            """)
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            _ = try BudgetFile.load(url)
            Issue.record("a bad file was accepted")
        } catch let error as BudgetSpecError {
            #expect(error.description.contains("a: scope kind 'galaxy'"))
            #expect(error.description.contains("b: the limit must be above $0"))
            #expect(error.description.contains("b: unknown time zone 'Mars/Base'"))
        }
    }
}
