import Foundation
import Hummingbird
import Logging
import Prometheus

/// `/healthz` (liveness), `/readyz` (readiness) and `/metrics` (Prometheus text format).
public struct OperationsServer: Sendable {
    public let host: String
    public let port: Int
    let registry: PrometheusCollectorRegistry
    let readiness: @Sendable () async -> (ready: Bool, reasons: [String])
    let logger: Logger
    /// More routes on the same port (the operations console).
    let routes: (@Sendable (Router<BasicRequestContext>) -> Void)?

    public init(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger,
                routes: (@Sendable (Router<BasicRequestContext>) -> Void)? = nil,
                readiness: @escaping @Sendable () async -> (ready: Bool, reasons: [String])) {
        self.host = host
        self.port = port
        self.registry = registry
        self.readiness = readiness
        self.logger = logger
        self.routes = routes
    }

    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        router.get("/healthz") { _, _ in Self.json(.ok, ["status": "ok"]) }
        router.get("/readyz") { [readiness] _, _ in
            let (ready, reasons) = await readiness()
            return Self.json(ready ? .ok : .serviceUnavailable, ["ready": ready ? "true" : "false", "reasons": reasons.joined(separator: "; ")])
        }
        router.get("/metrics") { [registry] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: WorkerMetrics.exposition(registry))))
        }
        routes?(router)
        return Application(router: router, configuration: .init(address: .hostname(host, port: port)),
                           onServerRunning: { await onRunning($0.localAddress?.port ?? 0) }, logger: logger)
    }

    static func json(_ status: HTTPResponse.Status, _ body: [String: String]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
