import DuoAdmin
import DuoEmulator
import Foundation
import Testing

@Suite("Duo client against the emulator over HTTP", .timeLimit(.minutes(2)))
struct DuoClientEmulatorTests {
    @Test("Every operation works, and the emulator's state shows it", arguments: DuoSignatureScheme.allCases)
    func everyOperation(scheme: DuoSignatureScheme) async throws {
        let fx = try await EmulatorFixture.start()
        let client = fx.client(signature: scheme)

        // Users: create, read, find, modify.
        let created = try await client.createUser(DuoUserFields(username: "jdoe", realname: "Jane Doe", email: "jane@example.com",
                                                                firstname: "Jane", lastname: "Doe", notes: "hired"))
        #expect(created.userID.hasPrefix("DU") && created.userID.count == 20)
        #expect(fx.emulator.directory.user(username: "jdoe")?.email == "jane@example.com")
        #expect(try await client.getUser(id: created.userID).realname == "Jane Doe")
        #expect(try await client.findUser(username: "jdoe")?.userID == created.userID)
        #expect(try await client.findUser(username: "nobody") == nil)
        #expect(try await client.findUsers(email: "jane@example.com").map(\.userID) == [created.userID])
        let modified = try await client.modifyUser(id: created.userID, DuoUserFields(realname: "Jane Q. Doe", status: .disabled))
        #expect(modified.status == .disabled && modified.realname == "Jane Q. Doe")
        #expect(fx.emulator.directory.user(id: created.userID)?.status == .disabled)
        #expect(fx.emulator.directory.user(id: created.userID)?.email == "jane@example.com", "a partial update leaves other fields")

        // Groups and memberships.
        let eng = try await client.createGroup(name: "Engineering", desc: "Engineers")
        let vpn = try await client.createGroup(name: "VPN")
        #expect(eng.groupID.hasPrefix("DG") && eng.groupID.count == 20)
        #expect(try await client.getGroup(id: eng.groupID).name == "Engineering")
        #expect(try await client.modifyGroup(id: vpn.groupID, desc: "Remote access").desc == "Remote access")
        #expect(Set(try await client.listGroups().map(\.name)) == ["Engineering", "VPN"])
        try await client.addUser(created.userID, toGroup: eng.groupID)
        try await client.addUser(created.userID, toGroup: vpn.groupID)
        try await client.addUser(created.userID, toGroup: vpn.groupID)  // idempotent
        #expect(try await client.listUserGroups(userID: created.userID).map(\.name) == ["Engineering", "VPN"])
        #expect(try await client.groupMembers(groupID: eng.groupID).collect().map(\.username) == ["jdoe"])
        #expect(fx.emulator.directory.user(id: created.userID)?.groups.map(\.name) == ["Engineering", "VPN"])
        try await client.removeUser(created.userID, fromGroup: vpn.groupID)
        try await client.removeUser(created.userID, fromGroup: vpn.groupID)  // removing again succeeds
        #expect(fx.emulator.directory.user(id: created.userID)?.groups.map(\.name) == ["Engineering"])

        // Enrollment, trash and restore.
        try await client.enrollUser(username: "newbie", email: "newbie@example.com", validFor: .seconds(3600))
        try await client.sendToTrash(userIDs: [created.userID])
        #expect(fx.emulator.directory.user(id: created.userID)?.status == .pendingDeletion)
        try await client.restoreFromTrash(userIDs: [created.userID])
        #expect(fx.emulator.directory.user(id: created.userID)?.status == .active)

        // Deletes: idempotent, and a get afterwards is a 404/40401.
        try await client.deleteGroup(id: vpn.groupID)
        #expect(fx.emulator.directory.allGroups.map(\.name) == ["Engineering"])
        try await client.deleteUser(id: created.userID)
        try await client.deleteUser(id: created.userID)
        #expect(fx.emulator.directory.user(id: created.userID) == nil)
        let notFound = await #expect(throws: DuoAdminError.self) { try await client.getUser(id: created.userID) }
        #expect(notFound?.code == 40401 && notFound?.httpStatus == 404 && notFound?.isRetriable == false)

        try await client.shutdown()
        await fx.stop()
    }

    @Test("Unicode names and emails are signed correctly", arguments: DuoSignatureScheme.allCases)
    func unicode(scheme: DuoSignatureScheme) async throws {
        let fx = try await EmulatorFixture.start()
        let client = fx.client(signature: scheme)
        let user = try await client.createUser(DuoUserFields(username: "jösé.ñúñez", realname: "José Ñúñez 测试 🚀",
                                                             email: "jösé@exämple.com", lastname: "Ñúñez / O'Brien + Co & *"))
        #expect(user.realname == "José Ñúñez 测试 🚀")
        #expect(try await client.findUser(username: "jösé.ñúñez")?.lastname == "Ñúñez / O'Brien + Co & *")
        #expect(fx.emulator.directory.user(username: "jösé.ñúñez")?.email == "jösé@exämple.com")
        try await client.shutdown()
        await fx.stop()
    }

