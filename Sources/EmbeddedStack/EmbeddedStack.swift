import DuoAdmin
import DuoEmulator
import Foundation
import Kafka
import LifecycleWorker
import Logging
import ServiceLifecycle
import Synchronization

/// The embedded stack: librdkafka's mock cluster (the real protocol over TCP) with the lifecycle,
/// results and dead-letter topics, the Duo emulator over HTTP, a scratch folder holding the
/// emulator's secret key, and a producer for publishing events. It hands out a worker
/// configuration that points at all of it, as a YAML file (for a worker process) or parsed.
public final class EmbeddedStack: Sendable {
    public struct Options: Sendable {
        /// Partitions of the lifecycle topic. librdkafka's mock cluster keeps about 5 MB per
        /// partition and drops older messages, so a large backlog needs more partitions.
        public var partitions: Int32 = 6
        public var resultsPartitions: Int32 = 3
        public var lifecycleTopic = "hr.employee.lifecycle.v1"
        public var resultsTopic = "duo.provisioning.results.v1"
        public var deadLetterTopic = "hr.employee.lifecycle.v1.dlq"
        /// The emulator's faults from the start.
        public var faults = DuoEmulatorFaults()
        /// Whether the emulator serves its control API under `/__emulator/`.
        public var controlAPI = false
        /// The emulator's integration key and secret key; fresh random ones by default.
        public var integrationKey = "DI" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(18)).uppercased()
        public var secretKey = UUID().uuidString + UUID().uuidString
        /// The scratch folder (secret key file, configuration, store); a new temporary one by default.
        public var directory: String?
        /// The producer's local queue, for publishing large backlogs.
        public var producerQueueMessages = 100_000

