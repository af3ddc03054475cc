import DuoAdmin
import Foundation
import Lifecycle
import LifecycleStore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Applies ready commands to Duo with bounded concurrency: terminations first, then oldest;
/// never two commands of one employee at once. Retriable failures are retried with backoff,
/// permanent ones dead-lettered; an outage opens the circuit breaker and dead-letters nothing.
public final class CommandDispatcher: Service, Sendable {
    let store: any LifecycleStore
    let directory: any DuoDirectoryPort
    let configuration: PipelineConfiguration
    let applier: CommandApplier
    let factory: OutboxMessageFactory
    public let breaker: CircuitBreaker
    let logger: Logger
    /// Signalled when commands are added, and by finished commands.
    public let wakeup = WakeupSignal()
    /// Signalled when something was written to the outbox.
    let outboxWakeup: WakeupSignal?
    private let inFlight = Mutex(0)
    /// The ids of the commands being applied, whose leases the dispatcher renews.
    private let inFlightIDs = Mutex<Set<Int64>>([])

    public init(store: any LifecycleStore, directory: any DuoDirectoryPort, configuration: PipelineConfiguration, logger: Logger,
                outboxWakeup: WakeupSignal? = nil) {
        self.store = store
        self.directory = directory
        self.configuration = configuration
        self.applier = CommandApplier(mapping: configuration.mapping)
        self.factory = OutboxMessageFactory(configuration: configuration)
        self.breaker = CircuitBreaker(configuration: configuration.breaker, logger: logger)
        self.logger = logger
        self.outboxWakeup = outboxWakeup
    }

