import DuoAdmin
import DuoEmulator
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// The emulator's routes and middleware in process, through Hummingbird's test client: no socket,
/// the same router the server runs.
@Suite("Duo emulator: routes in process")
struct DuoEmulatorRouteTests {
    static let ikey = "DIROUTETESTKEY000001"
    static let skey = "route-test-secret-0123456789abcdefghijk"

    static func emulator(control: Bool = false, faults: DuoEmulatorFaults = DuoEmulatorFaults()) throws -> DuoEmulator {
        var config = DuoEmulatorConfiguration(integrations: [ikey: DuoSecretKey(skey)])
        config.controlEnabled = control
        config.faults = faults
        var quiet = Logger(label: "test.emulator")
        quiet.logLevel = .critical
        return try DuoEmulator(configuration: config, logger: quiet)
    }

    /// Duo's v5 signature headers for a request to the test client's host (`localhost`).
    static func signed(_ method: HTTPRequest.Method, _ path: String, query: [DuoParameter] = [], json: String? = nil) -> (uri: String, headers: HTTPFields, body: ByteBuffer?) {
        let date = DuoSigning.rfc2822Date(Date())
        let body = json.map { Array($0.utf8) } ?? []
        let canonical = DuoSigning.canonicalRequest(version: 5, date: date, method: method.rawValue, host: "localhost", path: path,
                                                    parameters: query, body: body, xDuoHeaders: [])
        let signature = DuoSigning.signature(canonical: canonical, secretKey: DuoSecretKey(skey), digest: .sha512)
        var headers: HTTPFields = [.date: date, .authorization: DuoSigning.authorization(integrationKey: ikey, signature: signature)]
        if json != nil { headers[.contentType] = "application/json" }
        let uri = query.isEmpty ? path : path + "?" + DuoSigning.encodeQuery(query)
        return (uri, headers, json.map { ByteBuffer(string: $0) })
    }

    static func envelope(_ response: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
    }

    @Test("A signed request reaches its route; the user it creates can be read back by id")
    func signedRoutes() async throws {
        let emulator = try Self.emulator()
        try await emulator.makeApplication().test(.router) { client in
            let create = Self.signed(.post, "/admin/v1/users", json: #"{"username":"ada","email":"ada@example.com"}"#)
            let created = try await client.execute(uri: create.uri, method: .post, headers: create.headers, body: create.body)
            #expect(created.status == .ok && created.headers[.contentType] == "application/json")
            let id = try #require((Self.envelope(created)["response"] as? [String: Any])?["user_id"] as? String)
            let get = Self.signed(.get, "/admin/v1/users/\(id)")
            let read = try await client.execute(uri: get.uri, method: .get, headers: get.headers)
            #expect((Self.envelope(read)["response"] as? [String: Any])?["username"] as? String == "ada")
        }
        #expect(emulator.counters["POST /admin/v1/users"]?["200"] == 1)
        #expect(emulator.counters["GET /admin/v1/users/{id}"]?["200"] == 1, "counters use the route's template")
    }

    @Test("Signature middleware: an unsigned or wrongly signed request gets Duo's 401 envelope and changes nothing")
    func signatureMiddleware() async throws {
        let emulator = try Self.emulator()
        try await emulator.makeApplication().test(.router) { client in
            let unsigned = try await client.execute(uri: "/admin/v1/users", method: .get)
            #expect(unsigned.status == .unauthorized && Self.envelope(unsigned)["stat"] as? String == "FAIL")
            var tampered = Self.signed(.post, "/admin/v1/users", json: #"{"username":"eve"}"#)
            tampered.body = ByteBuffer(string: #"{"username":"mallory"}"#)
            let refused = try await client.execute(uri: tampered.uri, method: .post, headers: tampered.headers, body: tampered.body)
            #expect(refused.status == .unauthorized && Self.envelope(refused)["code"] as? Int == 40103)
        }
        #expect(emulator.directory.allUsers.isEmpty)
    }

    @Test("Fault middleware runs before the route: an injected 503, then the next request passes")
    func faultMiddleware() async throws {
        var faults = DuoEmulatorFaults()
        faults.failNext = 1
        faults.failNextStatus = 503
        let emulator = try Self.emulator(faults: faults)
        try await emulator.makeApplication().test(.router) { client in
            let list = Self.signed(.get, "/admin/v1/users")
            let first = try await client.execute(uri: list.uri, method: .get, headers: list.headers)
            #expect(first.status == .serviceUnavailable && Self.envelope(first)["code"] as? Int == 50301)
            let second = try await client.execute(uri: list.uri, method: .get, headers: list.headers)
            #expect(second.status == .ok)
        }
        #expect(emulator.counters["GET /admin/v1/users"] == ["503": 1, "200": 1])
    }

    @Test("Unknown paths get Duo's 404 envelope; the control group exists only when enabled")
    func notFoundAndControlGroup() async throws {
        try await Self.emulator().makeApplication().test(.router) { client in
            let unknown = try await client.execute(uri: "/admin/v9/nothing", method: .get)
            #expect(unknown.status == .notFound && Self.envelope(unknown)["code"] as? Int == 40401)
            let control = try await client.execute(uri: "/__emulator/state", method: .get)
            #expect(control.status == .notFound, "no control API unless enabled")
        }
        try await Self.emulator(control: true).makeApplication().test(.router) { client in
            let seeded = try await client.execute(uri: "/__emulator/seed", method: .post, body: ByteBuffer(string: #"{"users":[{"username":"a"}]}"#))
            #expect(seeded.status == .ok)
            let state = try await client.execute(uri: "/__emulator/state", method: .get)
            let users = Self.envelope(state)["users"] as? [[String: Any]]
            #expect(users?.map { $0["username"] as? String } == ["a"])
        }
    }
}
