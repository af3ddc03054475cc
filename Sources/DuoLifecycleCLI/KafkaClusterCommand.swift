import ArgumentParser
import Foundation
import Kafka
import Logging
import ServiceLifecycle

struct KafkaClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-cluster",
        abstract: "Run an embedded Kafka cluster (librdkafka's mock cluster) until SIGTERM or SIGINT.",
        discussion: """
        The cluster speaks the real Kafka protocol over TCP on loopback, so kcat, the worker or any \
        other Kafka client can connect to it. The bootstrap servers are printed as the first line \
        of standard output; logs go to standard error.

        Example:
          duo-lifecycle kafka-cluster --brokers 3 --topic hr.employee.lifecycle.v1:6
        """
    )

    @Option(help: "Number of brokers.")
    var brokers: Int = 1

    @Option(name: .customLong("topic"), help: ArgumentHelp("A topic to create, as NAME:PARTITIONS. Repeat for more.", valueName: "name:partitions"))
    var topics: [TopicArgument] = []

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...32).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 32") }
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "duo-lifecycle.kafka-cluster")
        let cluster = try KafkaMockCluster(brokers: brokers, logger: logger)
        for topic in topics { try cluster.createTopic(topic.name, partitions: topic.partitions) }
        emitLine(cluster.bootstrapServers)
        logger.info("Embedded Kafka cluster running", metadata: [
            "bootstrap": "\(cluster.bootstrapServers)", "brokers": "\(brokers)",
            "topics": "\(topics.map { "\($0.name):\($0.partitions)" })",
        ])
        let group = ServiceGroup(services: [EmbeddedClusterService(cluster: cluster)],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        logger.info("Embedded Kafka cluster stopped")
    }
}

/// `NAME:PARTITIONS` on the command line.
struct TopicArgument: ExpressibleByArgument {
    var name: String
    var partitions: Int32

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.first, !name.isEmpty else { return nil }
        let count = parts.count == 2 ? Int32(parts[1]) : 1
        guard let count, count > 0 else { return nil }
        self.name = String(name)
        self.partitions = count
    }
}

/// Keeps the embedded cluster up until graceful shutdown.
struct EmbeddedClusterService: Service {
    let cluster: KafkaMockCluster

    func run() async throws {
        try? await gracefulShutdown()
        await cluster.shutdown()
    }
}
