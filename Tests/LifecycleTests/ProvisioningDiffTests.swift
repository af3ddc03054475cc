import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import Lifecycle
import LifecycleWorker
import Logging
import Synchronization
import Testing

@Suite("The difference computation")
struct ProvisioningDiffTests {
    static let managed: Set<String> = ["Engineering", "VPN", "Sales"]
    static let now = Date(timeIntervalSince1970: 10_000)

    static func desired(status: DesiredDuoState.Status = .active, groups: Set<String>? = ["Engineering", "VPN"], terminated: Bool = false,
                        removal: DesiredDuoState.Removal = .none, email: String = "ada@example.com") -> DesiredDuoState {
        DesiredDuoState(employeeID: "E1", profile: EmployeeProfile(username: "ada", email: email, firstName: "Ada", lastName: "Lovelace"),
                        status: status, groups: groups, terminated: terminated, removal: removal)
    }

    static func current(status: String = "active", groups: [String: String] = ["Engineering": "DG1", "VPN": "DG2"], email: String = "ada@example.com") -> DuoUserSnapshot {
        DuoUserSnapshot(userID: "DU1", username: "ada", profile: EmployeeProfile(email: email, firstName: "Ada", lastName: "Lovelace", displayName: "Ada Lovelace"),
                        status: status, groups: groups)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var desired: DesiredDuoState
        var current: DuoUserSnapshot?
        var existing: Set<String> = ["Engineering", "VPN", "Sales", "Finance"]
        var expected: [DuoOperation]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "create a new user with groups, creating a missing group", desired: desired(groups: ["Engineering", "Platform"]), current: nil,
             expected: [.createUser(DuoUserChanges(profile: EmployeeProfile(username: "ada", email: "ada@example.com", firstName: "Ada", lastName: "Lovelace", displayName: "Ada Lovelace"), status: "active")),
                        .addGroup(name: "Engineering"), .createGroup(name: "Platform"), .addGroup(name: "Platform")]),
        Case(name: "no-op when Duo already matches", desired: desired(), current: current(), expected: []),
        Case(name: "update changed profile fields only", desired: desired(email: "ada.king@example.com"), current: current(),
             expected: [.updateUser(DuoUserChanges(profile: EmployeeProfile(email: "ada.king@example.com")))]),
        Case(name: "email case differences are not changes", desired: desired(email: "ADA@example.com"), current: current(), expected: []),
        Case(name: "add and remove managed groups; leave unmanaged ones alone", desired: desired(groups: ["Sales", "VPN"]),
             current: current(groups: ["Engineering": "DG1", "VPN": "DG2", "Finance": "DG9"]),
             expected: [.addGroup(name: "Sales"), .removeGroup(name: "Engineering")]),
        Case(name: "disable a leaver first", desired: desired(status: .disabled, groups: [], terminated: true), current: current(),
             expected: [.disableUser, .removeGroup(name: "Engineering"), .removeGroup(name: "VPN")]),
        Case(name: "a leaver already disabled needs nothing", desired: desired(status: .disabled, terminated: true), current: current(status: "disabled"), expected: []),
        Case(name: "a leaver with no Duo user needs nothing", desired: desired(status: .disabled, terminated: true), current: nil, expected: []),
        Case(name: "enable a rehire", desired: desired(), current: current(status: "disabled"), expected: [.enableUser]),
        Case(name: "restore a rehire from the Trash", desired: desired(), current: current(status: "pending deletion"), expected: [.restoreFromTrash]),
        Case(name: "trash a leaver", desired: desired(status: .disabled, terminated: true, removal: .trash), current: current(), expected: [.disableUser, .sendToTrash]),
        Case(name: "delete a leaver once the grace period is over", desired: desired(status: .disabled, terminated: true, removal: .delete(at: Date(timeIntervalSince1970: 9_000))),
             current: current(status: "disabled"), expected: [.deleteUser]),
        Case(name: "groups are left alone when no event said which", desired: desired(groups: nil), current: current(groups: ["Sales": "DG3"]), expected: []),
    ]

    @Test("Operations", arguments: cases)
    func operations(_ c: Case) throws {
        let diff = try ProvisioningDiff.compute(desired: c.desired, current: c.current, existingGroups: c.existing, managedGroups: Self.managed,
                                                createMissingGroups: true, now: Self.now).get()
        #expect(diff.operations == c.expected)
    }

    @Test("A deletion not yet due is scheduled")
    func scheduledDeletion() throws {
        let due = Date(timeIntervalSince1970: 20_000)
        let diff = try ProvisioningDiff.compute(desired: Self.desired(status: .disabled, terminated: true, removal: .delete(at: due)),
                                                current: Self.current(), existingGroups: [], managedGroups: Self.managed, createMissingGroups: true, now: Self.now).get()
        #expect(diff.operations == [.disableUser])
        #expect(diff.deleteAt == due)
    }

    @Test("A missing group that may not be created is a policy violation")
    func missingGroup() {
        let result = ProvisioningDiff.compute(desired: Self.desired(groups: ["Platform"]), current: Self.current(groups: [:]), existingGroups: [],
                                              managedGroups: ["Platform"], createMissingGroups: false, now: Self.now)
        guard case .failure(let v) = result else { Issue.record("no violation"); return }
        #expect(v.code == "missing_group")
    }
}

