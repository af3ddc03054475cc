import DuoAdmin
import DuoEmulator
import Foundation
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleWorker
import Logging
import ServiceLifecycle
import Synchronization

/// The real pipeline for tests: librdkafka's mock cluster over TCP, the emulator over HTTP, a
/// SQLite file in a temporary directory, and the worker's services.
final class WorkerHarness: Sendable {
    static let ikey = "DIWORKERTESTKEY00001"
    static let skey = "worker-test-secret-0123456789abcdefghij"
    static let topic = "hr.employee.lifecycle.v1"

    let cluster: KafkaMockCluster
    let emulator: DuoEmulator
    let emulatorURL: String
    let storePath: String
    let configuration: WorkerConfiguration
    let producer: KafkaProducer
    let logger: Logger
    let requestsPerSecond: Double?
    private let running = Mutex<(group: ServiceGroup?, task: Task<Void, any Error>?, client: DuoAdminClient?)>((nil, nil, nil))

    static var quietLogger: Logger {
        var l = Logger(label: "worker.test")
        l.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return l
    }

    init(partitions: Int32 = 6, requestsPerSecond: Double? = nil, configure: (inout WorkerConfiguration) -> Void = { _ in },
         emulatorFaults: DuoEmulatorFaults = DuoEmulatorFaults()) async throws {
        logger = Self.quietLogger
        cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        var config = WorkerConfiguration()
        config.mapping = MappingPolicy(roles: ["engineering": ["Engineering", "VPN"], "sales": ["Sales"], "support": ["Support", "VPN"]])
        config.retry = CommandRetryPolicy(base: .milliseconds(50), max: .seconds(1))
        config.breaker.probeInterval = .milliseconds(200)
        configure(&config)
        configuration = config
        try cluster.createTopic(Self.topic, partitions: partitions)
        try cluster.createTopic(config.resultsTopic, partitions: 3)
        try cluster.createTopic(config.deadLetterTopic, partitions: 1)
        var emulatorConfig = DuoEmulatorConfiguration(integrations: [Self.ikey: DuoSecretKey(Self.skey)])
        emulatorConfig.faults = emulatorFaults
        emulator = try DuoEmulator(configuration: emulatorConfig, logger: logger)
        emulatorURL = try await emulator.start()
        storePath = FileManager.default.temporaryDirectory.appendingPathComponent("worker-\(UUID().uuidString)/state.sqlite").path
        var producerConfig = KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers])
        producerConfig.client.statisticsInterval = nil
        producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        self.requestsPerSecond = requestsPerSecond
    }

    /// Starts the worker (again) on the same store.
    func startWorker() throws {
        var clientConfig = DuoAdminConfiguration(endpoint: .url(emulatorURL), integrationKey: Self.ikey, secretKey: DuoSecretKey(Self.skey))
        clientConfig.retry = .disabled  // the dispatcher schedules its own retries
        clientConfig.requestsPerSecond = requestsPerSecond
        clientConfig.maxConcurrency = 16
        let client = DuoAdminClient(configuration: clientConfig, logger: logger)
        var kafka = KafkaClientConfiguration(bootstrapServers: [cluster.bootstrapServers])
        kafka.statisticsInterval = nil
        let store = try SQLiteLifecycleStore(path: storePath)
        let pipeline = try LifecyclePipeline(configuration: configuration, kafka: kafka, store: store,
                                             directory: DuoAdminDirectory(client: client), logger: logger) {
            $0.sessionTimeout = .seconds(6)
        }
        let group = ServiceGroup(services: pipeline.services, gracefulShutdownSignals: [], logger: logger)
        let task = Task { try await group.run() }
        running.withLock { $0 = (group, task, client) }
    }

    /// Gracefully stops the worker and waits for it.
    func stopWorker() async throws {
        let (group, task, client) = running.withLock { $0 }
        await group?.triggerGracefulShutdown()
        try await task?.value
        try await client?.shutdown()
        running.withLock { $0 = (nil, nil, nil) }
    }

    func shutdown() async {
        try? await stopWorker()
        await producer.shutdown()
        await emulator.stop()
        await cluster.shutdown()
        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: storePath).deletingLastPathComponent().path)
    }

    // MARK: Publishing

    struct Event: Sendable {
        var type: String
        var id: String
        var employeeID: String
        var data: [String: any Sendable]
    }

    static func event(_ type: String, _ employee: String, seq: Int, id: String? = nil, roles: [String]? = nil, extra: [String: any Sendable] = [:]) -> Event {
        var data: [String: any Sendable] = ["employee_id": employee, "sequence": seq, "email": "\(employee.lowercased())@example.com",
                                            "first_name": "First\(employee)", "last_name": "Last"]
        if let roles { data["roles"] = roles }
        for (k, v) in extra { data[k] = v }
        return Event(type: "hr.employee.\(type)", id: id ?? "\(employee)-\(type)-\(seq)", employeeID: employee, data: data)
    }

    func message(_ e: Event) -> KafkaProducerMessage {
        let value = try! JSONSerialization.data(withJSONObject: e.data, options: [.sortedKeys])
        return KafkaProducerMessage(topic: Self.topic, key: Array(e.employeeID.utf8), value: Array(value), headers: [
            KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: e.id),
            KafkaHeader(key: "ce_source", string: "urn:test:hr"), KafkaHeader(key: "ce_type", string: e.type),
            KafkaHeader(key: "ce_time", string: "2026-11-02T09:00:00Z"), KafkaHeader(key: "content-type", string: "application/json"),
        ])
    }

    func publish(_ events: [Event]) async throws {
        for r in await producer.send(batch: events.map(message)) { _ = try r.get() }
    }

    func publishRaw(_ messages: [KafkaProducerMessage]) async throws {
        for r in await producer.send(batch: messages) { _ = try r.get() }
    }

    // MARK: Reading results and dead letters

    struct Result: Sendable {
        var eventID: String?
        var employeeID: String?
        var outcome: String
        var operations: [String]
        var json: [String: any Sendable]
        var headers: [KafkaHeader]
    }

    /// Reads the results topic until `count` results have arrived (or the timeout passes).
    func results(count: Int, timeout: Duration = .seconds(120), settle: Duration = .milliseconds(1500)) async throws -> [Result] {
        try await read(topic: configuration.resultsTopic, count: count, timeout: timeout, settle: settle).map { m in
            let json = (try? JSONSerialization.jsonObject(with: Data(m.value ?? []))) as? [String: Any] ?? [:]
            let source = json["source_event"] as? [String: Any]
            return Result(eventID: source?["id"] as? String, employeeID: json["employee_id"] as? String, outcome: json["outcome"] as? String ?? "",
                          operations: json["operations"] as? [String] ?? [], json: json.mapValues { "\($0)" }, headers: m.headers)
        }
    }

    func deadLetters(count: Int, timeout: Duration = .seconds(60)) async throws -> [KafkaConsumerMessage] {
        try await read(topic: configuration.deadLetterTopic, count: count, timeout: timeout)
    }

    /// Everything on a topic, waiting until at least `count` messages (then a little longer, to catch extras).
    func read(topic: String, count: Int, timeout: Duration, settle: Duration = .milliseconds(1500)) async throws -> [KafkaConsumerMessage] {
        var config = KafkaConsumerConfiguration(bootstrapServers: [cluster.bootstrapServers], groupID: "reader-\(UUID().uuidString)", topics: [topic])
        config.client.statisticsInterval = nil
        let consumer = try KafkaConsumer(configuration: config, logger: logger)
        let collected = Mutex<[KafkaConsumerMessage]>([])
        let reader = Task {
            for await batch in consumer.batches { collected.withLock { $0 += batch } }
        }
        let deadline = ContinuousClock.now + timeout
        while collected.withLock({ $0.count }) < count && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        if count > 0 { try await Task.sleep(for: settle) }
        await consumer.close()
        _ = await reader.value
        return collected.withLock { $0 }
    }

    /// Waits until `condition` holds.
    func waitUntil(_ what: String, timeout: Duration = .seconds(120), _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try !condition() {
            if ContinuousClock.now > deadline { throw HarnessTimeout(what: what) }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func commands() throws -> [StoredCommand] { try SQLiteLifecycleStore(path: storePath).allCommands() }
}

struct HarnessTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "Timed out waiting for \(what)" }
}
