import DuoEmulator
import Foundation
import Kafka
import Testing

/// The operator's commands against a running worker process sharing its store: holds, employee
/// show and reconcile, as separate processes.
@Suite("Operator commands", .timeLimit(.minutes(4)))
struct OperatorCommandsTests {
    @Test("holds list and approve --all release what the guard held; employee show tells the helpdesk; reconcile --format json finds a planted orphan and ends with its summary")
    func holdsEmployeeAndReconcile() async throws {
        let env = try await WorkerEnvironment(partitions: 2)
        let port = WorkerEnvironment.freePort()
        let config = try env.writeConfig(httpPort: port, requestsPerSecond: 1000)
        let extra = "\nguard:\n  max_disables: 2\n  window: 10m\nreconcile:\n  allowlist_usernames: [\"svc-*\"]\n"
        try (try String(contentsOfFile: config, encoding: .utf8) + extra).write(toFile: config, atomically: true, encoding: .utf8)
        let worker = try CLIProcess(["run", "--config", config], directory: env.directory)
        try await WorkerEnvironment.waitUntilReady(port: port)
        let staff = ["H1", "H2", "H3", "H4"]
        try await env.stack.publish(try staff.map { try LeaverLockoutProcessTests.message("hired", $0, id: "\($0)-hire", seq: 1, roles: ["sales"]) })
        _ = try await env.waitForResults(Set(staff.map { "\($0)-hire" }))
        try await env.stack.publish(try staff.map { try LeaverLockoutProcessTests.message("terminated", $0, id: "\($0)-leave", seq: 2) })
        let leaving = try await env.waitForResults(Set(staff.map { "\($0)-leave" }))
        #expect(leaving.filter { $0.key.hasSuffix("-leave") }.values.flatMap { $0 }.sorted() == ["applied", "applied", "held", "held"], "\(leaving)")

        let listed = try await CLIProcess.run(["holds", "list", "--config", config, "--json"], directory: env.directory)
        #expect(listed.status == 0, "\(listed.stderr)")
        let heldLines = listed.stdout.split(separator: "\n")
        #expect(heldLines.count == 2 && heldLines.allSatisfy { $0.contains("\"event_type\":\"hr.employee.terminated\"") }, "\(listed.stdout)")
        let approved = try await CLIProcess.run(["holds", "approve", "--config", config, "--all"], directory: env.directory)
        #expect(approved.status == 0 && approved.stdout.contains("approved 2"), "\(approved.stdout)\(approved.stderr)")
        let deadline = ContinuousClock.now + .seconds(60)
        while staff.contains(where: { env.emulator.directory.user(username: $0.lowercased())?.status != .disabled }) {
            guard ContinuousClock.now < deadline else { throw ProcessTimeout(what: "approved leavers locked out") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let usage = try await CLIProcess.run(["holds", "approve", "--config", config], directory: env.directory)
        #expect(usage.status == 2, "neither --all nor ids is a usage error")

        let shown = try await CLIProcess.run(["employee", "show", "H1", "--config", config], directory: env.directory)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(shown.stdout.contains("HR:   terminated") && shown.stdout.contains("disabled") && shown.stdout.contains("H1-leave"), "\(shown.stdout)")
        let shownJSON = try await CLIProcess.run(["employee", "show", "H1", "--config", config, "--json"], directory: env.directory)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(shownJSON.stdout.utf8)) as? [String: Any])
        #expect((object["duo_users"] as? [[String: Any]])?.first?["status"] as? String == "disabled")
        let missing = try await CLIProcess.run(["employee", "show", "NOBODY", "--config", config], directory: env.directory)
        #expect(missing.status == 1 && missing.stderr.contains("No employee NOBODY"))

        _ = env.emulator.directory.seed(users: [DuoEmulatorSeedUser(username: "stray.admin", email: "stray@example.com"),
                                                DuoEmulatorSeedUser(username: "svc-ci", email: "ci@example.com")], groups: [])
        let audit = try await CLIProcess.run(["reconcile", "--config", config, "--format", "json"], directory: env.directory)
        #expect(audit.status == 0, "\(audit.stderr)")
        let lines = audit.stdout.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let findings = lines.dropLast().compactMap { $0 }
        #expect(findings.map { "\($0["kind"] ?? ""):\($0["username"] ?? "")" }.sorted() == ["allowlisted:svc-ci", "orphaned_account:stray.admin"], "\(audit.stdout)")
        let summary = try #require((lines.last ?? nil)?["summary"] as? [String: Int])
        #expect(summary["orphaned_account"] == 1 && summary["leaver_active"] == 0 && summary["allowlisted"] == 1)
        let csv = try await CLIProcess.run(["reconcile", "--config", config, "--format", "csv", "--dry-run"], directory: env.directory)
        #expect(csv.stdout.hasPrefix("kind,severity,employee_id,duo_user_id,username,detail,fix\n") && csv.stdout.contains("orphaned_account,high"))

        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(30)) == 0)
        await env.shutdown()
    }
}
