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
        subcommands: [DevCommand.self, RunCommand.self, IngressCommand.self, ReconcileCommand.self, HoldsCommand.self, EmployeeCommand.self, PublishCommand.self, DLQCommand.self, ResultsCommand.self,
                      DuoCommand.self, EmulatorCommand.self, KafkaClusterCommand.self]
    )

    /// Runs the command with the project's exit codes: usage and configuration errors exit 2
    /// (ArgumentParser's own default is 64), runtime failures 1.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
