import Foundation
import Synchronization

/// A dedicated thread that serves one librdkafka client: its poll calls block, so they never run
/// on Swift's cooperative thread pool.
final class RDKafkaPollThread: Sendable {
    private final class Shared: Sendable {
        let running = Atomic<Bool>(true)
        let exit = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    }
    private let shared = Shared()

    /// Starts the thread. `iteration` runs until ``stop()``; `finish` runs once, on the same thread.
    init(name: String, iteration: @escaping @Sendable () -> Void, finish: @escaping @Sendable () -> Void = {}) {
        let thread = Thread { [shared] in
            while shared.running.load(ordering: .acquiring) { iteration() }
            finish()
            let waiters = shared.exit.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.done = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.name = name
        thread.start()
    }

    var isRunning: Bool { shared.running.load(ordering: .acquiring) }

    /// Asks the thread to stop without waiting for it.
    func requestStop() { shared.running.store(false, ordering: .releasing) }

    /// Stops the thread and waits until its `finish` has run.
    func stop() async {
        requestStop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = shared.exit.withLock { state -> Bool in
                if !state.done { state.waiters.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }
}
