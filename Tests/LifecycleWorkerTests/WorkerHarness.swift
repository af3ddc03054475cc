import DuoAdmin
import DuoEmulator
import EmbeddedStack
import Foundation
import Kafka
import Lifecycle
import LifecycleStore
import LifecycleWorker
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// The real pipeline for tests: the embedded stack (librdkafka's mock cluster over TCP, the
/// emulator over HTTP), a SQLite file in its scratch folder, and the worker's runtime in this process.
final class WorkerHarness: Sendable {
    static let ikey = "DIWORKERTESTKEY00001"
    static let skey = "worker-test-secret-0123456789abcdefghij"
    static let topic = "hr.employee.lifecycle.v1"

    let stack: EmbeddedStack
    let configuration: PipelineConfiguration
    let workerConfiguration: WorkerConfiguration
    let logger: Logger
    private let running = Mutex<(runtime: WorkerRuntime?, task: Task<Void, any Error>?)>((nil, nil))

    static var quietLogger: Logger {
        var l = Logger(label: "worker.test")
        l.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return l
    }

    init(partitions: Int32 = 6, requestsPerSecond: Double? = nil, configure: (inout PipelineConfiguration) -> Void = { _ in },
         emulatorFaults: DuoEmulatorFaults = DuoEmulatorFaults(), configureWorker: (inout WorkerConfiguration) -> Void = { _ in }) async throws {
        logger = Self.quietLogger
        var options = EmbeddedStack.Options()
        options.partitions = partitions
        options.faults = emulatorFaults
        options.integrationKey = Self.ikey
        options.secretKey = Self.skey
        stack = try await EmbeddedStack(options: options, logger: logger)
        var workerOptions = EmbeddedStack.WorkerOptions()
        workerOptions.maxConcurrency = 16
        var config = try stack.workerConfiguration(workerOptions)
        config.duo.requestsPerSecond = requestsPerSecond
        config.pipeline.mapping = MappingPolicy(roles: ["engineering": ["Engineering", "VPN"], "sales": ["Sales"], "support": ["Support", "VPN"]])
        config.pipeline.retry = CommandRetryPolicy(base: .milliseconds(50), max: .seconds(1))
        config.pipeline.breaker.probeInterval = .milliseconds(200)
        configure(&config.pipeline)
        configureWorker(&config)
        configuration = config.pipeline
        workerConfiguration = config
    }

    var emulator: DuoEmulator { stack.emulator }
    var storePath: String { workerConfiguration.storePath }

    /// Starts the worker (again) on the same store.
    func startWorker(wrapStore: (any LifecycleStore) -> any LifecycleStore = { $0 }) throws {
        let client = DuoAdminClient(configuration: workerConfiguration.duo, logger: logger)
        let runtime = try WorkerRuntime(configuration: workerConfiguration, store: wrapStore(try SQLiteLifecycleStore(path: storePath)), client: client,
                                        registry: PrometheusCollectorRegistry(), logger: logger) { $0.sessionTimeout = .seconds(6) }
        let task = Task { try await runtime.run(handleSignals: false) }
        running.withLock { $0 = (runtime, task) }
    }

    /// Gracefully stops the worker and waits for it.
    func stopWorker() async throws {
        let (runtime, task) = running.withLock { $0 }
        await runtime?.triggerShutdown()
        try await task?.value
        running.withLock { $0 = (nil, nil) }
    }

    func shutdown() async {
        try? await stopWorker()
        await stack.shutdown()
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

    func message(_ e: Event) -> KafkaProducerMessage { Self.message(e) }

    static func message(_ e: Event) -> KafkaProducerMessage {
        let value = (try? JSONSerialization.data(withJSONObject: e.data, options: [.sortedKeys])) ?? Data()
        return KafkaProducerMessage(topic: topic, key: Array(e.employeeID.utf8), value: Array(value), headers: [
            KafkaHeader(key: "ce_specversion", string: "1.0"), KafkaHeader(key: "ce_id", string: e.id),
            KafkaHeader(key: "ce_source", string: "urn:test:hr"), KafkaHeader(key: "ce_type", string: e.type),
            KafkaHeader(key: "ce_time", string: "2026-11-02T09:00:00Z"), KafkaHeader(key: "content-type", string: "application/json"),
        ])
    }

    func publish(_ events: [Event]) async throws {
        try await stack.publish(events.map(message))
    }

    func publishRaw(_ messages: [KafkaProducerMessage]) async throws {
        try await stack.publish(messages)
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
        var config = KafkaConsumerConfiguration(bootstrapServers: [stack.bootstrapServers], groupID: "reader-\(UUID().uuidString)", topics: [topic])
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
    func waitUntil(_ what: String, timeout: Duration = .seconds(120), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            if ContinuousClock.now > deadline {
                // What the store held then, to tell a slow machine from a stuck command.
                let held = ((try? await commands()) ?? []).suffix(20).map {
                    "\($0.id) \($0.command.employeeID) \($0.command.eventType.rawValue) \($0.state.rawValue) attempts \($0.attempts) "
                        + "next \(RFC3339.format($0.nextAttemptAt))\($0.lastError.map { " error \($0)" } ?? "")"
                }
                throw HarnessTimeout(what: "\(what) (now \(RFC3339.format(Date())); commands: \(held.joined(separator: "; ")))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func commands() async throws -> [StoredCommand] { try await SQLiteLifecycleStore(path: storePath).allCommands() }
}

struct HarnessTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "Timed out waiting for \(what)" }
}
