import DuoAdmin
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local emulator of the Duo Admin API subset that lifecycle work uses.
///
/// It verifies every request's signature as Duo does, keeps users, groups and memberships with
/// Duo's semantics, answers in Duo's envelopes, and can inject faults (rate limits, latency, 5xx,
/// resets, outages). A control API under `/__emulator/` (off unless enabled) resets and seeds the
/// directory, changes faults while running, and returns the journal of changes and request counters.
///
/// The emulator is a `Service`: run it in a `ServiceGroup`, or build its application with
/// ``makeApplication(onServerRunning:)`` to learn the port it listens on.
public final class DuoEmulator: Service, Sendable {
    public let configuration: DuoEmulatorConfiguration
    /// The emulated directory, for in-process assertions.
    public let directory = DuoDirectory()
    let verifier: DuoSignatureVerifier
    let logger: Logger
    private let faultState: Mutex<DuoEmulatorFaults>
    private let window = Mutex(SlidingWindowRateLimit())
    private let counterState = Mutex<[String: [String: Int]]>([:])

    public init(configuration: DuoEmulatorConfiguration, logger: Logger = Logger(label: "duo.emulator")) throws {
        try configuration.faults.validate()
        self.configuration = configuration
        self.logger = logger
        self.faultState = Mutex(configuration.faults)
        self.verifier = DuoSignatureVerifier(integrations: configuration.integrations, apiHostname: configuration.apiHostname,
                                             clockSkew: configuration.clockSkew)
        if let path = configuration.stateFile, FileManager.default.fileExists(atPath: path) {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            directory.restore(try JSONDecoder().decode(DuoDirectory.Snapshot.self, from: data))
        }
    }

    /// The current fault settings.
    public var faults: DuoEmulatorFaults {
        get { faultState.withLock { $0 } }
        set { faultState.withLock { $0 = newValue } }
    }

    /// Requests answered, by `METHOD /path/template` and HTTP status.
    public var counters: [String: [String: Int]] { counterState.withLock { $0 } }

    func count(_ key: String, status: HTTPResponse.Status) {
        counterState.withLock { $0[key, default: [:]][String(status.code), default: 0] += 1 }
    }

    func resetCounters() { counterState.withLock { $0 = [:] } }

    /// Saves the directory to the configured state file, if there is one.
    public func saveState() throws {
        guard let path = configuration.stateFile else { return }
        try emulatorEncoder.encode(directory.snapshot()).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    // MARK: - Application

    /// Serves until a graceful shutdown, then saves the state file (if any).
    public func run() async throws { try await run(onServerRunning: { _ in }) }

    /// Serves until a graceful shutdown, then saves the state file (if any). `onServerRunning`
    /// receives the port it listens on (useful with port 0).
    public func run(onServerRunning: @escaping @Sendable (Int) async -> Void) async throws {
        defer {
            do { try saveState() } catch { logger.error("Could not save the emulator's state file", metadata: ["error": "\(error)"]) }
        }
        try await makeApplication(onServerRunning: onServerRunning).run()
    }

    /// The emulator's Hummingbird application on the configured host and port.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(router: buildRouter(), configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
                    onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    /// The routes: the Admin API behind request counting, fault injection and signature checks,
    /// and the control API as a group of its own when it is enabled. Anything else is Duo's 404.
    public func buildRouter() -> Router<EmulatorRequestContext> {
        let router = Router(context: EmulatorRequestContext.self)
        router.add(middleware: DuoEnvelopeMiddleware())
        // Liveness for container health checks; not part of Duo's API.
        router.get("healthz") { _, _ in DuoEnvelope.json(["status": "ok"]) }
        if configuration.controlEnabled { addControlRoutes(to: router.group("__emulator")) }
        let admin = router.group("admin")
            .add(middleware: RequestCountingMiddleware(emulator: self))
            .add(middleware: FaultInjectionMiddleware(emulator: self))
            .add(middleware: SignatureVerificationMiddleware(verifier: verifier))
        addAdminRoutes(to: admin)
        return router
    }

    // MARK: - Faults

    /// What the fault settings say to do with the next request.
    struct FaultPlan {
        var latency: Duration?
        var status: Int?
        var reset = false
        var rateLimit: Double?
    }

    /// - Parameter route: `METHOD /route/{template}`, for ``DuoEmulatorFaults/failRoutes``.
    func nextFaultPlan(route: String) -> FaultPlan {
        faultState.withLock { f -> FaultPlan in
            var plan = FaultPlan()
            if let status = f.failRoutes[route] {
                plan.status = status
                return plan
            }
            if let min = f.latencyMs {
                let max = f.latencyMaxMs ?? min
                plan.latency = .milliseconds(max > min ? Int.random(in: min...max) : min)
            }
            if f.failNext > 0 {
                f.failNext -= 1
                plan.status = f.failNextStatus
                return plan
            }
            if let status = f.failAll { plan.status = status; return plan }
            let roll = Double.random(in: 0..<1)
            if roll < f.resetRate { plan.reset = true }
            else if roll < f.resetRate + f.errorRate { plan.status = 500 }
            else if roll < f.resetRate + f.errorRate + f.unavailableRate { plan.status = 503 }
            else if roll < f.resetRate + f.errorRate + f.unavailableRate + f.throttleRate { plan.status = 429 }
            plan.rateLimit = f.rateLimit
            return plan
        }
    }

    /// At most `limit` requests in any one-second window.
    func admitWithinRateLimit(_ limit: Double) -> Bool {
        window.withLock { $0.admit(limit: limit, at: ContinuousClock.now) }
    }
}

/// Duo's rate limit as the emulator applies it: an exact log of the requests admitted in the last
/// second, so no window of one second (open at its start) ever holds more than `limit` of them.
public struct SlidingWindowRateLimit: Sendable {
    private var admitted: [ContinuousClock.Instant] = []

    public init() {}

    /// Admits a request made at `now` if fewer than `limit` were admitted in `(now - 1 s, now]`.
    public mutating func admit(limit: Double, at now: ContinuousClock.Instant) -> Bool {
        let cutoff = now - .seconds(1)
        if let firstFresh = admitted.firstIndex(where: { $0 > cutoff }) { admitted.removeFirst(firstFresh) } else { admitted.removeAll() }
        guard Double(admitted.count) < limit else { return false }
        admitted.append(now)
        return true
    }
}

/// The request context: Hummingbird's core context, the channel (so a fault can reset the
/// connection), and what signature verification learned (the caller and the parameters).
public struct EmulatorRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel
    /// The verified caller, set by the signature middleware.
    var caller = DuoDirectory.Caller(method: "", path: "", integrationKey: nil)
    /// The query string plus the form or JSON body, set by the signature middleware.
    var duoParameters = DuoRequestParameters([])

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}
