import Foundation
import GRDB
import Testing
import TollgateEvents
@testable import TollgateNotify

@Suite("Delivery store")
struct DeliveryStoreTests {
    func openStore(_ directory: URL) throws -> DeliveryStore {
        try DeliveryStore.open(path: directory.appendingPathComponent("deliveries.sqlite").path, logger: testLogger)
    }

    @Test("an alert queued again (re-raised, re-read) is kept once per channel, whatever its state")
    func insertOrIgnore() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        let event = Samples.alert()
        let first = [try NewDelivery(event: event, channel: "a"), try NewDelivery(event: event, channel: "b")]
        #expect(try store.enqueue(first) == 2)
        #expect(try store.enqueue(first) == 0)
        // Delivered on one channel: queuing it again does not bring it back.
        let claimed = try store.claimDue(now: Date(), slots: ["a": 4])
        #expect(claimed.map(\.channel) == ["a"])
        try store.markDelivered(alertID: event.data.alertID, channel: "a", now: Date())
        var reraised = event
        reraised.data.message = "raised again"
        #expect(try store.enqueue([try NewDelivery(event: reraised, channel: "a"), try NewDelivery(event: reraised, channel: "b"),
                                   try NewDelivery(event: reraised, channel: "c")]) == 1)
        let statuses = try store.deliveries(alertID: event.data.alertID)
        #expect(statuses.map(\.channel) == ["a", "b", "c"])
        #expect(statuses.map(\.state) == [.delivered, .pending, .pending])
        #expect(try store.counts() == [.delivered: 1, .pending: 2])
        #expect(try store.claimDue(now: Date(), slots: ["a": 4]).isEmpty)
    }

    @Test("commit writes deliveries, the fold's state and offsets together, and survives reopening")
    func commitAndReload() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        #expect(try store.loadState().state == nil)
        #expect(try store.loadState().offsets.isEmpty)
        let events = Samples.alerts(3)
        let usage = OffsetKey(topic: "tollgate.usage", partition: 0)
        let decisions = OffsetKey(topic: "tollgate.budget-decisions", partition: 2)
        #expect(try store.commit(deliveries: events.map { try NewDelivery(event: $0, channel: "hook") },
                                 state: Data("state-1".utf8), offsets: [usage: 10, decisions: 4]) == 3)
        // nil state keeps the saved one; offsets move per partition.
        try store.commit(deliveries: [], state: nil, offsets: [usage: 12])
        let reopened = try openStore(directory)
        let loaded = try reopened.loadState()
        #expect(loaded.state == Data("state-1".utf8))
        #expect(loaded.offsets == [usage: 12, decisions: 4])
        #expect(try reopened.counts() == [.pending: 3])
        try reopened.commit(deliveries: [], state: Data("state-2".utf8), offsets: [:])
        #expect(try reopened.loadState().state == Data("state-2".utf8))
    }

    @Test("a commit that fails part-way changes nothing: no deliveries, no state, no offsets")
    func commitIsAtomic() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        let usage = OffsetKey(topic: "tollgate.usage", partition: 0)
        try store.commit(deliveries: [try NewDelivery(event: Samples.alert(level: 50), channel: "hook")],
                         state: Data("before".utf8), offsets: [usage: 5])
        // Make any write of the "poison" topic's offset fail, after the deliveries and the state were written.
        try store.pool.write { db in
            try db.execute(sql: """
                CREATE TRIGGER poison BEFORE INSERT ON offsets WHEN NEW.topic = 'poison'
                BEGIN SELECT RAISE(ABORT, 'poisoned offset'); END
                """)
        }
        #expect(throws: DatabaseError.self) {
            try store.commit(deliveries: Samples.alerts(4).map { try NewDelivery(event: $0, channel: "hook") },
                             state: Data("after".utf8),
                             offsets: [usage: 9, OffsetKey(topic: "poison", partition: 0): 1])
        }
        let loaded = try store.loadState()
        #expect(loaded.state == Data("before".utf8))
        #expect(loaded.offsets == [usage: 5])
        #expect(try store.counts() == [.pending: 1])
    }

    @Test("claims respect the per-channel slots and due times; results move the state machine")
    func claimsAndOutcomes() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        let now = Date()
        let events = Samples.alerts(6)
        try store.enqueue(events.map { try NewDelivery(event: $0, channel: "a") } + [try NewDelivery(event: events[0], channel: "b")],
                          now: now)
        let first = try store.claimDue(now: now, slots: ["a": 2, "b": 0])
        #expect(first.count == 2 && first.allSatisfy { $0.channel == "a" && $0.attempt == 1 })
        #expect(try store.counts() == [.pending: 5, .sending: 2])
        // Claimed rows are not claimed twice.
        let second = try store.claimDue(now: now, slots: ["a": 10, "b": 1])
        #expect(second.count == 5)
        #expect(Set((first + second).map { "\($0.alertID)#\($0.channel)" }).count == 7)

        let later = now.addingTimeInterval(60)
        try store.scheduleRetry(alertID: first[0].alertID, channel: "a", error: "HTTP 503", at: later)
        try store.markDead(alertID: first[1].alertID, channel: "a", error: "HTTP 404", now: now)
        try store.markDelivered(alertID: second[0].alertID, channel: second[0].channel, now: now)
        #expect(try store.claimDue(now: now, slots: ["a": 10]).isEmpty)  // the retry is not due yet
        #expect(try store.nextDue(channels: ["a"]).map(DeliveryStore.millis) == DeliveryStore.millis(later))
        let retried = try store.claimDue(now: later, slots: ["a": 10])
        #expect(retried.map(\.attempt) == [2])
        // A recorded outcome only applies to a delivery being sent: a delivered row cannot be re-marked.
        try store.markDead(alertID: second[0].alertID, channel: second[0].channel, error: "late", now: now)
        try store.scheduleRetry(alertID: second[0].alertID, channel: second[0].channel, error: "late", at: now)
        #expect(try store.deliveries(alertID: second[0].alertID).first { $0.channel == second[0].channel }?.state == .delivered)

        let dead = try store.deadLetters()
        #expect(dead.map(\.lastError) == ["HTTP 404"])
        #expect(try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dead_letters") } == 1)
        #expect(try store.requeueDead(channel: "b") == 0)
        #expect(try store.requeueDead(alertID: first[1].alertID) == 1)
        #expect(try store.deliveries(alertID: first[1].alertID).first { $0.channel == "a" }?.attempts == 0)
        #expect(try store.claimDue(now: Date(), slots: ["a": 10]).map(\.alertID) == [first[1].alertID])
    }

    @Test("deliveries left sending by a stopped process are due again at the next start; the attempt stays counted")
    func recovery() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        try store.enqueue(Samples.alerts(2).map { try NewDelivery(event: $0, channel: "a") })
        let claimed = try store.claimDue(now: Date(), slots: ["a": 1])
        let reopened = try openStore(directory)
        #expect(try reopened.recoverInterrupted(now: Date()) == 1)
        let status = try #require(try reopened.deliveries(alertID: claimed[0].alertID).first)
        #expect(status.state == .pending && status.attempts == 1)
        #expect(status.lastError == "interrupted: the process stopped during an attempt")
        #expect(try reopened.claimDue(now: Date(), slots: ["a": 5]).map(\.attempt).sorted() == [1, 2])
    }

    @Test("listings: recent alerts with their deliveries, newest first; a read-only store reads them")
    func listings() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try openStore(directory)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        for (index, event) in Samples.alerts(3).enumerated() {
            try store.enqueue([try NewDelivery(event: event, channel: "hook"), try NewDelivery(event: event, channel: "mail")],
                              now: start.addingTimeInterval(Double(index)))
        }
        let readonly = try DeliveryStore.open(path: store.path, readonly: true)
        let recent = try readonly.recent(limit: 2)
        #expect(recent.map(\.title) == ["Team search reached 3%", "Team search reached 2%"])
        #expect(recent[0].deliveries.map(\.channel) == ["hook", "mail"])
        #expect(recent[0].deliveries.allSatisfy { $0.state == .pending && $0.createdAt == start.addingTimeInterval(2) })
        #expect(recent[0].severity == .warning && recent[0].scope == "team:search")
        #expect(recent[0].raisedAt == Samples.raisedAt)
        #expect(try readonly.outstanding() == 6)
        #expect(throws: (any Error).self) { try readonly.enqueue([try NewDelivery(event: Samples.alert(), channel: "x")]) }
        #expect(throws: DeliveryStoreError.self) {
            try DeliveryStore.open(path: directory.appendingPathComponent("missing.sqlite").path, readonly: true)
        }

        // Pruning removes old delivered rows only.
        let claimed = try store.claimDue(now: start.addingTimeInterval(10), slots: ["hook": 10, "mail": 1])
        try #require(claimed.count == 4)
        for delivery in claimed.prefix(3) {
            try store.markDelivered(alertID: delivery.alertID, channel: delivery.channel, now: start)
        }
        try store.markDead(alertID: claimed[3].alertID, channel: claimed[3].channel, error: "x", now: start)
        #expect(try store.prune(deliveredBefore: start.addingTimeInterval(1)) == 3)
        #expect(try store.counts() == [.dead: 1, .pending: 2])
    }
}
