import Foundation
import LifecycleWorker
import Synchronization
import Testing

/// The wait every service loop sleeps in. A service group cancels its services when one of them
/// fails (the operations port already taken, say); a wait that ignored cancellation kept the
/// worker running, half stopped, for good instead of exiting.
@Suite("Wakeup signal", .timeLimit(.minutes(1)))
struct WakeupSignalTests {
    final class Finished: Sendable { let value = Atomic<Bool>(false) }

    /// Whether `task` finishes within `limit`. It is not awaited past that, so a wait that never
    /// ends fails the test instead of hanging it.
    static func finishes(_ task: Task<Void, Never>, within limit: Duration) async -> Bool {
        let finished = Finished()
        Task { await task.value; finished.value.store(true, ordering: .releasing) }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if finished.value.load(ordering: .acquiring) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return finished.value.load(ordering: .acquiring)
    }

    @Test("A wait ends when its task is cancelled, whether it was cancelled before the wait or during it")
    func cancelledWaitEnds() async throws {
        let signal = WakeupSignal()
        let during = Task { await signal.wait(timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        during.cancel()
        #expect(await Self.finishes(during, within: .seconds(10)))

        let before = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await signal.wait(timeout: .seconds(30))
        }
        #expect(await Self.finishes(before, within: .seconds(10)))
    }

    @Test("A signal wakes the waiter, a signal sent before the wait is kept for it, and a timeout ends the wait without leaving a signal behind")
    func signalsAndTimeouts() async throws {
        let signal = WakeupSignal()
        let waiting = Task { await signal.wait(timeout: .seconds(120)) }
        try await Task.sleep(for: .milliseconds(100))
        signal.signal()
        #expect(await Self.finishes(waiting, within: .seconds(10)))

        signal.signal()
        let kept = Task { await signal.wait(timeout: .seconds(120)) }
        #expect(await Self.finishes(kept, within: .seconds(10)))

        let started = ContinuousClock.now
        await signal.wait(timeout: .milliseconds(200))
        #expect(ContinuousClock.now - started >= .milliseconds(200))
        // The timeout left no signal: the next wait runs to its own timeout.
        let next = Task { await signal.wait(timeout: .seconds(120)) }
        #expect(!(await Self.finishes(next, within: .milliseconds(500))))
        next.cancel()
        #expect(await Self.finishes(next, within: .seconds(10)))
    }
}
