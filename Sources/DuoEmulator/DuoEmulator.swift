import DuoAdmin
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local emulator of the Duo Admin API subset that lifecycle work uses, as a Hummingbird server.
///
/// It verifies every request's signature as Duo does, keeps users, groups and memberships with
/// Duo's semantics, answers in Duo's envelopes, and can inject faults (rate limits, latency, 5xx,
/// resets, outages). A control API under `/__emulator/` (off unless enabled) resets and seeds the
/// directory, changes faults while running, and returns the journal of changes and request counters.
public final class DuoEmulator: Sendable {
    public let configuration: DuoEmulatorConfiguration
    /// The emulated directory, for in-process assertions.
    public let directory = DuoDirectory()
    private let verifier: DuoSignatureVerifier
    private let logger: Logger
    private let faultState: Mutex<DuoEmulatorFaults>
    private let window = Mutex<[ContinuousClock.Instant]>([])
    private let counterState = Mutex<[String: [String: Int]]>([:])
    private let running = Mutex<(task: Task<Void, Never>?, group: ServiceGroup?)>((nil, nil))

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

    func resetCounters() { counterState.withLock { $0 = [:] } }

    /// Saves the directory to the configured state file, if there is one.
    public func saveState() throws {
        guard let path = configuration.stateFile else { return }
        try emulatorEncoder.encode(directory.snapshot()).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Runs the server until the task is cancelled or a graceful shutdown is triggered.
    /// `onRunning` receives the port it listens on.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let responder = CallbackResponder<EmulatorRequestContext> { [self] request, context in
            try await self.respond(to: request, context: context)
        }
        let app = Application(
            responder: responder,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        defer { try? saveState() }
        try await app.run()
    }

    /// Starts the server in the background and returns its base URL, for tests and embedding.
    public func start() async throws -> String {
        let port: Int = try await withCheckedThrowingContinuation { continuation in
            let resumed = Mutex(false)
            let service = EmbeddedEmulatorService(emulator: self) { port in
                if resumed.withLock({ let was = $0; $0 = true; return !was }) { continuation.resume(returning: port) }
            }
            let group = ServiceGroup(services: [service], gracefulShutdownSignals: [], logger: logger)
            let task = Task {
                do {
                    try await group.run()
                } catch {
                    if resumed.withLock({ let was = $0; $0 = true; return !was }) { continuation.resume(throwing: error) }
                }
            }
            running.withLock { $0 = (task, group) }
        }
        return "http://\(configuration.host):\(port)"
    }

    /// Stops a server started with ``start()``, letting open requests finish.
    public func stop() async {
        let (task, group) = running.withLock { $0 }
        await group?.triggerGracefulShutdown()
        _ = await task?.result
    }

    // MARK: - Request handling

    func respond(to request: Request, context: EmulatorRequestContext) async throws -> Response {
        let target = request.uri.string
        let path = String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        if path.hasPrefix("/__emulator/") || path == "/__emulator" {
            guard configuration.controlEnabled else { return envelope(error: .notFound) }
            return try await control(request, path: path, context: context)
        }
        let template = Self.template(path)
        let key = "\(request.method.rawValue) \(template)"
        let response = try await admin(request, path: path, target: target, context: context)
        counterState.withLock { $0[key, default: [:]][String(response.status.code), default: 0] += 1 }
        return response
    }

