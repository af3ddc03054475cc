import CRdKafka

/// The one error type of the Kafka layer.
///
/// It keeps librdkafka's error code, so callers can decide from the error alone whether to
/// retry (`isRetriable`), give up on the client (`isFatal`), or treat the failure as permanent.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's error code (`rd_kafka_resp_err_t`), kept as a stable raw value.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// librdkafka's symbolic name for the code, for example `_TRANSPORT` or `NOT_LEADER_FOR_PARTITION`.
        public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: rawValue))) }
        public var description: String { "\(name) (\(rawValue))" }

        public static let noError = Code(rawValue: RD_KAFKA_RESP_ERR_NO_ERROR.rawValue)
        public static let transport = Code(rawValue: RD_KAFKA_RESP_ERR__TRANSPORT.rawValue)
        public static let allBrokersDown = Code(rawValue: RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue)
        public static let timedOut = Code(rawValue: RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue)
        public static let messageTimedOut = Code(rawValue: RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue)
        public static let queueFull = Code(rawValue: RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue)
        public static let state = Code(rawValue: RD_KAFKA_RESP_ERR__STATE.rawValue)
        public static let invalidArgument = Code(rawValue: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue)
        public static let unknownTopicOrPartition = Code(rawValue: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue)
        public static let topicAlreadyExists = Code(rawValue: RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS.rawValue)
        public static let notLeaderForPartition = Code(rawValue: RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue)
        public static let leaderNotAvailable = Code(rawValue: RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue)
        public static let requestTimedOut = Code(rawValue: RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue)
        public static let notEnoughReplicas = Code(rawValue: RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue)
        public static let notEnoughReplicasAfterAppend = Code(rawValue: RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND.rawValue)
        public static let fatal = Code(rawValue: RD_KAFKA_RESP_ERR__FATAL.rawValue)
        public static let destroyed = Code(rawValue: RD_KAFKA_RESP_ERR__DESTROY.rawValue)
        public static let configuration = Code(rawValue: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue)
        public static let noOffset = Code(rawValue: RD_KAFKA_RESP_ERR__NO_OFFSET.rawValue)
        public static let messageSizeTooLarge = Code(rawValue: RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue)
        public static let invalidMessageSize = Code(rawValue: RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE.rawValue)
        public static let invalidMessage = Code(rawValue: RD_KAFKA_RESP_ERR_INVALID_MSG.rawValue)
        public static let recordListTooLarge = Code(rawValue: RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE.rawValue)
        public static let invalidRecord = Code(rawValue: RD_KAFKA_RESP_ERR_INVALID_RECORD.rawValue)
    }

    /// librdkafka's error code.
    public var code: Code
    /// A human-readable message: librdkafka's own text, with context added by the layer.
    public var message: String
    /// The client instance can no longer be used (for example a fenced idempotent producer).
    public var isFatal: Bool
    /// The operation may succeed if tried again later.
    public var isRetriable: Bool

    public init(code: Code, message: String, isFatal: Bool = false, isRetriable: Bool? = nil) {
        self.code = code
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable ?? (!isFatal && Self.retriableCodes.contains(code))
    }

    init(_ err: rd_kafka_resp_err_t, context: String? = nil, isFatal: Bool = false) {
        let text = String(cString: rd_kafka_err2str(err))
        self.init(code: Code(rawValue: err.rawValue),
                  message: context.map { "\($0): \(text)" } ?? text,
                  isFatal: isFatal || err == RD_KAFKA_RESP_ERR__FATAL)
    }

    /// Takes ownership of a `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer, context: String? = nil) {
        let code = rd_kafka_error_code(error)
        let text = String(cString: rd_kafka_error_string(error))
        self.init(code: Code(rawValue: code.rawValue),
                  message: context.map { "\($0): \(text)" } ?? text,
                  isFatal: rd_kafka_error_is_fatal(error) != 0,
                  isRetriable: rd_kafka_error_is_retriable(error) != 0)
        rd_kafka_error_destroy(error)
    }

    static func configuration(_ message: String) -> KafkaError {
        KafkaError(code: .invalidArgument, message: message, isRetriable: false)
    }

    /// The message itself can never be delivered (too large, or malformed): sending it again
    /// fails the same way.
    public var isMessageRejected: Bool {
        [.messageSizeTooLarge, .invalidMessageSize, .invalidMessage, .recordListTooLarge, .invalidRecord].contains(code)
    }

    public var description: String { "Kafka error \(code): \(message)" + (isFatal ? " [fatal]" : "") }

    private static let retriableCodes: Set<Code> = [
        .transport, .allBrokersDown, .timedOut, .messageTimedOut, .queueFull, .notLeaderForPartition,
        .leaderNotAvailable, .requestTimedOut, .notEnoughReplicas, .notEnoughReplicasAfterAppend,
        .unknownTopicOrPartition,
    ]
}
