import Foundation
import LifecycleStore
import Testing

/// The SQLite store copies its write-ahead log into the database file on a thread of its own.
@Suite("SQLite write-ahead log checkpoints", .timeLimit(.minutes(3)))
struct WALCheckpointTests {
    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// One transaction of `rows` outbox rows of 16 KB each.
    static func write(_ store: SQLiteLifecycleStore, batch: Int, rows: Int) async throws {
        try await store.write { tx in
            for i in 0..<rows {
                let value = [UInt8](repeating: UInt8(truncatingIfNeeded: batch &+ i), count: 16_384)
                try await tx.enqueue(NewOutboxMessage(kind: .result, topic: "r", key: Array("\(batch)-\(i)".utf8), value: value, headers: []))
            }
        }
    }

    /// Without the writer's own checkpoint, steady commits kept the passive one from ever copying
    /// the whole log, so SQLite never started it over: 100,000 events grew it to 148 MB.
    @Test("Under commits back to back the log stays bounded and every row is kept")
    func logStaysBoundedUnderSteadyCommits() async throws {
        let path = StoreTests.tempPath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        do {
            let store = try SQLiteLifecycleStore(path: path)
            var largest = 0
            // 120 transactions of 64 rows of 16 KB: about 125 MB through the log, four times its bound.
            for batch in 0..<120 {
                try await Self.write(store, batch: batch, rows: 64)
                largest = max(largest, Self.size(path + "-wal"))
            }
            // The bound is 8,000 pages of 4 KB, plus the transaction that crosses it.
            #expect(largest < 40 << 20, "the log reached \(largest >> 20) MB")
            #expect(try await store.statistics(now: Date()).outboxBacklog == 120 * 64)
            await store.close()
        }
        // The store is gone, and its connections with it (the last one copies the log into the
        // database file and deletes it): every row reads back from the file.
        #expect(Self.size(path + "-wal") == 0)
        let reopened = try SQLiteLifecycleStore(path: path)
        #expect(try await reopened.statistics(now: Date()).outboxBacklog == 120 * 64)
        await reopened.close()
    }

    /// The writer's commit only asks; the copy into the database file happens beside it.
    @Test("A log past 1,000 pages is copied into the database file without another write")
    func checkpointRunsBesideTheWriter() async throws {
        let path = StoreTests.tempPath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let store = try SQLiteLifecycleStore(path: path)
        let before = Self.size(path)
        // About 1,300 pages: past the request threshold, far below the writer's own limit.
        for batch in 0..<5 { try await Self.write(store, batch: batch, rows: 64) }
        let deadline = ContinuousClock.now + .seconds(20)
        while Self.size(path) < before + (4 << 20), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(Self.size(path) >= before + (4 << 20), "the database file holds \(Self.size(path)) bytes")
        let unsent = try await store.unsentOutbox(limit: 1_000)
        #expect(unsent.count == 5 * 64)
        await store.close()
    }
}
