import CRdKafka
import Logging
import Synchronization

/// librdkafka's own mock Kafka cluster, hosted in this process.
///
/// It speaks the real Kafka protocol over TCP on loopback ports, so any Kafka client (kcat,
/// another process running the worker) can connect to ``bootstrapServers``. Brokers can be taken
/// down and requests made to fail, for reliability tests.
public final class KafkaMockCluster: Sendable {
    private let host: RDKafkaClient
    private let cluster: MockClusterHandle
    private let pollThread: RDKafkaPollThread
    /// The broker ids, `1...brokers`.
    public let brokerIDs: [Int32]
    /// Comma-separated `host:port` list to give clients as `bootstrap.servers`.
    public let bootstrapServers: String

    /// Starts a cluster of `brokers` brokers.
    public init(brokers: Int = 1, logger: Logger = Logger(label: "kafka.mock")) throws {
        guard brokers >= 1 else { throw KafkaError.configuration("A mock cluster needs at least one broker") }
        let host = try RDKafkaClient.make(kind: .producer, properties: ["log.queue": "true"],
                                          context: RDKafkaClientContext(logger: logger, statistics: RDKafkaStatistics(role: "mock")))
        guard let mc = host.withHandle({ rd_kafka_mock_cluster_new($0, Int32(brokers)) }) else {
            throw KafkaError(code: .state, message: "Could not start the mock Kafka cluster")
        }
        self.host = host
        self.cluster = MockClusterHandle(mc, host: host)
        self.brokerIDs = Array(1...Int32(brokers))
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(mc))
        self.pollThread = RDKafkaPollThread(name: "kafka-mock-poll", iteration: { host.withHandle { _ = rd_kafka_poll($0, 100) } })
    }

    /// Creates a topic. Creating one that exists is an error from the cluster.
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32 = 1) throws {
        let err = rd_kafka_mock_topic_create(cluster.pointer, name, partitions, replicationFactor)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "Could not create topic \(name)") }
    }

    /// Disconnects a broker and refuses new connections, without moving partition leadership.
    ///
    /// Never while a child process is being started through ``startingChildProcess(_:)``: see there.
    public func setBrokerDown(_ id: Int32) throws {
        let err = Self.childProcessStarts.withLock { _ in rd_kafka_mock_broker_set_down(cluster.pointer, id) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "Could not set broker \(id) down") }
    }

    /// Starts a child process (`body` calls `Process.run()` or `posix_spawn`) while no broker of
    /// any mock cluster in this process is being taken down.
    ///
    /// librdkafka 2.0.2 takes a mock broker down by closing its listening socket and binding the
    /// same port again at once, and aborts the whole process if that bind fails. A child being
    /// started holds copies of the parent's descriptors until it executes its program, so a
    /// listening socket closed in that moment stays open in the child and the bind fails with
    /// EADDRINUSE. A process that takes brokers down (the tests) starts its children through this.
    public static func startingChildProcess(_ body: () throws -> Void) throws {
        try childProcessStarts.withLock { _ in try body() }
    }

    private static let childProcessStarts = Mutex(())

    /// Lets a broker accept connections again.
    public func setBrokerUp(_ id: Int32) throws {
        let err = rd_kafka_mock_broker_set_up(cluster.pointer, id)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "Could not set broker \(id) up") }
    }

    /// Adds a round-trip delay to a broker's responses.
    public func setBrokerRoundTripTime(_ id: Int32, milliseconds: Int32) throws {
        let err = rd_kafka_mock_broker_set_rtt(cluster.pointer, id, milliseconds)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "Could not set broker \(id) RTT") }
    }

    /// Moves a partition's leadership to another broker.
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) throws {
        let err = rd_kafka_mock_partition_set_leader(cluster.pointer, topic, partition, broker)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "Could not move the leader of \(topic)[\(partition)]") }
    }

    /// Makes the next requests of one Kafka API (for example 0 = Produce) fail with these errors, in order.
    public func pushRequestErrors(apiKey: Int16, errors: [KafkaError.Code]) {
        let codes = errors.map { rd_kafka_resp_err_t(rawValue: $0.rawValue) }
        codes.withUnsafeBufferPointer { rd_kafka_mock_push_request_errors_array(cluster.pointer, apiKey, $0.count, $0.baseAddress) }
    }

    /// Stops the cluster's host client. The cluster itself is destroyed with this object.
    public func shutdown() async { await pollThread.stop() }

    deinit { pollThread.requestStop() }
}

/// Owns the `rd_kafka_mock_cluster_t`, and keeps its host handle alive until the cluster is destroyed.
// @unchecked: it holds a C handle, which librdkafka's mock API accepts from any thread; it is
// immutable and destroyed once, in deinit.
final class MockClusterHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    private let host: RDKafkaClient
    init(_ pointer: OpaquePointer, host: RDKafkaClient) { self.pointer = pointer; self.host = host }
    deinit { rd_kafka_mock_cluster_destroy(pointer) }
}
