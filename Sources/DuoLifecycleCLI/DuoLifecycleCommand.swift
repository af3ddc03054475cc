import ArgumentParser
import Foundation

@main
struct DuoLifecycleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "duo-lifecycle",
        abstract: "Keep Cisco Duo in step with the employee lifecycle.",
        discussion: """
        Consumes HR lifecycle events (hired, updated, role changed, terminated, rehired) from Kafka \
        and applies them to Duo through idempotent Admin API commands.

        Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
        """,
        version: duoLifecycleVersion,
        subcommands: [DevCommand.self, RunCommand.self, IngressCommand.self, ReconcileCommand.self, HoldsCommand.self, EmployeeCommand.self, HealthCommand.self, PublishCommand.self, DLQCommand.self, ResultsCommand.self,
                      DuoCommand.self, EmulatorCommand.self, KafkaClusterCommand.self]
    )

    /// Runs the command with the project's exit codes: usage and configuration errors exit 2
    /// (ArgumentParser's own default is 64), runtime failures 1.
    static func main() async {
        Console.ignoreBrokenPipeSignal()
        var parsed: (any ParsableCommand.Type)?
        do {
            var command = try parseAsRoot()
            parsed = type(of: command)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                Console.err(usageError(error, in: parsed) + "\n")
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

extension DuoLifecycleCommand {
    /// The error with the usage of the command that failed: an error thrown by a subcommand's
    /// `run` (a configuration problem) shows that subcommand's usage, as a parse error does.
    static func usageError(_ error: any Error, in command: (any ParsableCommand.Type)?) -> String {
        guard let command, command != Self.self else { return fullMessage(for: error) }
        let usage = usageString(for: command)
        let words = usage.replacingOccurrences(of: "Usage:", with: "").split(separator: " ")
        let path = words.prefix { !$0.hasPrefix("-") && !$0.hasPrefix("<") && !$0.hasPrefix("[") }.joined(separator: " ")
        let shown = usage.hasPrefix("Usage:") ? usage : "Usage: " + usage
        return "Error: \(message(for: error))\n\(shown)\n  See '\(path) --help' for more information."
    }
}

/// The version `--version` prints.
let duoLifecycleVersion = "0.3.0"
