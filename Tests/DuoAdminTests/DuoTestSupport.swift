import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import Kafka
import Logging
import Synchronization

/// An emulator on a random loopback port, and clients for it.
struct EmulatorFixture {
    static let ikey = "DIWJ8X6AEYOR5OMC6TQ1"
    static let skey = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"

    let running: EmbeddedEmulator
    var emulator: DuoEmulator { running.emulator }
    var url: String { running.url }

    static func start(configure: (inout DuoEmulatorConfiguration) -> Void = { _ in }) async throws -> EmulatorFixture {
        var config = DuoEmulatorConfiguration(integrations: [ikey: DuoSecretKey(skey)])
        config.controlEnabled = true
        configure(&config)
        var logger = Logger(label: "test.emulator")
        logger.logLevel = .critical
        let emulator = try DuoEmulator(configuration: config, logger: logger)
        return EmulatorFixture(running: try await EmbeddedEmulator.start(emulator, logger: logger))
    }

    func client(signature: DuoSignatureScheme = .v5, skey: String = Self.skey, retry: DuoRetryPolicy = .disabled,
                sleeper: DuoSleeper = .live, logger: Logger? = nil, requestsPerSecond: Double? = nil, maxConcurrency: Int = 8) -> DuoAdminClient {
        var config = DuoAdminConfiguration(endpoint: .url(url), integrationKey: Self.ikey, secretKey: DuoSecretKey(skey))
        config.signature = signature
        config.retry = retry
        config.requestsPerSecond = requestsPerSecond
        config.maxConcurrency = maxConcurrency
        var quiet = Logger(label: "test.client")
        quiet.logLevel = .critical
        return DuoAdminClient(configuration: config, sleeper: sleeper, logger: logger ?? quiet)
    }

    func stop() async { await running.stop() }
}

/// Records waits instead of sleeping, with a fixed jitter.
final class RecordingSleeper: Sendable {
    let waits = Mutex<[Duration]>([])
    let jitter: Duration
    init(jitter: Duration = .milliseconds(123)) { self.jitter = jitter }
    var sleeper: DuoSleeper {
        DuoSleeper(sleep: { [self] d in waits.withLock { $0.append(d) } }, jitter: { [jitter] _ in jitter })
    }
    var recorded: [Duration] { waits.withLock { $0 } }
}

enum CLI {
    static var productsDirectory: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    static var binary: URL {
        let candidates = [productsDirectory.appendingPathComponent("duo-lifecycle"),
                          productsDirectory.deletingLastPathComponent().appendingPathComponent("duo-lifecycle")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    /// Runs `duo-lifecycle` and returns its exit status, standard output and standard error.
    /// The process is waited for on a thread of its own: blocking the cooperative pool would starve
    /// the in-process emulator the command is talking to.
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for key in ["DUO_IKEY", "DUO_SKEY", "DUO_API_URL", "DUO_API_HOST"] { env[key] = nil }
        env.merge(environment) { _, new in new }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try KafkaMockCluster.startingChildProcess { try process.run() }
        return await withCheckedContinuation { continuation in
            Thread {
                let group = DispatchGroup()
                let errBox = Mutex(Data())
                group.enter()
                Thread { let d = err.fileHandleForReading.readDataToEndOfFile(); errBox.withLock { $0 = d }; group.leave() }.start()
                let outData = out.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                process.waitUntilExit()
                continuation.resume(returning: (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errBox.withLock { $0 }, as: UTF8.self)))
            }.start()
        }
    }
}
