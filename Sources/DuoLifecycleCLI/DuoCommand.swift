import ArgumentParser
import DuoAdmin
import Foundation
import Logging

struct DuoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "duo",
        abstract: "Call Duo's Admin API directly: users, groups and memberships.",
        discussion: """
        Credentials come from options or the environment: DUO_IKEY, DUO_SKEY (or --skey-file), \
        DUO_API_HOST for a real Duo (HTTPS), DUO_API_URL for any URL such as the emulator's.

        Lists print one JSON object per line; --table prints a table instead. Duo's failures \
        print Duo's code and message on standard error and exit 1; usage errors exit 2.
        """,
        subcommands: [Users.self, Groups.self, UserGroups.self]
    )

    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "users", abstract: "List, read, find, create, update and delete users.",
            subcommands: [List.self, Get.self, Find.self, Create.self, Update.self, Delete.self])
    }

    struct Groups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "groups", abstract: "List, read, create and delete groups, and list their members.",
            subcommands: [GroupList.self, GroupGet.self, GroupCreate.self, GroupDelete.self, GroupMembers.self])
    }

    struct UserGroups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "user-groups", abstract: "List a user's groups, and add or remove a membership.",
            subcommands: [UserGroupList.self, UserGroupAdd.self, UserGroupRemove.self])
    }
}

