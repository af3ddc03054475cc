// EmbeddedStack owns the everything-on-one-machine set-up that dev, the benchmarks and the tests
// share: the mock cluster and its topics, the Duo emulator, and a worker configuration for them.
import DuoEmulator
import Logging
import ServiceLifecycle
import Synchronization

/// Services that a process runs beside its own work (the emulator under `dev`, a benchmark or a
/// test): a `ServiceGroup` in a task of its own, stopped by a graceful shutdown. This is the one
/// place where the embedded parts get an unstructured task; the services themselves are plain
/// `Service`s.
public final class BackgroundServices: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    public init(_ services: [any Service], logger: Logger) {
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [], logger: logger)
        self.group = group
        self.task = Task { try await group.run() }
    }

    /// Triggers a graceful shutdown and waits for every service to finish; an error a service
    /// ended with is returned.
    @discardableResult
    public func stop() async -> (any Error)? {
        await group.triggerGracefulShutdown()
        if case .failure(let error) = await task.result { return error }
        return nil
    }

    /// Waits for the services to finish on their own (or with an error).
    public func wait() async throws { try await task.value }
}

/// The Duo emulator running in the background of this process. The emulator's own properties
/// read through (`running.directory`, `running.faults`).
@dynamicMemberLookup
public struct EmbeddedEmulator: Sendable {
    public let emulator: DuoEmulator
    /// `http://HOST:PORT`.
    public let url: String
    public let services: BackgroundServices

    /// Starts `emulator` and returns once it listens.
    public static func start(_ emulator: DuoEmulator, logger: Logger) async throws -> EmbeddedEmulator {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let services = BackgroundServices([EmulatorService(emulator: emulator, ports: continuation)], logger: logger)
        var port: Int?
        for await p in ports {
            port = p
            break
        }
        guard let port else {
            let error = await services.stop()
            throw EmbeddedStackError("The Duo emulator did not start: \(error.map { "\($0)" } ?? "it stopped at once")")
        }
        return EmbeddedEmulator(emulator: emulator, url: "http://\(emulator.configuration.host):\(port)", services: services)
    }

    public func stop() async { await services.stop() }

    public subscript<T>(dynamicMember property: KeyPath<DuoEmulator, T>) -> T { emulator[keyPath: property] }

    public subscript<T>(dynamicMember property: ReferenceWritableKeyPath<DuoEmulator, T>) -> T {
        get { emulator[keyPath: property] }
        nonmutating set { emulator[keyPath: property] = newValue }
    }
}

/// The emulator as a service that reports its port, and ends the report when it stops (so a
/// failure to start is seen rather than waited on).
struct EmulatorService: Service {
    let emulator: DuoEmulator
    let ports: AsyncStream<Int>.Continuation

    func run() async throws {
        defer { ports.finish() }
        try await emulator.run(onServerRunning: { ports.yield($0) })
    }
}

public struct EmbeddedStackError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
