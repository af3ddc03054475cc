import DuoAdmin
import Foundation
import Hummingbird

extension DuoEmulator {
    /// The control API, a route group under `/__emulator/`, only when
    /// ``DuoEmulatorConfiguration/controlEnabled`` is set.
    ///
    /// - `POST /__emulator/reset`: empty directory, journal and counters.
    /// - `POST /__emulator/seed`: `{"groups": ["name"], "users": [{"username", "realname", "email", "status", "groups": ["name"], "is_enrolled", "last_login", "created", "phones": ["+15555550100"]}]}`.
    /// - `GET|PUT /__emulator/faults`: read or replace the fault settings.
    /// - `GET /__emulator/journal?after=N`: state changes after sequence N, in order.
    /// - `GET /__emulator/counters`: requests by `METHOD /path/template` and status.
    /// - `GET /__emulator/state`: the whole directory; `POST /__emulator/state/save`: write the state file.
    func addControlRoutes(to control: RouterGroup<EmulatorRequestContext>) {
        control.post("reset") { _, _ in
            self.directory.reset()
            self.resetCounters()
            return DuoEnvelope.json(["reset": true])
        }
        control.post("seed") { request, _ in
            struct Seed: Decodable { var users: [DuoEmulatorSeedUser]?; var groups: [String]? }
            guard let seed = try? JSONDecoder().decode(Seed.self, from: try await Self.body(request)) else {
                return Self.controlError("Body must be {\"users\": [...], \"groups\": [...]}")
            }
            let created = self.directory.seed(users: seed.users ?? [], groups: seed.groups ?? [])
            return DuoEnvelope.json(["users_created": created.users, "groups_created": created.groups])
        }
        control.get("faults") { _, _ in DuoEnvelope.json(self.faults) }
        let replaceFaults: @Sendable (Request, EmulatorRequestContext) async throws -> Response = { request, _ in
            let decoded: DuoEmulatorFaults
            do { decoded = try JSONDecoder().decode(DuoEmulatorFaults.self, from: try await Self.body(request)) } catch {
                return Self.controlError("Invalid faults: \(error)")
            }
            do throws(DuoEmulatorError) { try decoded.validate() } catch { return Self.controlError(error.detail ?? error.message) }
            self.faults = decoded
            return DuoEnvelope.json(decoded)
        }
        control.put("faults", use: replaceFaults)
        control.post("faults", use: replaceFaults)
        control.get("journal") { request, _ in
            DuoEnvelope.json(self.directory.journal(after: request.uri.queryParameters.get("after", as: Int.self) ?? 0))
        }
        control.get("counters") { _, _ in DuoEnvelope.json(self.counters) }
        control.get("state") { _, _ in DuoEnvelope.json(self.directory.snapshot()) }
        control.post("state/save") { _, _ in
            guard self.configuration.stateFile != nil else { return Self.controlError("No state file is configured (--state FILE)") }
            try self.saveState()
            return DuoEnvelope.json(["saved": true])
        }
    }

    private static func body(_ request: Request) async throws -> Data {
        var request = request
        return Data(try await request.collectBody(upTo: 64 << 20).readableBytesView)
    }

    private static func controlError(_ message: String) -> Response { DuoEnvelope.json(["error": message], status: .badRequest) }
}
