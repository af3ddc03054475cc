// DuoLifecycleCLI owns the duo-lifecycle command: dev, run, publish, dlq, results, duo, emulator
// and kafka-cluster, their options, output, logging and exit codes.
import Foundation
import ArgumentParser
import LifecycleStore
import LifecycleWorker
import Logging

/// Logging options shared by every long-running command. Logs go to standard error, so standard
/// output stays machine-readable.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func makeLogger(label: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = logLevel
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Writes a line to standard output and flushes it at once, so a parent process reading the
/// first line (for example a bootstrap address or a base URL) sees it immediately.
func emitLine(_ line: String) {
    Console.out(line + "\n")
}

/// Every command's `print`: a line on standard output through ``Console``.
func print(_ line: String = "") {
    Console.out(line + "\n")
}

/// Standard output and error, written unbuffered and never crashing on a closed pipe: once the
/// reader of standard output has gone (`duo users list | head -1`), the command ends quietly with
/// exit 0 instead of dying on EPIPE; a closed standard error is ignored.
enum Console {
    static func out(_ text: String) { write(STDOUT_FILENO, text) }
    static func err(_ text: String) { write(STDERR_FILENO, text) }

    /// A closed pipe must be an error to handle, not a signal that kills the process.
    static func ignoreBrokenPipeSignal() { signal(SIGPIPE, SIG_IGN) }

    private static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { buffer in Foundation.write(fd, buffer.baseAddress, buffer.count) }
            if written < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == EPIPE && fd == STDOUT_FILENO { exit(0) }
                return
            }
            bytes = bytes.dropFirst(written)
        }
    }
}

/// `--bootstrap`'s default: the worker's own override variable, so one export serves every command.
let defaultBootstrap = ProcessInfo.processInfo.environment["DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS"] ?? ""

/// Refuses an empty `--bootstrap` with a message that says both ways to give it.
func requireBootstrap(_ bootstrap: String) throws {
    guard !bootstrap.trimmingCharacters(in: .whitespaces).isEmpty else {
        throw ValidationError("Missing --bootstrap (or set DUO_LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS)")
    }
}

/// The worker's configuration file, for an operator command: a problem in it is a usage error
/// (exit 2) that names the key.
func loadWorkerConfiguration(_ path: String) throws -> WorkerConfiguration {
    do { return try WorkerConfiguration.load(path: path) } catch let problem as WorkerConfiguration.Problem {
        throw ValidationError("Configuration error: \(problem.description)")
    }
}

/// The worker's configuration and its store (SQLite or PostgreSQL), for an operator command;
/// the store logs only errors.
func openWorkerStore(_ path: String, label: String) async throws -> (WorkerConfiguration, any LifecycleStore) {
    let settings = try loadWorkerConfiguration(path)
    var logger = Logger(label: label)
    logger.logLevel = .error
    return (settings, try await WorkerRuntime.openStore(settings, logger: logger))
}
