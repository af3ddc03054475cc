/// Where a dead letter's record came from, in the headers a dead letter carries.
///
/// The `kafka_dlt-*` headers use Spring Kafka's wire format (`DeadLetterPublishingRecoverer`),
/// so Spring consumers and tools read our dead-letter topic as their own:
///
/// | header | encoding |
/// |---|---|
/// | `kafka_dlt-original-topic` | UTF-8 |
/// | `kafka_dlt-original-partition` | 4-byte big-endian int |
/// | `kafka_dlt-original-offset` | 8-byte big-endian long |
/// | `kafka_dlt-original-timestamp` | 8-byte big-endian long (milliseconds; -1 for none) |
/// | `kafka_dlt-original-timestamp-type` | UTF-8: `CreateTime` or `NoTimestampType` |
/// | `kafka_dlt-original-consumer-group` | UTF-8 |
/// | `kafka_dlt-exception-fqcn`, `-message` | UTF-8 |
///
/// Human-readable copies of the numbers go in `dlq-original-partition`, `-offset` and
/// `-timestamp` (decimal strings). Reading accepts all three sources: our readable copies, Spring's
/// binary values (a dead-letter topic that Spring wrote), and the decimal strings that earlier
/// versions of this tool wrote into the `kafka_dlt-*` headers.
public struct DeadLetterOrigin: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// The original record's timestamp in milliseconds, when it had one.
    public var timestampMs: Int64?
    /// The consumer group that gave up on the record, when known.
    public var consumerGroup: String?

    public init(topic: String, partition: Int32, offset: Int64, timestampMs: Int64?, consumerGroup: String?) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMs = timestampMs
        self.consumerGroup = consumerGroup
    }

    public enum Name {
        public static let topic = "kafka_dlt-original-topic"
        public static let partition = "kafka_dlt-original-partition"
        public static let offset = "kafka_dlt-original-offset"
        public static let timestamp = "kafka_dlt-original-timestamp"
        public static let timestampType = "kafka_dlt-original-timestamp-type"
        public static let consumerGroup = "kafka_dlt-original-consumer-group"
        public static let exceptionFQCN = "kafka_dlt-exception-fqcn"
        public static let exceptionMessage = "kafka_dlt-exception-message"
        public static let readablePartition = "dlq-original-partition"
        public static let readableOffset = "dlq-original-offset"
        public static let readableTimestamp = "dlq-original-timestamp"
    }

    /// The origin headers: Spring's encodings, then the readable copies.
    public var headers: [MessageHeader] {
        var h: [MessageHeader] = [
            MessageHeader(Name.topic, topic),
            MessageHeader(name: Name.partition, value: Self.bigEndian(partition)),
            MessageHeader(name: Name.offset, value: Self.bigEndian(offset)),
            MessageHeader(name: Name.timestamp, value: Self.bigEndian(timestampMs ?? -1)),
            MessageHeader(Name.timestampType, timestampMs == nil ? "NoTimestampType" : "CreateTime"),
        ]
        if let consumerGroup { h.append(MessageHeader(Name.consumerGroup, consumerGroup)) }
        h += [MessageHeader(Name.readablePartition, String(partition)), MessageHeader(Name.readableOffset, String(offset))]
        if let timestampMs { h.append(MessageHeader(Name.readableTimestamp, String(timestampMs))) }
        return h
    }

    /// Reads an origin from a dead letter's headers; `header` gives the last value of a header.
    /// Nil when the topic, partition or offset is missing or unreadable.
    public init?(header: (String) -> [UInt8]?) {
        guard let topicBytes = header(Name.topic), let topic = String(validating: topicBytes, as: UTF8.self),
              let partition = Self.number(readable: header(Name.readablePartition), raw: header(Name.partition), as: Int32.self),
              let offset = Self.number(readable: header(Name.readableOffset), raw: header(Name.offset), as: Int64.self)
        else { return nil }
        let timestamp = Self.number(readable: header(Name.readableTimestamp), raw: header(Name.timestamp), as: Int64.self)
        self.init(topic: topic, partition: partition, offset: offset, timestampMs: timestamp.flatMap { $0 >= 0 ? $0 : nil },
                  consumerGroup: header(Name.consumerGroup).flatMap { String(validating: $0, as: UTF8.self) })
    }

    /// Reads an origin from a list of headers (the last of each name wins, as in Kafka).
    public init?(headers: [MessageHeader]) {
        self.init { name in headers.last { $0.name == name }?.value }
    }

    /// True for a header this tool or Spring adds to a dead letter, which a replay leaves out.
    public static func isDeadLetterHeader(_ name: String) -> Bool {
        name.hasPrefix("kafka_dlt-") || name.hasPrefix("dlq-")
    }

    /// A number from the readable copy when there is one, else from the `kafka_dlt-*` value:
    /// Spring's fixed-width big-endian bytes, or the decimal string earlier versions wrote. A value
    /// made only of ASCII digits is read as decimal: as Spring's binary it would be a partition or
    /// offset beyond 800 million (`0x30303030`), which no topic has.
    static func number<T: FixedWidthInteger>(readable: [UInt8]?, raw: [UInt8]?, as: T.Type) -> T? {
        if let readable, let text = String(validating: readable, as: UTF8.self), let n = T(text) { return n }
        guard let raw, !raw.isEmpty else { return nil }
        if let text = String(validating: raw, as: UTF8.self), text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") }), let n = T(text) {
            return n
        }
        guard raw.count == MemoryLayout<T>.size else { return nil }
        return raw.reduce(T.zero) { ($0 << 8) | T(truncatingIfNeeded: $1) }
    }

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}
