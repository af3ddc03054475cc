import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import GRDB
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleTools
import LifecycleWorker
import Synchronization
import Logging

/// The real pipeline for a scenario: the embedded stack (Kafka cluster and emulator) in this
/// process, the workers as separate processes (this executable in `worker` mode), and their store:
/// a SQLite file in the stack's scratch folder, or a new database on a PostgreSQL server that the
/// replicas share. Nothing inside the pipeline is mocked.
final class BenchEnvironment: Sendable {
    static let topic = "hr.employee.lifecycle.v1"

    let stack: EmbeddedStack
    let logger: Logger
    let store: BenchStore
    private let workers = Mutex<[Process]>([])
    private let postgres = Mutex<PostgresLifecycleStore?>(nil)

    /// - Parameter partitions: partitions of the lifecycle topic. librdkafka's mock cluster keeps
    ///   about 5 MB per partition and drops older messages, so a large backlog needs more partitions.
    init(faults: DuoEmulatorFaults, store: BenchStore, logger: Logger, partitions: Int32 = 6) async throws {
        self.logger = logger
        self.store = store
        var options = EmbeddedStack.Options()
        options.partitions = partitions
        options.resultsPartitions = 6
        options.faults = faults
        options.producerQueueMessages = 500_000
        stack = try await EmbeddedStack(options: options, logger: logger)
    }

    var emulator: DuoEmulator { stack.emulator }
    var storePath: String { stack.storePath() }

    /// Starts the worker processes (`store.replicas` of them) with these settings; with several,
    /// `requestsPerSecond` is shared among them, as one Duo account's limit would be.
    func startWorker(requestsPerSecond: Double, maxConcurrency: Int = 8, workerMaxConcurrency: Int? = nil) async throws {
        var options = EmbeddedStack.WorkerOptions()
        options.requestsPerSecond = requestsPerSecond / Double(store.replicas)
        options.maxConcurrency = maxConcurrency
        options.retryBase = "200ms"
        options.retryMax = "5s"
        options.logLevel = ProcessInfo.processInfo.environment["BENCH_WORKER_LOG_LEVEL"] ?? "error"
        // Experiments against the defaults: BENCH_DUO_BULK=false, BENCH_WORKER_MAX_CONCURRENCY=N.
        if ProcessInfo.processInfo.environment["BENCH_DUO_BULK"] == "false" { options.bulk = false }
        options.workerMaxConcurrency = ProcessInfo.processInfo.environment["BENCH_WORKER_MAX_CONCURRENCY"].flatMap(Int.init) ?? workerMaxConcurrency
        if store.kind == .postgres, let url = store.serverURL {
            let name = "bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
            let database = try await PostgresLifecycleStore.createDatabase(String(name), on: try PostgresStoreConfiguration(url: url), logger: logger)
            options.storeURL = database.url
            // Migrate once here, and keep a connection for the counts the scenarios read.
            let opened = try await PostgresLifecycleStore(configuration: database, logger: logger)
            postgres.withLock { $0 = opened }
        }
        for replica in 0..<store.replicas {
            options.workerID = "bench-worker-\(replica)"
            let config = try stack.writeConfig(options, name: "worker-\(replica).yaml")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments = ["worker", "--config", config]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.standardError
            try process.run()
            workers.withLock { $0.append(process) }
        }
    }

    func stopWorker() async {
        let running = workers.withLock { $0 }.filter(\.isRunning)
        for worker in running { worker.terminate() }
        for _ in 0..<400 where running.contains(where: \.isRunning) { try? await Task.sleep(for: .milliseconds(50)) }
    }

    /// The largest resident and peak resident memory of the worker processes, in MB.
    func workerMemory() -> (rss: Double, peak: Double)? {
        let figures = workers.withLock { $0 }.compactMap { worker -> (Double, Double)? in
            guard let status = try? String(contentsOfFile: "/proc/\(worker.processIdentifier)/status", encoding: .utf8) else { return nil }
            func kb(_ field: String) -> Double? {
                status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
                    .flatMap { Double($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
            }
            guard let rss = kb("VmRSS"), let peak = kb("VmHWM") else { return nil }
            return (rss / 1024, peak / 1024)
        }
        guard !figures.isEmpty else { return nil }
        return (figures.map(\.0).max() ?? 0, figures.map(\.1).max() ?? 0)
    }

    /// Events in the workers' inbox, read without disturbing them.
    func inboxCount() async -> Int {
        if let postgres = postgres.withLock({ $0 }) { return (try? await postgres.count("inbox")) ?? 0 }
        guard FileManager.default.fileExists(atPath: storePath),
              let db = try? DatabaseQueue(path: storePath, configuration: { var c = Configuration(); c.readonly = true; c.busyMode = .timeout(2); return c }())
        else { return 0 }
        return (try? await db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM inbox") }) ?? 0
    }

    func publish(_ messages: [KafkaProducerMessage]) async throws { try await stack.publish(messages) }

    static func event(_ type: String, _ employee: String, seq: Int, roles: [String]? = nil, extra: [String: Any] = [:]) throws -> KafkaProducerMessage {
        var data: [String: Any] = ["employee_id": employee, "email": "\(employee.lowercased())@example.com", "first_name": "F\(employee)",
                                   "last_name": "Bench", "sequence": seq]
        if let roles { data["roles"] = roles }
        for (k, v) in extra { data[k] = v }
        return try LifecycleEventMessage.make(topic: topic, type: "hr.employee.\(type)", data: data, id: "\(employee)-\(type)-\(seq)", source: "urn:bench:hr")
    }

    /// Reads result events until `count` have arrived: (Kafka timestamp ms, received_at).
    func awaitResults(count: Int, timeout: Duration) async throws -> [(publishedMs: Int64, receivedAt: Date, outcome: String)] {
        var config = KafkaConsumerConfiguration(bootstrapServers: [stack.bootstrapServers], groupID: "bench-results-\(UUID().uuidString)",
                                                topics: [stack.options.resultsTopic])
        config.client.statisticsInterval = nil
        config.maxBatchSize = 2000
        let consumer = try KafkaConsumer(configuration: config, logger: logger)
        var out: [(Int64, Date, String)] = []
        let deadline = ContinuousClock.now + timeout
        let watchdog = Task { try await Task.sleep(until: deadline); await consumer.close() }
        for await batch in consumer.batches {
            for m in batch {
                guard let json = m.value.flatMap({ try? JSONSerialization.jsonObject(with: Data($0)) }) as? [String: Any] else { continue }
                out.append((m.timestampMilliseconds ?? 0, (json["received_at"] as? String).flatMap(RFC3339.parse) ?? Date(), json["outcome"] as? String ?? ""))
            }
            if out.count >= count { break }
        }
        watchdog.cancel()
        await consumer.close()
        guard out.count >= count else { throw BenchError("Only \(out.count) of \(count) results arrived in time") }
        return out
    }

    func shutdown() async {
        await stopWorker()
        await postgres.withLock { $0 }?.close()
        await stack.shutdown()
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(sorted.count - 1, max(0, rank))]
}
