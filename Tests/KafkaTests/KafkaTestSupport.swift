import Foundation
import Kafka
import Logging
import Synchronization

enum KafkaTestSupport {
    static let logger: Logger = {
        var l = Logger(label: "kafka.test")
        l.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return l
    }()

    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    static func producer(_ cluster: KafkaMockCluster) throws -> KafkaProducer {
        var config = KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers])
        config.client.statisticsInterval = nil
        return try KafkaProducer(configuration: config, logger: logger)
    }

    static func consumer(_ cluster: KafkaMockCluster, group: String, topics: [String],
                         configure: (inout KafkaConsumerConfiguration) -> Void = { _ in }) throws -> KafkaConsumer {
        var config = KafkaConsumerConfiguration(bootstrapServers: [cluster.bootstrapServers], groupID: group, topics: topics)
        config.client.statisticsInterval = nil
        config.sessionTimeout = .seconds(6)
        configure(&config)
        return try KafkaConsumer(configuration: config, logger: logger)
    }

    /// Collects messages until `count` have arrived or the deadline passes.
    static func collect(_ consumer: KafkaConsumer, count: Int, within timeout: Duration = .seconds(60)) async throws -> [KafkaConsumerMessage] {
        try await withThrowingTaskGroup(of: [KafkaConsumerMessage]?.self) { group in
            group.addTask {
                var received: [KafkaConsumerMessage] = []
                for await batch in consumer.batches {
                    received += batch
                    if received.count >= count { break }
                }
                return received
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let first else { throw TestTimeout(what: "\(count) messages") }
            return first
        }
    }

    /// The directory of the test bundle, where SwiftPM also puts the package's executables.
    static var productsDirectory: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    static func executable(_ name: String) -> URL {
        let candidates = [productsDirectory.appendingPathComponent(name),
                          productsDirectory.deletingLastPathComponent().appendingPathComponent(name)]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    /// Runs a command to completion on a thread of its own (never blocking the cooperative pool)
    /// and returns its exit status and output.
    static func run(_ path: String, _ arguments: [String], stdin: Data? = nil) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try KafkaMockCluster.startingChildProcess { try process.run() }
        return await withCheckedContinuation { continuation in
            Thread {
                if let stdin { input.fileHandleForWriting.write(stdin) }
                try? input.fileHandleForWriting.close()
                let errBox = Mutex(Data())
                let group = DispatchGroup()
                group.enter()
                Thread { let d = err.fileHandleForReading.readDataToEndOfFile(); errBox.withLock { $0 = d }; group.leave() }.start()
                let outData = out.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                process.waitUntilExit()
                continuation.resume(returning: (process.terminationStatus, String(decoding: outData, as: UTF8.self),
                                                String(decoding: errBox.withLock { $0 }, as: UTF8.self)))
            }.start()
        }
    }

    /// Reads the first line a process writes, on a thread of its own.
    static func firstLine(of pipe: Pipe) async -> String {
        await withCheckedContinuation { continuation in
            Thread {
                var buffer = Data()
                while !buffer.contains(UInt8(ascii: "\n")) {
                    let chunk = pipe.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    buffer += chunk
                }
                continuation.resume(returning: String(decoding: buffer.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self))
            }.start()
        }
    }
}

struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "Timed out waiting for \(what)" }
}
