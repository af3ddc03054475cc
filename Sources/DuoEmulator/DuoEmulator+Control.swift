import DuoAdmin
import Foundation
import Hummingbird

extension DuoEmulator {
    /// The control API. It is only reachable when ``DuoEmulatorConfiguration/controlEnabled`` is set.
    ///
    /// - `POST /__emulator/reset`: empty directory, journal and counters.
    /// - `POST /__emulator/seed`: `{"groups": ["name"], "users": [{"username", "realname", "email", "status", "groups": ["name"]}]}`.
    /// - `GET|PUT /__emulator/faults`: read or replace the fault settings.
    /// - `GET /__emulator/journal?after=N`: state changes after sequence N, in order.
    /// - `GET /__emulator/counters`: requests by `METHOD /path/template` and status.
    /// - `GET /__emulator/state`: the whole directory; `POST /__emulator/state/save`: write the state file.
    func control(_ request: Request, path: String, context: EmulatorRequestContext) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 20)
        let data = Data(body.readableBytesView)
        switch (request.method, path) {
        case (.post, "/__emulator/reset"):
            directory.reset()
            resetCounters()
            return json(["reset": true])
        case (.post, "/__emulator/seed"):
            struct Seed: Decodable { var users: [DuoEmulatorSeedUser]?; var groups: [String]? }
            guard let seed = try? JSONDecoder().decode(Seed.self, from: data) else { return controlError("Body must be {\"users\": [...], \"groups\": [...]}") }
            let created = directory.seed(users: seed.users ?? [], groups: seed.groups ?? [])
            return json(["users_created": created.users, "groups_created": created.groups])
        case (.get, "/__emulator/faults"):
            return json(faults)
        case (.put, "/__emulator/faults"), (.post, "/__emulator/faults"):
            let decoded: DuoEmulatorFaults
            do { decoded = try JSONDecoder().decode(DuoEmulatorFaults.self, from: data) } catch { return controlError("Invalid faults: \(error)") }
            do { try decoded.validate() } catch { return controlError(error.detail ?? error.message) }
            faults = decoded
            return json(decoded)
        case (.get, "/__emulator/journal"):
            let after = request.uri.queryParameters.get("after", as: Int.self) ?? 0
            return json(directory.journal(after: after))
        case (.get, "/__emulator/counters"):
            return json(counters)
        case (.get, "/__emulator/state"):
            return json(directory.snapshot())
        case (.post, "/__emulator/state/save"):
            guard configuration.stateFile != nil else { return controlError("No state file is configured (--state FILE)") }
            try saveState()
            return json(["saved": true])
        default:
            return Response(status: .notFound, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"error":"unknown control endpoint"}"#)))
        }
    }

    private func controlError(_ message: String) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data()
        return Response(status: .badRequest, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
