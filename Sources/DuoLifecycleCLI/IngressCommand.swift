import ArgumentParser
import Foundation
import LifecycleIngress
import LifecycleWorker
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

struct IngressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingress",
        abstract: "Receive HR systems' signed webhooks and publish them as lifecycle events on Kafka.",
        discussion: """
        Reads the kafka: and ingress: sections of the worker's configuration file and serves \
        POST /webhooks/<source> for each configured source, plus /healthz, /readyz and /metrics. \
        Its URL is the first line of standard output.

        Formats (ingress.sources[].format):
          standard-webhooks  webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC>;
                             secrets whsec_<base64>, several during a rotation
          cloudevents        binary (ce-* headers), structured or batch; Authorization: Bearer
                             <token>, or X-Signature: sha256=<hex HMAC of the body>
          bamboohr           X-BambooHR-Signature (hex HMAC of body + timestamp) and
                             X-BambooHR-Timestamp; the source's mapping turns each changed
                             employee into an event

        A request is answered 202 only after Kafka acknowledged every event in it; 503 with \
        Retry-After when Kafka cannot take them, and nothing of that request counts as accepted. \
        Refusals are application/problem+json: 401 signature, 400/422 payload, 413 size, 415 \
        content type, 429 rate.

        SIGTERM or SIGINT stops accepting connections, lets requests in flight finish, flushes \
        the producer and exits 0.
        """
    )

    @Option(help: "The worker's YAML configuration file (its kafka: and ingress: sections).") var config: String

    func run() async throws {
        let settings: WorkerConfiguration.IngressSettings
        do { settings = try WorkerConfiguration.loadIngress(path: config) } catch let problem as WorkerConfiguration.Problem {
            throw ValidationError("Configuration error: \(problem.description)")
        }
        let logger = RunCommand.logger(level: settings.logLevel, format: settings.logFormat)
        let registry = WorkerMetrics.bootstrap()
        let ingress = settings.ingress
        let server = try IngressServer(configuration: ingress, logger: logger, metricsText: { WorkerMetrics.exposition(registry) })
        let scheme = ingress.tlsCertificateFile == nil ? "http" : "https"
        let host = ingress.host == "0.0.0.0" || ingress.host == "::" ? "127.0.0.1" : ingress.host
        let service = try server.service { port in
            Console.out("\(scheme)://\(host):\(port)\n")
            logger.info("Ingress listening", metadata: ["url": "\(scheme)://\(host):\(port)", "sources": "\(ingress.sources.map(\.name))", "topic": "\(ingress.topic)"])
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("Ingress stopped")
    }
}