    public func run() async throws {
        let recovered = try store.recoverRunning()
        if recovered > 0 { logger.notice("Recovered commands left running by an earlier stop; they run again (applying is idempotent)", metadata: ["count": "\(recovered)"]) }
        let maxConcurrency = max(1, configuration.maxConcurrency)
        // On graceful shutdown: take no new commands, let those in flight finish.
        await withDiscardingTaskGroup { group in
            // Leases of commands in flight are renewed well before they expire, so only a command
            // whose worker stopped or failed to record its outcome is ever claimed again.
            group.addTask { await self.renewLeasesWhileRunning() }
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                if breaker.isOpen {
                    await probe()
                    continue
                }
                let free = maxConcurrency - inFlight.withLock { $0 }
                var claimed: [StoredCommand] = []
                do {
                    if free > 0 {
                        claimed = try store.claimReady(limit: free, now: Date(), lease: configuration.commandLease)
                    } else if inFlight.withLock({ $0 }) < maxConcurrency * 2 {
                        // Terminations do not wait for a slot: up to as many again may run beside a full
                        // load of other commands, so a leaver is locked out behind any backlog.
                        claimed = try store.claimReady(limit: maxConcurrency * 2 - inFlight.withLock { $0 }, now: Date(), atLeast: .termination,
                                                       lease: configuration.commandLease)
                    }
                } catch {
                    logger.error("Could not read commands from the store", metadata: ["error": "\(error)"])
                }
                for command in claimed {
                    inFlight.withLock { $0 += 1 }
                    inFlightIDs.withLock { _ = $0.insert(command.id) }
                    group.addTask {
                        await self.process(command)
                        self.inFlightIDs.withLock { _ = $0.remove(command.id) }
                        self.inFlight.withLock { $0 -= 1 }
                        self.wakeup.signal()
                    }
                }
                if claimed.isEmpty || claimed.count >= free {
                    // Sleep until something changes: a command finishes or arrives (both signal),
                    // or the next waiting command's time comes. A command that is ready but
                    // blocked (no free slot, or its employee's command is running) is freed only by
                    // a finishing command, which signals, so it needs no timer.
                    var timeout: Duration = .milliseconds(500)
                    if let next = try? store.nextReadyAt(), next > Date() {
                        timeout = .milliseconds(Int64(min(500, max(1, next.timeIntervalSinceNow * 1000))))
                    }
                    await wakeup.wait(timeout: timeout)
                }
            }
        }
        logger.info("Dispatcher stopped; commands in flight finished")
    }

    /// Renews the leases of the commands in flight every third of a lease, until shutdown (the
    /// drain is shorter than a lease).
    private func renewLeasesWhileRunning() async {
        let period = configuration.commandLease / 3
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: period) } } catch { return }
            let ids = inFlightIDs.withLock { Array($0) }
            guard !ids.isEmpty else { continue }
            do { try store.renewLeases(ids, until: Date().addingTimeInterval(configuration.commandLease / .seconds(1))) } catch {
                logger.error("Could not renew the leases of commands in flight", metadata: ["error": "\(error)"])
            }
        }
    }

    /// While the breaker is open, one cheap read every probe interval until Duo answers.
    private func probe() async {
        try? await Task.sleep(for: configuration.breaker.probeInterval)
        do {
            _ = try await directory.user(username: "duo-lifecycle-health-probe")
            breaker.close()
        } catch {
            logger.warning("Duo still unavailable; circuit breaker stays open", metadata: ["error": "\(error)"])
        }
    }

    func process(_ stored: StoredCommand) async {
        let started = ContinuousClock.now
        let employeeID = stored.command.employeeID
        let (state, waiting, linked) = (try? store.write { tx in
            (try tx.employeeState(employeeID), try tx.waitingCommands(employeeID: employeeID), try tx.linkedDuoUserIDs(employeeID: employeeID))
        }) ?? (nil, [], [])
        // A command claimed again after its lease expired may have been overtaken by a newer one of
        // its employee, which carries the full desired state: it is superseded, never applied late.
        // (A newer one scheduled for later does not count: this one is due first.)
        let now = Date()
        if waiting.contains(where: { $0.id > stored.id && !$0.isScheduled(now: now) }) {
            supersede(stored, now: now)
            return
        }
        // Older waiting commands (a hire due before a scheduled termination that came due first)
        // are superseded by this one: an older state is never applied after a newer one.
        for older in waiting where older.id < stored.id { supersede(older, now: now) }
        let knownUserID = state?.duoUserID ?? linked.first
        let known = KnownIdentity(userIDs: ([state?.duoUserID].compactMap { $0 } + linked).uniqued(), usernames: state?.knownUsernames ?? [])
        // A leaver's calls go ahead of everything else in the Duo client's queues.
        let result = await DuoRequestPriority.$current.withValue(stored.command.priority == .termination ? .urgent : .normal) {
            await applier.apply(stored.command, known: known, directory: directory, ledger: StoreLedger(store: store))
        }
        let finished = Date()
        do {
            switch result {
            case .success(let outcome):
                breaker.recordSuccess()
                try complete(stored, outcome: outcome, now: finished)
            case .failure(.policy(let violation)) where violation.code == "conflict":
                try deadLetter(stored, reason: .conflict, code: "conflict", message: violation.message, retriable: false,
                               operations: [], userID: nil, attempts: stored.attempts + 1, now: finished)
            case .failure(.policy(let violation)):
                try deadLetter(stored, reason: .policy, code: "policy.\(violation.code)", message: violation.message, retriable: false,
                               operations: [], userID: knownUserID, attempts: stored.attempts + 1, now: finished)
            case .failure(.directory(let error, let operations, let userID)):
                let outage: Bool
                if error.isAuthenticationFailure || error.isPermissionDenied {
                    outage = breaker.recordFailure(error.isPermissionDenied ? .permission : .credentials, reason: error.description)
                } else if error.isRetriable && !error.isRateLimited {
                    outage = breaker.recordFailure(.unavailable, reason: error.description)
                } else {
                    outage = false
                }
                if outage {
                    // Not this command's fault: it waits for Duo without counting the attempt, and
                    // the outage's time does not count towards its retry age. The writes it made
                    // are kept for its result (the Duo user it found or created is linked already).
                    try store.write { tx in
                        try tx.addDoneOperations(commandID: stored.id, operations)
                        try tx.updateCommand(id: stored.id, state: .retry, attempts: stored.attempts, nextAttemptAt: finished.addingTimeInterval(1),
                                             firstFailureAt: nil, lastError: error.description, now: finished)
                    }
                } else if error.isRetriable {
                    try retryOrGiveUp(stored, error: error, operations: operations, userID: userID, now: finished)
                } else {
                    breaker.recordSuccess()  // Duo answered; the request was at fault.
                    try deadLetter(stored, reason: .duoPermanent, code: error.code, message: "Duo refused the change: \(error.description)",
                                   retriable: false, operations: operations, userID: userID, attempts: stored.attempts + 1, now: finished)
                }
            }
        } catch {
            logger.error("Could not record a command's outcome; it will run again", metadata: ["command": "\(stored.id)", "error": "\(error)"])
        }
        Timer(label: "duo_lifecycle_command_duration_seconds").recordNanoseconds(Int64((ContinuousClock.now - started) / .nanoseconds(1)))
        outboxWakeup?.signal()
    }

    private func supersede(_ stored: StoredCommand, now: Date) {
        do {
            try store.write { tx in try factory.supersede(stored, in: tx, now: now) }
        } catch {
            logger.error("Could not record a superseded command; its lease will expire and it is checked again",
                         metadata: ["command": "\(stored.id)", "error": "\(error)"])
        }
        outboxWakeup?.signal()
    }

    private func complete(_ stored: StoredCommand, outcome: ApplyOutcome, now: Date) throws {
        // The event's writes: those of earlier attempts that failed part-way, then this one's.
        let operations = stored.doneOperations + outcome.operations
        let resultOutcome: ProvisioningOutcome = outcome.deleteAt != nil ? .scheduled : (operations.isEmpty ? .noChange : .applied)
        try store.write { tx in
            try tx.updateCommand(id: stored.id, state: .done, attempts: stored.attempts + 1, nextAttemptAt: nil,
                                 firstFailureAt: stored.firstFailureAt, lastError: nil, now: now)
            if var state = try tx.employeeState(stored.command.employeeID) {
                state.duoUserID = outcome.operations.last == .deleteUser ? nil : (outcome.userID ?? state.duoUserID)
                try tx.saveEmployeeState(state)
            }
            // The link follows a rename, so the next employee who wants this username is a conflict
            // at once, and the old one is free again.
            if let userID = outcome.userID, let username = stored.command.desired.username {
                _ = try tx.claimDuoUser(userID, username: username, employeeID: stored.command.employeeID)
            }
            if let deleteAt = outcome.deleteAt, try tx.waitingCommand(employeeID: stored.command.employeeID) == nil {
                try tx.insertCommand(NewCommand(command: stored.command, source: stored.source, notBefore: deleteAt, isFollowUp: true))
            }
            if !stored.isFollowUp {
                try tx.enqueue(factory.result(for: .init(stored.command), record: stored.source, outcome: resultOutcome, userID: outcome.userID,
                                              operations: operations, attempts: stored.attempts + 1, now: now))
            }
        }
        Counter(label: "duo_lifecycle_commands_total", dimensions: [("outcome", resultOutcome.rawValue)]).increment()
    }

    private func retryOrGiveUp(_ stored: StoredCommand, error: DirectoryError, operations: [DuoOperationKind], userID: String?, now: Date) throws {
        let attempts = stored.attempts + 1
        let firstFailure = stored.firstFailureAt ?? now
        let policy = configuration.retry
        let tooOld = now.timeIntervalSince(firstFailure) >= policy.maxAge / .seconds(1)
        let tooMany = policy.maxAttempts.map { attempts >= $0 } ?? false
        // Give up only when Duo has answered other calls since this command first failed: a failure
        // that only an outage explains never dead-letters, however long it lasts.
        let duoAnsweredSince = (breaker.lastSuccessAt ?? .distantPast) > firstFailure
        if (tooOld || tooMany) && duoAnsweredSince {
            try deadLetter(stored, reason: .retriesExhausted, code: error.code,
                           message: "Gave up after \(attempts) attempts over \(Int(now.timeIntervalSince(firstFailure))) s: \(error.description)",
                           retriable: true, operations: operations, userID: userID, attempts: attempts, now: now, firstFailure: firstFailure)
            return
        }
        let delay = policy.delay(afterAttempts: attempts)
        try store.write { tx in
            try tx.addDoneOperations(commandID: stored.id, operations)
            try tx.updateCommand(id: stored.id, state: .retry, attempts: attempts, nextAttemptAt: now.addingTimeInterval(delay / .seconds(1)),
                                 firstFailureAt: firstFailure, lastError: error.description, now: now)
        }
        Counter(label: "duo_lifecycle_retries_total").increment()
        logger.debug("Command failed; retrying", metadata: ["employee": "\(stored.command.employeeID)", "attempt": "\(attempts)",
                                                           "delay_ms": "\(Int64(delay / .milliseconds(1)))",
                                                           "error": "\(error)"])
    }

    private func deadLetter(_ stored: StoredCommand, reason: DeadLetterReason, code: String, message: String, retriable: Bool,
                            operations: [DuoOperationKind], userID: String?, attempts: Int, now: Date, firstFailure: Date? = nil) throws {
        try store.write { tx in
            try tx.updateCommand(id: stored.id, state: .dead, attempts: attempts, nextAttemptAt: nil,
                                 firstFailureAt: firstFailure ?? stored.firstFailureAt ?? now, lastError: message, now: now)
            if !stored.isFollowUp {
                try tx.enqueue(factory.deadLetter(record: stored.source, reason: reason, message: message, errorCode: code, attempts: attempts,
                                                  firstFailureAt: firstFailure ?? stored.firstFailureAt ?? now))
                try tx.enqueue(factory.result(for: .init(stored.command), record: stored.source, outcome: .deadLettered, userID: userID,
                                              operations: stored.doneOperations + operations, attempts: attempts,
                                              error: .init(code: code, message: message, retriable: retriable), now: now))
            }
        }
        Counter(label: "duo_lifecycle_dead_letters_total", dimensions: [("stage", "dispatch")]).increment()
        Counter(label: "duo_lifecycle_commands_total", dimensions: [("outcome", "dead_lettered")]).increment()
        logger.warning("Command dead-lettered", metadata: ["employee": "\(stored.command.employeeID)", "event": "\(stored.command.eventID)",
                                                           "reason": "\(reason.rawValue)", "error": "\(message)"])
    }
}

/// The store as the applier's ledger: each claim is its own short transaction, so a user found
/// or created is linked to its employee before anything is written to it.
struct StoreLedger: IdentityLedger {
    let store: any LifecycleStore

    func claim(duoUserID: String, username: String, for employeeID: String) throws(DirectoryError) -> String? {
        do {
            return try store.write { tx in try tx.claimDuoUser(duoUserID, username: username, employeeID: employeeID) }
        } catch {
            throw DirectoryError(code: "store", message: "Could not record the link to Duo user \(duoUserID): \(error)", isRetriable: true)
        }
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
