import CRdKafka
import Logging
import Synchronization

/// An idempotent Kafka producer.
///
/// `send` returns once the broker has acknowledged the message (with `acks=all`), so a caller can
/// mark work done only after it is really durable in Kafka.
public final class KafkaProducer: Sendable {
    private let client: RDKafkaClient
    private let context: ProducerContext
    private let pollThread: RDKafkaPollThread
    private let logger: Logger

    public init(configuration: KafkaProducerConfiguration, logger: Logger = Logger(label: "kafka.producer")) throws {
        let context = ProducerContext(logger: logger, statistics: RDKafkaStatistics(role: "producer"))
        // Delivery reports come as events, a batch of messages each (one per produce request),
        // and are handed to their senders a batch at a time: one lock per batch, not per message.
        // Logs, errors and statistics then come as events too, and are served as their callbacks would.
        let client = try RDKafkaClient.make(kind: .producer, properties: configuration.properties(), context: context) { conf in
            rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_DR))
        }
        self.client = client
        self.context = context
        self.logger = logger
        self.pollThread = RDKafkaPollThread(name: "kafka-producer-poll", iteration: {
            client.withHandle { rk in context.serveDeliveryReports(rk, timeoutMs: 100) }
        })
    }

    /// Sends one message and returns where it was written once the delivery report arrives.
    public func send(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader] = []) async throws -> KafkaDeliveryReport {
        try await send(KafkaProducerMessage(topic: topic, partition: partition, key: key, value: value, headers: headers))
    }

    /// Sends one message and returns where it was written once the delivery report arrives.
    public func send(_ message: KafkaProducerMessage) async throws -> KafkaDeliveryReport {
        let results = await send(batch: [message])
        return try results[0].get()
    }

    /// Sends messages as one batch and waits for all their delivery reports.
    ///
    /// Every message gets its own result, in the order given. Order per partition is kept, and
    /// idempotence means a retry inside librdkafka never duplicates or reorders them.
    public func send(batch messages: [KafkaProducerMessage]) async -> [Result<KafkaDeliveryReport, KafkaError>] {
        guard !messages.isEmpty else { return [] }
        let collector = BatchCollector(messages: messages)
        let batchID = context.register(collector: collector)
        defer { context.unregister(batchID: batchID) }
        for (index, message) in messages.enumerated() {
            // The per-message opaque carries the batch and the index within it, so a delivery
            // report finds its result slot without a per-message table.
            let id = batchID << 32 | UInt(index)
            while true {
                guard let err = enqueue(message, opaque: id) else { break }
                if err.code == .queueFull && pollThread.isRunning {
                    // librdkafka's local queue is full: wait for delivery reports to make room.
                    try? await Task.sleep(for: .milliseconds(2))
                    continue
                }
                collector.complete(index: index, result: .failure(err))
                break
            }
        }
        return await collector.wait()
    }

    /// Waits until every message sent so far has a delivery report, or the timeout passes.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        let client = self.client
        let ms = Int32(clamping: Int64(timeout / .milliseconds(1)))
        let err = await runBlocking("kafka-producer-flush") { client.withHandle { rd_kafka_flush($0, ms) } }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, context: "Flush did not complete within \(timeout)")
        }
    }

    /// Flushes what is in flight, then stops the poll thread. Messages still undelivered after the
    /// timeout fail with an error rather than vanish.
    public func shutdown(timeout: Duration = .seconds(30)) async {
        do {
            try await flush(timeout: timeout)
        } catch {
            logger.warning("Kafka producer shut down with undelivered messages", metadata: ["kafka.error": "\(error)"])
        }
        await pollThread.stop()
        context.failAll(KafkaError(code: .destroyed, message: "The producer was shut down before delivery"))
    }

    /// The client's fatal error, if it has raised one (for example a fenced idempotent producer).
    public var fatalError: KafkaError? { client.fatalError() }

    deinit {
        pollThread.requestStop()
    }

    private func enqueue(_ message: KafkaProducerMessage, opaque: UInt) -> KafkaError? {
        client.withHandle { rk -> KafkaError? in
            let headers: OpaquePointer? = message.headers.isEmpty ? nil : rd_kafka_headers_new(message.headers.count)
            if let headers {
                for header in message.headers {
                    if let value = header.value {
                        _ = value.withUnsafeBytes { rd_kafka_header_add(headers, header.key, -1, $0.baseAddress, $0.count) }
                    } else {
                        _ = rd_kafka_header_add(headers, header.key, -1, nil, 0)
                    }
                }
            }
            let error: OpaquePointer? = message.topic.withCString { topic in
                withBytes(message.key) { keyPtr, keyCount in
                    withBytes(message.value) { valuePtr, valueCount in
                        var vus = VUList()
                        var vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_TOPIC; vu.u.cstr = topic; vus.append(vu)
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_PARTITION; vu.u.i32 = message.partition ?? RD_KAFKA_PARTITION_UA; vus.append(vu)
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_MSGFLAGS; vu.u.i = RD_KAFKA_MSG_F_COPY; vus.append(vu)
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_OPAQUE; vu.u.ptr = UnsafeMutableRawPointer(bitPattern: opaque); vus.append(vu)
                        if let keyPtr {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_KEY; vu.u.mem.ptr = UnsafeMutableRawPointer(mutating: keyPtr); vu.u.mem.size = keyCount; vus.append(vu)
                        }
                        if let valuePtr {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_VALUE; vu.u.mem.ptr = UnsafeMutableRawPointer(mutating: valuePtr); vu.u.mem.size = valueCount; vus.append(vu)
                        }
                        if let headers {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_HEADERS; vu.u.headers = headers; vus.append(vu)
                        }
                        return vus.withBuffer { rd_kafka_produceva(rk, $0.baseAddress, $0.count) }
                    }
                }
            }
            guard let error else { return nil }  // librdkafka now owns the headers.
            if let headers { rd_kafka_headers_destroy(headers) }
            return KafkaError(consuming: error, context: "Could not enqueue a message for \(message.topic)")
        }
    }
}

