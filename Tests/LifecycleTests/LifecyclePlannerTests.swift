import Foundation
import Lifecycle
import Testing

func event(_ type: LifecycleEventType, id: String = UUID().uuidString, seq: Int64? = nil, at: TimeInterval = 1_000, effective: TimeInterval? = nil,
           roles: [String]? = nil, email: String? = "ada@example.com", username: String? = nil, first: String? = nil) -> EmployeeLifecycleEvent {
    EmployeeLifecycleEvent(id: id, source: "urn:test", type: type, time: Date(timeIntervalSince1970: at), employeeID: "E1",
                           profile: EmployeeProfile(username: username, email: email, firstName: first), roles: roles, effectiveAt: effective.map(Date.init(timeIntervalSince1970:)), sequence: seq)
}

@Suite("Planning: mapping, ordering guard, termination policy")
struct LifecyclePlannerTests {
    static let mapping = MappingPolicy(roles: ["engineering": ["Engineering", "VPN"], "sales": ["Sales"], "oncall": ["VPN"]])
    let planner = LifecyclePlanner(mapping: mapping, termination: TerminationPolicy())

    /// Runs events through the planner as the worker would, returning each decision's kind.
    func run(_ events: [EmployeeLifecycleEvent], planner: LifecyclePlanner? = nil) -> (outcomes: [String], state: EmployeeState?) {
        var state: EmployeeState?
        var outcomes: [String] = []
        for e in events {
            switch (planner ?? self.planner).plan(e, state: state) {
            case .command(_, let next): state = next; outcomes.append("command")
            case .stale: outcomes.append("stale")
            case .rejected(let v): outcomes.append("rejected:\(v.code)")
            }
        }
        return (outcomes, state)
    }

    @Test("A hire maps roles to groups and derives the username from the email")
    func hire() throws {
        guard case .command(let c, _) = planner.plan(event(.hired, roles: ["engineering", "oncall", "unknown-role"], first: "Ada"), state: nil) else {
            Issue.record("no command"); return
        }
        #expect(c.desired.username == "ada" && c.desired.status == .active && c.desired.groups == ["Engineering", "VPN"])
        #expect(c.desired.realname == "Ada" && c.priority == .normal)
        #expect(Self.mapping.managedGroups == ["Engineering", "VPN", "Sales"])
    }

    @Test("Terminations carry the highest priority and disable the user")
    func termination() throws {
        let (_, state) = run([event(.hired, seq: 1, roles: ["sales"])])
        guard case .command(let c, _) = planner.plan(event(.terminated, seq: 2, email: nil), state: state) else { Issue.record("no command"); return }
        #expect(c.priority == .termination && c.desired.status == .disabled && c.desired.terminated)
        #expect(c.isLockout)
        // A leaver's command stored with the wrong priority still goes first and alone.
        var misfiled = c
        misfiled.priority = .normal
        #expect(misfiled.isLockout)
        guard case .command(let hire, _) = planner.plan(event(.hired, seq: 1, roles: ["sales"]), state: nil) else { Issue.record("no command"); return }
        #expect(!hire.isLockout)
        #expect(c.desired.groups == ["Sales"], "groups stay unless remove_managed_groups")
        let removing = LifecyclePlanner(mapping: Self.mapping, termination: TerminationPolicy(action: .delete, deleteAfter: .seconds(3600), removeManagedGroups: true))
        guard case .command(let d, _) = removing.plan(event(.terminated, seq: 2, at: 5000, email: nil), state: state) else { Issue.record("no command"); return }
        #expect(d.desired.groups == [] && d.desired.removal == .delete(at: Date(timeIntervalSince1970: 8600)))
    }

    struct OrderingCase: Sendable, CustomTestStringConvertible {
        var name: String
        var events: [EmployeeLifecycleEvent]
        var outcomes: [String]
        var finalStatus: DesiredDuoState.Status
        var testDescription: String { name }
    }

    static let orderingCases: [OrderingCase] = [
        OrderingCase(name: "in order", events: [event(.hired, seq: 1, roles: []), event(.roleChanged, seq: 2, roles: ["sales"]), event(.terminated, seq: 3)],
                     outcomes: ["command", "command", "command"], finalStatus: .disabled),
        OrderingCase(name: "older sequence is stale", events: [event(.roleChanged, seq: 5, roles: ["sales"]), event(.hired, seq: 4, roles: [])],
                     outcomes: ["command", "stale"], finalStatus: .active),
        OrderingCase(name: "replay of old events after termination changes nothing",
                     events: [event(.hired, seq: 1, roles: []), event(.terminated, seq: 3), event(.hired, seq: 1, roles: ["sales"]),
                              event(.roleChanged, seq: 2, roles: ["sales"]), event(.updated, seq: 2, first: "Ada")],
                     outcomes: ["command", "command", "stale", "stale", "stale"], finalStatus: .disabled),
        OrderingCase(name: "a newer hire, update or role change never re-enables a leaver",
                     events: [event(.hired, seq: 1, roles: []), event(.terminated, seq: 2), event(.hired, seq: 3, roles: ["sales"]),
                              event(.updated, seq: 4, first: "Ada"), event(.roleChanged, seq: 5, roles: ["engineering"])],
                     outcomes: ["command", "command", "command", "command", "command"], finalStatus: .disabled),
        OrderingCase(name: "only a newer rehire re-enables",
                     events: [event(.hired, seq: 1, roles: []), event(.terminated, seq: 2), event(.rehired, seq: 1, roles: []), event(.rehired, seq: 3, roles: ["sales"])],
                     outcomes: ["command", "command", "stale", "command"], finalStatus: .active),
        OrderingCase(name: "effective dates never decide order: a termination published after a hire dated ahead is not stale",
                     events: [event(.hired, at: 100, effective: 100 + 14 * 86400, roles: []), event(.terminated, at: 200)],
                     outcomes: ["command", "command"], finalStatus: .disabled),
        OrderingCase(name: "without sequences, the event time decides even when effective dates say otherwise",
                     events: [event(.terminated, at: 100, effective: 500), event(.rehired, at: 200, effective: 400, roles: [])],
                     outcomes: ["command", "command"], finalStatus: .active),
        OrderingCase(name: "without sequences or effective_at, the event time decides",
                     events: [event(.terminated, at: 300), event(.hired, at: 200, roles: [])],
                     outcomes: ["command", "stale"], finalStatus: .disabled),
        OrderingCase(name: "sequence wins over effective_at when both events carry one",
                     events: [event(.hired, seq: 1, at: 900, roles: []), event(.terminated, seq: 2, at: 100)],
                     outcomes: ["command", "command"], finalStatus: .disabled),
    ]

