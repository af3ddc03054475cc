// DuoLifecycleCLI owns the duo-lifecycle command: dev, run, publish, dlq, results, duo, emulator
// and kafka-cluster, their options, output, logging and exit codes.
import Foundation
import ArgumentParser
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
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
