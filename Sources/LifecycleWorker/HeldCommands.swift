import Foundation
import Lifecycle
import LifecycleStore
import Logging

/// What an operator does with commands the mass-deprovision guard held back.
public struct HeldCommands: Sendable {
    let store: any LifecycleStore
    let factory: OutboxMessageFactory

    public init(store: any LifecycleStore, configuration: PipelineConfiguration) {
        self.store = store
        self.factory = OutboxMessageFactory(configuration: configuration)
    }

    /// The held commands, oldest first.
    public func list() async throws -> [StoredCommand] {
        try await store.allCommands().filter { $0.state == .held }
    }

    public struct Decision: Sendable, Equatable {
        /// Released to run (the worker applies them within a second).
        public var approved: [Int64] = []
        /// Overtaken by a newer command of the same employee while held: never applied.
        public var superseded: [Int64] = []
        public var rejected: [Int64] = []
        /// Ids given that are not held.
        public var notHeld: [Int64] = []
    }

    /// Lets held commands run; `ids` nil means all of them. A held command whose employee has a
    /// newer command (a rehire while it waited) is superseded instead, so approving never applies
    /// an outdated state.
    public func approve(ids: [Int64]?, now: Date = Date()) async throws -> Decision {
        var decision = Decision()
        let held = try await list()
        decision.notHeld = (ids ?? []).filter { id in !held.contains { $0.id == id } }
        for command in held where ids?.contains(command.id) ?? true {
            let superseded = try await store.write { tx -> Bool in
                if let newest = try await tx.newestCommand(employeeID: command.command.employeeID), newest.id > command.id {
                    _ = try await self.factory.supersede(command, in: tx, now: now)
                    return true
                }
                try await tx.approveDisable(commandID: command.id, now: now)
                try await tx.updateCommand(id: command.id, state: .pending, attempts: command.attempts, nextAttemptAt: now,
                                           firstFailureAt: command.firstFailureAt, lastError: "approved after the mass-deprovision guard held it", now: now)
                return false
            }
            if superseded { decision.superseded.append(command.id) } else { decision.approved.append(command.id) }
        }
        return decision
    }

    /// Drops held commands for good; their events' results say `rejected`.
    public func reject(ids: [Int64]?, now: Date = Date()) async throws -> Decision {
        var decision = Decision()
        let held = try await list()
        decision.notHeld = (ids ?? []).filter { id in !held.contains { $0.id == id } }
        for command in held where ids?.contains(command.id) ?? true {
            try await store.write { tx in
                try await tx.updateCommand(id: command.id, state: .rejected, attempts: command.attempts, nextAttemptAt: nil,
                                           firstFailureAt: command.firstFailureAt, lastError: "rejected by an operator", now: now)
                if !command.isFollowUp {
                    try await tx.enqueue(self.factory.result(for: .init(command.command), record: command.source, outcome: .rejected,
                                                             operations: command.doneOperations, attempts: command.attempts, now: now))
                }
            }
            decision.rejected.append(command.id)
        }
        return decision
    }
}
