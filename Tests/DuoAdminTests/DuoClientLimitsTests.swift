import DuoAdmin
import DuoEmulator
import Foundation
import Testing

@Suite("Duo client limits and timeouts", .timeLimit(.minutes(1)))
struct DuoClientLimitsTests {
    @Test("The shared rate limit keeps 25 concurrent calls under a Duo limit of 10/s: no 429 at all")
    func sharedRateLimit() async throws {
        let fx = try await EmulatorFixture.start { $0.faults.rateLimit = 10 }
        let client = fx.client(requestsPerSecond: 9, maxConcurrency: 25)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<25 { group.addTask { _ = try await client.listGroups() } }
            try await group.waitForAll()
        }
        #expect(fx.emulator.counters["GET /admin/v1/groups"] == ["200": 25])
        try await client.shutdown()
        await fx.stop()
    }

    @Test("A request that outlives its timeout fails as a retriable timeout")
    func timeout() async throws {
        let fx = try await EmulatorFixture.start { $0.faults.latencyMs = 1500 }
        var config = DuoAdminConfiguration(endpoint: .url(fx.url), integrationKey: EmulatorFixture.ikey, secretKey: DuoSecretKey(EmulatorFixture.skey))
        config.requestTimeout = .milliseconds(200)
        config.retry = .disabled
        let client = DuoAdminClient(configuration: config)
        let error = await #expect(throws: DuoAdminError.self) { _ = try await client.listUsers() }
        #expect(error?.kind == .timeout && error?.isRetriable == true)
        try await client.shutdown()
        await fx.stop()
    }

    @Test("A connection reset is a retriable connection error, and the built-in retry recovers")
    func reset() async throws {
        let fx = try await EmulatorFixture.start()
        var faults = DuoEmulatorFaults()
        faults.resetRate = 1
        fx.emulator.faults = faults
        let failing = fx.client()
        let error = await #expect(throws: DuoAdminError.self) { _ = try await failing.listGroups() }
        #expect(error?.kind == .connection && error?.isRetriable == true)
        try await failing.shutdown()
        faults.resetRate = 0
        faults.failNext = 1
        faults.failNextStatus = 500
        fx.emulator.faults = faults
        let retrying = fx.client(retry: DuoRetryPolicy(), sleeper: RecordingSleeper().sleeper)
        #expect(try await retrying.listGroups().isEmpty)
        try await retrying.shutdown()
        await fx.stop()
    }
}
