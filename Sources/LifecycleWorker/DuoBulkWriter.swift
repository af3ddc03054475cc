import DuoAdmin
import Foundation
import Synchronization

/// Gathers the Duo writes of commands running at once into `POST /admin/v1/bulk` requests.
///
/// A write never waits for a batch to fill. A request is composed at the moment the Duo client
/// lets it go out (a free slot and a rate permit): it takes every write queued by then, up to 50.
/// So a worker that Duo keeps up with calls Duo as it always did, one write per call, and one
/// that Duo's rate limit holds back (a backfill, a reorganisation, a reconcile's fixes) sends
/// many writes per call. At most one request waits for a permit at a time, so no permit is
/// spent on an empty request; up to `maxInFlight` are out at once.
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
        var continuation: CheckedContinuation<Result<DuoWriteResponse, DuoAdminError>, Never>
    }
    private struct State {
        var queue: [Pending] = []
        /// Senders running, and how many of them wait for a permit (at most one).
        var senders = 0
        var waiting = 0
        var unsupported = false

        /// Whether a new sender should start now: writes wait, none waits for a permit, and
        /// there is room for another request.
        mutating func startSender(max: Int) -> Bool {
            guard !queue.isEmpty, waiting == 0, senders < max else { return false }
            senders += 1
            waiting += 1
            return true
        }
    }

    private let client: DuoAdminClient
    private let maxInFlight: Int
    private let maxOperations: Int
    private let state = Mutex(State())
    private let observer: (@Sendable (_ operations: Int) -> Void)?

    /// - Parameters:
    ///   - maxInFlight: requests of this writer out at once (default: the client's `maxConcurrency`).
    ///   - observer: told the number of operations of each request made (1 for a single call).
    public init(client: DuoAdminClient, maxInFlight: Int? = nil, maxOperations: Int = DuoAdminClient.maxBulkOperations,
                observer: (@Sendable (_ operations: Int) -> Void)? = nil) {
        self.client = client
        self.maxInFlight = max(1, maxInFlight ?? client.configuration.maxConcurrency)
        self.maxOperations = min(max(1, maxOperations), DuoAdminClient.maxBulkOperations)
        self.observer = observer
    }

    /// Makes the write, alone or in a bulk request, and returns Duo's response for it.
    public func perform(_ operation: DuoBulkOperation) async throws(DuoAdminError) -> DuoWriteResponse {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<DuoWriteResponse, DuoAdminError>, Never>) in
            let start = state.withLock { s -> Bool in
                s.queue.append(Pending(operation: operation, continuation: continuation))
                return s.startSender(max: maxInFlight)
            }
            if start { spawnSender() }
        }
        return try result.get()
    }

    private func spawnSender() {
        Task { await DuoRequestPriority.$current.withValue(.normal) { await self.send() } }
    }

    /// One sender: waits for a permit, takes what is queued, sends it; then waits for the next
    /// permit if writes wait and no other sender does, else ends.
    private func send() async {
        while true {
            let permit: DuoRequestPermit
            do { permit = try await client.permit() } catch {
                // Cancelled while waiting: hand the role on, so queued writes are not stranded.
                let next = state.withLock { s -> Bool in s.waiting -= 1; s.senders -= 1; return s.startSender(max: maxInFlight) }
                if next { spawnSender() }
                return
            }
            let (batch, unsupported, another) = state.withLock { s -> ([Pending], Bool, Bool) in
                s.waiting -= 1
                let batch = Array(s.queue.prefix(maxOperations))
                s.queue.removeFirst(batch.count)
                if batch.isEmpty { s.senders -= 1 }
                return (batch, s.unsupported, !batch.isEmpty && s.startSender(max: maxInFlight))
            }
            if another { spawnSender() }
            if batch.isEmpty {
                permit.release()
                return
            }
            if batch.count == 1 || unsupported {
                var permit: DuoRequestPermit? = permit
                for p in batch {
                    p.continuation.resume(returning: await single(p.operation, permit: permit))
                    permit = nil
                }
            } else {
                await sendBulk(batch, permit: permit)
            }
            let again = state.withLock { s -> Bool in
                guard !s.queue.isEmpty, s.waiting == 0 else { s.senders -= 1; return false }
                s.waiting += 1
                return true
            }
            if !again { return }
        }
    }

    private func sendBulk(_ batch: [Pending], permit: DuoRequestPermit) async {
        observer?(batch.count)
        do {
            let outcomes = try await client.bulk(batch.map(\.operation), permit: permit)
            for (p, outcome) in zip(batch, outcomes) {
                switch outcome {
                case .ok(let data): p.continuation.resume(returning: .success(.bulk(data)))
                case .failed(let error): p.continuation.resume(returning: .failure(error))
                case .notPerformed: p.continuation.resume(returning: await single(p.operation, permit: nil))
                }
            }
        } catch let error as DuoAdminError where error.httpStatus == 404 {
            // This Duo has no bulk endpoint: single calls from now on.
            state.withLock { $0.unsupported = true }
            for p in batch { p.continuation.resume(returning: await single(p.operation, permit: nil)) }
        } catch {
            let failure = error as? DuoAdminError
                ?? DuoAdminError(kind: .connection, message: "\(error)", request: "POST /admin/v1/bulk")
            for p in batch { p.continuation.resume(returning: .failure(failure)) }
        }
    }

    /// The write as its ordinary call.
    private func single(_ operation: DuoBulkOperation, permit: DuoRequestPermit?) async -> Result<DuoWriteResponse, DuoAdminError> {
        observer?(1)
        do {
            return .success(.call(try await client.call(operation.method == "DELETE" ? .DELETE : .POST, operation.path, parameters: operation.body, permit: permit)))
        } catch let error as DuoAdminError {
            return .failure(error)
        } catch {
            return .failure(DuoAdminError(kind: .connection, message: "\(error)", request: operation.description))
        }
    }
}
