import DuoAdmin
import Foundation
import Hummingbird
import Kafka
import Lifecycle
import LifecycleIngress
import LifecycleStore
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// The whole worker: store, Duo client, consumer, dispatcher, outbox relay and the operations
/// HTTP server, run as one service group that drains in order on SIGTERM or SIGINT.
public final class WorkerRuntime: Sendable {
    public let configuration: WorkerConfiguration
    public let store: any LifecycleStore
    public let client: DuoAdminClient
    public let pipeline: LifecyclePipeline
    /// The last reconcile's report (scheduled or asked for from the console), while this process runs.
    public let latestReconcile = LatestReconcile()
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    /// The running group, and whether a shutdown was asked for before it started.
    private let group = Mutex<(running: ServiceGroup?, stopRequested: Bool)>((nil, false))

    /// Builds every part from the configuration: the store (SQLite, or the shared PostgreSQL,
    /// migrated at start), and a Duo client whose calls are counted and timed as metrics.
    public convenience init(configuration: WorkerConfiguration, registry: PrometheusCollectorRegistry, logger: Logger) async throws {
        var clientLogger = logger
        clientLogger[metadataKey: "component"] = "duo"
        let client = DuoAdminClient(configuration: configuration.duo, logger: clientLogger, callObserver: { call in
            Counter(label: "duo_lifecycle_duo_calls_total", dimensions: [("method", call.method), ("status", call.status.map(String.init) ?? "error")]).increment()
            Timer(label: "duo_lifecycle_duo_call_duration_seconds", dimensions: [("method", call.method)])
                .recordNanoseconds(Int64(call.duration / .nanoseconds(1)))
        })
        try self.init(configuration: configuration, store: try await Self.openStore(configuration, logger: logger), client: client,
                      registry: registry, logger: logger)
    }

    /// Opens the store the configuration names.
    public static func openStore(_ configuration: WorkerConfiguration, logger: Logger) async throws -> any LifecycleStore {
        if let postgres = configuration.postgres {
            var storeLogger = logger
            storeLogger[metadataKey: "component"] = "store"
            return try await PostgresLifecycleStore(configuration: postgres, logger: storeLogger)
        }
        return try SQLiteLifecycleStore(path: configuration.storePath)
    }

    /// A worker from parts already built (tests, benchmarks, embedding). The client's own retries
    /// should be off: the dispatcher schedules retries itself, so a retry never holds a slot.
    public init(configuration: WorkerConfiguration, store: any LifecycleStore, client: DuoAdminClient, registry: PrometheusCollectorRegistry,
                logger: Logger, consumerTuning: (inout KafkaConsumerConfiguration) -> Void = { _ in }) throws {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.store = store
        self.client = client
        self.pipeline = try LifecyclePipeline(configuration: configuration.pipeline, kafka: configuration.kafka, store: store,
                                              directory: DuoAdminDirectory(client: client, bulk: configuration.duoBulk ? DuoBulkWriter(client: client, observer: Self.countBulkRequest) : nil),
                                              logger: logger, consumerTuning: consumerTuning)
    }

    /// Why the worker is not ready, if it is not: it cannot do work when its store does not answer
    /// or no Kafka broker does. Having partitions is not required: a replica without any (more
    /// replicas than partitions, or during a rebalance) still applies commands with a PostgreSQL
    /// store, and a probe that waited for partitions would keep surplus replicas NotReady for
    /// good and block node drains under a PodDisruptionBudget.
    public func readiness() async -> (ready: Bool, reasons: [String]) {
        async let storeOK = storeAnswers(within: .seconds(2))
        async let kafkaProblem = pipeline.consumer.consumer.brokerProblem(timeout: .seconds(2))
        var reasons: [String] = []
        if await !storeOK { reasons.append("the store is unreachable") }
        if let problem = await kafkaProblem { reasons.append("no Kafka broker answers (\(problem))") }
        return (reasons.isEmpty, reasons)
    }