    @Test("Listing 750 users across pages of 300 returns 750 distinct users")
    func paging() async throws {
        let fx = try await EmulatorFixture.start()
        _ = fx.emulator.directory.seed(users: (0..<750).map { DuoEmulatorSeedUser(username: "user\($0)") }, groups: [])
        let client = fx.client()
        var pages = 0
        for try await _ in client.users() { pages += 1 }
        let users = try await client.listUsers()
        #expect(users.count == 750)
        #expect(Set(users.map(\.userID)).count == 750)
        let counters = fx.emulator.counters["GET /admin/v1/users"]?["200"]
        #expect(counters == 6, "3 pages per listing, twice")
        try await client.shutdown()
        await fx.stop()
    }

    @Test("A page limit above Duo's maximum is clamped, and metadata says where the next page starts")
    func clamping() async throws {
        let fx = try await EmulatorFixture.start()
        _ = fx.emulator.directory.seed(users: (0..<350).map { DuoEmulatorSeedUser(username: "u\($0)") }, groups: [])
        let client = fx.client()
        let first = try await client.call(.GET, "/admin/v1/users", parameters: [.init("limit", "1000")])
        #expect((first.response as? [Any])?.count == 300)
        #expect(first.metadata == DuoPageMetadata(totalObjects: 350, nextOffset: 300, prevOffset: nil))
        let second = try await client.call(.GET, "/admin/v1/users", parameters: [.init("limit", "300"), .init("offset", "300")])
        #expect((second.response as? [Any])?.count == 50)
        #expect(second.metadata == DuoPageMetadata(totalObjects: 350, nextOffset: nil, prevOffset: 0))
        try await client.shutdown()
        await fx.stop()
    }

