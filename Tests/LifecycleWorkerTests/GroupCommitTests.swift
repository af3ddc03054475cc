import Foundation
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
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
