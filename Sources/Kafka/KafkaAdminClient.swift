// Kafka owns the Swift layer over librdkafka: producer, consumer, admin client and mock cluster.
// It is the only module that imports C; no C type leaves it.
import CRdKafka
import Logging

/// A topic to create.
public struct KafkaTopicSpecification: Sendable, Hashable {
    public var name: String
    public var partitions: Int32
    public var replicationFactor: Int32
    public var configs: [String: String]

    public init(name: String, partitions: Int32, replicationFactor: Int32 = -1, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }
}

/// A cluster's metadata: its brokers and topics.
public struct KafkaMetadata: Sendable {
    public struct Broker: Sendable, Hashable { public var id: Int32; public var host: String; public var port: Int32 }
    public struct Partition: Sendable, Hashable { public var id: Int32; public var leader: Int32; public var replicas: [Int32] }
    public struct Topic: Sendable {
        public var name: String
        public var partitions: [Partition]
        /// Set when the broker reported an error for this topic (for example unknown topic).
        public var error: KafkaError?
    }
    public var brokers: [Broker]
    public var topics: [Topic]
    public var originatingBrokerID: Int32

    public func topic(_ name: String) -> Topic? { topics.first { $0.name == name } }
}

/// Creates topics and reads cluster metadata.
public final class KafkaAdminClient: Sendable {
    private let client: RDKafkaClient
    private let pollThread: RDKafkaPollThread

    public init(configuration: KafkaClientConfiguration, logger: Logger = Logger(label: "kafka.admin")) throws {
        var properties = configuration.properties()
        properties.removeValue(forKey: "statistics.interval.ms")
        properties.merge(configuration.additionalProperties) { _, user in user }
        let client = try RDKafkaClient.make(kind: .producer, properties: properties,
                                            context: RDKafkaClientContext(logger: logger, statistics: RDKafkaStatistics(role: "admin")))
        self.client = client
        self.pollThread = RDKafkaPollThread(name: "kafka-admin-poll", iteration: { client.withHandle { _ = rd_kafka_poll($0, 100) } })
    }

    deinit { pollThread.requestStop() }

    /// Stops the client's poll thread.
    public func shutdown() async { await pollThread.stop() }

