import Foundation
import Lifecycle
import LifecycleStore
import Synchronization

/// Group commit for a store with one writer (SQLite): transactions asked for while another is
/// committing are run together in the next one, so N commands finishing at once cost one synced
/// commit rather than N. Each body still sees its own writes and the others' before it; if the
/// shared transaction fails, every body is run again alone, so one failing body (a lost lease)
/// fails only itself. Everything else passes through to the store.
///
/// Bodies must touch nothing but the transaction (they may be run twice after a failed batch,
/// and never call the store themselves). The dispatcher's are such.
final class GroupCommitStore: LifecycleStore {
    let inner: any LifecycleStore
    /// The most bodies in one transaction.
    let maxBatch: Int

    private struct Pending {
        let run: @Sendable (any LifecycleStoreTransaction) async throws -> Void
        let finish: @Sendable (Error?) -> Void
    }
    private let state = Mutex<(queue: [Pending], draining: Bool)>(([], false))

    init(inner: any LifecycleStore, maxBatch: Int = 64) {
        self.inner = inner
        self.maxBatch = maxBatch
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any LifecycleStoreTransaction) async throws -> T) async throws -> T {
        let box = ResultBox<T>()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let pending = Pending(run: { tx in let v = try await body(tx); box.value.withLock { $0 = v } },
                                  finish: { error in if let error { continuation.resume(throwing: error) } else { continuation.resume() } })
            let start = state.withLock { s -> Bool in
                s.queue.append(pending)
                if s.draining { return false }
                s.draining = true
                return true
            }
            if start { Task { await self.drain() } }
        }
        guard let value = box.value.withLock({ $0 }) else { throw CancellationError() }
        return value
    }

    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Pending] in
                let n = min(s.queue.count, maxBatch)
                let b = Array(s.queue.prefix(n))
                s.queue.removeFirst(n)
                if b.isEmpty { s.draining = false }
                return b
            }
            guard !batch.isEmpty else { return }
            do {
                try await inner.write { tx in for p in batch { try await p.run(tx) } }
                for p in batch { p.finish(nil) }
            } catch {
                if batch.count == 1 {
                    batch[0].finish(error)
                    continue
                }
                // Each alone: the one that failed the batch fails by itself.
                for p in batch {
                    do {
                        try await inner.write { tx in try await p.run(tx) }
                        p.finish(nil)
                    } catch {
                        p.finish(error)
                    }
                }
            }
        }
    }

    func recoverRunning(owner: String) async throws -> Int { try await inner.recoverRunning(owner: owner) }
    func claimReady(limit: Int, now: Date, atLeast priority: CommandPriority, lease: Duration, owner: String) async throws -> [StoredCommand] {
        try await inner.claimReady(limit: limit, now: now, atLeast: priority, lease: lease, owner: owner)
    }
    func renewLeases(_ leases: [CommandLease], until: Date, now: Date) async throws -> Set<Int64> {
        try await inner.renewLeases(leases, until: until, now: now)
    }
    func holdsLease(_ lease: CommandLease, now: Date, margin: Duration) async throws -> Bool {
        try await inner.holdsLease(lease, now: now, margin: margin)
    }
    func nextReadyAt() async throws -> Date? { try await inner.nextReadyAt() }
    func unsentOutbox(limit: Int, now: Date, claimFor: Duration) async throws -> [OutboxMessage] {
        try await inner.unsentOutbox(limit: limit, now: now, claimFor: claimFor)
    }
    func markSent(_ ids: [Int64], at: Date) async throws { try await inner.markSent(ids, at: at) }
    func park(_ id: Int64, reason: String, at: Date) async throws { try await inner.park(id, reason: reason, at: at) }
    func purgeSent(before cutoff: Date) async throws -> Int { try await inner.purgeSent(before: cutoff) }
    func purgeFinished(before cutoff: Date) async throws -> Int { try await inner.purgeFinished(before: cutoff) }
    func statistics(now: Date) async throws -> StoreStatistics { try await inner.statistics(now: now) }
    func deadLetterOriginal(topic: String, partition: Int32, offset: Int64) async throws -> [UInt8]? {
        try await inner.deadLetterOriginal(topic: topic, partition: partition, offset: offset)
    }
    func withExclusiveLock<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        try await inner.withExclusiveLock(name, body)
    }
    func allCommands() async throws -> [StoredCommand] { try await inner.allCommands() }
    func allEmployeeStates() async throws -> [EmployeeState] { try await inner.allEmployeeStates() }
    func allDuoLinks() async throws -> [DuoLink] { try await inner.allDuoLinks() }
    func auditLog(limit: Int) async throws -> [AuditEntry] { try await inner.auditLog(limit: limit) }
    func close() async { await inner.close() }
}

/// Where a grouped body leaves its value.
private final class ResultBox<T: Sendable>: Sendable {
    let value = Mutex<T?>(nil)
}
