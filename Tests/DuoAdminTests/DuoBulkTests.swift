import DuoAdmin
import DuoEmulator
import Foundation
import Testing

@Suite("Duo bulk requests against the emulator over HTTP", .timeLimit(.minutes(2)))
struct DuoBulkTests {
    @Test("POST /admin/v1/bulk: one signed request (counted once by the rate limit) performs every kind of write in order, and each operation has its own outcome",
          arguments: DuoSignatureScheme.allCases)
    func bulkWrites(scheme: DuoSignatureScheme) async throws {
        let fx = try await EmulatorFixture.start { $0.faults.rateLimit = 1 }
        let client = fx.client(signature: scheme)
        // Seeded, not created over HTTP: the bulk request must be the only call of its one-second window.
        let existingUser = try #require(try JSONDecoder().decode([DuoEmulatorSeedUser].self, from: Data(#"[{"username":"taken"}]"#.utf8)).first)
        _ = fx.emulator.directory.seed(users: [existingUser], groups: ["Engineering"])
        let existing = try #require(fx.emulator.directory.user(username: "taken"))
        let eng = try #require(fx.emulator.directory.allGroups.first { $0.name == "Engineering" }).groupID
        let operations: [DuoBulkOperation] = [
            .createUser(DuoUserFields(username: "ada", email: "ada@example.com")),
            .createUser(DuoUserFields(username: "taken")),  // refused: the name exists
            .modifyUser(id: existing.userID, DuoUserFields(realname: "Taken Q.", status: .disabled)),
            .addUser(existing.userID, toGroup: eng),
            .addUser(existing.userID, toGroup: "DGNOSUCHGROUP0000000"),  // refused: no such group
            .removeUser(existing.userID, fromGroup: eng),
            .deleteUser(id: "DUNOSUCHUSER00000000"),  // deleting nobody succeeds, as the single call does
        ]
        let outcomes = try await client.bulk(operations)
        try await client.shutdown()
        defer { Task { await fx.stop() } }
        #expect(outcomes.count == 7)
        guard case .ok(let createdData) = outcomes[0] else { Issue.record("create: \(outcomes[0])"); return }
        let created = try DuoAdminClient.bulkUser(createdData, of: .createUser(DuoUserFields(username: "ada")))
        #expect(created.username == "ada" && created.email == "ada@example.com" && created.userID.hasPrefix("DU"))
        guard case .failed(let duplicate) = outcomes[1] else { Issue.record("duplicate: \(outcomes[1])"); return }
        #expect(duplicate.code == 40002 && duplicate.messageDetail?.contains("already") == true && !duplicate.isRetriable)
        #expect(duplicate.request == "POST /admin/v1/users", "the error names the operation, not the bulk request")
        guard case .ok = outcomes[2], case .ok = outcomes[3], case .failed(let noGroup) = outcomes[4], case .ok = outcomes[5], case .ok = outcomes[6] else {
            Issue.record("outcomes: \(outcomes)"); return
        }
        #expect(noGroup.code == 40002)
        let after = try #require(fx.emulator.directory.user(id: existing.userID))
        #expect(after.status == .disabled && after.realname == "Taken Q." && after.groups.isEmpty)
        #expect(fx.emulator.directory.user(username: "ada") != nil)
        // The journal records each operation as made through a bulk request, in order.
        let journal = fx.emulator.directory.journal().filter { $0.bulk == true }
        #expect(journal.map(\.operation) == ["create_user", "modify_user", "add_user_group", "remove_user_group"])
        #expect(fx.emulator.counters["POST /admin/v1/bulk"] == ["200": 1], "one request, not rate-limited at 1 per second")
    }

    @Test("A malformed bulk request fails whole and changes nothing: more than 50 operations, an operation bulk does not allow, not a list")
    func malformedBulkChangesNothing() async throws {
        let fx = try await EmulatorFixture.start()
        let client = fx.client()
        // The client refuses more than 50 itself; the emulator refuses them too.
        await #expect(throws: DuoAdminError.self) { try await client.bulk((0..<51).map { DuoBulkOperation.createUser(DuoUserFields(username: "u\($0)")) }) }
        let tooMany = (0..<51).map { ["method": "POST", "path": "/admin/v1/users", "body": ["username": "u\($0)"]] }
        let raw = String(decoding: try JSONSerialization.data(withJSONObject: tooMany), as: UTF8.self)
        let refused = await #expect(throws: DuoAdminError.self) { try await client.call(.POST, "/admin/v1/bulk", parameters: [DuoParameter("operations", raw)]) }
        #expect(refused?.code == 40002 && refused?.httpStatus == 400)
        let groupCreate = #"[{"method":"POST","path":"/admin/v1/users","body":{"username":"x"}},{"method":"POST","path":"/admin/v1/groups","body":{"name":"G"}}]"#
        let notAllowed = await #expect(throws: DuoAdminError.self) { try await client.call(.POST, "/admin/v1/bulk", parameters: [DuoParameter("operations", groupCreate)]) }
        #expect(notAllowed?.messageDetail?.contains("not allowed in a bulk request") == true)
        await #expect(throws: DuoAdminError.self) { try await client.call(.POST, "/admin/v1/bulk", parameters: [DuoParameter("operations", "{}")]) }
        #expect(fx.emulator.directory.allUsers.isEmpty && fx.emulator.directory.allGroups.isEmpty, "nothing was done")
        try await client.shutdown()
        await fx.stop()
    }
}