    @Test("A client released without shutdown() closes its own connections; AsyncHTTPClient trapped on it in a debug build")
    func releasedClientClosesItsConnections() async throws {
        let fx = try await EmulatorFixture.start()
        let port = try #require(URLComponents(string: fx.url)?.port)
        do {
            // As on an error path that skips shutdown(): the client goes out of scope with a connection open.
            let client = fx.client()
            _ = try await client.listUsers()
            withExtendedLifetime(client) { #expect(Self.establishedConnections(toPort: port) > 0) }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.establishedConnections(toPort: port) > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(Self.establishedConnections(toPort: port) == 0, "closed at once, not left to idle out after 60 s")
        await fx.stop()
    }

    /// Established TCP connections whose remote end is this port on the machine (Linux's /proc/net/tcp).
    static func establishedConnections(toPort port: Int) -> Int {
        ["/proc/net/tcp", "/proc/net/tcp6"].reduce(0) { count, path in
            // Read to the end: procfs files report no size, and a single read gets one page of sockets.
            let data = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: path)).readToEnd()) ?? nil
            let lines = String(decoding: data ?? Data(), as: UTF8.self).split(separator: "\n").dropFirst()
            return count + lines.filter { line in
                let fields = line.split(separator: " ")
                guard fields.count > 3, let remote = fields[2].split(separator: ":").last else { return false }
                return Int(remote, radix: 16) == port && fields[3] == "01"
            }.count
        }
    }

    @Test("429 to the first three calls: the fourth succeeds, after waits of 1, 2 and 4 s plus jitter")
    func retriesOn429() async throws {
        let fx = try await EmulatorFixture.start()
        var faults = DuoEmulatorFaults()
        faults.failNext = 3
        faults.failNextStatus = 429
        fx.emulator.faults = faults
        let recorder = RecordingSleeper(jitter: .milliseconds(123))
        let client = fx.client(retry: DuoRetryPolicy(), sleeper: recorder.sleeper)
        let user = try await client.createUser(DuoUserFields(username: "retry-me"))
        #expect(user.username == "retry-me")
        #expect(recorder.recorded == [.milliseconds(1123), .milliseconds(2123), .milliseconds(4123)])
        #expect(fx.emulator.counters["POST /admin/v1/users"] == ["429": 3, "200": 1])
        #expect(fx.emulator.directory.allUsers.count == 1)
        try await client.shutdown()
        await fx.stop()
    }

    @Test("Persistent 429s follow Duo's full schedule (1 to 32 s) and then fail as retriable")
    func retriesExhausted() async throws {
        let fx = try await EmulatorFixture.start()
        var faults = DuoEmulatorFaults()
        faults.failAll = 429
        fx.emulator.faults = faults
        let recorder = RecordingSleeper(jitter: .zero)
        let client = fx.client(retry: DuoRetryPolicy(), sleeper: recorder.sleeper)
        let error = await #expect(throws: DuoAdminError.self) { _ = try await client.listGroups() }
        #expect(recorder.recorded == [1, 2, 4, 8, 16, 32].map { Duration.seconds($0) })
        #expect(error?.code == 42901 && error?.isRetriable == true && error?.attempts == 7)
        try await client.shutdown()
        await fx.stop()
    }

    @Test("A wrong secret is a permanent 40103, not retried, and the secret appears nowhere")
    func wrongSecret() async throws {
        let fx = try await EmulatorFixture.start()
        let records = LogRecords()
        let secret = "WRONG-secret-0123456789abcdefghijklmnopqr"
        let client = fx.client(skey: secret, retry: DuoRetryPolicy(), sleeper: RecordingSleeper().sleeper, logger: records.logger())
        let error = await #expect(throws: DuoAdminError.self) { _ = try await client.listUsers() }
        #expect(error?.code == 40103 && error?.httpStatus == 401)
        #expect(error?.isRetriable == false && error?.isAuthenticationFailure == true)
        #expect(fx.emulator.counters["GET /admin/v1/users"] == ["401": 1], "not retried")
        #expect(!"\(String(describing: error))".contains(secret))
        #expect(!records.text.contains(secret))
        try await client.shutdown()

        let cli = try await CLI.run(["duo", "users", "list", "--api-url", fx.url, "--ikey", EmulatorFixture.ikey],
                              environment: ["DUO_SKEY": secret])
        #expect(cli.status == 1)
        #expect(cli.stderr.contains("40103"))
        #expect(!cli.stderr.contains(secret) && !cli.stdout.contains(secret))
        await fx.stop()
    }

    @Test("Retries and their logs never show the secret key")
    func secretsNotLogged() async throws {
        let fx = try await EmulatorFixture.start()
        var faults = DuoEmulatorFaults()
        faults.failNext = 2
        faults.failNextStatus = 503
        fx.emulator.faults = faults
        let records = LogRecords()
        let client = fx.client(retry: DuoRetryPolicy(), sleeper: RecordingSleeper().sleeper, logger: records.logger())
        _ = try await client.createUser(DuoUserFields(username: "logged"))
        #expect(records.count >= 2, "each retry is logged")
        #expect(!records.text.contains(EmulatorFixture.skey))
        try await client.shutdown()
        await fx.stop()
    }

    @Test("The CLI lists all 750 users across pages, as JSON lines and as a table")
    func cliPaging() async throws {
        let fx = try await EmulatorFixture.start()
        _ = fx.emulator.directory.seed(users: (0..<750).map { DuoEmulatorSeedUser(username: "cli\($0)", email: "cli\($0)@example.com") }, groups: ["Sales"])
        let env = ["DUO_IKEY": EmulatorFixture.ikey, "DUO_SKEY": EmulatorFixture.skey, "DUO_API_URL": fx.url]
        let list = try await CLI.run(["duo", "users", "list"], environment: env)
        #expect(list.status == 0, "\(list.stderr)")
        let lines = list.stdout.split(separator: "\n")
        #expect(lines.count == 750)
        let ids = try lines.map { try JSONDecoder().decode(DuoUser.self, from: Data($0.utf8)).userID }
        #expect(Set(ids).count == 750)
        let table = try await CLI.run(["duo", "users", "list", "--table"], environment: env)
        #expect(table.status == 0)
        #expect(table.stdout.split(separator: "\n").count == 752)  // header, rule, 750 rows

        let created = try await CLI.run(["duo", "users", "create", "--username", "cli-new", "--realname", "Çli Ñew", "--status", "disabled"], environment: env)
        #expect(created.status == 0, "\(created.stderr)")
        let user = try JSONDecoder().decode(DuoUser.self, from: Data(created.stdout.utf8))
        #expect(fx.emulator.directory.user(id: user.userID)?.status == .disabled)
        let group = try await CLI.run(["duo", "groups", "list"], environment: env)
        let sales = try JSONDecoder().decode(DuoGroup.self, from: Data(group.stdout.utf8))
        #expect(try await CLI.run(["duo", "user-groups", "add", user.userID, sales.groupID], environment: env).status == 0)
        #expect(fx.emulator.directory.user(id: user.userID)?.groups.map(\.name) == ["Sales"])
        let usage = try await CLI.run(["duo", "users", "create"], environment: env)
        #expect(usage.status == 2, "a usage error exits 2")
        await fx.stop()
    }
}