@Suite("Applying commands against the emulator", .timeLimit(.minutes(1)))
struct CommandApplierTests {
    @Test("Applying a command makes the needed writes; applying it again makes none")
    func idempotent() async throws {
        var config = DuoEmulatorConfiguration(integrations: ["DIAPPLIERTEST0000001": DuoSecretKey("applier-secret")])
        config.controlEnabled = true
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        let emulator = try await EmbeddedEmulator.start(try DuoEmulator(configuration: config, logger: quiet), logger: quiet)
        let url = emulator.url
        var clientConfig = DuoAdminConfiguration(endpoint: .url(url), integrationKey: "DIAPPLIERTEST0000001", secretKey: DuoSecretKey("applier-secret"))
        clientConfig.requestsPerSecond = nil
        let client = DuoAdminClient(configuration: clientConfig, logger: quiet)
        let directory = DuoAdminDirectory(client: client)
        let ledger = MemoryLedger()
        _ = emulator.directory.seed(users: [], groups: ["VPN", "Finance"])

        let mapping = LifecyclePlannerTests.mapping
        let planner = LifecyclePlanner(mapping: mapping, termination: TerminationPolicy())
        let applier = CommandApplier(mapping: mapping)
        guard case .command(let hire, let state) = planner.plan(event(.hired, seq: 1, roles: ["engineering"], first: "Ada"), state: nil) else {
            Issue.record("no command"); return
        }
        let first = try await applier.apply(hire, known: KnownIdentity(), directory: directory, ledger: ledger).get()
        #expect(first.operations == [.createUser, .createGroup, .addGroup, .addGroup])
        let user = try #require(emulator.directory.user(username: "ada"))
        #expect(Set(user.groups.map(\.name)) == ["Engineering", "VPN"] && user.status == .active)
        let journalAfterFirst = emulator.directory.journal().count

        let second = try await applier.apply(hire, known: KnownIdentity(userIDs: [first.userID].compactMap { $0 }), directory: directory, ledger: ledger).get()
        #expect(second.operations == [], "the second application makes no writes")
        #expect(emulator.directory.journal().count == journalAfterFirst)

        // An unmanaged group added in Duo by someone else survives a termination that removes managed groups.
        try await client.addUser(user.userID, toGroup: emulator.directory.allGroups.first { $0.name == "Finance" }!.groupID)
        let remover = LifecyclePlanner(mapping: mapping, termination: TerminationPolicy(removeManagedGroups: true))
        guard case .command(let leave, _) = remover.plan(event(.terminated, seq: 2, email: nil), state: state) else { Issue.record("no command"); return }
        let third = try await applier.apply(leave, known: KnownIdentity(userIDs: [first.userID].compactMap { $0 }), directory: directory, ledger: ledger).get()
        #expect(third.operations.first == .disableUser)
        #expect(emulator.directory.user(id: user.userID)?.status == .disabled)
        #expect(emulator.directory.user(id: user.userID)?.groups.map(\.name) == ["Finance"])
        #expect(try await applier.apply(leave, known: KnownIdentity(userIDs: [first.userID].compactMap { $0 }), directory: directory, ledger: ledger).get().operations == [])

        try await client.shutdown()
        await emulator.stop()
    }
}

/// Links in memory, for applying commands outside the worker.
final class MemoryLedger: IdentityLedger {
    let owners = Mutex<[String: String]>([:])
    func claim(duoUserID: String, username: String, for employeeID: String) throws(DirectoryError) -> String? {
        owners.withLock { o in
            if let owner = o[duoUserID], owner != employeeID { return owner }
            o[duoUserID] = employeeID
            return nil
        }
    }
}
