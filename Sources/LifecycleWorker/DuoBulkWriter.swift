import DuoAdmin
import Foundation
import Synchronization

/// Gathers the Duo writes of commands running at once into `POST /admin/v1/bulk` requests.
///
/// No write waits for a batch to fill: while fewer than `maxInFlight` requests of this writer
/// are out, a write goes at once, alone, as its ordinary call. The writes made while they are
/// out queue up, and the next request takes up to 50 of them. So a quiet worker calls Duo as it
/// always did, and a busy one (a backfill, a reorganisation, a reconcile's fixes) makes one call
/// for many changes when Duo's rate limit is what holds it back.
///
/// Each write gets its own operation's outcome: one that Duo refuses fails only its command.
/// A request that fails as a whole fails each of its writes with that error, and they are
/// retried as their commands are. If Duo has no bulk endpoint (404), the writer goes on with
/// single calls. Only writes made under ``eligible`` come here: the dispatcher never sets it for
/// a termination, so a leaver's calls are never batched.
public final class DuoBulkWriter: Sendable {
    /// Whether the writes of the current task may be batched. Set by the dispatcher for every
    /// command but a termination.
    @TaskLocal public static var eligible = false

    private struct Pending {
        var operation: DuoBulkOperation
        var continuation: CheckedContinuation<Result<Data, DuoAdminError>, Never>
    }
    private struct State {
        var queue: [Pending] = []
        var inFlight = 0
        var unsupported = false
    }

    private let client: DuoAdminClient
    private let maxInFlight: Int
    private let maxOperations: Int
    private let state = Mutex(State())
    private let observer: (@Sendable (_ operations: Int) -> Void)?

    /// - Parameters:
    ///   - maxInFlight: requests of this writer out at once; writes made meanwhile are batched.
    ///   - observer: told the number of operations of each request made (1 for a single call).
    public init(client: DuoAdminClient, maxInFlight: Int = 2, maxOperations: Int = DuoAdminClient.maxBulkOperations,
                observer: (@Sendable (_ operations: Int) -> Void)? = nil) {
        self.client = client
        self.maxInFlight = max(1, maxInFlight)
        self.maxOperations = min(max(1, maxOperations), DuoAdminClient.maxBulkOperations)
        self.observer = observer
    }

    /// Makes the write, alone or in a bulk request, and returns Duo's response for it (JSON).
    public func perform(_ operation: DuoBulkOperation) async throws(DuoAdminError) -> Data {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Data, DuoAdminError>, Never>) in
            let start = state.withLock { s -> Bool in
                s.queue.append(Pending(operation: operation, continuation: continuation))
                guard s.inFlight < maxInFlight else { return false }
                s.inFlight += 1
                return true
            }
            if start {
                Task { await DuoRequestPriority.$current.withValue(.normal) { await self.drain() } }
            }
        }
        return try result.get()
    }

    /// Sends what is queued, a request at a time, until the queue is empty.
    private func drain() async {
        while true {
            let (batch, unsupported) = state.withLock { s -> ([Pending], Bool) in
                let batch = Array(s.queue.prefix(maxOperations))
                s.queue.removeFirst(batch.count)
                if batch.isEmpty { s.inFlight -= 1 }
                return (batch, s.unsupported)
            }
            if batch.isEmpty { return }
            if batch.count == 1 || unsupported {
                for p in batch { p.continuation.resume(returning: await single(p.operation)) }
                continue
            }
            observer?(batch.count)
            do {
                let outcomes = try await client.bulk(batch.map(\.operation))
                for (p, outcome) in zip(batch, outcomes) {
                    switch outcome {
                    case .ok(let data): p.continuation.resume(returning: .success(data))
                    case .failed(let error): p.continuation.resume(returning: .failure(error))
                    case .notPerformed: p.continuation.resume(returning: await single(p.operation))
                    }
                }
            } catch let error as DuoAdminError where error.httpStatus == 404 {
                // This Duo has no bulk endpoint: single calls from now on.
                state.withLock { $0.unsupported = true }
                for p in batch { p.continuation.resume(returning: await single(p.operation)) }
            } catch {
                let failure = error as? DuoAdminError
                    ?? DuoAdminError(kind: .connection, message: "\(error)", request: "POST /admin/v1/bulk")
                for p in batch { p.continuation.resume(returning: .failure(failure)) }
            }
        }
    }

    /// The write as its ordinary call.
    private func single(_ operation: DuoBulkOperation) async -> Result<Data, DuoAdminError> {
        observer?(1)
        do {
            let response = try await client.call(operation.method == "DELETE" ? .DELETE : .POST, operation.path, parameters: operation.body)
            let data = (try? JSONSerialization.data(withJSONObject: response.response, options: [.fragmentsAllowed])) ?? Data("\"\"".utf8)
            return .success(data)
        } catch let error as DuoAdminError {
            return .failure(error)
        } catch {
            return .failure(DuoAdminError(kind: .connection, message: "\(error)", request: operation.description))
        }
    }
}
