import ArgumentParser
import DuoAdmin
import Foundation
import Lifecycle
import LifecycleStore
import LifecycleWorker
import Logging

struct EmployeeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "employee",
        abstract: "The helpdesk view of one person.",
        subcommands: [Show.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one employee: HR state, their Duo user (status, enrollment, last login, groups), recent events and outcomes, waiting or held commands.",
            discussion: "Reads the worker's store (store.path or store.url) and Duo (one or two reads)."
        )
        @Option(help: "The worker's YAML configuration file.") var config: String
        @Flag(help: "One JSON object.") var json = false
        @Argument(help: "The employee id.") var employeeID: String

        func run() async throws {
            let (settings, store) = try await openWorkerStore(config, label: "duo-lifecycle.employee")
            var logger = Logger(label: "duo-lifecycle.employee")
            logger.logLevel = .error
            let id = employeeID
            let state = try await store.write { tx in try await tx.employeeState(id) }
            let links = try await store.allDuoLinks().filter { $0.employeeID == id }
            let commands = try await store.allCommands().filter { $0.command.employeeID == id }
            await store.close()
            guard state != nil || !commands.isEmpty else {
                Console.err("No employee \(id) in the store.\n")
                throw ExitCode.failure
            }
            var duo = settings.duo
            duo.retry = DuoRetryPolicy()
            let client = DuoAdminClient(configuration: duo, logger: logger)
            var users: [DuoUser] = []
            for userID in ([state?.duoUserID].compactMap { $0 } + links.map(\.duoUserID)).uniquedStrings() {
                if let u = try? await client.getUser(id: userID) { users.append(u) }
            }
            if users.isEmpty, let name = state?.desired.username, let u = (try? await client.findUser(username: name)) ?? nil { users.append(u) }
            try? await client.shutdown()

            let recent = commands.sorted { $0.id > $1.id }.prefix(20)
            if json {
                var o: [String: Any] = ["employee_id": id]
                if let state {
                    var hr: [String: Any] = ["terminated": state.desired.terminated, "status": state.desired.status.rawValue]
                    if let v = state.desired.username { hr["username"] = v }
                    if let v = state.desired.email { hr["email"] = v }
                    if let g = state.desired.groups { hr["groups"] = g.sorted() }
                    if let t = state.terminationEffectiveAt { hr["termination_effective_at"] = RFC3339.format(t) }
                    o["hr"] = hr
                }
                o["duo_users"] = users.map { u -> [String: Any] in
                    var d: [String: Any] = ["user_id": u.userID, "username": u.username, "status": u.status.rawValue, "is_enrolled": u.isEnrolled ?? false,
                                            "groups": u.groups.map(\.name).sorted(), "phones": u.phones.map(\.number)]
                    if let v = u.lastLogin { d["last_login"] = v }
                    if let v = u.created { d["created"] = v }
                    return d
                }
                o["commands"] = recent.map { c -> [String: Any] in
                    var d: [String: Any] = ["id": c.id, "event_id": c.command.eventID, "event_type": c.command.eventType.rawValue, "state": c.state.rawValue,
                                            "attempts": c.attempts, "created_at": RFC3339.format(c.createdAt)]
                    if let e = c.lastError { d["last_error"] = e }
                    return d
                }
                print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
                return
            }
            print("Employee \(id)")
            if let state {
                let d = state.desired
                print("  HR:   \(d.terminated ? "terminated" : "active")\(state.terminationEffectiveAt.map { " (leaving \(RFC3339.format($0)))" } ?? "")"
                      + "  username \(d.username ?? "-")  email \(d.email ?? "-")  groups \(d.groups.map { $0.sorted().joined(separator: ", ") } ?? "-")")
            }
            if users.isEmpty { print("  Duo:  no user") }
            for u in users {
                let login = u.lastLogin.map { RFC3339.format(Date(timeIntervalSince1970: TimeInterval($0))) } ?? "never"
                print("  Duo:  \(u.username) (\(u.userID))  \(u.status.rawValue)  \((u.isEnrolled ?? false) ? "enrolled" : "NOT enrolled")  \(u.phones.count) phone(s)  last login \(login)"
                      + "  groups \(u.groups.map(\.name).sorted().joined(separator: ", "))")
            }
            print("  Events (newest first):")
            for c in recent {
                print("    \(RFC3339.format(c.createdAt))  \(c.command.eventType.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0))"
                      + "  \(c.state.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0))  \(c.command.eventID)\(c.lastError.map { "  (\($0))" } ?? "")")
            }
            let waiting = commands.filter { [.pending, .retry, .running, .held].contains($0.state) }
            if !waiting.isEmpty { print("  Waiting: \(waiting.map { "\($0.id) \($0.state.rawValue)" }.joined(separator: ", "))") }
        }
    }
}

extension Sequence where Element == String {
    func uniquedStrings() -> [String] {
        var seen = Set<String>()
        return filter { seen.insert($0).inserted }
    }
}
