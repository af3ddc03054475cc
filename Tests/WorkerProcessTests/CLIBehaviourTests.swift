import DuoEmulator
import Foundation
import Kafka
import LifecycleTools
import Testing

/// The command line as a shell user meets it (issue 16, point 8).
@Suite("Command line", .timeLimit(.minutes(3)))
struct CLIBehaviourTests {
    @Test("A reader that closes the pipe (duo users list | head -1) ends the command quietly with exit 0, not a crash on EPIPE")
    func closedPipeExitsQuietly() async throws {
        let env = try await WorkerEnvironment(partitions: 1)
        _ = env.emulator.directory.seed(users: (0..<400).map { DuoEmulatorSeedUser(username: "pipe\($0)") }, groups: [])
        let process = Process()
        process.executableURL = CLIProcess.binary
        process.arguments = ["duo", "users", "list", "--api-url", env.stack.emulatorURL, "--ikey", env.stack.options.integrationKey,
                             "--skey-file", env.stack.secretKeyFile]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try KafkaMockCluster.startingChildProcess { try process.run() }
        // Read the first line, then go away like `head -1`. The reads and the wait block, so they
        // run on a thread of their own, never on the few threads every test's tasks share.
        let (first, stderr) = await withCheckedContinuation { (done: CheckedContinuation<(Data, String), Never>) in
            Thread.detachNewThread {
                var first = Data()
                while !first.contains(UInt8(ascii: "\n")) {
                    let chunk = out.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    first.append(chunk)
                }
                try? out.fileHandleForReading.close()
                process.waitUntilExit()
                done.resume(returning: (first, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)))
            }
        }
        #expect(String(decoding: first, as: UTF8.self).contains("\"username\":\"pipe"))
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "status \(process.terminationStatus): \(stderr.prefix(300))")
        #expect(!stderr.contains("Fatal error") && !stderr.contains("crashed"))
        await env.shutdown()
    }

    @Test("--version; publish refuses (exit 2, nothing published) what the worker would dead-letter; --bootstrap falls back to DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS; a subcommand's error shows its own usage")
    func versionValidationBootstrapAndUsage() async throws {
        let env = try await WorkerEnvironment(partitions: 1)
        let version = try await CLIProcess.run(["--version"], directory: env.directory)
        #expect(version.status == 0 && version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)

        let bad = try await CLIProcess.run(["publish", "--bootstrap", env.stack.bootstrapServers, "--type", "promoted", "--employee-id", "E1"], directory: env.directory)
        #expect(bad.status == 2 && bad.stderr.contains("Unknown event type 'hr.employee.promoted'"), "\(bad.stderr)")
        #expect(bad.stderr.contains("Usage: duo-lifecycle publish"), "the publish usage, not the root's")
        let noEmail = try await CLIProcess.run(["publish", "--bootstrap", env.stack.bootstrapServers, "--type", "hired", "--employee-id", "E1", "--roles", "sales"],
                                               directory: env.directory)
        #expect(noEmail.status == 2 && noEmail.stderr.contains("email"), "\(noEmail.stderr)")
        let lifecycle = try await TopicReader(kafka: env.kafka, logger: env.logger).readAll(topic: "hr.employee.lifecycle.v1")
        #expect(lifecycle.isEmpty, "nothing refused was published")

        let viaEnvironment = try await CLIProcess.run(["publish", "--type", "terminated", "--employee-id", "E2"], directory: env.directory,
                                                      environment: ["DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS": env.stack.bootstrapServers])
        #expect(viaEnvironment.status == 0 && viaEnvironment.stdout.contains("published hr.employee.terminated E2"), "\(viaEnvironment.stderr)")
        let missing = try await CLIProcess.run(["results", "tail"], directory: env.directory, environment: ["DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS": ""])
        #expect(missing.status == 2 && missing.stderr.contains("DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS") && missing.stderr.contains("duo-lifecycle results tail"))
        // results tail --json: one JSON object a line, with the event's ce_id.
        try await env.stack.publish([KafkaProducerMessage(topic: "duo.provisioning.results.v1", key: Array("E9".utf8),
                                                          value: Array(#"{"employee_id":"E9","outcome":"applied"}"#.utf8),
                                                          headers: [KafkaHeader(key: "ce_id", string: "result-1")])])
        let tail = try CLIProcess(["results", "tail", "--bootstrap", env.stack.bootstrapServers, "--from-beginning", "--json"], directory: env.directory)
        let tailDeadline = ContinuousClock.now + .seconds(30)
        while !tail.stdout.contains("\n") && ContinuousClock.now < tailDeadline { try await Task.sleep(for: .milliseconds(100)) }
        tail.signal(SIGTERM)
        _ = await tail.wait(timeout: .seconds(15))
        let line = try #require(tail.stdout.split(separator: "\n").first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["ce_id"] as? String == "result-1" && object["outcome"] as? String == "applied" && object["employee_id"] as? String == "E9")
        let config = try await CLIProcess.run(["run", "--config", "/nonexistent.yaml"], directory: env.directory)
        #expect(config.status == 2 && config.stderr.contains("Usage: duo-lifecycle run --config"), "\(config.stderr)")
        await env.shutdown()
    }
}