    /// Creates topics. With `ignoreExisting`, a topic that already exists is not an error.
    public func createTopics(_ topics: [KafkaTopicSpecification], ignoreExisting: Bool = true, timeout: Duration = .seconds(30)) async throws {
        guard !topics.isEmpty else { return }
        let client = self.client
        let ms = Int32(clamping: Int64(timeout / .milliseconds(1)))
        let result: Result<Void, KafkaError> = await runBlocking("kafka-admin-create-topics") {
            client.withHandle { rk in
                var errstr = [CChar](repeating: 0, count: 512)
                var newTopics: [OpaquePointer?] = []
                defer { for t in newTopics { rd_kafka_NewTopic_destroy(t) } }
                for spec in topics {
                    guard let t = rd_kafka_NewTopic_new(spec.name, spec.partitions, spec.replicationFactor, &errstr, errstr.count) else {
                        return .failure(.configuration("Invalid topic \(spec.name): \(String(cString: errstr))"))
                    }
                    for (k, v) in spec.configs { _ = rd_kafka_NewTopic_set_config(t, k, v) }
                    newTopics.append(t)
                }
                let queue = rd_kafka_queue_new(rk)
                defer { rd_kafka_queue_destroy(queue) }
                let options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS)
                defer { rd_kafka_AdminOptions_destroy(options) }
                _ = rd_kafka_AdminOptions_set_operation_timeout(options, ms, &errstr, errstr.count)
                _ = rd_kafka_AdminOptions_set_request_timeout(options, ms, &errstr, errstr.count)
                newTopics.withUnsafeMutableBufferPointer { buf in
                    rd_kafka_CreateTopics(rk, buf.baseAddress, buf.count, options, queue)
                }
                guard let event = rd_kafka_queue_poll(queue, ms + 1000) else {
                    return .failure(KafkaError(code: .timedOut, message: "CreateTopics timed out"))
                }
                defer { rd_kafka_event_destroy(event) }
                let err = rd_kafka_event_error(event)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    return .failure(KafkaError(err, context: "CreateTopics failed: \(String(cString: rd_kafka_event_error_string(event)))"))
                }
                guard let res = rd_kafka_event_CreateTopics_result(event) else {
                    return .failure(KafkaError(code: .state, message: "CreateTopics returned no result"))
                }
                var count = 0
                guard let results = rd_kafka_CreateTopics_result_topics(res, &count) else { return .success(()) }
                var failures: [String] = []
                var firstCode = KafkaError.Code.noError
                for i in 0..<count {
                    let r = results[i]
                    let code = rd_kafka_topic_result_error(r)
                    if code == RD_KAFKA_RESP_ERR_NO_ERROR || (ignoreExisting && code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) { continue }
                    let name = String(cString: rd_kafka_topic_result_name(r))
                    let text = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? KafkaError(code).message
                    failures.append("\(name): \(text)")
                    if firstCode == .noError { firstCode = .init(rawValue: code.rawValue) }
                }
                if failures.isEmpty { return .success(()) }
                return .failure(KafkaError(code: firstCode, message: "Could not create topics: \(failures.joined(separator: "; "))"))
            }
        }
        try result.get()
    }

    /// The low and high watermarks of a partition: the first offset, and one past the last.
    public func watermarks(topic: String, partition: Int32, timeout: Duration = .seconds(10)) async throws -> (low: Int64, high: Int64) {
        let client = self.client
        let ms = Int32(clamping: Int64(timeout / .milliseconds(1)))
        let result: Result<(low: Int64, high: Int64), KafkaError> = await runBlocking("kafka-admin-watermarks") {
            client.withHandle { rk in
                var low: Int64 = 0, high: Int64 = 0
                let err = rd_kafka_query_watermark_offsets(rk, topic, partition, &low, &high, ms)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(err, context: "Could not read the offsets of \(topic)[\(partition)]")) }
                return .success((low, high))
            }
        }
        return try result.get()
    }

    /// Reads the metadata of all topics, or of one.
    public func metadata(topic: String? = nil, timeout: Duration = .seconds(10)) async throws -> KafkaMetadata {
        let client = self.client
        let ms = Int32(clamping: Int64(timeout / .milliseconds(1)))
        let result: Result<KafkaMetadata, KafkaError> = await runBlocking("kafka-admin-metadata") {
            client.withHandle { rk in
                var topicHandle: OpaquePointer?
                if let topic { topicHandle = rd_kafka_topic_new(rk, topic, nil) }
                defer { if let topicHandle { rd_kafka_topic_destroy(topicHandle) } }
                var md: UnsafePointer<rd_kafka_metadata>?
                let err = rd_kafka_metadata(rk, topic == nil ? 1 : 0, topicHandle, &md, ms)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else {
                    return .failure(KafkaError(err, context: "Could not read cluster metadata"))
                }
                defer { rd_kafka_metadata_destroy(md) }
                let m = md.pointee
                let brokers = (0..<Int(m.broker_cnt)).map { i in
                    KafkaMetadata.Broker(id: m.brokers[i].id, host: String(cString: m.brokers[i].host), port: m.brokers[i].port)
                }
                let topics = (0..<Int(m.topic_cnt)).map { i -> KafkaMetadata.Topic in
                    let t = m.topics[i]
                    let partitions = (0..<Int(t.partition_cnt)).map { j in
                        let p = t.partitions[j]
                        return KafkaMetadata.Partition(id: p.id, leader: p.leader,
                                                       replicas: (0..<Int(p.replica_cnt)).map { p.replicas[$0] })
                    }.sorted { $0.id < $1.id }
                    return KafkaMetadata.Topic(name: String(cString: t.topic), partitions: partitions,
                                               error: t.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(t.err))
                }
                return .success(KafkaMetadata(brokers: brokers.sorted { $0.id < $1.id }, topics: topics, originatingBrokerID: m.orig_broker_id))
            }
        }
        return try result.get()
    }
}
