import DuoAdmin
import Foundation
import Hummingbird
import Kafka
import Lifecycle
import LifecycleStore
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// The whole worker, built from its settings: store, Duo client, consumer, dispatcher, outbox
/// relay and the operations HTTP server, run as one service group that drains in order on
/// SIGTERM or SIGINT.
public final class WorkerRuntime: Sendable {
    public let settings: WorkerSettings
    public let store: SQLiteLifecycleStore
    public let client: DuoAdminClient
    public let pipeline: LifecyclePipeline
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    public init(settings: WorkerSettings, registry: PrometheusCollectorRegistry, logger: Logger) throws {
        self.settings = settings
        self.registry = registry
        self.logger = logger
        self.store = try SQLiteLifecycleStore(path: settings.storePath)
        var duo = settings.duo
        duo.retry = .disabled
        var clientLogger = logger
        clientLogger[metadataKey: "component"] = "duo"
        self.client = DuoAdminClient(configuration: duo, logger: clientLogger, callObserver: { call in
            Counter(label: "duo_lifecycle_duo_calls_total", dimensions: [("method", call.method), ("status", call.status.map(String.init) ?? "error")]).increment()
            Timer(label: "duo_lifecycle_duo_call_duration_seconds", dimensions: [("method", call.method)])
                .recordNanoseconds(Int64(call.duration / .nanoseconds(1)))
        })
        self.pipeline = try LifecyclePipeline(configuration: settings.worker, kafka: settings.kafka, store: store,
                                              directory: DuoAdminDirectory(client: client), logger: logger)
    }

    /// Why the worker is not ready, if it is not: no partitions assigned, or the store unreachable.
    public func readiness() -> (ready: Bool, reasons: [String]) {
        var reasons: [String] = []
        if pipeline.consumer.consumer.assignment.isEmpty { reasons.append("no partitions assigned yet") }
        if (try? store.statistics(now: Date())) == nil { reasons.append("the store is unreachable") }
        return (reasons.isEmpty, reasons)
    }

    /// Runs until SIGTERM or SIGINT (or `triggerShutdown`), then drains within the shutdown timeout.
    public func run(handleSignals: Bool = true, onHTTPRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let server = OperationsServer(host: settings.httpHost, port: settings.httpPort, registry: registry, logger: logger) { [self] in readiness() }
        let services: [any Service] = [server.makeApplication(onRunning: onHTTPRunning), StoreMetricsReporter(store: store)] + pipeline.services
        var config = ServiceGroupConfiguration(services: services.map { .init(service: $0) }, logger: logger)
        if handleSignals { config.gracefulShutdownSignals = [.sigterm, .sigint] }
        config.maximumGracefulShutdownDuration = settings.shutdownTimeout
        let group = ServiceGroup(configuration: config)
        groupBox.set(group)
        logger.info("Worker starting", metadata: [
            "kafka.bootstrap": "\(settings.kafka.bootstrapServers.joined(separator: ","))", "kafka.topics": "\(settings.worker.lifecycleTopics)",
            "kafka.group": "\(settings.worker.groupID)", "duo.endpoint": "\(settings.duo.endpoint)", "duo.signature": "\(settings.duo.signature.rawValue)",
            "store": "\(settings.storePath)", "http.port": "\(settings.httpPort)",
        ])
        do {
            try await group.run()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
        logger.info("Worker stopped")
    }

    private let groupBox = GroupBox()

    /// Starts a graceful shutdown, as SIGTERM would.
    public func triggerShutdown() async { await groupBox.get()?.triggerGracefulShutdown() }
}

final class GroupBox: @unchecked Sendable {
    private let lock = NSLock()
    private var group: ServiceGroup?
    func set(_ g: ServiceGroup) { lock.lock(); group = g; lock.unlock() }
    func get() -> ServiceGroup? { lock.lock(); defer { lock.unlock() }; return group }
}

/// Publishes the store's counts as metrics every few seconds.
struct StoreMetricsReporter: Service {
    let store: any LifecycleStore

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if let s = try? store.statistics(now: Date()) {
                Gauge(label: "duo_lifecycle_outbox_backlog").record(s.outboxBacklog)
                Gauge(label: "duo_lifecycle_outbox_oldest_age_seconds").record(s.outboxOldestAge)
                for state in [CommandState.pending, .running, .retry, .done, .dead, .superseded] {
                    Gauge(label: "duo_lifecycle_commands", dimensions: [("state", state.rawValue)]).record(s.commandsByState[state] ?? 0)
                }
            }
            try? await Task.sleep(for: .seconds(2))
        }
    }
}
