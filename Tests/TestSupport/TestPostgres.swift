import Foundation
import Kafka
import LifecycleStore
import Logging

/// The throwaway PostgreSQL server that `scripts/with-postgres` starts for the test run (the
/// README's test command runs the tests through it). A test that needs it and does not find it
/// fails, saying how to run it: it is never skipped.
public enum TestPostgres {
    public struct NotRunning: Error, CustomStringConvertible {
        public var description: String {
            "TEST_POSTGRES_URL is not set: run the tests through scripts/with-postgres (as the README's test command does), "
                + "or point it at a PostgreSQL database the tests may create databases beside"
        }
    }

    public static var url: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["TEST_POSTGRES_URL"], !url.isEmpty else { throw NotRunning() }
            return url
        }
    }

    public static var quietLogger: Logger {
        var l = Logger(label: "test.postgres")
        l.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return l
    }

    /// A new empty database on the test server, for one test.
    public static func freshDatabase() async throws -> PostgresStoreConfiguration {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        return try await PostgresLifecycleStore.createDatabase(String(name), on: try PostgresStoreConfiguration(url: try url), logger: quietLogger)
    }

    /// A store on a new empty database.
    public static func freshStore(poolSize: Int = 10) async throws -> PostgresLifecycleStore {
        var configuration = try await freshDatabase()
        configuration.poolSize = poolSize
        return try await PostgresLifecycleStore(configuration: configuration, logger: quietLogger)
    }

    public struct ToolFailed: Error, CustomStringConvertible {
        public var command: String
        public var status: Int32
        public var description: String { "\(command) exited \(status)" }
    }
}

/// A PostgreSQL server of a test's own, for tests that stop and start it (the shared test server
/// must stay up for the others). Built the way `scripts/with-postgres` builds the shared one,
/// with the binaries and OS user that script found.
public final class PrivatePostgres: Sendable {
    public let port: Int
    public let directory: String
    let bin: String
    let osUser: String

    public init() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let ctl = env["TEST_POSTGRES_CTL"] else { throw TestPostgres.NotRunning() }
        bin = URL(fileURLWithPath: ctl).deletingLastPathComponent().path
        osUser = env["TEST_POSTGRES_OS_USER"] ?? ""
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("private-pg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if !osUser.isEmpty { try await Self.run("/bin/chown", [osUser, directory]) }
        port = Self.freePort()
        try await runAsServerUser("initdb", ["-D", "\(directory)/data", "-U", "duo", "--auth=trust", "-E", "UTF8", "--no-sync"])
        try await start()
        try await Self.run("\(bin)/createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "duo", "lifecycle"])
    }

    /// The URL of its database.
    public var url: String { "postgres://duo@127.0.0.1:\(port)/lifecycle" }

    public func start() async throws {
        try await runAsServerUser("pg_ctl", ["-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w", "-t", "60",
                                       "-o", "-p \(port) -h 127.0.0.1 -k \(directory)", "start"])
    }

    public func stop() async throws { try await runAsServerUser("pg_ctl", ["-D", "\(directory)/data", "-w", "-m", "fast", "stop"]) }

    /// Stops the server for good and deletes its files.
    public func destroy() async {
        try? await runAsServerUser("pg_ctl", ["-D", "\(directory)/data", "-w", "-m", "immediate", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func runAsServerUser(_ tool: String, _ arguments: [String]) async throws {
        if osUser.isEmpty {
            try await Self.run("\(bin)/\(tool)", arguments)
        } else {
            try await Self.run("/usr/sbin/runuser", ["-u", osUser, "--", "\(bin)/\(tool)"] + arguments)
        }
    }

    /// Runs a tool to completion, its output discarded. Spawned with posix_spawn and reaped with
    /// waitpid: Foundation's `Process` counts a child as running while any descendant holds a
    /// descriptor it inherited, and `pg_ctl start` leaves the server holding one.
    static func run(_ executable: String, _ arguments: [String]) async throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        var spawned: Int32 = 0
        try KafkaMockCluster.startingChildProcess { spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ) }
        guard spawned == 0 else { throw TestPostgres.ToolFailed(command: executable, status: spawned) }
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(20)) }
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard exitCode == 0 else {
            throw TestPostgres.ToolFailed(command: ([executable] + arguments).joined(separator: " "), status: exitCode)
        }
    }

    /// A port nothing listens on, for a server a test starts. Taken at random below the kernel's
    /// ephemeral range: a port the kernel hands out (`bind` to port 0) can be given to one of the
    /// many outgoing connections of the tests running beside this one before the server binds it.
    public static func freePort() -> Int {
        let ephemeralLow = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
        let range = 10_000..<max(10_001, min(ephemeralLow, 32768))
        for _ in 0..<200 {
            let port = Int.random(in: range)
            if canBind(port) { return port }
        }
        return kernelPort()
    }

    static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let len = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0
    }

    static func kernelPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
