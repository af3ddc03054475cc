// LifecycleWorker owns the worker: consumer, ingestor, dispatcher, circuit breaker, outbox relay,
// configuration, the operations server, and the adapter from the domain's ports to Duo and Kafka.
import Foundation
import Logging
import Metrics
import Synchronization

/// Stops the dispatcher from calling Duo during an outage, so an outage dead-letters nothing.
///
/// It opens at once on an authentication failure (401xx: Duo refuses the credentials, which no
/// retry of a single command can fix), or when the share of failed calls in the sliding window
/// crosses the threshold. While open, the dispatcher takes no commands and probes Duo; the first
/// successful probe closes it.
public final class CircuitBreaker: Sendable {
    public enum State: String, Sendable { case closed, open }

    private struct Inner {
        var state = State.closed
        var outcomes: [Bool] = []  // true = failure
        var openedAt: Date?
        var reason: String?
    }
    private let inner = Mutex(Inner())
    private let configuration: CircuitBreakerConfiguration
    private let logger: Logger
    private let gauge = Gauge(label: "duo_lifecycle_circuit_breaker_open")

    public init(configuration: CircuitBreakerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        gauge.record(0)
    }

    public var state: State { inner.withLock { $0.state } }
    public var isOpen: Bool { state == .open }

    public func recordSuccess() { record(failure: false, reason: nil) }

    /// Records a failed call. Returns true when this opened the breaker.
    @discardableResult
    public func recordFailure(authentication: Bool, reason: String) -> Bool {
        if authentication { return open(reason: "Duo refused the credentials: \(reason)") }
        return record(failure: true, reason: reason)
    }

    @discardableResult
    private func record(failure: Bool, reason: String?) -> Bool {
        let opened = inner.withLock { s -> Bool in
            s.outcomes.append(failure)
            if s.outcomes.count > configuration.window { s.outcomes.removeFirst(s.outcomes.count - configuration.window) }
            guard s.state == .closed, s.outcomes.count >= configuration.window else { return false }
            let ratio = Double(s.outcomes.filter { $0 }.count) / Double(s.outcomes.count)
            return ratio >= configuration.failureRatio
        }
        if opened { return open(reason: "\(Int(configuration.failureRatio * 100))% or more of the last \(configuration.window) Duo calls failed; last: \(reason ?? "?")") }
        return false
    }

    private func open(reason: String) -> Bool {
        let changed = inner.withLock { s -> Bool in
            guard s.state == .closed else { return false }
            s.state = .open
            s.openedAt = Date()
            s.reason = reason
            return true
        }
        if changed {
            gauge.record(1)
            logger.error("Circuit breaker open: pausing all Duo calls and probing until Duo answers again", metadata: ["reason": "\(reason)"])
        }
        return changed
    }

    /// Closes the breaker after a successful probe.
    public func close() {
        let openedAt = inner.withLock { s -> Date? in
            guard s.state == .open else { return nil }
            defer { s = Inner() }
            return s.openedAt
        }
        if let openedAt {
            gauge.record(0)
            logger.notice("Circuit breaker closed: Duo answers again; resuming", metadata: ["open_seconds": "\(Int(Date().timeIntervalSince(openedAt)))"])
        }
    }
}
