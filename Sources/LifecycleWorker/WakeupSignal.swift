import Synchronization

/// Wakes a waiting loop early: a signal sent while nobody waits is kept until the next wait.
public final class WakeupSignal: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    public init() {}

    public func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter { s.waiter = nil; return w }
            s.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Waits for a signal, or until `timeout` passes, or until the task is cancelled.
    public func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // Cancelled (the group's other child timed out, or the caller was cancelled): the
                // wait ends, or a cancelled service would wait here for good.
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        let ready = state.withLock { s -> Bool in
                            if s.pending { s.pending = false; return true }
                            // Checked under the lock the handler takes: a cancellation is either
                            // seen here or finds this waiter parked.
                            if Task.isCancelled { return true }
                            s.waiter?.resume()
                            s.waiter = c
                            return false
                        }
                        if ready { c.resume() }
                    }
                } onCancel: { [self] in
                    state.withLock { s -> CheckedContinuation<Void, Never>? in defer { s.waiter = nil }; return s.waiter }?.resume()
                }
            }
            group.addTask {
                // Only a timeout that really elapsed wakes the waiter; a cancelled one must not
                // leave a stray signal behind for the next wait.
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                self.signal()
            }
            await group.next()
            group.cancelAll()
        }
    }
}
