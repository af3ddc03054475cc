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
final class GroupCommitStore: ForwardingLifecycleStore {
    let inner: any LifecycleStore
    /// The most bodies in one transaction.
    let maxBatch: Int

    private struct Pending {
        let run: @Sendable (any LifecycleStoreTransaction) async throws -> Void
        let finish: @Sendable (Error?) -> Void
        let urgent: Bool
    }

    /// Set around a leaver's command: its transactions go ahead of every other waiting one (behind
    /// other leavers' only), so reading what the lockout needs never waits for a queue of hires'
    /// completions to commit first.
    @TaskLocal static var urgent = false
    private let state = Mutex<(queue: [Pending], draining: Bool)>(([], false))

    init(inner: any LifecycleStore, maxBatch: Int = 64) {
        self.inner = inner
        self.maxBatch = maxBatch
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any LifecycleStoreTransaction) async throws -> T) async throws -> T {
        let box = ResultBox<T>()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let pending = Pending(run: { tx in let v = try await body(tx); box.value.withLock { $0 = v } },
                                  finish: { error in if let error { continuation.resume(throwing: error) } else { continuation.resume() } },
                                  urgent: Self.urgent)
            let start = state.withLock { s -> Bool in
                if pending.urgent {
                    s.queue.insert(pending, at: s.queue.firstIndex { !$0.urgent } ?? s.queue.endIndex)
                } else {
                    s.queue.append(pending)
                }
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
}

/// Where a grouped body leaves its value.
private final class ResultBox<T: Sendable>: Sendable {
    let value = Mutex<T?>(nil)
}
