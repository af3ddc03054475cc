import ArgumentParser
import DuoAdmin
import DuoEmulator
import Foundation
import Logging
import ServiceLifecycle

struct EmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulator",
        abstract: "Run a local Duo Admin API emulator that verifies Duo signatures.",
        discussion: """
        The base URL is printed as the first line of standard output; logs go to standard error. \
        It runs until SIGTERM or SIGINT and exits 0.

        --control turns on the control API under /__emulator/: POST reset, POST seed, \
        GET/PUT faults, GET journal?after=N, GET counters, GET state, POST state/save.

        Example:
          duo-lifecycle emulator --port 8081 --ikey DIXXXXXXXXXXXXXXXXXX --skey-file skey.txt --control
        """
    )

    @Option(help: "Port to listen on (0 picks a free one).") var port: Int
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Integration key. Repeat --ikey/--skey pairs for several integrations.") var ikey: [String] = []
    @Option(help: "Secret key, paired with --ikey by position.") var skey: [String] = []
    @Option(help: "A file holding the secret key, instead of --skey (single integration).") var skeyFile: String?
    @Option(help: "API hostname clients may sign with, besides the Host header.") var apiHost: String?
    @Option(help: "Most requests accepted in any one-second window; past it 429/42901.") var rateLimit: Double?
    @Option(help: "Added latency in milliseconds.") var latencyMs: Int?
    @Option(help: "With --latency-ms, draw the latency uniformly up to this many milliseconds.") var latencyMaxMs: Int?
    @Option(help: "Fraction (0–1) of requests answered 500/50001.") var errorRate: Double = 0
    @Option(help: "Clock-skew window in seconds.") var clockSkew: Int = 300
    @Flag(help: "Enable the control API under /__emulator/.") var control = false
    @Option(help: "Load the directory from this JSON file at start and save it back on exit.") var state: String?
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard !ikey.isEmpty else { throw ValidationError("--ikey is required") }
        if skeyFile != nil {
            guard ikey.count == 1, skey.isEmpty else { throw ValidationError("--skey-file works with exactly one --ikey and no --skey") }
        } else {
            guard skey.count == ikey.count else { throw ValidationError("Give one --skey for each --ikey (\(ikey.count) ikeys, \(skey.count) skeys)") }
        }
        guard (0...1).contains(errorRate) else { throw ValidationError("--error-rate must be between 0 and 1") }
        if let rateLimit, rateLimit <= 0 { throw ValidationError("--rate-limit must be positive") }
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "duo-lifecycle.emulator")
        var integrations: [String: DuoSecretKey] = [:]
        if let skeyFile {
            guard let text = try? String(contentsOfFile: skeyFile, encoding: .utf8) else { throw ValidationError("Cannot read --skey-file \(skeyFile)") }
            integrations[ikey[0]] = DuoSecretKey(text.trimmingCharacters(in: .whitespacesAndNewlines))
        } else {
            for (i, k) in ikey.enumerated() { integrations[k] = DuoSecretKey(skey[i]) }
        }
        var config = DuoEmulatorConfiguration(integrations: integrations)
        config.host = host
        config.port = port
        config.apiHostname = apiHost
        config.clockSkew = .seconds(clockSkew)
        config.controlEnabled = control
        config.stateFile = state
        config.faults.rateLimit = rateLimit
        config.faults.latencyMs = latencyMs
        config.faults.latencyMaxMs = latencyMaxMs
        config.faults.errorRate = errorRate
        let emulator: DuoEmulator
        do {
            emulator = try DuoEmulator(configuration: config, logger: logger)
        } catch let error as DuoEmulatorError {
            throw ValidationError(error.detail ?? error.message)
        }
        let service = EmulatorService(emulator: emulator, host: host, logger: logger)
        let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}

/// Runs the emulator and prints its base URL once it listens.
struct EmulatorService: Service {
    let emulator: DuoEmulator
    let host: String
    let logger: Logger

    func run() async throws {
        // The Hummingbird application inside drains its connections on graceful shutdown.
        try await emulator.run(onServerRunning: { port in
            emitLine("http://\(host):\(port)")
            logger.info("Duo emulator listening", metadata: ["url": "http://\(host):\(port)", "control": "\(emulator.configuration.controlEnabled)"])
        })
        logger.info("Duo emulator stopped")
    }
}
