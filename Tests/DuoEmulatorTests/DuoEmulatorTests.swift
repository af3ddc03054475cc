import AsyncHTTPClient
import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// Raw HTTP against the emulator, to check what a client library would hide.
struct RawDuo {
    static let ikey = "DIEMULATORTESTKEY001"
    static let skey = "emulator-test-secret-key-0123456789abcdef"
    let url: String
    let http = HTTPClient.shared

    struct Reply { var status: Int; var contentType: String?; var headers: HTTPHeaders; var json: [String: Any] }

    /// Sends a request signed as told. `signHost` overrides the host line; `date` the date string.
    func send(_ method: HTTPMethod, _ path: String, query: [DuoParameter] = [], form: [DuoParameter]? = nil, json: String? = nil,
              version: Int = 5, digest: DuoDigest = .sha512, ikey: String = Self.ikey, skey: String = Self.skey,
              date: String? = DuoSigning.rfc2822Date(Date()), dateHeader: String = "Date", signHost: String? = nil,
              authorization: String? = nil, plusForSpace: Bool = false) async throws -> Reply {
        let host = signHost ?? URLComponents(string: url)!.host! + ":" + String(URLComponents(string: url)!.port!)
        var body: [UInt8] = []
        var contentType: String?
        if let form {
            var encoded = DuoSigning.encodeQuery(form)
            if plusForSpace { encoded = encoded.replacingOccurrences(of: "%20", with: "+") }
            body = Array(encoded.utf8)
            contentType = "application/x-www-form-urlencoded"
        } else if let json {
            body = Array(json.utf8)
            contentType = "application/json"
        }
        var xDuo: [(name: String, value: String)] = []
        if dateHeader.lowercased() == "x-duo-date", let date { xDuo.append((name: "X-Duo-Date", value: date)) }
        let canonical = DuoSigning.canonicalRequest(version: version, date: date ?? "", method: method.rawValue, host: host, path: path,
                                                    parameters: version == 5 ? query : query + (form ?? []), body: body, xDuoHeaders: xDuo)
        let signature = DuoSigning.signature(canonical: canonical, secretKey: DuoSecretKey(skey), digest: digest)
        var target = url + path
        if !query.isEmpty {
            var q = DuoSigning.encodeQuery(query)
            if plusForSpace { q = q.replacingOccurrences(of: "%20", with: "+") }
            target += "?" + q
        }
        var request = HTTPClientRequest(url: target)
        request.method = method
        if let date { request.headers.add(name: dateHeader, value: date) }
        request.headers.add(name: "Authorization", value: authorization ?? DuoSigning.authorization(integrationKey: ikey, signature: signature))
        if let contentType {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await http.execute(request, timeout: .seconds(10))
        let data = try await response.body.collect(upTo: 1 << 22)
        let object = (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView))) as? [String: Any] ?? [:]
        return Reply(status: Int(response.status.code), contentType: response.headers.first(name: "content-type"), headers: response.headers, json: object)
    }

    func control(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws -> (status: Int, data: Data) {
        var request = HTTPClientRequest(url: url + path)
        request.method = method
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await http.execute(request, timeout: .seconds(10))
        let data = try await response.body.collect(upTo: 1 << 24)
        return (Int(response.status.code), Data(data.readableBytesView))
    }
}

func startEmulator(control: Bool = true, configure: (inout DuoEmulatorConfiguration) -> Void = { _ in }) async throws -> (EmbeddedEmulator, RawDuo) {
    var config = DuoEmulatorConfiguration(integrations: [RawDuo.ikey: DuoSecretKey(RawDuo.skey), "DISECONDINTEGRATION1": DuoSecretKey("second-secret")])
    config.controlEnabled = control
    config.apiHostname = "api-emulator.duosecurity.com"
    configure(&config)
    var logger = Logger(label: "test.emulator")
    logger.logLevel = .critical
    let emulator = try DuoEmulator(configuration: config, logger: logger)
    let running = try await EmbeddedEmulator.start(emulator, logger: logger)
    return (running, RawDuo(url: running.url))
}

