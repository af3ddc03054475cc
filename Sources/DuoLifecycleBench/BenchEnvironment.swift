import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import GRDB
import Kafka
import Lifecycle
import LifecycleTools
import LifecycleWorker
import Synchronization
import Logging

/// The real pipeline for a scenario: the embedded stack (Kafka cluster and emulator) in this
/// process, the worker as a separate process (this executable in `worker` mode), and its SQLite
/// store in the stack's scratch folder. Nothing inside the pipeline is mocked.
final class BenchEnvironment: Sendable {
    static let topic = "hr.employee.lifecycle.v1"

    let stack: EmbeddedStack
    let logger: Logger
    private let worker = Mutex<Process?>(nil)

    /// - Parameter partitions: partitions of the lifecycle topic. librdkafka's mock cluster keeps
    ///   about 5 MB per partition and drops older messages, so a large backlog needs more partitions.
    init(faults: DuoEmulatorFaults, logger: Logger, partitions: Int32 = 6) async throws {
        self.logger = logger
        var options = EmbeddedStack.Options()
        options.partitions = partitions
        options.resultsPartitions = 6
        options.faults = faults
        options.producerQueueMessages = 500_000
        stack = try await EmbeddedStack(options: options, logger: logger)
    }

    var emulator: DuoEmulator { stack.emulator }
    var storePath: String { stack.storePath() }

    /// Starts the worker process with these settings.
    func startWorker(requestsPerSecond: Double, maxConcurrency: Int = 8) throws {
        var options = EmbeddedStack.WorkerOptions()
        options.requestsPerSecond = requestsPerSecond
        options.maxConcurrency = maxConcurrency
        options.retryBase = "200ms"
        options.retryMax = "5s"
        options.logLevel = ProcessInfo.processInfo.environment["BENCH_WORKER_LOG_LEVEL"] ?? "error"
        let config = try stack.writeConfig(options)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["worker", "--config", config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.standardError
        try process.run()
        worker.withLock { $0 = process }
    }

    func stopWorker() async {
        guard let worker = worker.withLock({ $0 }), worker.isRunning else { return }
        worker.terminate()
        for _ in 0..<400 where worker.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
    }

    /// The worker process's resident and peak resident memory, in MB.
    func workerMemory() -> (rss: Double, peak: Double)? {
        guard let pid = worker.withLock({ $0?.processIdentifier }),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func kb(_ field: String) -> Double? {
            status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
                .flatMap { Double($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
        }
        guard let rss = kb("VmRSS"), let peak = kb("VmHWM") else { return nil }
        return (rss / 1024, peak / 1024)
    }

    /// Counts in the worker's store, read without disturbing it.
    func storeCount(_ sql: String) -> Int {
        guard FileManager.default.fileExists(atPath: storePath),
              let db = try? DatabaseQueue(path: storePath, configuration: { var c = Configuration(); c.readonly = true; c.busyMode = .timeout(2); return c }())
        else { return 0 }
        return (try? db.read { try Int.fetchOne($0, sql: sql) }) ?? 0
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
        await stack.shutdown()
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(sorted.count - 1, max(0, rank))]
}