    /// Whether the store answers a cheap query in time (a database that is down may leave a
    /// connection attempt hanging much longer than a probe may wait).
    private func storeAnswers(within limit: Duration) async -> Bool {
        // Not a task group: a group waits for every child, and a hanging probe would hang it.
        final class Answer: Sendable { let value = Mutex<Bool?>(nil) }
        let answer = Answer()
        let probe = Task { [store] in
            let ok = (try? await store.statistics(now: Date())) != nil
            answer.value.withLock { $0 = ok }
        }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let ok = answer.value.withLock({ $0 }) { return ok }
            try? await Task.sleep(for: .milliseconds(20))
        }
        probe.cancel()
        return false
    }

    /// Runs until SIGTERM or SIGINT (or ``triggerShutdown()``), then drains within the shutdown
    /// timeout, and shuts the Duo client down.
    /// - Parameter routes: more routes for the operations port (the console).
    public func run(handleSignals: Bool = true, routes: (@Sendable (Router<BasicRequestContext>) -> Void)? = nil,
                    onHTTPRunning: @escaping @Sendable (Int) async -> Void = { _ in },
                    onIngressRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        Self.registerSeries()
        let server = OperationsServer(host: configuration.httpHost, port: configuration.httpPort, registry: registry, logger: logger,
                                      routes: routes) { [self] in await readiness() }
        var services: [any Service] = [Listening(server: server.makeApplication(onRunning: onHTTPRunning), setting: "http", host: configuration.httpHost,
                                                 port: configuration.httpPort),
                                       StoreMaintenance(store: store, retention: configuration.storeRetention, logger: logger)] + pipeline.services
        if let every = configuration.reconcile.every {
            let reconciler = DirectoryReconciler(configuration: configuration, store: store, client: client, logger: logger)
            services.append(ScheduledReconcile(reconciler: reconciler, store: store, every: every, fix: configuration.reconcile.fix,
                                               latest: latestReconcile, logger: logger))
        }
        // The webhook ingress on its own port; its metrics are on the operations port.
        if let ingress = configuration.ingress {
            services.append(Listening(server: try IngressServer(configuration: ingress, logger: logger).service(onRunning: onIngressRunning),
                                      setting: "ingress", host: ingress.host, port: ingress.port))
        }
        var groupConfig = ServiceGroupConfiguration(services: services.map { .init(service: $0) }, logger: logger)
        if handleSignals { groupConfig.gracefulShutdownSignals = [.sigterm, .sigint] }
        groupConfig.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        let group = ServiceGroup(configuration: groupConfig)
        let stopAtOnce = self.group.withLock { $0.running = group; return $0.stopRequested }
        if stopAtOnce { await group.triggerGracefulShutdown() }
        logger.info("Worker starting", metadata: [
            "kafka.bootstrap": "\(configuration.kafka.bootstrapServers.joined(separator: ","))", "kafka.topics": "\(configuration.pipeline.lifecycleTopics)",
            "kafka.group": "\(configuration.pipeline.groupID)", "duo.endpoint": "\(configuration.duo.endpoint)",
            "duo.signature": "\(configuration.duo.signature.rawValue)", "store": "\(configuration.postgres?.redactedDescription ?? configuration.storePath)", "worker.id": "\(configuration.pipeline.workerID)", "http.port": "\(configuration.httpPort)",
        ])
        do {
            try await group.run()
        } catch {
            try? await client.shutdown()
            await store.close()
            throw error
        }
        try? await client.shutdown()
        await store.close()
        logger.info("Worker stopped")
    }

    /// Counts a request of the bulk writer: a bulk request and its writes (a lone write, sent as
    /// its ordinary call, is counted by `duo_lifecycle_duo_calls_total` alone).
    @Sendable static func countBulkRequest(_ writes: Int) {
        guard writes > 1 else { return }
        Counter(label: "duo_lifecycle_duo_bulk_requests_total").increment()
        Counter(label: "duo_lifecycle_duo_bulk_writes_total").increment(by: Int64(writes))
    }

    /// Every counter and gauge series the worker can report, at 0 from the start: a rate or an
    /// alert over a series that appears only on first use sees nothing until then.
    static func registerSeries() {
        for name in ["duo_lifecycle_events_in_total", "duo_lifecycle_retries_total", "duo_lifecycle_fenced_total",
                     "duo_lifecycle_leases_lost_total", "duo_lifecycle_guard_held_total", "duo_lifecycle_outbox_published_total",
                     "duo_lifecycle_duo_bulk_requests_total", "duo_lifecycle_duo_bulk_writes_total"] {
            Counter(label: name).increment(by: 0)
        }
        for stage in ["ingest", "dispatch"] { Counter(label: "duo_lifecycle_dead_letters_total", dimensions: [("stage", stage)]).increment(by: 0) }
        for outcome in ProvisioningOutcome.allCases {
            Counter(label: "duo_lifecycle_commands_total", dimensions: [("outcome", outcome.rawValue)]).increment(by: 0)
        }
        for kind in OutboxKind.allCases { Counter(label: "duo_lifecycle_outbox_parked_total", dimensions: [("kind", kind.rawValue)]).increment(by: 0) }
        for state in [CommandState.pending, .running, .retry, .held] {
            Gauge(label: "duo_lifecycle_commands_queued", dimensions: [("state", state.rawValue)]).record(0)
        }
    }

    /// Starts a graceful shutdown, as SIGTERM would.
    public func triggerShutdown() async {
        let running = group.withLock { $0.stopRequested = true; return $0.running }
        await running?.triggerGracefulShutdown()
    }
}

