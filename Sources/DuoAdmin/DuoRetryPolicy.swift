/// How the client retries calls that failed in a retriable way.
///
/// The defaults follow Duo's official clients: wait 1 s plus up to 1 s of jitter, double the wait
/// each time up to 32 s, which gives 6 retries and 7 attempts in all.
public struct DuoRetryPolicy: Sendable {
    /// Whether the client retries at all. Callers that schedule their own retries turn this off. Default: `true`.
    public var enabled: Bool = true
    /// The first wait. Default: 1 s.
    public var initialBackoff: Duration = .seconds(1)
    /// The factor between waits. Default: 2.
    public var multiplier: Double = 2
    /// The longest wait; once the next wait would exceed it, the last failure is returned. Default: 32 s.
    public var maxBackoff: Duration = .seconds(32)
    /// Random extra wait added to each backoff, uniformly in `0..<maxJitter`. Default: 1 s.
    public var maxJitter: Duration = .seconds(1)
    /// Retry only 429s, as Duo's official clients do, instead of every retriable failure
    /// (429, 5xx, timeouts, connection errors). Default: `false`.
    public var rateLimitOnly: Bool = false

    public init() {}

    /// No retries.
    public static var disabled: DuoRetryPolicy {
        var p = DuoRetryPolicy()
        p.enabled = false
        return p
    }

    /// The backoff before retry number `retry` (1-based), without jitter, or nil when retries are exhausted.
    public func backoff(beforeRetry retry: Int) -> Duration? {
        guard enabled, retry >= 1 else { return nil }
        let seconds = (initialBackoff / .seconds(1)) * pow(multiplier, Double(retry - 1))
        guard seconds <= (maxBackoff / .seconds(1)) + 1e-9 else { return nil }
        return .nanoseconds(Int64(seconds * 1e9))
    }

    func shouldRetry(_ error: DuoAdminError) -> Bool {
        enabled && (rateLimitOnly ? error.isRateLimited : error.isRetriable)
    }
}

private func pow(_ x: Double, _ y: Double) -> Double {
    var r = 1.0
    for _ in 0..<Int(y) { r *= x }
    return r
}
/// Where the client's waits happen. Tests pass one that records waits instead of sleeping.
public struct DuoSleeper: Sendable {
    public var sleep: @Sendable (Duration) async throws -> Void
    /// Random jitter in `0..<max`.
    public var jitter: @Sendable (Duration) -> Duration

    public init(sleep: @escaping @Sendable (Duration) async throws -> Void,
                jitter: @escaping @Sendable (Duration) -> Duration) {
        self.sleep = sleep
        self.jitter = jitter
    }

    /// Real time: `Task.sleep`, which suspends the task and blocks no thread.
    public static let live = DuoSleeper(
        sleep: { try await Task.sleep(for: $0) },
        jitter: { max in max <= .zero ? .zero : .nanoseconds(Int64.random(in: 0..<Int64(max / .nanoseconds(1)))) }
    )
}