/// Up to eight `rd_kafka_vu_t` values, stored inline (no heap allocation per message).
private struct VUList {
    private var storage = (rd_kafka_vu_t(), rd_kafka_vu_t(), rd_kafka_vu_t(), rd_kafka_vu_t(),
                           rd_kafka_vu_t(), rd_kafka_vu_t(), rd_kafka_vu_t(), rd_kafka_vu_t())
    private(set) var count = 0

    mutating func append(_ vu: rd_kafka_vu_t) {
        withUnsafeMutableBytes(of: &storage) { $0.bindMemory(to: rd_kafka_vu_t.self)[count] = vu }
        count += 1
    }

    mutating func withBuffer<R>(_ body: (UnsafeBufferPointer<rd_kafka_vu_t>) -> R) -> R {
        let n = count
        return withUnsafeBytes(of: &storage) { body(UnsafeBufferPointer(rebasing: $0.bindMemory(to: rd_kafka_vu_t.self)[0..<n])) }
    }
}

private func withBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawPointer?, Int) -> R) -> R {
    guard let bytes else { return body(nil, 0) }
    return bytes.withUnsafeBytes { buffer in
        // An empty but present key or value must stay present (empty, not null).
        body(buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), buffer.count)
    }
}

/// Collects the delivery reports of one `send(batch:)` call.
final class BatchCollector: Sendable {
    private struct State {
        var results: [Result<KafkaDeliveryReport, KafkaError>?]
        var remaining: Int
        var waiter: CheckedContinuation<[Result<KafkaDeliveryReport, KafkaError>], Never>?
    }
    private let state: Mutex<State>
    private let topics: [String]

    init(messages: [KafkaProducerMessage]) {
        topics = messages.map(\.topic)
        state = Mutex(State(results: Array(repeating: nil, count: messages.count), remaining: messages.count, waiter: nil))
    }

