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
        let recording = RecordingDirectory(base: directory)
        // As the dispatcher runs a termination: at the Duo client's urgent priority.
        let third = try await DuoRequestPriority.$current.withValue(.urgent) {
            try await applier.apply(leave, known: KnownIdentity(userIDs: [first.userID].compactMap { $0 }), directory: recording, ledger: ledger).get()
        }
        #expect(third.operations.first == .disableUser)
        #expect(recording.calls.first == "updateUser(status: disabled) urgent", "the lockout is the first call, before any read: \(recording.calls)")
        #expect(recording.calls.dropFirst().allSatisfy { !$0.hasSuffix("urgent") }, "what follows the lockout is not urgent: \(recording.calls)")
        #expect(emulator.directory.user(id: user.userID)?.status == .disabled)
        #expect(emulator.directory.user(id: user.userID)?.groups.map(\.name) == ["Finance"])
        // Once a termination has been applied, a replay of it reads first and makes no write.
        let replay = RecordingDirectory(base: directory)
        #expect(try await applier.apply(leave, known: KnownIdentity(userIDs: [first.userID].compactMap { $0 }, lockedOut: true), directory: replay, ledger: ledger)
            .get().operations == [])
        #expect(!replay.calls.contains { $0.hasPrefix("updateUser") })
        // A linked user Duo no longer has: the lockout-first write fails with not found, and the
        // leaver is looked for by username as usual (here: nobody left to lock out).
        let gone = try await applier.apply(leave, known: KnownIdentity(userIDs: ["DUNOSUCHUSER00000000"]), directory: directory, ledger: ledger).get()
        #expect(gone.operations == [], "\(gone.operations)")

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

/// Records the calls made through it, marking those made at the Duo client's urgent priority.
final class RecordingDirectory: DuoDirectoryPort, Sendable {
    let base: DuoAdminDirectory
    private let log = Mutex<[String]>([])
    init(base: DuoAdminDirectory) { self.base = base }
    var calls: [String] { log.withLock { $0 } }
    private func note(_ call: String) { log.withLock { $0.append(call + (DuoRequestPriority.current == .urgent ? " urgent" : "")) } }

    func afterLockout<T: Sendable>(_ body: @Sendable () async -> T) async -> T { await base.afterLockout(body) }
    func user(id: String) async throws(DirectoryError) -> DuoUserSnapshot? { note("user(id)"); return try await base.user(id: id) }
    func user(username: String) async throws(DirectoryError) -> DuoUserSnapshot? { note("user(username)"); return try await base.user(username: username) }
    func groupIDs(named names: Set<String>) async throws(DirectoryError) -> [String: String] { note("groupIDs"); return try await base.groupIDs(named: names) }
    func createUser(_ changes: DuoUserChanges) async throws(DirectoryError) -> DuoUserSnapshot { note("createUser"); return try await base.createUser(changes) }
    func updateUser(id: String, _ changes: DuoUserChanges) async throws(DirectoryError) {
        note("updateUser\(changes.status.map { "(status: \($0))" } ?? "")")
        try await base.updateUser(id: id, changes)
    }
    func createGroup(name: String) async throws(DirectoryError) -> String { note("createGroup"); return try await base.createGroup(name: name) }
    func addUser(_ userID: String, toGroup groupID: String) async throws(DirectoryError) { note("addUser"); try await base.addUser(userID, toGroup: groupID) }
    func removeUser(_ userID: String, fromGroup groupID: String) async throws(DirectoryError) { note("removeUser"); try await base.removeUser(userID, fromGroup: groupID) }
    func deleteUser(id: String) async throws(DirectoryError) { note("deleteUser"); try await base.deleteUser(id: id) }
    func sendToTrash(userID: String) async throws(DirectoryError) { note("sendToTrash"); try await base.sendToTrash(userID: userID) }
    func restoreFromTrash(userID: String) async throws(DirectoryError) { note("restoreFromTrash"); try await base.restoreFromTrash(userID: userID) }
}
