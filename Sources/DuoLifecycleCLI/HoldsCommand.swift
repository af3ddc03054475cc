import ArgumentParser
import Foundation
import Lifecycle
import LifecycleStore
import LifecycleWorker
import Logging

struct HoldsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "holds",
        abstract: "Review disables the mass-deprovision guard held back: list, approve, reject.",
        discussion: """
        With guard.max_disables or guard.max_percent set, disables and deletions beyond the \
        threshold within guard.window are held (result outcome held) instead of applied. Approved \
        ones run within a second on the running worker; a held command whose employee has a newer \
        one (a rehire) is superseded instead. Rejected ones never run (result outcome rejected).
        """,
        subcommands: [List.self, Approve.self, Reject.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "The worker's YAML configuration file (its store).") var config: String

        func open() async throws -> (HeldCommands, any LifecycleStore) {
            let (settings, store) = try await openWorkerStore(config, label: "duo-lifecycle.holds")
            return (HeldCommands(store: store, configuration: settings.pipeline), store)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List held commands.")
        @OptionGroup var options: Options
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let (holds, store) = try await options.open()
            let held = try await holds.list()
            await store.close()
            if json {
                for c in held {
                    let o: [String: Any] = ["id": c.id, "employee_id": c.command.employeeID, "event_id": c.command.eventID,
                                            "event_type": c.command.eventType.rawValue, "held_since": RFC3339.format(c.createdAt)]
                    print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
                }
                return
            }
            guard !held.isEmpty else { print("No held commands."); return }
            print("id      employee          event                                     type")
            for c in held {
                print("\(String(c.id).padding(toLength: 8, withPad: " ", startingAt: 0))\(c.command.employeeID.padding(toLength: 18, withPad: " ", startingAt: 0))\(c.command.eventID.padding(toLength: 42, withPad: " ", startingAt: 0))\(c.command.eventType.rawValue)")
            }
            print("\(held.count) held. Approve with `duo-lifecycle holds approve --config FILE --all` (or ids), or reject.")
        }
    }

    /// Which held commands a decision is about: `--all`, or ids.
    struct Selection: ParsableArguments {
        @Flag(help: "Every held command.") var all = false
        @Argument(help: "Command ids from `holds list`.") var ids: [Int64] = []

        func validate() throws { guard all != !ids.isEmpty else { throw ValidationError("Give --all or command ids, not both") } }

        /// Runs the decision and prints it; ids that are not held make it exit 1.
        func decide(_ options: Options, _ action: (HeldCommands, [Int64]?) async throws -> HeldCommands.Decision,
                    describe: (HeldCommands.Decision) -> String) async throws {
            let (holds, store) = try await options.open()
            let decision: HeldCommands.Decision
            do { decision = try await action(holds, all ? nil : ids) } catch { await store.close(); throw error }
            await store.close()
            let notHeld = decision.notHeld.map(String.init).joined(separator: " ")
            print(describe(decision) + (notHeld.isEmpty ? "" : ", not held: \(notHeld)"))
            if !decision.notHeld.isEmpty { throw ExitCode.failure }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let held commands run.")
        @OptionGroup var options: Options
        @OptionGroup var selection: Selection

        func run() async throws {
            try await selection.decide(options, { try await $0.approve(ids: $1) }) {
                "approved \($0.approved.count), superseded by a newer command \($0.superseded.count)"
            }
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop held commands for good.")
        @OptionGroup var options: Options
        @OptionGroup var selection: Selection

        func run() async throws {
            try await selection.decide(options, { try await $0.reject(ids: $1) }) { "rejected \($0.rejected.count)" }
        }
    }
}
