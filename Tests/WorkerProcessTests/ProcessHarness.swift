import AsyncHTTPClient
import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import Kafka
import LifecycleTools
import LifecycleWorker
import Logging
import Synchronization
import TestSupport

/// Runs `duo-lifecycle` as a separate process, with its output in files.
final class CLIProcess: Sendable {
    let process: Process
    let stdoutPath: String
    let stderrPath: String

    static var binary: URL {
        let dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [dir.appendingPathComponent("duo-lifecycle"), dir.deletingLastPathComponent().appendingPathComponent("duo-lifecycle")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    init(_ arguments: [String], directory: String, environment: [String: String] = [:]) throws {
        let id = UUID().uuidString.prefix(8)
        stdoutPath = "\(directory)/out-\(id).log"
        stderrPath = "\(directory)/err-\(id).log"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardInput = FileHandle.nullDevice
        try KafkaMockCluster.startingChildProcess { try process.run() }
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits for the process to exit; nil if it is still running after `timeout`.
    func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return process.terminationStatus
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Runs a command to completion.
    static func run(_ arguments: [String], directory: String, environment: [String: String] = [:],
                    timeout: Duration = .seconds(120)) async throws -> (status: Int32, stdout: String, stderr: String) {
        let p = try CLIProcess(arguments, directory: directory, environment: environment)
        guard let status = await p.wait(timeout: timeout) else {
            p.signal(SIGKILL)
            throw ProcessTimeout(what: arguments.joined(separator: " "))
        }
        return (status, p.stdout, p.stderr)
    }
}

struct ProcessTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "Timed out: \(what)" }
}

/// The embedded stack for a worker process to talk to, and its scratch folder.
final class WorkerEnvironment: Sendable {
    static let ikey = "DIPROCESSTESTKEY0001"
    static let skey = "process-test-secret-0123456789abcdefgh"
    let stack: EmbeddedStack
    let logger: Logger

    init(emulatorRateLimit: Double? = nil, partitions: Int32 = 4) async throws {
        var quiet = Logger(label: "process.test")
        quiet.logLevel = .critical
        logger = quiet
        var options = EmbeddedStack.Options()
        options.partitions = partitions
        options.resultsPartitions = 2
        options.faults.rateLimit = emulatorRateLimit
        options.integrationKey = Self.ikey
        options.secretKey = Self.skey
        stack = try await EmbeddedStack(options: options, logger: quiet)
    }

    var cluster: KafkaMockCluster { stack.cluster }
    var emulator: DuoEmulator { stack.emulator }
    var directory: String { stack.directory }
    var kafka: KafkaClientConfiguration { stack.kafka }

    /// Writes a configuration file and returns its path.
    func writeConfig(name: String = "config.yaml", httpPort: Int, roles: [String: [String]] = ["engineering": ["Engineering", "VPN"], "sales": ["Sales"]],
                     unmapped: String = "ignore", requestsPerSecond: Int = 200, shutdownTimeout: String = "10s",
                     storeURL: String? = nil, workerID: String? = nil, commandLease: String? = nil, logLevel: String = "info") throws -> String {
        var options = EmbeddedStack.WorkerOptions()
        options.httpPort = httpPort
        options.roles = roles
        options.unmappedRoles = unmapped
        options.requestsPerSecond = Double(requestsPerSecond)
        options.shutdownTimeout = shutdownTimeout
        options.logLevel = logLevel
        options.storeURL = storeURL
        options.workerID = workerID
        options.commandLease = commandLease
        options.logFormat = "json"
        return try stack.writeConfig(options, name: name)
    }

    /// Writes events as JSON lines for `publish --file`.
    func writeEvents(_ lines: [[String: Any]], name: String) throws -> String {
        let text = try lines.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }.joined(separator: "\n")
        let path = "\(directory)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func hire(_ employee: String, id: String, roles: [String] = ["engineering"]) -> [String: Any] {
        ["type": "hired", "id": id, "data": ["employee_id": employee, "email": "\(employee.lowercased())@example.com", "roles": roles, "sequence": 1]]
    }

    /// Result events now on the result topic: event id → outcomes.
    func results() async throws -> [String: [String]] {
        var out: [String: [String]] = [:]
        for m in try await TopicReader(kafka: kafka, logger: logger).readAll(topic: "duo.provisioning.results.v1") {
            guard let json = m.value.flatMap({ try? JSONSerialization.jsonObject(with: Data($0)) }) as? [String: Any],
                  let id = (json["source_event"] as? [String: Any])?["id"] as? String else { continue }
            out[id, default: []].append(json["outcome"] as? String ?? "?")
        }
        return out
    }

    /// Result events now on the result topic, as (ce_id, source event id, outcome).
    func resultEvents() async throws -> [(ceID: String, eventID: String, outcome: String)] {
        try await TopicReader(kafka: kafka, logger: logger).readAll(topic: "duo.provisioning.results.v1").compactMap { m in
            guard let json = m.value.flatMap({ try? JSONSerialization.jsonObject(with: Data($0)) }) as? [String: Any],
                  let id = (json["source_event"] as? [String: Any])?["id"] as? String,
                  let ceID = m.headers.last(where: { $0.key == "ce_id" })?.value.map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
            return (ceID, id, json["outcome"] as? String ?? "?")
        }
    }

    /// Waits until the worker's operations server answers `/readyz` with 200.
    static func waitUntilReady(port: Int, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        var last = await get("http://127.0.0.1:\(port)/readyz")
        while last?.status != 200 {
            if ContinuousClock.now > deadline { throw ProcessTimeout(what: "worker on :\(port) ready (last /readyz: \(last.map { "\($0.status) \($0.body)" } ?? "no answer"))") }
            try await Task.sleep(for: .milliseconds(200))
            last = await get("http://127.0.0.1:\(port)/readyz")
        }
    }

    func waitForResults(_ ids: Set<String>, timeout: Duration = .seconds(120)) async throws -> [String: [String]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let r = try await results()
            if ids.isSubset(of: Set(r.keys)) { return r }
            if ContinuousClock.now > deadline { throw ProcessTimeout(what: "\(ids.subtracting(r.keys).count) results") }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    static func freePort() -> Int { PrivatePostgres.freePort() }

    /// GET on the worker's operations server: status and body, or nil while it is not listening.
    static func get(_ url: String) async -> (status: Int, body: String)? {
        do {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
            let body = try await response.body.collect(upTo: 1 << 22)
            return (Int(response.status.code), String(buffer: body))
        } catch {
            return nil
        }
    }

    func shutdown() async { await stack.shutdown() }
}
