import DuoAdmin
import DuoEmulator
import Foundation
import GRDB
import Kafka
import Lifecycle
import LifecycleWorker
import Logging

/// The real pipeline for a scenario: the embedded Kafka cluster and the emulator in this process,
/// the worker as a separate process (this executable in `worker` mode), and its SQLite store in
/// a temporary directory. Nothing inside the pipeline is mocked.
final class BenchEnvironment: @unchecked Sendable {
    static let ikey = "DIBENCHMARKKEY000001"
    static let skey = "benchmark-secret-0123456789abcdefghijkl"
    static let topic = "hr.employee.lifecycle.v1"
    static let resultsTopic = "duo.provisioning.results.v1"
    static let dlqTopic = "hr.employee.lifecycle.v1.dlq"

    let cluster: KafkaMockCluster
    let emulator: DuoEmulator
    let emulatorURL: String
    let directory: String
    let logger: Logger
    let producer: KafkaProducer
    private(set) var worker: Process?

    /// - Parameter partitions: partitions of the lifecycle topic. librdkafka's mock cluster keeps
    ///   about 5 MB per partition and drops older messages, so a large backlog needs more partitions.
    init(faults: DuoEmulatorFaults, logger: Logger, partitions: Int32 = 6) async throws {
        self.logger = logger
        cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        try cluster.createTopic(Self.topic, partitions: partitions)
        try cluster.createTopic(Self.resultsTopic, partitions: 6)
        try cluster.createTopic(Self.dlqTopic, partitions: 1)
        var config = DuoEmulatorConfiguration(integrations: [Self.ikey: DuoSecretKey(Self.skey)])
        config.faults = faults
        emulator = try DuoEmulator(configuration: config, logger: logger)
        emulatorURL = try await emulator.start()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("duo-lifecycle-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(Self.skey.utf8).write(to: URL(fileURLWithPath: "\(directory)/skey"))
        var producerConfig = KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers])
        producerConfig.client.statisticsInterval = nil
        producerConfig.queueBufferingMaxMessages = 500_000
        producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    }

    var storePath: String { "\(directory)/state.sqlite" }

    /// Starts the worker process with these settings.
    func startWorker(requestsPerSecond: Double, maxConcurrency: Int = 8, roles: String = "engineering: [Engineering, VPN]\n    sales: [Sales]\n    support: [Support, VPN]") throws {
        let yaml = """
            kafka:
              bootstrap_servers: "\(cluster.bootstrapServers)"
              lifecycle_topics: [\(Self.topic)]
              results_topic: \(Self.resultsTopic)
              dead_letter_topic: \(Self.dlqTopic)
            duo:
              api_url: \(emulatorURL)
              ikey: \(Self.ikey)
              skey_file: \(directory)/skey
              requests_per_second: \(requestsPerSecond)
              max_concurrency: \(maxConcurrency)
            mapping:
              roles:
                \(roles)
            store:
              path: \(storePath)
            retry: { base: 200ms, max: 5s }
            http:
              port: 0
              host: 127.0.0.1
            log:
              level: \(ProcessInfo.processInfo.environment["BENCH_WORKER_LOG_LEVEL"] ?? "error")
              format: text
            """
        try yaml.write(toFile: "\(directory)/config.yaml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["worker", "--config", "\(directory)/config.yaml"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.standardError
        try process.run()
        worker = process
    }

    func stopWorker() async {
        guard let worker, worker.isRunning else { return }
        worker.terminate()
        for _ in 0..<400 where worker.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
    }

    /// The worker process's resident and peak resident memory, in MB.
    func workerMemory() -> (rss: Double, peak: Double)? {
        guard let pid = worker?.processIdentifier,
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

    func publish(_ messages: [KafkaProducerMessage]) async throws {
        for start in stride(from: 0, to: messages.count, by: 20_000) {
            let chunk = Array(messages[start..<min(messages.count, start + 20_000)])
            for r in await producer.send(batch: chunk) { _ = try r.get() }
        }
    }

    static func event(_ type: String, _ employee: String, seq: Int, roles: [String]? = nil, extra: [String: Any] = [:]) throws -> KafkaProducerMessage {
        var data: [String: Any] = ["employee_id": employee, "email": "\(employee.lowercased())@example.com", "first_name": "F\(employee)",
                                   "last_name": "Bench", "sequence": seq]
        if let roles { data["roles"] = roles }
        for (k, v) in extra { data[k] = v }
        return try LifecycleEventMessage.make(topic: topic, type: "hr.employee.\(type)", data: data, id: "\(employee)-\(type)-\(seq)", source: "urn:bench:hr")
    }

    /// Reads result events until `count` have arrived: (Kafka timestamp ms, received_at).
    func awaitResults(count: Int, timeout: Duration) async throws -> [(publishedMs: Int64, receivedAt: Date, outcome: String)] {
        var config = KafkaConsumerConfiguration(bootstrapServers: [cluster.bootstrapServers], groupID: "bench-results-\(UUID().uuidString)", topics: [Self.resultsTopic])
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
        await producer.shutdown()
        await emulator.stop()
        await cluster.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(sorted.count - 1, max(0, rank))]
}
