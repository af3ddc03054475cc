import Foundation
import Kafka
import Testing

/// kcat is an independent Kafka client (`apt-get install kcat`; `.ci/run` installs it).
@Suite("Interoperability with kcat and the kafka-cluster CLI", .timeLimit(.minutes(2)))
struct KafkaInteropTests {
    static let kcat = "/usr/bin/kcat"

    @Test("kcat reads what the Swift producer wrote, and the Swift consumer reads what kcat wrote")
    func kcatInterop() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.kcat), "kcat must be installed")
        let cluster = try KafkaMockCluster(brokers: 1, logger: KafkaTestSupport.logger)
        let topic = KafkaTestSupport.uniqueName("interop")
        try cluster.createTopic(topic, partitions: 1)

        let producer = try KafkaTestSupport.producer(cluster)
        _ = try await producer.send(topic: topic, key: Array("E42".utf8), value: Array(#"{"hello":"kcat"}"#.utf8),
                                    headers: [KafkaHeader(key: "ce_type", string: "hr.employee.hired")])
        await producer.shutdown()
        let read = try await KafkaTestSupport.run(Self.kcat, ["-b", cluster.bootstrapServers, "-C", "-t", topic, "-o", "beginning", "-c", "1", "-e", "-q",
                                                         "-f", "%k|%s|%h\n"])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == #"E42|{"hello":"kcat"}|ce_type=hr.employee.hired"#)

        let wrote = try await KafkaTestSupport.run(Self.kcat, ["-b", cluster.bootstrapServers, "-P", "-t", topic, "-K", ":", "-H", "ce_id=abc-1"],
                                             stdin: Data("E7:from-kcat\n".utf8))
        #expect(wrote.status == 0, "\(wrote.stderr)")
        let consumer = try KafkaTestSupport.consumer(cluster, group: KafkaTestSupport.uniqueName("g-interop"), topics: [topic])
        let received = try await KafkaTestSupport.collect(consumer, count: 2)
        let last = try #require(received.last)
        #expect(last.key.map { String(decoding: $0, as: UTF8.self) } == "E7")
        #expect(last.value.map { String(decoding: $0, as: UTF8.self) } == "from-kcat")
        #expect(last.headers[string: "ce_id"] == "abc-1")
        await consumer.close()
    }

    @Test("duo-lifecycle kafka-cluster prints a bootstrap line kcat accepts and exits 0 on SIGTERM")
    func clusterCLI() async throws {
        let process = Process()
        process.executableURL = KafkaTestSupport.executable("duo-lifecycle")
        process.arguments = ["kafka-cluster", "--brokers", "3", "--topic", "t:6"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try KafkaMockCluster.startingChildProcess { try process.run() }
        defer { if process.isRunning { process.terminate() } }

        let bootstrap = await KafkaTestSupport.firstLine(of: out)
        #expect(!bootstrap.isEmpty)

        let list = try await KafkaTestSupport.run(Self.kcat, ["-b", bootstrap, "-L"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains(" 3 brokers:"))
        #expect(list.stdout.contains(#"topic "t" with 6 partitions:"#))

        process.terminate()  // SIGTERM
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
    }
}
