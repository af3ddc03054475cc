import Synchronization

/// How urgent a Duo call is. Urgent calls (locking out a leaver) go ahead of normal ones in the
/// client's queues; set it for a task with `DuoRequestPriority.$current.withValue(.urgent) { … }`.
public enum DuoRequestPriority: Int, Sendable, Comparable {
    case urgent = 0
    case normal = 1

    @TaskLocal public static var current: DuoRequestPriority = .normal

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// The client-side limits every call shares: a request rate (one permit per interval, no bursts,
/// so a server's per-second window is never exceeded) and a cap on concurrent calls. Urgent calls
/// are served before normal ones in both queues.
final class DuoRequestLimiter: Sendable {
    private struct Waiters {
        var urgent: [CheckedContinuation<Void, Never>] = []
        var normal: [CheckedContinuation<Void, Never>] = []
        var isEmpty: Bool { urgent.isEmpty && normal.isEmpty }
        mutating func append(_ c: CheckedContinuation<Void, Never>, _ p: DuoRequestPriority) {
            if p == .urgent { urgent.append(c) } else { normal.append(c) }
        }
        mutating func next() -> CheckedContinuation<Void, Never>? {
            if !urgent.isEmpty { return urgent.removeFirst() }
            if !normal.isEmpty { return normal.removeFirst() }
            return nil
        }
    }
    private struct State {
        var inFlight = 0
        var slotWaiters = Waiters()
        var lastPermit: ContinuousClock.Instant?
        var rateWaiters = Waiters()
        var tickerRunning = false
    }
    private let state = Mutex(State())
    private let interval: Duration?
    private let maxConcurrency: Int

    init(requestsPerSecond: Double?, maxConcurrency: Int) {
        self.interval = requestsPerSecond.flatMap { $0 > 0 ? Duration.nanoseconds(Int64(1e9 / $0)) : nil }
        self.maxConcurrency = max(1, maxConcurrency)
    }

    /// Waits for a concurrency slot and then for a rate permit.
    func acquire() async throws {
        let priority = DuoRequestPriority.current
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let admitted = state.withLock { s -> Bool in
                if s.inFlight < maxConcurrency {
                    s.inFlight += 1
                    return true
                }
                s.slotWaiters.append(continuation, priority)
                return false
            }
            if admitted { continuation.resume() }
        }
        guard let interval else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (now, startTicker) = state.withLock { s -> (Bool, Bool) in
                let clock = ContinuousClock.now
                if s.rateWaiters.isEmpty, s.lastPermit.map({ clock - $0 >= interval }) ?? true {
                    s.lastPermit = clock
                    return (true, false)
                }
                s.rateWaiters.append(continuation, priority)
                if s.tickerRunning { return (false, false) }
                s.tickerRunning = true
                return (false, true)
            }
            if now { continuation.resume() }
            if startTicker { Task { await self.tick(interval) } }
        }
    }

    /// Hands out one permit per interval, urgent waiters first, while anyone waits.
    private func tick(_ interval: Duration) async {
        while true {
            let wait = state.withLock { s -> Duration in
                guard let last = s.lastPermit else { return .zero }
                return max(.zero, interval - (ContinuousClock.now - last))
            }
            if wait > .zero { try? await Task.sleep(for: wait) }
            let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard let c = s.rateWaiters.next() else {
                    s.tickerRunning = false
                    return nil
                }
                s.lastPermit = .now
                return c
            }
            guard let next else { return }
            next.resume()
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let c = s.slotWaiters.next() { return c }  // the slot passes straight on
            s.inFlight -= 1
            return nil
        }
        next?.resume()
    }
}