        public init() {}
    }

    /// What the worker's configuration file says beyond where the stack's parts are.
    public struct WorkerOptions: Sendable {
        public var requestsPerSecond: Double = 200
        public var maxConcurrency = 8
        /// `duo.bulk`: writes of commands running at once share bulk requests.
        public var bulk = true
        /// `worker.max_concurrency`; nil: the default (`maxConcurrency`, as `duo.max_concurrency`).
        public var workerMaxConcurrency: Int?
        public var roles: [String: [String]] = ["engineering": ["Engineering", "VPN"], "sales": ["Sales"], "support": ["Support", "VPN"]]
        public var unmappedRoles = "ignore"
        public var retryBase = "100ms"
        public var retryMax = "2s"
        public var retryMaxAge = "24h"
        /// 0 picks a free port.
        public var httpPort = 0
        public var shutdownTimeout = "10s"
        public var logLevel = "error"
        public var logFormat = "text"
        /// The consumer's session timeout; short, so a test's rebalances are quick.
        public var sessionTimeoutMs = 6000
        /// The SQLite file, inside the scratch folder.
        public var storeFile = "state.sqlite"
        /// A shared PostgreSQL store instead of the SQLite file (`store.url`).
        public var storeURL: String?
        /// `worker.id`: each replica sharing a store needs its own.
        public var workerID: String?
        /// `worker.command_lease`.
        public var commandLease: String?

        public init() {}
    }

    public let options: Options
    public let cluster: KafkaMockCluster
    public let emulator: DuoEmulator
    /// The emulator's base URL, `http://127.0.0.1:PORT`.
    public let emulatorURL: String
    public let directory: String
    public let producer: KafkaProducer
    let logger: Logger
    private let emulatorServices: BackgroundServices
    private let ownsDirectory: Bool

    /// Starts the cluster, creates the topics, starts the emulator and the producer. Whatever was
    /// started is stopped again if a later part fails.
    public init(options: Options = Options(), logger: Logger) async throws {
        self.options = options
        self.logger = logger
        let ownsDirectory = options.directory == nil
        let directory = options.directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("duo-lifecycle-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(options.secretKey.utf8).write(to: URL(fileURLWithPath: Self.secretKeyFile(in: directory)))
        self.directory = directory
        self.ownsDirectory = ownsDirectory

        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        var running: EmbeddedEmulator?
        do {
            try cluster.createTopic(options.lifecycleTopic, partitions: options.partitions)
            try cluster.createTopic(options.resultsTopic, partitions: options.resultsPartitions)
            try cluster.createTopic(options.deadLetterTopic, partitions: 1)
            var emulatorConfig = DuoEmulatorConfiguration(integrations: [options.integrationKey: DuoSecretKey(options.secretKey)])
            emulatorConfig.faults = options.faults
            emulatorConfig.controlEnabled = options.controlAPI
            running = try await EmbeddedEmulator.start(try DuoEmulator(configuration: emulatorConfig, logger: logger), logger: logger)
            var producerConfig = KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers])
            producerConfig.client.statisticsInterval = nil
            producerConfig.queueBufferingMaxMessages = options.producerQueueMessages
            producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        } catch {
            await running?.stop()
            await cluster.shutdown()
            if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
            throw error
        }
        self.cluster = cluster
        guard let running else { throw EmbeddedStackError("The Duo emulator did not start") }
        emulator = running.emulator
        emulatorURL = running.url
        emulatorServices = running.services
    }

    public var bootstrapServers: String { cluster.bootstrapServers }
    /// The file holding the emulator's secret key (`duo.skey_file`).
    public var secretKeyFile: String { Self.secretKeyFile(in: directory) }
    private static func secretKeyFile(in directory: String) -> String { "\(directory)/duo-skey" }
    public func storePath(_ worker: WorkerOptions = WorkerOptions()) -> String { "\(directory)/\(worker.storeFile)" }

    /// A Kafka client configuration for the cluster, without statistics.
    public var kafka: KafkaClientConfiguration {
        var k = KafkaClientConfiguration(bootstrapServers: [cluster.bootstrapServers])
        k.statisticsInterval = nil
        return k
    }

    /// The worker's YAML configuration: the one template every embedded worker uses.
    public func configYAML(_ worker: WorkerOptions = WorkerOptions()) -> String {
        let roles = worker.roles.sorted { $0.key < $1.key }.map { "\($0.key): [\($0.value.joined(separator: ", "))]" }.joined(separator: ", ")
        return """
            kafka:
              bootstrap_servers: "\(cluster.bootstrapServers)"
              lifecycle_topics: [\(options.lifecycleTopic)]
              results_topic: \(options.resultsTopic)
              dead_letter_topic: \(options.deadLetterTopic)
              properties:
                session.timeout.ms: "\(worker.sessionTimeoutMs)"
                # The mock cluster holds a fetch that found no data for the whole wait, even when
                # an event arrives meanwhile (a broker answers at once): keep the wait short, so
                # an event reaches the worker as soon as it would on real Kafka.
                fetch.wait.max.ms: "10"
            duo:
              api_url: \(emulatorURL)
              ikey: \(options.integrationKey)
              skey_file: \(secretKeyFile)
              requests_per_second: \(worker.requestsPerSecond)
              max_concurrency: \(worker.maxConcurrency)
              bulk: \(worker.bulk)
            mapping:
              roles: {\(roles)}
              unmapped_roles: \(worker.unmappedRoles)
            store:
              \(worker.storeURL.map { "url: \"\($0)\"" } ?? "path: \(storePath(worker))")
            retry: { base: \(worker.retryBase), max: \(worker.retryMax), max_age: \(worker.retryMaxAge) }
            http:
              port: \(worker.httpPort)
              host: 127.0.0.1
            worker:
              shutdown_timeout: \(worker.shutdownTimeout)\(worker.workerMaxConcurrency.map { "\n  max_concurrency: \($0)" } ?? "")\(worker.workerID.map { "\n  id: \"\($0)\"" } ?? "")\(worker.commandLease.map { "\n  command_lease: \($0)" } ?? "")
            log:
              level: \(worker.logLevel)
              format: \(worker.logFormat)

            """
    }

    /// Writes the configuration to the scratch folder and returns its path.
    public func writeConfig(_ worker: WorkerOptions = WorkerOptions(), name: String = "config.yaml") throws -> String {
        let path = "\(directory)/\(name)"
        try configYAML(worker).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The same configuration, parsed, for a worker in this process.
    public func workerConfiguration(_ worker: WorkerOptions = WorkerOptions()) throws -> WorkerConfiguration {
        try WorkerConfiguration.parse(yaml: configYAML(worker))
    }

    /// Publishes messages and fails on the first that Kafka did not take, in chunks that the
    /// producer's queue holds.
    public func publish(_ messages: [KafkaProducerMessage]) async throws {
        for start in stride(from: 0, to: messages.count, by: options.producerQueueMessages) {
            let chunk = Array(messages[start..<min(messages.count, start + options.producerQueueMessages)])
            for r in await producer.send(batch: chunk) { _ = try r.get() }
        }
    }

    /// Stops the producer, the emulator and the cluster, and removes a temporary scratch folder.
    public func shutdown() async {
        await producer.shutdown()
        await emulatorServices.stop()
        await cluster.shutdown()
        if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }
}
