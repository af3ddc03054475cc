import Foundation
import Lifecycle
import Testing

@Suite("Dead-letter origin headers")
struct DeadLetterOriginTests {
    @Test("Written in Spring Kafka's encodings, byte for byte as in the contract's dead-letter example")
    func matchesContractExample() throws {
        let url = ContractExamples.directory.appendingPathComponent("dead-letters/validation.json")
        let example = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: String])
        let origin = DeadLetterOrigin(topic: "hr.employee.lifecycle.v1", partition: 1, offset: 78, timestampMs: 1_793_610_000_000,
                                      consumerGroup: "duo-lifecycle")
        for header in origin.headers {
            let value = try #require(header.value)
            let shown = String(validating: value, as: UTF8.self).flatMap { text in text.allSatisfy { !$0.isASCII || $0.asciiValue! >= 0x20 } ? text : nil }
                ?? Data(value).base64EncodedString()
            #expect(example[header.name] == shown, "\(header.name)")
        }
        #expect(origin.headers.first { $0.name == "kafka_dlt-original-partition" }?.value == [0, 0, 0, 1])
        #expect(origin.headers.first { $0.name == "kafka_dlt-original-offset" }?.value == [0, 0, 0, 0, 0, 0, 0, 78])
    }

    @Test("Reads back what it writes, and a record without a timestamp says so as Spring does (-1, NoTimestampType)")
    func roundTrip() throws {
        let origin = DeadLetterOrigin(topic: "t", partition: 300, offset: 9_876_543_210, timestampMs: nil, consumerGroup: "g")
        let headers = origin.headers
        #expect(headers.first { $0.name == "kafka_dlt-original-timestamp" }?.value == Array(repeating: 0xFF, count: 8))
        #expect(headers.first { $0.name == "kafka_dlt-original-timestamp-type" }?.value == Array("NoTimestampType".utf8))
        #expect(DeadLetterOrigin(headers: headers) == origin)
    }

    @Test("Reads a Spring-written dead letter: binary numbers, no readable copies")
    func readsSpring() throws {
        func big<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
        let headers = [
            MessageHeader("kafka_dlt-original-topic", "orders"),
            MessageHeader(name: "kafka_dlt-original-partition", value: big(Int32(7))),
            // Eight bytes that happen to be printable, but not digits.
            MessageHeader(name: "kafka_dlt-original-offset", value: big(Int64(0x4142_4344_4546_4748))),
            MessageHeader(name: "kafka_dlt-original-timestamp", value: big(Int64(1_700_000_000_123))),
        ]
        let origin = try #require(DeadLetterOrigin(headers: headers))
        #expect(origin == DeadLetterOrigin(topic: "orders", partition: 7, offset: 0x4142_4344_4546_4748, timestampMs: 1_700_000_000_123, consumerGroup: nil))
    }

    @Test("Reads dead letters written by earlier versions (decimal text), even an offset as long as Spring's eight bytes")
    func readsLegacyDecimal() throws {
        let headers = [
            MessageHeader("kafka_dlt-original-topic", "t"), MessageHeader("kafka_dlt-original-partition", "1234"),
            MessageHeader("kafka_dlt-original-offset", "12345678"), MessageHeader("kafka_dlt-original-timestamp", "-1"),
        ]
        let origin = try #require(DeadLetterOrigin(headers: headers))
        #expect(origin.partition == 1234 && origin.offset == 12_345_678 && origin.timestampMs == nil)
    }

    @Test("No origin without a topic, a partition and an offset; a wrong-sized binary value is refused, not misread")
    func incomplete() {
        #expect(DeadLetterOrigin(headers: [MessageHeader("kafka_dlt-original-topic", "t")]) == nil)
        #expect(DeadLetterOrigin(headers: [
            MessageHeader("kafka_dlt-original-topic", "t"), MessageHeader(name: "kafka_dlt-original-partition", value: [0, 1]),
            MessageHeader(name: "kafka_dlt-original-offset", value: [0, 0, 0, 0, 0, 0, 0, 1]),
        ]) == nil)
    }
}
