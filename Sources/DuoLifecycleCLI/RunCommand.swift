import ArgumentParser
import DuoAdmin
import Foundation
import Kafka
import LifecycleConsole
import LifecycleWorker
import Logging
import Metrics
import Prometheus

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the worker: consume lifecycle events and keep Duo in step.",
        discussion: """
        Configuration is YAML (see deploy/config.example.yaml). Any key can be overridden with \
        DUO_LIFECYCLE_<SECTION>_<KEY>, for example DUO_LIFECYCLE_DUO_SKEY_FILE=/run/secrets/duo_skey.

        SIGTERM or SIGINT stops consuming, finishes or releases commands in flight, flushes the \
        outbox, commits offsets and exits 0 within worker.shutdown_timeout (default 30s).

        --check validates the configuration and connectivity (Kafka metadata, one Duo read), \
        prints a report and exits 0 or 1.
        """
    )

    @Option(help: "The YAML configuration file.") var config: String
    @Flag(help: "Check the configuration and connectivity, then exit.") var check = false

    func run() async throws {
        let settings = try loadWorkerConfiguration(config)
        if check { return try await Self.check(settings) }
        let logger = Self.logger(settings: settings)
        let registry = WorkerMetrics.bootstrap()
        let runtime = try await WorkerRuntime(configuration: settings, registry: registry, logger: logger)
        let console = ConsoleServer(runtime: runtime, logger: logger)
        try await runtime.run(routes: { console.register(on: $0) })
        // Drained: commands finished, the outbox flushed, offsets committed, the group left. Exit
        // now rather than tear down the Kafka handles: librdkafka before 2.3 can abort while
        // destroying a cooperative-sticky consumer whose assignor state was never set
        // (rd_kafka_sticky_assignor_state_destroy, librdkafka #4312), which turned a clean stop
        // into SIGABRT about one run in three of the three-replica test.
        if KafkaConsumerConfiguration.librdkafkaVersion < 0x0203_0000 { Foundation.exit(0) }
    }

    static func logger(settings: WorkerConfiguration) -> Logger { logger(level: settings.logLevel, format: settings.logFormat) }

    static func logger(level name: String, format: String) -> Logger {
        let level = Logger.Level(rawValue: name) ?? .info
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "duo-lifecycle")
        logger.logLevel = level
        return logger
    }

    /// Checks configuration, Kafka and Duo, printing one line per check.
    static func check(_ settings: WorkerConfiguration) async throws {
        var failed = false
        func report(_ ok: Bool, _ line: String) {
            print("\(ok ? "ok  " : "FAIL") \(line)")
            if !ok { failed = true }
        }
        let storeName = settings.postgres?.redactedDescription ?? settings.storePath
        report(true, "configuration: valid (store \(storeName), http :\(settings.httpPort), signature \(settings.duo.signature.rawValue))")
        var quiet = Logger(label: "check")
        quiet.logLevel = .critical
        do {
            let store = try await WorkerRuntime.openStore(settings, logger: quiet)
            let stats = try await store.statistics(now: Date())
            await store.close()
            report(true, "store: reachable and migrated (\(stats.commandsByState.values.reduce(0, +)) command(s) waiting or running)")
        } catch {
            report(false, "store: \(error)")
        }
        do {
            let admin = try KafkaAdminClient(configuration: settings.kafka, logger: quiet)
            let metadata = try await admin.metadata(timeout: .seconds(10))
            report(true, "kafka: \(metadata.brokers.count) broker(s) at \(settings.kafka.bootstrapServers.joined(separator: ","))")
            for topic in settings.pipeline.lifecycleTopics + [settings.pipeline.resultsTopic, settings.pipeline.deadLetterTopic] {
                if let t = metadata.topic(topic), t.error == nil {
                    report(true, "kafka: topic \(topic) has \(t.partitions.count) partition(s)")
                } else {
                    report(false, "kafka: topic \(topic) does not exist")
                }
            }
            await admin.shutdown()
        } catch {
            report(false, "kafka: \(error)")
        }
        var duo = settings.duo
        duo.retry = .disabled
        let client = DuoAdminClient(configuration: duo, logger: quiet)
        do {
            let groups = try await client.call(.GET, "/admin/v1/groups", parameters: [.init("limit", "1")])
            report(true, "duo: credentials accepted at \(duo.endpoint) (\(groups.metadata?.totalObjects ?? 0) group(s))")
        } catch {
            report(false, "duo: \(error)")
        }
        try? await client.shutdown()
        print(failed ? "Check failed." : "Check passed.")
        if failed { throw ExitCode.failure }
    }
}
