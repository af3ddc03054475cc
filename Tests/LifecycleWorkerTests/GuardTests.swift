import DuoEmulator
import Foundation
import Lifecycle
import LifecycleStore
import LifecycleWorker
import Testing

@Suite("Mass-deprovision guard", .timeLimit(.minutes(5)))
struct GuardTests {
    @Test("100 terminations within a minute against a threshold of 50: 50 applied at once, 50 held; approving applies the rest; none re-enabled")
    func holdsPastTheThreshold() async throws {
        let h = try await WorkerHarness { $0.massDeprovisionGuard = MassDeprovisionGuard(maxDisables: 50, window: .seconds(60)) }
        try h.startWorker()
        let staff = (0..<100).map { String(format: "M%03d", $0) }
        try await h.publish(staff.map { WorkerHarness.event("hired", $0, seq: 1, roles: ["sales"]) })
        let hires = try await h.results(count: 100)
        #expect(Set(hires.map(\.outcome)) == ["applied"])

        try await h.publish(staff.map { WorkerHarness.event("terminated", $0, seq: 2) })
        let afterLeaving = try await h.results(count: 200).filter { $0.eventID?.hasSuffix("-terminated-2") == true }
        let outcomes = Dictionary(grouping: afterLeaving, by: \.outcome).mapValues(\.count)
        #expect(outcomes == ["applied": 50, "held": 50], "\(outcomes)")
        let disabled = staff.filter { h.emulator.directory.user(username: "\($0.lowercased())")?.status == .disabled }
        #expect(disabled.count == 50, "only the first 50 are locked out before an operator decides")

        let store = try SQLiteLifecycleStore(path: h.storePath)
        let holds = HeldCommands(store: store, configuration: h.configuration)
        let held = try await holds.list()
        #expect(held.count == 50 && held.allSatisfy { $0.command.desired.terminated })
        let decision = try await holds.approve(ids: nil)
        #expect(decision.approved.count == 50 && decision.superseded.isEmpty)
        let all = try await h.results(count: 250).filter { $0.eventID?.hasSuffix("-terminated-2") == true }
        #expect(all.filter { $0.outcome == "applied" }.count == 100)
        try await h.waitUntil("every leaver is locked out") {
            staff.allSatisfy { h.emulator.directory.user(username: "\($0.lowercased())")?.status == .disabled }
        }
        #expect(try await holds.list().isEmpty)
        // Nothing ever re-enabled a leaver: after a user's first disabled state, every later state is disabled too.
        for employee in staff {
            let id = try #require(h.emulator.directory.user(username: employee.lowercased())?.userID)
            let states = h.emulator.directory.journal().filter { $0.userID == id }.compactMap { $0.user?.status }
            let afterLockout = states.drop { $0 != .disabled }
            #expect(!afterLockout.isEmpty && afterLockout.allSatisfy { $0 == .disabled }, "\(employee): \(states)")
        }
        await h.shutdown()
    }

    @Test("Rejecting a held termination never applies it and says so in a rejected result; a rehire while held supersedes it on approval")
    func rejectAndSupersede() async throws {
        let h = try await WorkerHarness { $0.massDeprovisionGuard = MassDeprovisionGuard(maxDisables: 1, window: .seconds(60)) }
        try h.startWorker()
        let staff = ["R1", "R2", "R3"]
        try await h.publish(staff.map { WorkerHarness.event("hired", $0, seq: 1, roles: ["sales"]) })
        _ = try await h.results(count: 3)
        try await h.publish(staff.map { WorkerHarness.event("terminated", $0, seq: 2) })
        let leaving = try await h.results(count: 6).filter { $0.eventID?.hasSuffix("-terminated-2") == true }
        #expect(Dictionary(grouping: leaving, by: \.outcome).mapValues(\.count) == ["applied": 1, "held": 2])
        let holds = HeldCommands(store: try SQLiteLifecycleStore(path: h.storePath), configuration: h.configuration)
        let held = try await holds.list()
        let (first, second) = (held[0], held[1])
        let rejected = try await holds.reject(ids: [first.id, 999_999])
        #expect(rejected.rejected == [first.id] && rejected.notHeld == [999_999])
        // The other one's employee is rehired while held: approving it must not lock them out.
        try await h.publish([WorkerHarness.event("rehired", second.command.employeeID, seq: 3, roles: ["sales"])])
        _ = try await h.results(count: 8)
        let approved = try await holds.approve(ids: nil)
        #expect(approved.superseded == [second.id] && approved.approved.isEmpty)
        let results = try await h.results(count: 9)
        #expect(results.contains { $0.eventID == first.command.eventID && $0.outcome == "rejected" })
        #expect(results.contains { $0.eventID == second.command.eventID && $0.outcome == "superseded" })
        try await Task.sleep(for: .seconds(1))
        #expect(h.emulator.directory.user(username: first.command.employeeID.lowercased())?.status == .active, "a rejected termination is never applied")
        #expect(h.emulator.directory.user(username: second.command.employeeID.lowercased())?.status == .active, "the rehire stands")
        await h.shutdown()
    }
}
