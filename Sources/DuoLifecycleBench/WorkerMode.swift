import ArgumentParser
import Foundation
import LifecycleWorker
import Logging
import Metrics
import Prometheus

/// The worker, run by the benchmark as a separate process so its memory can be measured alone.
struct WorkerMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run the worker (used by the scenarios).", shouldDisplay: false)
    @Option var config: String

    func run() async throws {
        let settings = try WorkerConfiguration.load(path: config)
        var logger = Logger(label: "bench.worker") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = Logger.Level(rawValue: settings.logLevel) ?? .error
        let registry = WorkerMetrics.bootstrap()
        try await WorkerRuntime(configuration: settings, registry: registry, logger: logger).run()
    }
}