/// How to reach Duo, shared by every `duo` subcommand.
struct DuoConnectionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A real Duo API host, reached over HTTPS (or DUO_API_HOST).", valueName: "host"))
    var apiHost: String?

    @Option(help: ArgumentHelp("Any base URL, for example the emulator's http://127.0.0.1:PORT (or DUO_API_URL).", valueName: "url"))
    var apiURL: String?

    @Option(help: ArgumentHelp("Integration key (or DUO_IKEY).", valueName: "ikey"))
    var ikey: String?

    @Option(help: ArgumentHelp("Secret key (or DUO_SKEY). Prefer --skey-file: a command line is visible to other users.", valueName: "skey"))
    var skey: String?

    @Option(help: ArgumentHelp("A file holding the secret key.", valueName: "path"))
    var skeyFile: String?

    @Option(help: "Signature scheme: v5, v2 or v2-sha1.")
    var signature: DuoSignatureScheme = .v5

    @Option(help: "Request timeout in seconds.")
    var timeout: Double = 30

    @Option(help: "Log level for diagnostics on standard error.")
    var logLevel: Logger.Level = .warning

    func makeClient() throws -> DuoAdminClient {
        let env = ProcessInfo.processInfo.environment
        let credentials = DuoCredentials(apiURL: apiURL ?? (apiHost == nil ? env["DUO_API_URL"] : nil), apiHost: apiHost ?? env["DUO_API_HOST"],
                                         ikey: ikey ?? env["DUO_IKEY"], skey: skey ?? env["DUO_SKEY"], skeyFile: skeyFile)
        var config: DuoAdminConfiguration
        do {
            config = try credentials.configuration { field in
                switch field {
                case .apiURL: "--api-url URL (or DUO_API_URL)"
                case .apiHost: "--api-host HOST (or DUO_API_HOST)"
                case .ikey: "--ikey or DUO_IKEY"
                case .skey: "--skey or DUO_SKEY"
                case .skeyFile: "--skey-file PATH"
                }
            }
        } catch {
            throw ValidationError(error.description)
        }
        config.signature = signature
        config.requestTimeout = .milliseconds(Int64(timeout * 1000))
        config.requestsPerSecond = nil
        var logger = Logger(label: "duo-lifecycle.duo") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = logLevel
        return DuoAdminClient(configuration: config, logger: logger)
    }

    /// Runs `body` with a client and shuts the client down afterwards, whatever happens.
    func withClient(_ body: (DuoAdminClient) async throws -> Void) async throws {
        let client = try makeClient()
        do {
            try await body(client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

extension DuoSignatureScheme: ExpressibleByArgument {}

/// Output shared by the `duo` subcommands.
struct DuoOutputOptions: ParsableArguments {
    @Flag(help: "Print a human-readable table instead of JSON lines.")
    var table = false
}

/// Fields of `users create` and `users update`.
struct DuoUserFieldOptions: ParsableArguments {
    @Option var username: String?
    @Option var realname: String?
    @Option var email: String?
    @Option var firstname: String?
    @Option var lastname: String?
    @Option(help: "active, bypass, disabled (or locked out on update).") var status: String?
    @Option var notes: String?

    var fields: DuoUserFields {
        DuoUserFields(username: username, realname: realname, email: email, firstname: firstname, lastname: lastname,
                      status: status.map(DuoUserStatus.init(rawValue:)), notes: notes)
    }
}

enum DuoPrinter {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func line<T: Encodable>(_ value: T) throws {
        Console.out(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
    }

    static func table(_ header: [String], _ rows: [[String]]) { printTable(header, rows) }

    static func users(_ users: [DuoUser], table: Bool) throws {
        guard table else { for u in users { try line(u) }; return }
        self.table(["user_id", "username", "realname", "email", "status", "groups"], users.map {
            [$0.userID, $0.username, $0.realname ?? "", $0.email ?? "", $0.status.rawValue, $0.groups.map(\.name).joined(separator: ",")]
        })
    }

    static func groups(_ groups: [DuoGroup], table: Bool) throws {
        guard table else { for g in groups { try line(g) }; return }
        self.table(["group_id", "name", "desc", "status"], groups.map { [$0.groupID, $0.name, $0.desc ?? "", $0.status ?? ""] })
    }
}

extension DuoCommand.Users {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every user, following Duo's pages.")
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func run() async throws {
            try await connection.withClient { client in
                if output.table {
                    try DuoPrinter.users(try await client.listUsers(), table: true)
                } else {
                    for try await user in client.users() { try DuoPrinter.line(user) }
                }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read one user by id.")
        @Argument(help: "The user id (DU…).") var userID: String
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func run() async throws {
            try await connection.withClient { try DuoPrinter.users([try await $0.getUser(id: userID)], table: output.table) }
        }
    }

    struct Find: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Find users by username (or alias) or by email.")
        @Option var username: String?
        @Option var email: String?
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func validate() throws {
            guard (username == nil) != (email == nil) else { throw ValidationError("Give exactly one of --username or --email") }
        }
        func run() async throws {
            try await connection.withClient { client in
                let users: [DuoUser]
                if let username { users = try await client.findUser(username: username).map { [$0] } ?? [] }
                else if let email { users = try await client.findUsers(email: email) }
                else { users = [] }  // validate() requires one of them
                try DuoPrinter.users(users, table: output.table)
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user (--username is required).")
        @OptionGroup var fields: DuoUserFieldOptions
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func validate() throws {
            guard let u = fields.username, !u.isEmpty else { throw ValidationError("--username is required") }
        }
        func run() async throws {
            try await connection.withClient { try DuoPrinter.users([try await $0.createUser(fields.fields)], table: output.table) }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change any of a user's fields, status included.")
        @Argument(help: "The user id (DU…).") var userID: String
        @OptionGroup var fields: DuoUserFieldOptions
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func validate() throws {
            guard !fields.fields.isEmpty else { throw ValidationError("Nothing to change: give at least one field option") }
        }
        func run() async throws {
            try await connection.withClient { try DuoPrinter.users([try await $0.modifyUser(id: userID, fields.fields)], table: output.table) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user at once and for good (succeeds if already gone).")
        @Argument(help: "The user id (DU…).") var userID: String
        @OptionGroup var connection: DuoConnectionOptions
        func run() async throws {
            try await connection.withClient { try await $0.deleteUser(id: userID) }
            try DuoPrinter.line(["deleted": userID])
        }
    }
}

extension DuoCommand.Groups {
    struct GroupList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List every group.")
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func run() async throws {
            try await connection.withClient { try DuoPrinter.groups(try await $0.listGroups(), table: output.table) }
        }
    }

    struct GroupGet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get", abstract: "Read one group by id (v2 endpoint).")
        @Argument(help: "The group id (DG…).") var groupID: String
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func run() async throws {
            try await connection.withClient { try DuoPrinter.groups([try await $0.getGroup(id: groupID)], table: output.table) }
        }
    }

    struct GroupCreate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a group.")
        @Option var name: String
        @Option var desc: String?
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func run() async throws {
            try await connection.withClient { try DuoPrinter.groups([try await $0.createGroup(name: name, desc: desc)], table: output.table) }
        }
    }

    struct GroupDelete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a group.")
        @Argument(help: "The group id (DG…).") var groupID: String
        @OptionGroup var connection: DuoConnectionOptions
        func run() async throws {
            try await connection.withClient { try await $0.deleteGroup(id: groupID) }
            try DuoPrinter.line(["deleted": groupID])
        }
    }

    struct GroupMembers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "members", abstract: "List a group's members (v2 endpoint).")
        @Argument(help: "The group id (DG…).") var groupID: String
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func run() async throws {
            try await connection.withClient { client in
                let members = try await client.groupMembers(groupID: groupID).collect()
                if output.table { DuoPrinter.table(["user_id", "username"], members.map { [$0.userID, $0.username] }) }
                else { for m in members { try DuoPrinter.line(m) } }
            }
        }
    }
}

extension DuoCommand.UserGroups {
    struct UserGroupList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List a user's groups.")
        @Argument(help: "The user id (DU…).") var userID: String
        @OptionGroup var connection: DuoConnectionOptions
        @OptionGroup var output: DuoOutputOptions
        func run() async throws {
            try await connection.withClient { try DuoPrinter.groups(try await $0.listUserGroups(userID: userID), table: output.table) }
        }
    }

    struct UserGroupAdd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a user to a group.")
        @Argument(help: "The user id (DU…).") var userID: String
        @Argument(help: "The group id (DG…).") var groupID: String
        @OptionGroup var connection: DuoConnectionOptions
        func run() async throws {
            try await connection.withClient { try await $0.addUser(userID, toGroup: groupID) }
            try DuoPrinter.line(["user_id": userID, "group_id": groupID, "added": "true"])
        }
    }

    struct UserGroupRemove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a user from a group.")
        @Argument(help: "The user id (DU…).") var userID: String
        @Argument(help: "The group id (DG…).") var groupID: String
        @OptionGroup var connection: DuoConnectionOptions
        func run() async throws {
            try await connection.withClient { try await $0.removeUser(userID, fromGroup: groupID) }
            try DuoPrinter.line(["user_id": userID, "group_id": groupID, "removed": "true"])
        }
    }
}
