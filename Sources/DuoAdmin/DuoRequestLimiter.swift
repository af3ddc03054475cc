import Synchronization

/// The client-side limits every call shares: a request rate (spread evenly, so calls do not burst)
/// and a cap on concurrent calls.
final class DuoRequestLimiter: Sendable {
    private struct State {
        var nextSlot: ContinuousClock.Instant
        var inFlight = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>
    private let interval: Duration?
    private let maxConcurrency: Int

    init(requestsPerSecond: Double?, maxConcurrency: Int) {
        self.interval = requestsPerSecond.flatMap { $0 > 0 ? Duration.nanoseconds(Int64(1e9 / $0)) : nil }
        self.maxConcurrency = max(1, maxConcurrency)
        self.state = Mutex(State(nextSlot: .now))
    }

    /// Waits for a concurrency slot and then for the next rate slot.
    func acquire() async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let admitted = state.withLock { s -> Bool in
                if s.inFlight < maxConcurrency {
                    s.inFlight += 1
                    return true
                }
                s.waiters.append(continuation)
                return false
            }
            if admitted { continuation.resume() }
        }
        guard let interval else { return }
        let slot = state.withLock { s -> ContinuousClock.Instant in
            let now = ContinuousClock.now
            let slot = max(now, s.nextSlot)
            s.nextSlot = slot + interval
            return slot
        }
        do {
            try await Task.sleep(until: slot, clock: .continuous)
        } catch {
            release()
            throw error
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if !s.waiters.isEmpty { return s.waiters.removeFirst() }  // the slot passes straight on
            s.inFlight -= 1
            return nil
        }
        next?.resume()
    }
}