    private func admin(_ request: Request, path: String, target: String, context: EmulatorRequestContext) async throws -> Response {
        var request = request
        let bodyBuffer = try await request.collectBody(upTo: 1 << 20)
        let body = Array(bodyBuffer.readableBytesView)

        // Faults come first, like a throttling proxy or a failing backend in front of Duo.
        let plan = faultState.withLock { f -> FaultPlan in
            var plan = FaultPlan()
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
        if let latency = plan.latency, latency > .zero { try await Task.sleep(for: latency) }
        if plan.reset {
            try await context.channel.close()
            throw HTTPError(.internalServerError)
        }
        if let status = plan.status {
            switch status {
            case 400: return envelope(error: .invalidParameter("injected", "fault injected by the emulator"))
            case 401: return envelope(error: .invalidSignature)
            case 429: return envelope(error: .tooManyRequests)
            case 503: return envelope(error: .unavailable)
            default: return envelope(error: .internalError)
            }
        }
        if let limit = plan.rateLimit, !admitWithinRateLimit(limit) { return envelope(error: .tooManyRequests) }

        // Parameters as received: the query string, plus a form or JSON body.
        let rawQuery = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first ?? ""
        guard let query = DuoSigning.parseQuery(rawQuery) else { return envelope(error: .invalidParameter("query")) }
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        var form: [DuoParameter] = []
        var jsonParams: [DuoParameter] = []
        if contentType.hasPrefix("application/x-www-form-urlencoded") {
            guard let parsed = DuoSigning.parseQuery(Substring(String(decoding: body, as: UTF8.self))) else {
                return envelope(error: .invalidParameter("body"))
            }
            form = parsed
        } else if contentType.hasPrefix("application/json") {
            do { jsonParams = try DuoRequestParameters.fromJSON(Data(body)) } catch { return envelope(error: error) }
        }
        let headers = request.headers.map { (name: $0.name.rawName, value: $0.value) }
        let ikey: String
        do {
            ikey = try verifier.verify(.init(method: request.method.rawValue, path: path, query: query, form: form, body: body,
                                             headers: headers, host: request.head.authority))
        } catch {
            return envelope(error: error)
        }
        let params = DuoRequestParameters(query + form + jsonParams)
        let caller = DuoDirectory.Caller(method: request.method.rawValue, path: path, integrationKey: ikey)
        do {
            let (data, metadata) = try route(request.method.rawValue, path: path, params: params, caller: caller)
            return envelope(ok: data, metadata: metadata)
        } catch {
            return envelope(error: error)
        }
    }

    private struct FaultPlan {
        var latency: Duration?
        var status: Int?
        var reset = false
        var rateLimit: Double?
    }

    /// At most `limit` requests in any one-second window.
    private func admitWithinRateLimit(_ limit: Double) -> Bool {
        window.withLock { w in
            let now = ContinuousClock.now
            let cutoff = now - .seconds(1)
            if let firstFresh = w.firstIndex(where: { $0 > cutoff }) { w.removeFirst(firstFresh) } else { w.removeAll() }
            guard Double(w.count) < limit else { return false }
            w.append(now)
            return true
        }
    }

    private func route(_ method: String, path: String, params: DuoRequestParameters, caller: DuoDirectory.Caller) throws(DuoEmulatorError) -> (Data, DuoPageMetadata?) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { DuoSigning.percentDecode($0, plusIsSpace: false) ?? String($0) }
        let d = directory
        switch (method, parts.count >= 3 ? Array(parts[0..<3]) : parts) {
        case (_, ["admin", "v1", "users"]):
            switch (method, parts.count) {
            case ("GET", 3): return try d.listUsers(params)
            case ("POST", 3): return (try d.createUser(params, caller: caller), nil)
            case ("POST", 4) where parts[3] == "enroll": return (try d.enroll(params, caller: caller), nil)
            case ("POST", 4) where parts[3] == "bulk_send_to_trash": return (try d.trash(params, restore: false, caller: caller), nil)
            case ("POST", 4) where parts[3] == "bulk_restore": return (try d.trash(params, restore: true, caller: caller), nil)
            case ("GET", 4): return (try d.getUser(parts[3]), nil)
            case ("POST", 4): return (try d.modifyUser(parts[3], params, caller: caller), nil)
            case ("DELETE", 4): return (d.deleteUser(parts[3], caller: caller), nil)
            case ("GET", 5) where parts[4] == "groups": return try d.userGroups(parts[3], params)
            case ("POST", 5) where parts[4] == "groups": return (try d.addUserGroup(parts[3], params, caller: caller), nil)
            case ("DELETE", 6) where parts[4] == "groups": return (try d.removeUserGroup(parts[3], parts[5], caller: caller), nil)
            default: throw .notFound
            }
        case (_, ["admin", "v1", "groups"]):
            switch (method, parts.count) {
            case ("GET", 3): return try d.listGroups(params)
            case ("POST", 3): return (try d.createGroup(params, caller: caller), nil)
            case ("GET", 4): return (try d.getGroup(parts[3]), nil)
            case ("POST", 4): return (try d.modifyGroup(parts[3], params, caller: caller), nil)
            case ("DELETE", 4): return (d.deleteGroup(parts[3], caller: caller), nil)
            default: throw .notFound
            }
        case ("GET", ["admin", "v2", "groups"]):
            switch parts.count {
            case 4: return (try d.getGroup(parts[3]), nil)
            case 5 where parts[4] == "users": return try d.groupMembers(parts[3], params)
            default: throw .notFound
            }
        default:
            throw .notFound
        }
    }

    /// `/admin/v1/users/DU…/groups/DG…` → `/admin/v1/users/{id}/groups/{group_id}`, for counters.
    static func template(_ path: String) -> String {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let fixed: Set<String> = ["enroll", "bulk_send_to_trash", "bulk_restore", "bulk_create"]
        if parts.count > 4, !fixed.contains(parts[4]) { parts[4] = "{id}" }
        if parts.count > 6 { parts[6] = "{group_id}" }
        return parts.joined(separator: "/")
    }

    // MARK: - Envelopes

    private static let jsonHeaders: HTTPFields = [.contentType: "application/json"]

    func envelope(ok data: Data, metadata: DuoPageMetadata?) -> Response {
        var out = Data(#"{"stat":"OK","response":"#.utf8)
        out += data
        if let metadata {
            var m: [String: Any] = ["total_objects": metadata.totalObjects ?? 0]
            m["next_offset"] = metadata.nextOffset ?? NSNull()
            m["prev_offset"] = metadata.prevOffset ?? NSNull()
            out += Data(#","metadata":"#.utf8)
            out += (try? JSONSerialization.data(withJSONObject: m, options: [.sortedKeys])) ?? Data("{}".utf8)
        }
        out += Data("}".utf8)
        return Response(status: .ok, headers: Self.jsonHeaders, body: .init(byteBuffer: ByteBuffer(bytes: out)))
    }

    func envelope(error: DuoEmulatorError) -> Response {
        var object: [String: Any] = ["stat": "FAIL", "code": error.code, "message": error.message]
        if let detail = error.detail { object["message_detail"] = detail }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(status: .init(code: error.httpStatus), headers: Self.jsonHeaders, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: Self.jsonHeaders, body: .init(byteBuffer: ByteBuffer(bytes: encode(value))))
    }
}

/// Runs the emulator inside a service group, so stopping it is a graceful shutdown.
struct EmbeddedEmulatorService: Service {
    let emulator: DuoEmulator
    let onRunning: @Sendable (Int) async -> Void
    func run() async throws { try await emulator.run(onRunning: onRunning) }
}

/// The request context: Hummingbird's core context plus the channel, so a fault can reset the connection.
struct EmulatorRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}
