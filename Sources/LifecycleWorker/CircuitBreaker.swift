// LifecycleWorker owns the worker: consumer, ingestor, dispatcher, circuit breaker, outbox relay,
// configuration, the operations server, and the adapter from the domain's ports to Duo and Kafka.
import Foundation
import Logging
import Metrics
import Synchronization

/// Stops the dispatcher from calling Duo during an outage, so an outage dead-letters nothing.
///
/// It opens at once when Duo refuses the credentials (401xx) or the integration lacks a
/// permission (403xx): no retry of a single command can fix either. It opens on Duo being
/// unavailable (5xx, timeouts, connection failures) as soon as two calls fail with no success in
/// between, or one fails before any call has succeeded since it last closed, or the share of
/// failures in the sliding window crosses the threshold — so a quiet day's outage is seen as one
/// too. Throttling (429) is not an outage. While open, the dispatcher takes no commands and probes
/// Duo; the first successful probe closes it.
public final class CircuitBreaker: Sendable {
    public enum State: String, Sendable { case closed, open }

    /// What kind of failure a call had.
    public enum Failure: Sendable {
        /// 401xx: Duo refuses the credentials.
        case credentials
        /// 403xx: the integration lacks a permission.
        case permission
        /// 5xx, a timeout or a connection failure.
        case unavailable
    }

    private struct Inner {
        var state = State.closed
        var outcomes: [Bool] = []  // true = failure
        var openedAt: Date?
        var reason: String?
        var cause: Failure?
        var consecutiveFailures = 0
        var successesSinceClosed = 0
        var lastSuccessAt: Date?
    }
    private let inner = Mutex(Inner())
    private let configuration: CircuitBreakerConfiguration
    private let logger: Logger
    private let gauge = Gauge(label: "duo_lifecycle_circuit_breaker_open")
    private let credentialsGauge = Gauge(label: "duo_lifecycle_duo_access_refused", dimensions: [("cause", "credentials")])
    private let permissionGauge = Gauge(label: "duo_lifecycle_duo_access_refused", dimensions: [("cause", "permission")])

    public init(configuration: CircuitBreakerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        gauge.record(0)
        credentialsGauge.record(0)
        permissionGauge.record(0)
    }

    public var state: State { inner.withLock { $0.state } }
    public var isOpen: Bool { state == .open }
    /// When a Duo call last succeeded.
    public var lastSuccessAt: Date? { inner.withLock { $0.lastSuccessAt } }

    public func recordSuccess() {
        inner.withLock { s in
            s.consecutiveFailures = 0
            s.successesSinceClosed += 1
            s.lastSuccessAt = Date()
            append(false, to: &s)
        }
    }

    /// Records a failed call. Returns true when the breaker is open afterwards: the failure is
    /// part of an outage, and the command must wait for Duo rather than count an attempt.
    @discardableResult
    public func recordFailure(_ failure: Failure, reason: String) -> Bool {
        switch failure {
        case .credentials:
            open(.credentials, reason: "Duo refused the credentials: \(reason)")
        case .permission:
            open(.permission, reason: "Duo refused a call for want of a permission: \(reason)")
        case .unavailable:
            let trip = inner.withLock { s -> String? in
                s.consecutiveFailures += 1
                append(true, to: &s)
                guard s.state == .closed else { return nil }
                if s.successesSinceClosed == 0 { return "a Duo call failed and none has succeeded since the worker started or Duo came back" }
                if s.consecutiveFailures >= 2 { return "\(s.consecutiveFailures) Duo calls in a row failed" }
                guard s.outcomes.count >= configuration.window else { return nil }
                let ratio = Double(s.outcomes.filter { $0 }.count) / Double(s.outcomes.count)
                return ratio >= configuration.failureRatio
                    ? "\(Int(configuration.failureRatio * 100))% or more of the last \(configuration.window) Duo calls failed" : nil
            }
            if let trip { open(.unavailable, reason: "\(trip); last: \(reason)") }
        }
        return isOpen
    }

    private func append(_ failure: Bool, to s: inout Inner) {
        s.outcomes.append(failure)
        if s.outcomes.count > configuration.window { s.outcomes.removeFirst(s.outcomes.count - configuration.window) }
    }

    private func open(_ cause: Failure, reason: String) {
        let changed = inner.withLock { s -> Bool in
            guard s.state == .closed else { return false }
            s.state = .open
            s.openedAt = Date()
            s.reason = reason
            s.cause = cause
            return true
        }
        guard changed else { return }
        gauge.record(1)
        if cause == .credentials { credentialsGauge.record(1) }
        if cause == .permission { permissionGauge.record(1) }
        logger.error("Circuit breaker open: pausing all Duo calls and probing until Duo answers again; nothing is dead-lettered meanwhile",
                     metadata: ["reason": "\(reason)"])
    }

    /// Closes the breaker after a successful probe.
    public func close() {
        let openedAt = inner.withLock { s -> Date? in
            guard s.state == .open else { return nil }
            let openedAt = s.openedAt
            s = Inner(successesSinceClosed: 1, lastSuccessAt: Date())  // the probe succeeded
            return openedAt
        }
        if let openedAt {
            gauge.record(0)
            credentialsGauge.record(0)
            permissionGauge.record(0)
            logger.notice("Circuit breaker closed: Duo answers again; resuming", metadata: ["open_seconds": "\(Int(Date().timeIntervalSince(openedAt)))"])
        }
    }
}