/// A port the worker could not listen on. (When one of its servers fails, the worker stops its
/// other services and exits 1 with this.)
public struct ListenFailed: Error, CustomStringConvertible {
    /// The configuration section of the port: `http` or `ingress`.
    public var setting: String
    public var host: String
    public var port: Int
    public var reason: String
    public var description: String {
        "Could not listen on \(host):\(port) (\(setting).host, \(setting).port): \(reason). Another process may be using the port; choose another in the configuration."
    }
}

/// Runs one of the worker's servers, naming its port and setting if it cannot listen there.
struct Listening<Server: Service>: Service {
    let server: Server
    let setting: String
    let host: String
    let port: Int

    func run() async throws {
        do {
            try await server.run()
        } catch let error as IOError where [EADDRINUSE, EADDRNOTAVAIL, EACCES].contains(error.errnoCode) {
            throw ListenFailed(setting: setting, host: host, port: port, reason: String(cString: strerror(error.errnoCode)))
        }
    }
}

/// Publishes the store's counts as metrics every few seconds, and deletes what the retention no
/// longer needs every ten minutes.
struct StoreMaintenance: Service {
    let store: any LifecycleStore
    let retention: Duration
    let logger: Logger

    func run() async throws {
        var lastPurge = ContinuousClock.now - .seconds(600)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if ContinuousClock.now - lastPurge >= .seconds(600) {
                lastPurge = .now
                do {
                    let purged = try await store.purgeFinished(before: Date().addingTimeInterval(-(retention / .seconds(1))))
                    if purged > 0 { logger.info("Deleted rows older than store.retention", metadata: ["rows": "\(purged)"]) }
                } catch {
                    logger.error("Could not delete rows older than store.retention", metadata: ["error": "\(error)"])
                }
            }
            if let s = try? await store.statistics(now: Date()) {
                Gauge(label: "duo_lifecycle_outbox_backlog").record(s.outboxBacklog)
                Gauge(label: "duo_lifecycle_outbox_oldest_age_seconds").record(s.outboxOldestAge)
                for state in [CommandState.pending, .running, .retry, .held] {
                    Gauge(label: "duo_lifecycle_commands_queued", dimensions: [("state", state.rawValue)]).record(s.commandsByState[state] ?? 0)
                }
            }
            try? await Task.sleep(for: .seconds(2))
        }
    }
}
