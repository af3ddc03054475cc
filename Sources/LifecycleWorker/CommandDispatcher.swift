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
    /// The claims on the commands being applied, whose leases the dispatcher renews.
    private let inFlightLeases = Mutex<Set<CommandLease>>([])
    /// What each command in flight is doing, for the log line about a lost lease.
    private let phases = Mutex<[Int64: String]>([:])

    private func setPhase(_ id: Int64, _ phase: String?) { phases.withLock { $0[id] = phase } }

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

    /// How many terminations may run beyond `worker.max_concurrency`: enough for a burst of
    /// leavers to have their lockouts queued at once (their calls are what Duo's rate allows).
    static func terminationSlots(_ maxConcurrency: Int) -> Int { max(maxConcurrency, 64) }

    public func run() async throws {
        let recovered = try await store.recoverRunning(owner: configuration.workerID)
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
                        claimed = try await store.claimReady(limit: free, now: Date(), atLeast: .normal, lease: configuration.commandLease,
                                                             owner: configuration.workerID)
                    } else if inFlight.withLock({ $0 }) < maxConcurrency + Self.terminationSlots(maxConcurrency) {
                        // Terminations do not wait for a slot: a burst of them runs beside a full load
                        // of other commands, each sending its lockout at once at urgent priority, so
                        // leavers are locked out at Duo's rate whatever the backlog.
                        claimed = try await store.claimReady(limit: maxConcurrency + Self.terminationSlots(maxConcurrency) - inFlight.withLock { $0 },
                                                             now: Date(), atLeast: .termination,
                                                             lease: configuration.commandLease, owner: configuration.workerID)
                    }
                } catch {
                    // The store is down: nothing is claimed, nothing dead-lettered; try again shortly.
                    logger.error("Could not read commands from the store", metadata: ["error": "\(error)"])
                    await wakeup.wait(timeout: .milliseconds(500))
                    continue
                }
                for command in claimed {
                    logger.debug("Command claimed", metadata: ["command": "\(command.id)", "employee": "\(command.command.employeeID)",
                                                               "event": "\(command.command.eventID)", "attempts": "\(command.attempts)"])
                    inFlight.withLock { $0 += 1 }
                    if let lease = command.lease { inFlightLeases.withLock { _ = $0.insert(lease) } }
                    group.addTask {
                        // A leaver's store transactions go ahead of other commands' (SQLite's group commit).
                        await GroupCommitStore.$urgent.withValue(command.command.isLockout) { await self.process(command) }
                        if let lease = command.lease { self.inFlightLeases.withLock { _ = $0.remove(lease) } }
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
                    if let next = try? await store.nextReadyAt(), next > Date() {
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
            let leases = inFlightLeases.withLock { Array($0) }
            guard !leases.isEmpty else { continue }
            do {
                let now = Date()
                let lost = try await store.renewLeases(leases, until: now.addingTimeInterval(configuration.commandLease / .seconds(1)), now: now)
                if !lost.isEmpty {
                    // This worker was too slow (paused, cut off): another may hold them now. Their
                    // remaining Duo writes and their outcomes are refused by the fence.
                    Counter(label: "duo_lifecycle_leases_lost_total").increment(by: lost.count)
                    let doing = phases.withLock { p in lost.sorted().map { "\($0): \(p[$0] ?? "finishing")" } }
                    logger.warning("Leases lost; those commands are fenced off and another worker may take them",
                                   metadata: ["commands": "\(doing)"])
                }
            } catch {
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
        setPhase(stored.id, "reading the employee's state")
        defer { setPhase(stored.id, nil) }
        let state: EmployeeState?, waiting: [StoredCommand], linked: [String]
        do {
            let context = try await store.commandContext(employeeID: employeeID)
            (state, waiting, linked) = (context.state, context.waiting, context.linkedDuoUserIDs)
        } catch {
            // Without the employee's state and links nothing is applied: the claim's lease expires
            // and the command is claimed again once the store answers.
            logger.error("Could not read the employee's state; the command waits for its next claim",
                         metadata: ["command": "\(stored.id)", "error": "\(error)"])
            return
        }
        // A command claimed again after its lease expired may have been overtaken by a newer one of
        // its employee, which carries the full desired state: it is superseded, never applied late.
        // (A newer one scheduled for later does not count: this one is due first.)
        let now = Date()
        if let newer = waiting.first(where: { $0.id > stored.id && !$0.isScheduled(now: now) }) {
            logger.debug("Command overtaken by a newer one of its employee; superseded",
                         metadata: ["command": "\(stored.id)", "newer": "\(newer.id)", "employee": "\(employeeID)"])
            await supersede(stored, lease: stored.lease, now: now)
            return
        }
        // Older waiting commands (a hire due before a scheduled termination that came due first)
        // are superseded by this one: an older state is never applied after a newer one.
        for older in waiting where older.id < stored.id {
            logger.debug("An older waiting command of the employee is superseded by this one",
                         metadata: ["command": "\(stored.id)", "older": "\(older.id)", "employee": "\(employeeID)"])
            await supersede(older, lease: nil, now: now)
        }
        // The mass-deprovision guard: past its threshold a disable or deletion waits for an operator.
        if let guardPolicy = configuration.massDeprovisionGuard, stored.command.desired.disablesAccess {
            do {
                let allowed = try await store.write { tx in
                    try await tx.reserveDisable(commandID: stored.id, now: now, window: guardPolicy.window) { guardPolicy.limit(managed: $0) }
                }
                if !allowed {
                    await hold(stored, now: now)
                    return
                }
            } catch {
                logger.error("Could not check the mass-deprovision guard; the command waits for its next claim",
                             metadata: ["command": "\(stored.id)", "error": "\(error)"])
                return
            }
        }
        let knownUserID = state?.duoUserID ?? linked.first
        let known = KnownIdentity(userIDs: ([state?.duoUserID].compactMap { $0 } + linked).uniqued(), usernames: state?.knownUsernames ?? [],
                                  lockedOut: state?.lockedOut ?? false)
        // A leaver's calls go ahead of everything else in the Duo client's queues.
        // Every Duo write is fenced: it goes ahead only while this worker still holds the claim.
        let fenced = FencedDirectory(base: directory, store: store, lease: stored.lease, margin: configuration.commandLease / 4)
        setPhase(stored.id, "applying to Duo")
        // A leaver's writes, and any that take access away, are never batched; other commands'
        // writes may share bulk requests.
        let batchable = !stored.command.isLockout && !stored.command.desired.disablesAccess
        let result = await DuoRequestPriority.$current.withValue(stored.command.isLockout ? .urgent : .normal) {
            await DuoBulkWriter.$eligible.withValue(batchable) {
                await applier.apply(stored.command, known: known, directory: fenced, ledger: StoreLedger(store: store))
            }
        }
        let finished = Date()
        setPhase(stored.id, "recording the outcome")
        do {
            switch result {
            case .success(let outcome):
                breaker.recordSuccess()
                try await complete(stored, outcome: outcome, now: finished)
            case .failure(.directory(let error, let operations, _)) where error.code == FencedDirectory.fencedCode:
                // The claim was lost before a write: the worker that holds it now applies the
                // employee's newest state. Nothing is recorded here.
                try await repairAfterLostLease(stored, operations: operations, reason: error.message)
            case .failure(.directory(let error, let operations, _)) where error.code == "store":
                // The store failed mid-command (a link or a claim check): not Duo's fault and not
                // the command's. It waits and runs again, its attempt not counted; if even this
                // cannot be recorded, its lease expires and it is claimed again.
                try await store.write { tx in
                    try await self.assertHolds(stored, tx)
                    try await tx.addDoneOperations(commandID: stored.id, operations)
                    try await tx.updateCommand(id: stored.id, state: .retry, attempts: stored.attempts, nextAttemptAt: finished.addingTimeInterval(1),
                                               firstFailureAt: stored.firstFailureAt, lastError: error.description, now: finished)
                }
            case .failure(.policy(let violation)) where violation.code == "conflict":
                try await deadLetter(stored, reason: .conflict, code: "conflict", message: violation.message, retriable: false,
                               operations: [], userID: nil, attempts: stored.attempts + 1, now: finished)
            case .failure(.policy(let violation)):
                try await deadLetter(stored, reason: .policy, code: "policy.\(violation.code)", message: violation.message, retriable: false,
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
                    try await store.write { tx in
                        try await self.assertHolds(stored, tx)
                        try await tx.addDoneOperations(commandID: stored.id, operations)
                        try await tx.updateCommand(id: stored.id, state: .retry, attempts: stored.attempts, nextAttemptAt: finished.addingTimeInterval(1),
                                                   firstFailureAt: nil, lastError: error.description, now: finished)
                    }
                } else if error.isRetriable {
                    try await retryOrGiveUp(stored, error: error, operations: operations, userID: userID, now: finished)
                } else {
                    breaker.recordSuccess()  // Duo answered; the request was at fault.
                    try await deadLetter(stored, reason: .duoPermanent, code: error.code, message: "Duo refused the change: \(error.description)",
                                   retriable: false, operations: operations, userID: userID, attempts: stored.attempts + 1, now: finished)
                }
            }
        } catch let lost as LeaseLost {
            // Another worker claimed the command while this one applied it: its outcome is not
            // this worker's to record. If this attempt wrote to Duo after losing the claim, the
            // employee's newest state is applied again, so a late write never stands.
            let operations: [DuoOperationKind]
            switch result {
            case .success(let outcome): operations = outcome.operations
            case .failure(.directory(_, let ops, _)): operations = ops
            case .failure: operations = []
            }
            try? await repairAfterLostLease(stored, operations: operations, reason: lost.description)
        } catch {
            logger.error("Could not record a command's outcome; it will run again", metadata: ["command": "\(stored.id)", "error": "\(error)"])
        }
        Timer(label: "duo_lifecycle_command_duration_seconds").recordNanoseconds(Int64((ContinuousClock.now - started) / .nanoseconds(1)))
        outboxWakeup?.signal()
    }

    /// Throws ``LeaseLost`` unless this worker still holds its claim on the command.
    private func assertHolds(_ stored: StoredCommand, _ tx: any LifecycleStoreTransaction) async throws {
        if let lease = stored.lease { try await tx.assertHolds(lease) }
    }

    /// This worker lost its claim on `stored` part-way. If it wrote to Duo and a newer command of
    /// the employee (a termination, say) has started or finished meanwhile, the write may have
    /// landed after it: that newest command is queued again (a termination urgently), so Duo ends
    /// in the newest state whatever order the writes landed in. If `stored` is still the newest,
    /// whoever claims it next applies it again, which is the repair. Applying is idempotent.
    private func repairAfterLostLease(_ stored: StoredCommand, operations: [DuoOperationKind], reason: String) async throws {
        Counter(label: "duo_lifecycle_fenced_total").increment()
        guard !operations.isEmpty else {
            logger.notice("Claim lost before any Duo write; the worker that holds it now applies the employee's state",
                          metadata: ["command": "\(stored.id)", "employee": "\(stored.command.employeeID)", "reason": "\(reason)"])
            return
        }
        let repaired = try await store.write { tx -> Bool in
            guard let newest = try await tx.newestCommand(employeeID: stored.command.employeeID), newest.id > stored.id,
                  newest.state == .done || newest.state == .running || newest.state == .dead else { return false }
            var repair = newest.command
            if repair.desired.terminated { repair.priority = .termination }
            try await tx.insertCommand(NewCommand(command: repair, source: newest.source, notBefore: Date(), isFollowUp: true))
            return true
        }
        guard repaired else {
            logger.notice("Claim lost after Duo writes; the command is still the employee's newest and runs again under its next claim",
                          metadata: ["command": "\(stored.id)", "employee": "\(stored.command.employeeID)", "reason": "\(reason)"])
            return
        }
        wakeup.signal()
        logger.warning("Claim lost after Duo writes; the employee's newest command is applied again to undo any late write",
                       metadata: ["command": "\(stored.id)", "employee": "\(stored.command.employeeID)", "operations": "\(operations.map(\.rawValue))",
                                  "reason": "\(reason)"])
    }

    /// Holds a command back: its state is `held` and its event's result says so, until an
    /// operator approves (it runs) or rejects it.
    private func hold(_ stored: StoredCommand, now: Date) async {
        do {
            try await store.write { tx in
                try await self.assertHolds(stored, tx)
                try await tx.updateCommand(id: stored.id, state: .held, attempts: stored.attempts, nextAttemptAt: nil,
                                           firstFailureAt: stored.firstFailureAt, lastError: "held by the mass-deprovision guard", now: now)
                if !stored.isFollowUp {
                    try await tx.enqueue(self.factory.result(for: .init(stored.command), record: stored.source, outcome: .held,
                                                             operations: stored.doneOperations, attempts: stored.attempts, now: now))
                }
            }
            Counter(label: "duo_lifecycle_guard_held_total").increment()
            Counter(label: "duo_lifecycle_commands_total", dimensions: [("outcome", "held")]).increment()
            logger.critical("MASS-DEPROVISION GUARD: a disable is held back; more disables than the threshold within the window. Review with `duo-lifecycle holds list`, then `holds approve` or `holds reject`",
                            metadata: ["command": "\(stored.id)", "employee": "\(stored.command.employeeID)", "event": "\(stored.command.eventID)"])
        } catch {
            logger.error("Could not hold a command; its lease will expire and it is checked again", metadata: ["command": "\(stored.id)", "error": "\(error)"])
        }
        outboxWakeup?.signal()
    }

    private func supersede(_ stored: StoredCommand, lease: CommandLease?, now: Date) async {
        do {
            try await store.write { tx in
                if let lease { try await tx.assertHolds(lease) }
                try await self.factory.supersede(stored, in: tx, now: now)
            }
        } catch is LeaseLost {
            logger.notice("Claim lost before superseding a command; the worker that holds it now decides", metadata: ["command": "\(stored.id)"])
        } catch {
            logger.error("Could not record a superseded command; its lease will expire and it is checked again",
                         metadata: ["command": "\(stored.id)", "error": "\(error)"])
        }
        outboxWakeup?.signal()
    }

    private func complete(_ stored: StoredCommand, outcome: ApplyOutcome, now: Date) async throws {
        // The event's writes: those of earlier attempts that failed part-way, then this one's.
        let operations = stored.doneOperations + outcome.operations
        let resultOutcome: ProvisioningOutcome = outcome.deleteAt != nil ? .scheduled : (operations.isEmpty ? .noChange : .applied)
        try await store.write { tx in
            try await self.assertHolds(stored, tx)
            try await tx.updateCommand(id: stored.id, state: .done, attempts: stored.attempts + 1, nextAttemptAt: nil,
                                       firstFailureAt: stored.firstFailureAt, lastError: nil, now: now)
            if var state = try await tx.employeeState(stored.command.employeeID) {
                state.duoUserID = outcome.operations.last == .deleteUser ? nil : (outcome.userID ?? state.duoUserID)
                state.lockedOut = stored.command.desired.terminated
                try await tx.saveEmployeeState(state)
            }
            // The link follows a rename, so the next employee who wants this username is a conflict
            // at once, and the old one is free again.
            if let userID = outcome.userID, let username = stored.command.desired.username {
                _ = try await tx.claimDuoUser(userID, username: username, employeeID: stored.command.employeeID)
            }
            if let deleteAt = outcome.deleteAt, try await tx.waitingCommand(employeeID: stored.command.employeeID) == nil {
                try await tx.insertCommand(NewCommand(command: stored.command, source: stored.source, notBefore: deleteAt, isFollowUp: true))
            }
            if !stored.isFollowUp {
                try await tx.enqueue(self.factory.result(for: .init(stored.command), record: stored.source, outcome: resultOutcome, userID: outcome.userID,
                                              operations: operations, attempts: stored.attempts + 1, now: now))
            }
        }
        Counter(label: "duo_lifecycle_commands_total", dimensions: [("outcome", resultOutcome.rawValue)]).increment()
        // The leaver promise, measured: publication (the record's timestamp) to Duo user disabled.
        if stored.command.eventType == .terminated, !stored.isFollowUp, outcome.operations.contains(where: { [.disableUser, .sendToTrash, .deleteUser].contains($0) }) {
            let published = stored.source.timestampMs.map { Double($0) / 1000 } ?? stored.source.receivedAt.timeIntervalSince1970
            let seconds = max(0, Date().timeIntervalSince1970 - published)
            Timer(label: "duo_lifecycle_lockout_seconds").recordNanoseconds(Int64(seconds * 1e9))
            LockoutWindow.shared.record(seconds)
        }
    }

    private func retryOrGiveUp(_ stored: StoredCommand, error: DirectoryError, operations: [DuoOperationKind], userID: String?, now: Date) async throws {
        let attempts = stored.attempts + 1
        let firstFailure = stored.firstFailureAt ?? now
        let policy = configuration.retry
        let tooOld = now.timeIntervalSince(firstFailure) >= policy.maxAge / .seconds(1)
        let tooMany = policy.maxAttempts.map { attempts >= $0 } ?? false
        // Give up only when Duo has answered other calls since this command first failed: a failure
        // that only an outage explains never dead-letters, however long it lasts.
        let duoAnsweredSince = (breaker.lastSuccessAt ?? .distantPast) > firstFailure
        if (tooOld || tooMany) && duoAnsweredSince {
            try await deadLetter(stored, reason: .retriesExhausted, code: error.code,
                           message: "Gave up after \(attempts) attempts over \(Int(now.timeIntervalSince(firstFailure))) s: \(error.description)",
                           retriable: true, operations: operations, userID: userID, attempts: attempts, now: now, firstFailure: firstFailure)
            return
        }
        let delay = policy.delay(afterAttempts: attempts)
        try await store.write { tx in
            try await self.assertHolds(stored, tx)
            try await tx.addDoneOperations(commandID: stored.id, operations)
            try await tx.updateCommand(id: stored.id, state: .retry, attempts: attempts, nextAttemptAt: now.addingTimeInterval(delay / .seconds(1)),
                                       firstFailureAt: firstFailure, lastError: error.description, now: now)
        }
        Counter(label: "duo_lifecycle_retries_total").increment()
        logger.debug("Command failed; retrying", metadata: ["employee": "\(stored.command.employeeID)", "attempt": "\(attempts)",
                                                           "delay_ms": "\(Int64(delay / .milliseconds(1)))",
                                                           "error": "\(error)"])
    }

    private func deadLetter(_ stored: StoredCommand, reason: DeadLetterReason, code: String, message: String, retriable: Bool,
                            operations: [DuoOperationKind], userID: String?, attempts: Int, now: Date, firstFailure: Date? = nil) async throws {
        try await store.write { tx in
            try await self.assertHolds(stored, tx)
            try await tx.updateCommand(id: stored.id, state: .dead, attempts: attempts, nextAttemptAt: nil,
                                 firstFailureAt: firstFailure ?? stored.firstFailureAt ?? now, lastError: message, now: now)
            if !stored.isFollowUp {
                try await tx.enqueue(self.factory.deadLetter(record: stored.source, reason: reason, message: message, errorCode: code, attempts: attempts,
                                                  firstFailureAt: firstFailure ?? stored.firstFailureAt ?? now))
                try await tx.enqueue(self.factory.result(for: .init(stored.command), record: stored.source, outcome: .deadLettered, userID: userID,
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

    func claim(duoUserID: String, username: String, for employeeID: String) async throws(DirectoryError) -> String? {
        do {
            return try await store.write { tx in try await tx.claimDuoUser(duoUserID, username: username, employeeID: employeeID) }
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
