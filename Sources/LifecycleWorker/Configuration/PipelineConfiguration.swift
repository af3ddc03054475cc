import Foundation
import Lifecycle

/// How the worker consumes, dispatches, retries and publishes.
public struct PipelineConfiguration: Sendable {
    /// The topics with lifecycle events.
    public var lifecycleTopics: [String] = ["hr.employee.lifecycle.v1"]
    /// The consumer group. Default: `duo-lifecycle`.
    public var groupID: String = "duo-lifecycle"
    /// Where result events go. Default: `duo.provisioning.results.v1`.
    public var resultsTopic: String = "duo.provisioning.results.v1"
    /// Where dead letters go. Default: `hr.employee.lifecycle.v1.dlq`.
    public var deadLetterTopic: String = "hr.employee.lifecycle.v1.dlq"
    /// The CloudEvents `source` of result events. Default: `urn:duo-lifecycle`.
    public var resultSource: String = "urn:duo-lifecycle"
    /// Mapping of roles to groups, usernames, missing groups.
    public var mapping = MappingPolicy()
    /// What happens to leavers.
    public var termination = TerminationPolicy()
    /// Retries of failed commands.
    public var retry = CommandRetryPolicy()
    /// Commands applied at once (their Duo calls are bounded by the Duo client's own
    /// `maxConcurrency`). Default: 64.
    public var maxConcurrency: Int = Self.defaultMaxConcurrency
    public static let defaultMaxConcurrency = 64
    /// How long sent outbox rows are kept before they are deleted. Default: 1 hour.
    public var outboxRetention: Duration = .seconds(3600)
    /// How long a claimed command may run before another claim may take it (renewed while it
    /// runs). Default: 60 s.
    public var commandLease: Duration = .seconds(60)
    /// The largest dead letter published, in bytes; a longer original value is truncated (header
    /// `dlq-value-truncated`) and kept whole in the store. Kafka's default limit is 1,000,000.
    /// Default: 900,000.
    public var maxDeadLetterBytes = 900_000
    /// Circuit breaker settings.
    public var breaker = CircuitBreakerConfiguration()
    /// The mass-deprovision guard; nil (the default) never holds anything back.
    public var massDeprovisionGuard: MassDeprovisionGuard?
    /// This worker's name among the replicas sharing a store (`worker.id`): it holds its claims
    /// under it, and at start takes back the commands a previous run under the same name left
    /// running. Give each replica its own stable name (a StatefulSet pod's name, for example).
    /// Default: the host name.
    public var workerID: String = ProcessInfo.processInfo.hostName
    /// `kafka.static_membership`: join the consumer group as a static member named `workerID`, so a
    /// replica restarting within the session timeout keeps its partitions. Default: false.
    public var staticMembership = false

    public init() {}
}

/// Exponential backoff with jitter for commands that failed in a retriable way.
public struct CommandRetryPolicy: Sendable, Hashable {
    /// The first wait. Default: 1 s.
    public var base: Duration = .seconds(1)
    /// The longest wait. Default: 5 minutes.
    public var max: Duration = .seconds(300)
    /// How long after the first failure a command is given up on. Default: 24 hours.
    public var maxAge: Duration = .seconds(86_400)
    /// The most attempts, if limited. Default: none (the age limit applies).
    public var maxAttempts: Int?

    public init(base: Duration = .seconds(1), max: Duration = .seconds(300), maxAge: Duration = .seconds(86_400), maxAttempts: Int? = nil) {
        self.base = base
        self.max = max
        self.maxAge = maxAge
        self.maxAttempts = maxAttempts
    }

    /// The wait before attempt `attempts + 1`: base·2^(attempts−1) capped at `max`, with
    /// "equal jitter" (half fixed, half random) so a herd of failures spreads out.
    public func delay(afterAttempts attempts: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
        let exponent = Swift.min(30, Swift.max(0, attempts - 1))
        let raw = Swift.min(max / .seconds(1), base / .seconds(1) * Double(1 << exponent))
        return .milliseconds(Int64((raw / 2 + raw / 2 * random) * 1000))
    }
}

/// When the dispatcher stops calling Duo.
public struct CircuitBreakerConfiguration: Sendable, Hashable {
    /// Failure ratio over the window that opens the breaker. Default: 0.5.
    public var failureRatio: Double = 0.5
    /// Calls in the sliding window. Default: 20.
    public var window: Int = 20
    /// How often an open breaker probes Duo. Default: 1 s.
    public var probeInterval: Duration = .seconds(1)

    public init() {}
}

/// Holds back disables and deletions beyond a threshold within a window, so a broken HR feed or a
/// bad roster cannot lock out the whole company: the first ones apply at once, the rest wait
/// (`held`) for an operator's `holds approve` or `holds reject`.
public struct MassDeprovisionGuard: Sendable, Hashable {
    /// Most disabling commands per window; nil: no count limit.
    public var maxDisables: Int?
    /// Most disabling commands per window as a percentage of the Duo users linked to employees; nil: none.
    public var maxPercent: Double?
    /// Default: 10 minutes.
    public var window: Duration = .seconds(600)

    public init(maxDisables: Int? = nil, maxPercent: Double? = nil, window: Duration = .seconds(600)) {
        self.maxDisables = maxDisables
        self.maxPercent = maxPercent
        self.window = window
    }

    /// The threshold when `managed` Duo users are linked to employees (at least 1).
    public func limit(managed: Int) -> Int {
        let byPercent = maxPercent.map { Swift.max(1, Int((Double(managed) * $0 / 100).rounded(.down))) } ?? Int.max
        return Swift.min(maxDisables ?? Int.max, byPercent)
    }
}
