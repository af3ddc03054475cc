import DuoAdmin
import DuoEmulator
import Foundation
import LifecycleWorker
import Synchronization
import Testing

@Suite("Bulk writer", .timeLimit(.minutes(2)))
struct BulkWriterTests {
    static func client(_ h: WorkerHarness, requestsPerSecond: Double?) -> DuoAdminClient {
        var config = DuoAdminConfiguration(endpoint: .url(h.stack.emulatorURL), integrationKey: WorkerHarness.ikey, secretKey: DuoSecretKey(WorkerHarness.skey))
        config.requestsPerSecond = requestsPerSecond
        config.retry = .disabled
        return DuoAdminClient(configuration: config)
    }

    @Test("A write made while Duo keeps up goes at once as its ordinary call; writes held back by the rate limit share requests, each with its own outcome")
    func batchesOnlyWhatWaits() async throws {
        let h = try await WorkerHarness()
        let client = Self.client(h, requestsPerSecond: 4)
        let sizes = Mutex<[Int]>([])
        let writer = DuoBulkWriter(client: client, observer: { n in sizes.withLock { $0.append(n) } })

        // Alone: the ordinary call, not a bulk request.
        let lone = try await writer.perform(.createUser(DuoUserFields(username: "lone")))
        #expect(try lone.user(of: .createUser(DuoUserFields(username: "lone"))).username == "lone")
        #expect(h.emulator.counters["POST /admin/v1/users"] == ["200": 1] && h.emulator.counters["POST /admin/v1/bulk"] == nil)

        // 60 at once at 4 requests a second: they wait for permits, and share requests. One is a
        // name that exists: only it fails.
        let names = (0..<59).map { "user\($0)" } + ["lone"]
        let outcomes = await withTaskGroup(of: (String, Result<DuoWriteResponse, DuoAdminError>).self) { group in
            for name in names {
                group.addTask {
                    do throws(DuoAdminError) { return (name, .success(try await writer.perform(.createUser(DuoUserFields(username: name))))) }
                    catch { return (name, .failure(error)) }
                }
            }
            return await group.reduce(into: [String: Result<DuoWriteResponse, DuoAdminError>]()) { $0[$1.0] = $1.1 }
        }
        for name in names.dropLast() {
            let response = try #require(try? outcomes[name]?.get(), "\(name): \(String(describing: outcomes[name]))")
            #expect(try response.user(of: .createUser(DuoUserFields(username: name))).username == name, "each write gets its own user")
        }
        guard case .failure(let duplicate) = outcomes["lone"] else { Issue.record("the duplicate did not fail"); return }
        #expect(duplicate.code == 40002 && duplicate.request == "POST /admin/v1/users")
        #expect(h.emulator.directory.allUsers.count == 60)
        let requests = sizes.withLock { $0 }
        #expect(requests.reduce(0, +) == 61 && requests.count <= 6, "requests made, by their number of writes: \(requests)")
        try await client.shutdown()
        await h.shutdown()
    }
}
