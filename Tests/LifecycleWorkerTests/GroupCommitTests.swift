import Foundation
import Synchronization
import LifecycleStore
@testable import LifecycleWorker
import Testing

@Suite("Group commit")
struct GroupCommitTests {
    struct Refused: Error {}

    @Test("Transactions asked for together share commits; one that fails fails alone and the others keep their writes")
    func failingBodyFailsAlone() async throws {
        let store = try SQLiteLifecycleStore(path: StoreTests.tempPath())
        let grouped = GroupCommitStore(inner: store, maxBatch: 16)
        let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<40 {
                group.addTask {
                    do {
                        let echoed = try await grouped.write { tx -> Int in
                            try await tx.recordInbox(source: "urn:t", id: "e\(i)", topic: "t", partition: 0, offset: Int64(i), receivedAt: Date())
                            if i == 17 { throw Refused() }
                            return i
                        }
                        return (i, echoed == i)
                    } catch {
                        return (i, false)
                    }
                }
            }
            var all: [Int: Bool] = [:]
            for await (i, ok) in group { all[i] = ok }
            return all
        }
        #expect(outcomes.filter { !$0.value }.map(\.key) == [17], "only the failing transaction fails")
        let stored = try await store.write { tx in
            try await (0..<40).asyncMap { try await tx.inboxContains(source: "urn:t", id: "e\($0)") }
        }
        #expect(stored.enumerated().allSatisfy { $0.element == ($0.offset != 17) }, "every other write committed; the failed one left nothing")
        await store.close()
    }

    @Test("A leaver's transaction goes ahead of every waiting one except other leavers' ones, so a lockout never waits for queued hire completions")
    func urgentTransactionsGoFirst() async throws {
        let store = try SQLiteLifecycleStore(path: StoreTests.tempPath())
        let grouped = GroupCommitStore(inner: store, maxBatch: 1)
        final class Shared: Sendable {
            let order = Mutex<[String]>([])
            let holding = Mutex<CheckedContinuation<Void, Never>?>(nil)
        }
        let shared = Shared()
        // The first transaction holds the store until every other one is queued.
        let first = Task {
            try await grouped.write { _ in
                await withCheckedContinuation { c in shared.holding.withLock { $0 = c } }
                shared.order.withLock { $0.append("first") }
            }
        }
        while shared.holding.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(5)) }
        var queued: [Task<Void, any Error>] = []
        func enqueue(_ name: String, urgent: Bool) async throws {
            queued.append(Task { try await GroupCommitStore.$urgent.withValue(urgent) { try await grouped.write { _ in shared.order.withLock { $0.append(name) } } } })
            try await Task.sleep(for: .milliseconds(20))  // queued in this order
        }
        try await enqueue("hire1", urgent: false)
        try await enqueue("hire2", urgent: false)
        try await enqueue("leaver1", urgent: true)
        try await enqueue("hire3", urgent: false)
        try await enqueue("leaver2", urgent: true)
        shared.holding.withLock { $0?.resume() }
        try await first.value
        for task in queued { try await task.value }
        #expect(shared.order.withLock { $0 } == ["first", "leaver1", "leaver2", "hire1", "hire2", "hire3"])
        await store.close()
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
