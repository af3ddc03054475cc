import ArgumentParser

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
        subcommands: [KafkaClusterCommand.self]
    )
}