@Suite("Duo emulator: signatures", .timeLimit(.minutes(1)))
struct DuoEmulatorSignatureTests {
    @Test("v5, v2-SHA512 and v2-SHA1 are accepted; responses are exactly application/json")
    func schemes() async throws {
        let (emulator, duo) = try await startEmulator()
        let v5 = try await duo.send(.POST, "/admin/v1/users", json: #"{"realname":"J\u00f6s\u00e9","username":"v5user"}"#)
        #expect(v5.status == 200 && v5.contentType == "application/json")
        #expect(emulator.directory.user(username: "v5user")?.realname == "Jösé")
        let v2 = try await duo.send(.POST, "/admin/v1/users", form: [.init("username", "v2 user"), .init("realname", "Ünï Cödé")], version: 2, plusForSpace: true)
        #expect(v2.status == 200, "a form body with + for spaces is decoded before re-canonicalising")
        let sha1 = try await duo.send(.GET, "/admin/v1/users", query: [.init("username", "v2 user")], version: 2, digest: .sha1, plusForSpace: true)
        #expect(sha1.status == 200 && (sha1.json["response"] as? [Any])?.count == 1)
        let other = try await duo.send(.GET, "/admin/v1/users", ikey: "DISECONDINTEGRATION1", skey: "second-secret")
        #expect(other.status == 200, "several integrations can be configured")
        await emulator.stop()
    }

    @Test("The date may come from X-Duo-Date, and the host may be signed with or without its port or as the API host")
    func dateAndHost() async throws {
        let (emulator, duo) = try await startEmulator()
        #expect(try await duo.send(.GET, "/admin/v1/groups", dateHeader: "X-Duo-Date").status == 200)
        #expect(try await duo.send(.GET, "/admin/v1/groups", signHost: "127.0.0.1").status == 200)
        #expect(try await duo.send(.GET, "/admin/v1/groups", signHost: "API-Emulator.duosecurity.com").status == 200)
        #expect(try await duo.send(.GET, "/admin/v1/groups", signHost: "evil.example.com").json["code"] as? Int == 40103)
        await emulator.stop()
    }

    @Test("Failures give 40101, 40102, 40103 and 40104 in Duo's envelope")
    func failures() async throws {
        let (emulator, duo) = try await startEmulator()
        let missing = try await duo.send(.GET, "/admin/v1/users", authorization: "")
        #expect(missing.status == 401 && missing.json["code"] as? Int == 40101 && missing.json["stat"] as? String == "FAIL")
        let badIkey = try await duo.send(.GET, "/admin/v1/users", ikey: "DINOSUCHINTEGRATION0")
        #expect(badIkey.status == 401 && badIkey.json["code"] as? Int == 40102)
        let badSig = try await duo.send(.GET, "/admin/v1/users", skey: "not-the-secret")
        #expect(badSig.status == 401 && badSig.json["code"] as? Int == 40103 && badSig.contentType == "application/json")
        let noDate = try await duo.send(.GET, "/admin/v1/users", date: nil)
        #expect(noDate.status == 401 && noDate.json["code"] as? Int == 40104)
        let old = try await duo.send(.GET, "/admin/v1/users", date: DuoSigning.rfc2822Date(Date().addingTimeInterval(-600)))
        #expect(old.status == 401 && old.json["code"] as? Int == 40103, "outside the 300 s skew window")
        let recent = try await duo.send(.GET, "/admin/v1/users", date: DuoSigning.rfc2822Date(Date().addingTimeInterval(-120)))
        #expect(recent.status == 200, "inside the window")
        let tampered = try await duo.send(.GET, "/admin/v1/users", query: [.init("limit", "5")], version: 2, signHost: nil)
        #expect(tampered.status == 200)
        await emulator.stop()
    }
}

@Suite("Duo emulator: directory semantics", .timeLimit(.minutes(1)))
struct DuoEmulatorSemanticsTests {
    @Test("Duplicate usernames, aliases, unknown ids, invalid parameters and idempotent deletes behave like Duo")
    func semantics() async throws {
        let (emulator, duo) = try await startEmulator()
        let created = try await duo.send(.POST, "/admin/v1/users", json: #"{"alias1":"jd","username":"jdoe"}"#)
        #expect(created.status == 200)
        let id = try #require((created.json["response"] as? [String: Any])?["user_id"] as? String)
        #expect(id.hasPrefix("DU") && id.count == 20)

        let duplicate = try await duo.send(.POST, "/admin/v1/users", json: #"{"username":"JDOE"}"#)
        #expect(duplicate.status == 400 && duplicate.json["stat"] as? String == "FAIL" && duplicate.json["code"] as? Int == 40002)
        let byAlias = try await duo.send(.GET, "/admin/v1/users", query: [.init("username", "jd")])
        #expect(((byAlias.json["response"] as? [[String: Any]])?.first?["user_id"] as? String) == id, "the username filter matches aliases")

        let badStatus = try await duo.send(.POST, "/admin/v1/users/\(id)", json: #"{"status":"sleeping"}"#)
        #expect(badStatus.status == 400 && badStatus.json["code"] as? Int == 40002 && badStatus.json["message_detail"] as? String == "status")
        let badLimit = try await duo.send(.GET, "/admin/v1/users", query: [.init("limit", "many")])
        #expect(badLimit.json["code"] as? Int == 40002 && badLimit.json["message_detail"] as? String == "limit")
        let missing = try await duo.send(.POST, "/admin/v1/users", json: #"{"realname":"No Name"}"#)
        #expect(missing.status == 400 && missing.json["message_detail"] as? String == "username")

        let unknown = try await duo.send(.GET, "/admin/v1/users/DUNOSUCHUSER00000000")
        #expect(unknown.status == 404 && unknown.json["code"] as? Int == 40401)
        let unknownGroup = try await duo.send(.GET, "/admin/v2/groups/DGNOSUCHGROUP0000000")
        #expect(unknownGroup.status == 404 && unknownGroup.json["code"] as? Int == 40401)

        #expect(try await duo.send(.DELETE, "/admin/v1/users/\(id)").status == 200)
        let again = try await duo.send(.DELETE, "/admin/v1/users/\(id)")
        #expect(again.status == 200 && again.json["response"] as? String == "", "delete is idempotent")
        #expect(emulator.directory.allUsers.isEmpty)
        await emulator.stop()
    }

    @Test("A name is free again once its user is renamed, drops the alias or is deleted, and the new names are taken")
    func namesFollowRenamesAndDeletes() async throws {
        let (emulator, duo) = try await startEmulator()
        func create(_ json: String) async throws -> RawDuo.Reply { try await duo.send(.POST, "/admin/v1/users", json: json) }
        func userID(_ reply: RawDuo.Reply) throws -> String { try #require((reply.json["response"] as? [String: Any])?["user_id"] as? String) }
        let first = try userID(try await create(#"{"username":"ada","alias1":"ada.l"}"#))

        // A rename and a dropped alias free the old names and take the new ones, whatever their case.
        #expect(try await duo.send(.POST, "/admin/v1/users/\(first)", json: #"{"username":"Ada.Lovelace","alias1":"","alias2":"AL"}"#).status == 200)
        #expect(try await create(#"{"username":"ADA.LOVELACE"}"#).status == 400, "the new username is taken")
        #expect(try await create(#"{"username":"al"}"#).status == 400, "the new alias is taken")
        let second = try userID(try await create(#"{"username":"ADA","alias1":"Ada.L"}"#))
        #expect(emulator.directory.user(username: "ada")?.userID == second, "the old username now names the new user")
        #expect(emulator.directory.user(username: "ada.lovelace")?.userID == first)

        // A user that takes another's old name cannot then be given a name in use.
        let clash = try await duo.send(.POST, "/admin/v1/users/\(second)", json: #"{"username":"ada.lovelace"}"#)
        #expect(clash.status == 400 && clash.json["code"] as? Int == 40002)
        #expect(emulator.directory.user(username: "ada")?.userID == second, "a refused rename changes nothing")

        // Deleting frees the username and every alias; sending to the Trash keeps them.
        let trashed = try await duo.send(.POST, "/admin/v1/users/bulk_send_to_trash", form: [.init("user_id_list", "[\"\(first)\"]")])
        #expect(trashed.status == 200)
        #expect(try await create(#"{"username":"Ada.Lovelace"}"#).status == 400, "a user in the Trash keeps its name")
        #expect(try await duo.send(.DELETE, "/admin/v1/users/\(first)").status == 200)
        #expect(emulator.directory.user(username: "al") == nil && emulator.directory.user(username: "ada.lovelace") == nil)
        let third = try userID(try await create(#"{"username":"al","alias1":"ada.lovelace"}"#))
        #expect(emulator.directory.user(username: "Ada.Lovelace")?.userID == third)
        #expect(emulator.directory.allUsers.map(\.userID) == [second, third], "users keep their creation order")
        await emulator.stop()
    }

    @Test("The journal shows every state change in order, with timestamps and the resulting state")
    func journal() async throws {
        let (emulator, duo) = try await startEmulator()
        let before = Int64(Date().timeIntervalSince1970 * 1000)
        let user = try await duo.send(.POST, "/admin/v1/users", json: #"{"username":"journaled"}"#)
        let id = try #require((user.json["response"] as? [String: Any])?["user_id"] as? String)
        let group = try await duo.send(.POST, "/admin/v1/groups", json: #"{"name":"Sales"}"#)
        let gid = try #require((group.json["response"] as? [String: Any])?["group_id"] as? String)
        _ = try await duo.send(.POST, "/admin/v1/users/\(id)/groups", json: "{\"group_id\":\"\(gid)\"}")
        _ = try await duo.send(.GET, "/admin/v1/users/\(id)")  // reads are not journaled
        _ = try await duo.send(.POST, "/admin/v1/users/\(id)", json: #"{"status":"disabled"}"#)
        _ = try await duo.send(.DELETE, "/admin/v1/users/\(id)/groups/\(gid)")
        _ = try await duo.send(.DELETE, "/admin/v1/users/\(id)")

        let (status, data) = try await duo.control(.GET, "/__emulator/journal")
        #expect(status == 200)
        let entries = try JSONDecoder().decode([DuoJournalEntry].self, from: data)
        #expect(entries.map(\.operation) == ["create_user", "create_group", "add_user_group", "modify_user", "remove_user_group", "delete_user"])
        #expect(entries.map(\.sequence) == Array(1...6))
        #expect(entries.allSatisfy { $0.timestampMs >= before })
        #expect(zip(entries, entries.dropFirst()).allSatisfy { $0.timestampMs <= $1.timestampMs })
        #expect(entries[2].user?.groups.map(\.name) == ["Sales"])
        #expect(entries[3].user?.status == .disabled, "the entry carries the user's state after the change")
        #expect(entries[5].user == nil)
        let after = try JSONDecoder().decode([DuoJournalEntry].self, from: try await duo.control(.GET, "/__emulator/journal?after=4").data)
        #expect(after.map(\.sequence) == [5, 6])
        await emulator.stop()
    }

    @Test("Seeding sets is_enrolled, last_login, created and phones with Duo's field names, and the Admin API returns them as Duo does")
    func seedAuditFields() async throws {
        let (emulator, duo) = try await startEmulator()
        let seeded = try await duo.control(.POST, "/__emulator/seed", body: #"""
            {"users":[{"username":"enrolled","is_enrolled":true,"last_login":1764000000,"created":1700000000,"phones":["+15555550100"]},
                      {"username":"fresh","created":1760000000},{"username":"phoned","phones":["+15555550101"]}]}
            """#)
        #expect(seeded.status == 200)
        let listed = try await duo.send(.GET, "/admin/v1/users")
        let users = try #require(listed.json["response"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: users.compactMap { u in (u["username"] as? String).map { ($0, u) } })
        #expect(byName["enrolled"]?["is_enrolled"] as? Bool == true && byName["enrolled"]?["last_login"] as? Int == 1764000000)
        #expect(byName["enrolled"]?["created"] as? Int == 1700000000)
        #expect(((byName["enrolled"]?["phones"] as? [[String: Any]])?.first?["number"] as? String) == "+15555550100")
        #expect(byName["fresh"]?["is_enrolled"] as? Bool == false && byName["fresh"]?["last_login"] is NSNull && byName["fresh"]?["created"] as? Int == 1760000000)
        #expect(byName["phoned"]?["is_enrolled"] as? Bool == true, "a user with a phone is enrolled unless told otherwise")
        #expect(emulator.directory.user(username: "enrolled")?.phones.count == 1)
        await emulator.stop()
    }

    @Test("The control API resets, seeds, changes faults and counts; it is off unless enabled")
    func controlAPI() async throws {
        let (emulator, duo) = try await startEmulator()
        let seeded = try await duo.control(.POST, "/__emulator/seed", body: #"{"groups":["VPN"],"users":[{"username":"a","groups":["Eng"]},{"username":"b","status":"disabled"}]}"#)
        #expect(seeded.status == 200)
        #expect(emulator.directory.user(username: "a")?.groups.map(\.name) == ["Eng"])
        #expect(emulator.directory.user(username: "b")?.status == .disabled)
        #expect(Set(emulator.directory.allGroups.map(\.name)) == ["VPN", "Eng"])

        #expect(try await duo.control(.PUT, "/__emulator/faults", body: #"{"error_rate":1.0}"#).status == 200)
        let failed = try await duo.send(.GET, "/admin/v1/users")
        #expect(failed.status == 500 && failed.json["code"] as? Int == 50001)
        #expect(try await duo.control(.PUT, "/__emulator/faults", body: #"{"unavailable_rate":1.0}"#).status == 200)
        #expect(try await duo.send(.GET, "/admin/v1/users").status == 503)
        #expect(try await duo.control(.PUT, "/__emulator/faults", body: #"{"error_rate":2}"#).status == 400, "invalid faults are refused")
        #expect(try await duo.control(.PUT, "/__emulator/faults", body: #"{"reset_rate":1.0}"#).status == 200)
        await #expect(throws: (any Error).self, "the connection is reset") { _ = try await duo.send(.GET, "/admin/v1/users") }
        #expect(try await duo.control(.PUT, "/__emulator/faults", body: #"{"latency_ms":150}"#).status == 200)
        let start = ContinuousClock.now
        #expect(try await duo.send(.GET, "/admin/v1/users").status == 200)
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        #expect(try await duo.control(.PUT, "/__emulator/faults", body: "{}").status == 200)

        let counters = try JSONSerialization.jsonObject(with: try await duo.control(.GET, "/__emulator/counters").data) as? [String: [String: Int]]
        #expect(counters?["GET /admin/v1/users"]?["500"] == 1)
        #expect(counters?["GET /admin/v1/users"]?["503"] == 1)
        #expect(counters?["GET /admin/v1/users"]?["200"] == 1)

        #expect(try await duo.control(.POST, "/__emulator/reset").status == 200)
        #expect(emulator.directory.allUsers.isEmpty && emulator.directory.journal().isEmpty)
        await emulator.stop()

        let (closed, closedDuo) = try await startEmulator(control: false)
        let refused = try await closedDuo.control(.POST, "/__emulator/reset")
        #expect(refused.status == 404)
        await closed.stop()
    }

    @Test("The directory is loaded from and saved to a state file")
    func stateFile() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("emulator-state-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (first, duo) = try await startEmulator { $0.stateFile = path }
        _ = try await duo.send(.POST, "/admin/v1/users", json: #"{"username":"persisted","email":"p@example.com"}"#)
        await first.stop()
        #expect(FileManager.default.fileExists(atPath: path))
        let (second, _) = try await startEmulator { $0.stateFile = path }
        #expect(second.directory.user(username: "persisted")?.email == "p@example.com")
        await second.stop()
    }
}

@Suite("Duo emulator: rate limit", .timeLimit(.minutes(1)))
struct DuoEmulatorRateLimitTests {
    @Test("Over its limit (5 requests/s) the emulator answers 429/42901 without Retry-After, as Duo does, and no second admits more than the limit")
    func rateLimit() async throws {
        // A low limit, so that even a loaded two-core machine offers more than it: the CI once saw
        // 200 client tasks offer under 50 requests a second. `slidingWindowIsExact` checks the
        // limiter's arithmetic exactly; this checks the HTTP side.
        let (emulator, duo) = try await startEmulator { $0.faults.rateLimit = 5 }
        final class Tally: Sendable {
            let counts = Mutex<[String: Int]>([:])
            func add(_ key: String) { counts.withLock { $0[key, default: 0] += 1 } }
            subscript(key: String) -> Int { counts.withLock { $0[key] ?? 0 } }
        }
        let tally = Tally()
        let start = ContinuousClock.now
        let duration: Duration = .seconds(3)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    while ContinuousClock.now - start < duration {
                        guard let reply = try? await duo.send(.GET, "/admin/v1/groups") else { continue }
                        if reply.status == 200 { tally.add("accepted") }
                        else if reply.status == 429 {
                            tally.add("throttled")
                            if reply.headers.contains(name: "Retry-After") { tally.add("retryAfter") }
                            if reply.json["code"] as? Int != 42901 { tally.add("wrongCode") }
                        }
                    }
                }
            }
        }
        // Every one-second window admits at most 5; a run of E seconds (until the last reply) is
        // covered by ceil(E) + 1 such windows, so at most 5 for each, however requests were spread.
        let elapsed = (ContinuousClock.now - start) / .seconds(1)
        let bound = 5 * (Int(elapsed.rounded(.up)) + 1)
        #expect(tally["throttled"] > 0)
        #expect(tally["retryAfter"] == 0, "Duo sends no Retry-After")
        #expect(tally["wrongCode"] == 0)
        #expect(tally["accepted"] > 0 && tally["accepted"] <= bound, "accepted \(tally["accepted"]) in \(elapsed) s")
        await emulator.stop()
    }
}

@Suite("Duo emulator: the rate limiter")
struct SlidingWindowRateLimitTests {
    @Test("The sliding window admits exactly the limit in any second, refuses the next, and admits again as old requests age out")
    func slidingWindowIsExact() {
        var limiter = SlidingWindowRateLimit()
        let t0 = ContinuousClock.now
        func admit(_ at: ContinuousClock.Instant) -> Bool { limiter.admit(limit: 50, at: at) }
        let first50 = (0..<50).map { admit(t0 + .milliseconds($0)) }
        #expect(first50.allSatisfy { $0 })
        let the51st = admit(t0 + .milliseconds(500))
        #expect(!the51st, "the 51st within a second")
        // The first request leaves the window exactly one second after it was made, not before.
        let justBefore = admit(t0 + .seconds(1) - .microseconds(1))
        let atOneSecond = admit(t0 + .seconds(1))
        let againAtOneSecond = admit(t0 + .seconds(1))
        #expect(!justBefore && atOneSecond && !againAtOneSecond)
        // Over 10 s of requests every millisecond, no one-second window holds more than 50.
        var admitted: [ContinuousClock.Instant] = []
        var fresh = SlidingWindowRateLimit()
        for ms in 0..<10_000 where fresh.admit(limit: 50, at: t0 + .milliseconds(ms)) { admitted.append(t0 + .milliseconds(ms)) }
        #expect(admitted.count == 500)
        let busiest = admitted.indices.map { i in admitted[i...].prefix { $0 < admitted[i] + .seconds(1) }.count }.max()
        #expect(busiest == 50)
        // A fractional limit admits the whole requests below it.
        var half = SlidingWindowRateLimit()
        let three = (0..<3).map { _ in half.admit(limit: 1.5, at: t0) }
        #expect(three == [true, true, false])
    }
}