    /// Records delivery reports, under one lock.
    func delivered(_ reports: [DeliveryReport]) {
        let resume = state.withLock { s -> (CheckedContinuation<[Result<KafkaDeliveryReport, KafkaError>], Never>, [Result<KafkaDeliveryReport, KafkaError>])? in
            for r in reports where r.index < topics.count && s.results[r.index] == nil {
                s.results[r.index] = r.error.map { .failure($0) } ?? .success(KafkaDeliveryReport(topic: topics[r.index], partition: r.partition, offset: r.offset))
                s.remaining -= 1
            }
            guard s.remaining == 0, let waiter = s.waiter else { return nil }
            s.waiter = nil
            return (waiter, s.results.compactMap { $0 })  // remaining == 0: every slot is filled
        }
        if let (waiter, results) = resume { waiter.resume(returning: results) }
    }

    struct DeliveryReport {
        var index: Int
        var partition: Int32
        var offset: Int64
        var error: KafkaError?
    }

    func complete(index: Int, result: Result<KafkaDeliveryReport, KafkaError>) {
        let resume = state.withLock { s -> (CheckedContinuation<[Result<KafkaDeliveryReport, KafkaError>], Never>, [Result<KafkaDeliveryReport, KafkaError>])? in
            guard s.results[index] == nil else { return nil }
            s.results[index] = result
            s.remaining -= 1
            guard s.remaining == 0, let waiter = s.waiter else { return nil }
            s.waiter = nil
            return (waiter, s.results.compactMap { $0 })  // remaining == 0: every slot is filled
        }
        if let (waiter, results) = resume { waiter.resume(returning: results) }
    }

    func failRemaining(_ error: KafkaError) {
        for index in topics.indices { complete(index: index, result: .failure(error)) }
    }

    func wait() async -> [Result<KafkaDeliveryReport, KafkaError>] {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { s -> [Result<KafkaDeliveryReport, KafkaError>]? in
                if s.remaining == 0 { return s.results.compactMap { $0 } }  // every slot is filled
                s.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

// @unchecked: its only state is behind a Mutex (the base class is open to subclassing).
final class ProducerContext: RDKafkaClientContext, @unchecked Sendable {
    private let batches = Mutex<(nextID: UInt, entries: [UInt: BatchCollector])>((1, [:]))

    func register(collector: BatchCollector) -> UInt {
        batches.withLock { state in
            let id = state.nextID
            state.nextID = state.nextID >= UInt(UInt32.max) ? 1 : state.nextID + 1
            state.entries[id] = collector
            return id
        }
    }

    func unregister(batchID: UInt) { _ = batches.withLock { $0.entries.removeValue(forKey: batchID) } }

    /// Waits up to `timeoutMs` for the next event on the main queue; a delivery-report event's
    /// messages go to their batches' collectors, grouped so that each collector is locked once.
    func serveDeliveryReports(_ rk: OpaquePointer, timeoutMs: Int32) {
        guard let queue = rd_kafka_queue_get_main(rk) else { return }
        defer { rd_kafka_queue_destroy(queue) }
        guard let event = rd_kafka_queue_poll(queue, timeoutMs) else { return }
        defer { rd_kafka_event_destroy(event) }
        guard rd_kafka_event_type(event) == RD_KAFKA_EVENT_DR else { return serveClientEvent(rk, event) }
        var byBatch: [UInt: [BatchCollector.DeliveryReport]] = [:]
        var messages = [UnsafePointer<rd_kafka_message_t>?](repeating: nil, count: 1024)
        while true {
            let n = messages.withUnsafeMutableBufferPointer { rd_kafka_event_message_array(event, $0.baseAddress, $0.count) }
            if n == 0 { break }
            for i in 0..<n {
                guard let m = messages[i]?.pointee else { continue }
                let opaque = UInt(bitPattern: m._private)
                let error = m.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil
                    : KafkaError(m.err, context: "Delivery to \(m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?") failed")
                byBatch[opaque >> 32, default: []].append(.init(index: Int(opaque & 0xFFFF_FFFF), partition: m.partition, offset: m.offset, error: error))
            }
        }
        let collectors = batches.withLock { state in byBatch.keys.compactMap { id in state.entries[id].map { (id, $0) } } }
        for (id, collector) in collectors { collector.delivered(byBatch[id] ?? []) }
    }

    func failAll(_ error: KafkaError) {
        let collectors = batches.withLock { Array($0.entries.values) }
        for collector in collectors { collector.failRemaining(error) }
    }
}