    @Test("The ordering guard", arguments: orderingCases)
    func ordering(_ c: OrderingCase) {
        let (outcomes, state) = run(c.events)
        #expect(outcomes == c.outcomes)
        #expect(state?.desired.status == c.finalStatus)
    }

    @Test("Effective dates: a future hire or termination is scheduled for its date; honor_effective_at false locks out at once")
    func effectiveDatesSchedule() throws {
        let hireDate = Date(timeIntervalSince1970: 1_000 + 14 * 86400)
        guard case .command(let hire, let hired) = planner.plan(event(.hired, at: 1_000, effective: hireDate.timeIntervalSince1970, roles: []), state: nil) else {
            Issue.record("no command"); return
        }
        #expect(hire.applyAt == hireDate)
        guard case .command(let update, _) = planner.plan(event(.updated, at: 2_000, first: "Ada"), state: hired) else { Issue.record("no command"); return }
        #expect(update.applyAt == hireDate, "a change before the start date waits for it")
        let (_, active) = run([event(.hired, at: 100, roles: [])])
        let leaveDate = Date(timeIntervalSince1970: 50_000)
        guard case .command(let leave, _) = planner.plan(event(.terminated, at: 1_000, effective: 50_000), state: active) else { Issue.record("no command"); return }
        #expect(leave.applyAt == leaveDate && leave.priority == .termination)
        let atNotice = LifecyclePlanner(mapping: Self.mapping, termination: TerminationPolicy(honorEffectiveAt: false))
        guard case .command(let now, _) = atNotice.plan(event(.terminated, at: 1_000, effective: 50_000), state: active) else { Issue.record("no command"); return }
        #expect(now.applyAt == nil, "terminations act at once when effective dates are not honoured")
    }

    @Test("A rescinded termination: a newer hire before the leaving date cancels it; an update keeps it at its date")
    func rescindedTermination() throws {
        let (_, pending) = run([event(.hired, at: 100, roles: ["sales"]), event(.terminated, at: 200, effective: 10_000)])
        #expect(pending?.desired.terminated == true)
        guard case .command(let update, let updated) = planner.plan(event(.updated, at: 300, first: "Ada"), state: pending) else { Issue.record("no command"); return }
        #expect(update.desired.terminated && update.applyAt == Date(timeIntervalSince1970: 10_000), "an update never brings a lockout forward or cancels it")
        #expect(update.priority == .termination, "the lockout it now carries keeps a termination's priority")
        guard case .command(let rescind, _) = planner.plan(event(.hired, at: 400, roles: ["sales"]), state: updated) else { Issue.record("no command"); return }
        #expect(!rescind.desired.terminated && rescind.desired.status == .active && rescind.desired.groups == ["Sales"])
        #expect(rescind.applyAt == nil || rescind.applyAt == Date(timeIntervalSince1970: 400))
        // After the leaving date a hire is just a replayed or late event: it never re-enables.
        let (_, left) = run([event(.hired, at: 100, roles: []), event(.terminated, at: 200, effective: 250)])
        guard case .command(let late, _) = planner.plan(event(.hired, at: 300, roles: ["sales"]), state: left) else { Issue.record("no command"); return }
        #expect(late.desired.terminated && late.desired.status == .disabled)
    }

    @Test("Unmapped roles are ignored by default, and rejected when configured")
    func unmapped() {
        #expect(run([event(.hired, roles: ["astronaut"])]).outcomes == ["command"])
        let strict = LifecyclePlanner(mapping: MappingPolicy(roles: Self.mapping.roles, unmappedRoles: .reject), termination: TerminationPolicy())
        #expect(run([event(.hired, roles: ["astronaut", "sales"])], planner: strict).outcomes == ["rejected:unmapped_role"])
    }

    @Test("An employee with no username or email cannot be identified")
    func unknownUser() {
        #expect(run([event(.terminated, email: nil)]).outcomes == ["rejected:unknown_user"])
        #expect(run([event(.terminated, email: nil, username: "ada")]).outcomes == ["command"])
    }
}
