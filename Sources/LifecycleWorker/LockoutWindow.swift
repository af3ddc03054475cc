import Foundation
import Synchronization

/// The lockout latencies (a termination's publication to its Duo user disabled) of the last
/// hour, for the console's overview. Process-wide, like the metrics it mirrors.
public final class LockoutWindow: Sendable {
    public static let shared = LockoutWindow()

    public struct Summary: Sendable, Equatable {
        public var count: Int
        public var p50: Double
        public var p99: Double
    }

    private let samples = Mutex<[(at: Date, seconds: Double)]>([])
    private let span: TimeInterval

    public init(span: TimeInterval = 3600) { self.span = span }

    public func record(_ seconds: Double, at: Date = Date()) {
        samples.withLock { s in
            s.append((at, seconds))
            let cutoff = at.addingTimeInterval(-span)
            if let first = s.firstIndex(where: { $0.at >= cutoff }), first > 0 { s.removeFirst(first) }
            // Bounded: a flood of terminations keeps the newest 100,000.
            if s.count > 100_000 { s.removeFirst(s.count - 100_000) }
        }
    }

    /// The last hour's count and nearest-rank percentiles; nil when there was no lockout.
    public func summary(now: Date = Date()) -> Summary? {
        let cutoff = now.addingTimeInterval(-span)
        let values = samples.withLock { $0.filter { $0.at >= cutoff }.map(\.seconds) }.sorted()
        guard !values.isEmpty else { return nil }
        func rank(_ q: Double) -> Double { values[min(values.count - 1, max(0, Int((q * Double(values.count)).rounded(.up)) - 1))] }
        return Summary(count: values.count, p50: rank(0.5), p99: rank(0.99))
    }
}
