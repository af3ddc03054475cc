import Foundation
import JSONText
import Lifecycle
@testable import LifecycleStore
import Testing

/// The stored state and command are written and read by hand (for speed): they must agree with
/// `JSONEncoder` and `JSONDecoder` on every field, for stores written before and after the change.
@Suite("Stored state and command JSON")
struct StateCodingTests {
    static let tricky = "J\u{F6}s\u{E9} \"q\" back\\slash / line\nfeed\ttab\r\u{01}\u{1F} \u{1F600}"

    static var states: [EmployeeState] {
        let t0 = Date(timeIntervalSince1970: 1_790_000_000.123)
        var bare = EmployeeState(employeeID: "E0")
        bare.desired.groups = nil
        var full = EmployeeState(employeeID: tricky, lastAccepted: EventOrdering(sequence: 9_007_199_254_740_993, effectiveAt: t0, time: t0.addingTimeInterval(0.0004)),
                                 desired: DesiredDuoState(employeeID: tricky, profile: EmployeeProfile(username: "ada", email: "ada@example.com", firstName: tricky,
                                                                                                      lastName: "Lovelace", displayName: "Ada L."),
                                                          status: .disabled, groups: ["VPN", "Sales", "Z\u{E9}"], terminated: true, removal: .delete(at: t0.addingTimeInterval(86_400 * 30))),
                                 duoUserID: "DU\(tricky)")
        full.activeFrom = Date(timeIntervalSince1970: -86_400.5)
        full.terminationEffectiveAt = t0.addingTimeInterval(1e-6)
        full.knownUsernames = ["ada", "ada.old", tricky]
        full.lockedOut = true
        var trash = EmployeeState(employeeID: "E2", lastAccepted: EventOrdering(sequence: nil, effectiveAt: .distantFuture, time: .distantPast))
        trash.desired.removal = .trash
        trash.desired.groups = []
        trash.knownUsernames = []
        trash.lockedOut = false
        // Dates to the microsecond, as the clock gives them.
        var now = EmployeeState(employeeID: "E3", lastAccepted: EventOrdering(sequence: -1, effectiveAt: Date(), time: Date()))
        now.desired.profile = EmployeeProfile(email: "only@example.com")
        now.desired.groups = ["Engineering"]
        return [bare, full, trash, now]
    }

    static func foundationJSON<T: Encodable>(_ value: T) throws -> Data { try StateCoding.encoder.encode(value) }

    /// The parsed document, with arrays of groups sorted (a set has no order).
    static func tree(_ data: Data) throws -> NSDictionary {
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(String(decoding: data, as: UTF8.self))")
        func normalise(_ value: Any, key: String?) -> Any {
            if let d = value as? [String: Any] { return Dictionary(uniqueKeysWithValues: d.map { ($0.key, normalise($0.value, key: $0.key)) }) }
            if key == "groups", let a = value as? [String] { return a.sorted() }
            return value
        }
        return normalise(object, key: nil) as! NSDictionary
    }

    @Test("An employee's state written by hand is the document JSONEncoder writes (every member, absent nils, dates in milliseconds, removals, escapes) and reads back equal")
    func employeeStateMatchesJSONEncoder() throws {
        for state in Self.states {
            let mine = StateCoding.encode(state)
            let text = String(decoding: mine, as: UTF8.self)
            #expect(try Self.tree(mine) == Self.tree(Self.foundationJSON(state)), "\(text)")
            // Read back, it is what JSONEncoder's document reads back as (dates to the millisecond's
            // double, as before), and the state itself when its dates are whole milliseconds.
            let read = try StateCoding.decodeState(mine)
            #expect(try read == StateCoding.decoder.decode(EmployeeState.self, from: Self.foundationJSON(state)), "\(text)")
            #expect(try read == StateCoding.decoder.decode(EmployeeState.self, from: mine), "\(text)")
            // The hand reader read it, not the fallback.
            #expect(try StateCoding.state(JSONValue.parse(mine)) == read, "\(text)")
            #expect(try StateCoding.decodeState(Self.foundationJSON(state)) == read, "\(text)")
            if state.employeeID != "E3" && state.employeeID != Self.tricky { #expect(read == state, "\(text)") }
        }
    }

    @Test("A command written by hand is the document JSONEncoder writes, for every event type, priority and schedule, and reads back equal")
    func commandMatchesJSONEncoder() throws {
        for (i, state) in Self.states.enumerated() {
            for type in LifecycleEventType.allCases {
                var command = ProvisioningCommand(employeeID: state.employeeID, desired: state.desired, priority: i % 2 == 0 ? .normal : .termination,
                                                  eventID: "\(Self.tricky)-\(i)", eventSource: "urn:\(Self.tricky)", eventType: type)
                if i > 1 { command.applyAt = Date(timeIntervalSince1970: 1_790_000_123.456_789) }
                let mine = StateCoding.encode(command)
                let text = String(decoding: mine, as: UTF8.self)
                #expect(try Self.tree(mine) == Self.tree(Self.foundationJSON(command)), "\(text)")
                let read = try StateCoding.decodeCommand(mine)
                #expect(try read == StateCoding.decoder.decode(ProvisioningCommand.self, from: Self.foundationJSON(command)), "\(text)")
                #expect(try read == StateCoding.decoder.decode(ProvisioningCommand.self, from: mine), "\(text)")
                #expect(try StateCoding.command(JSONValue.parse(mine)) == read, "\(text)")
                #expect(try StateCoding.decodeCommand(Self.foundationJSON(command)) == read, "\(text)")
            }
        }
    }

    @Test("A stored document the hand reader does not know is read by JSONDecoder as before, and one that is no state fails as before")
    func otherShapesFallBackToJSONDecoder() throws {
        // A sequence written as a whole double, as no version writes it but JSONDecoder reads.
        let state = #"{"employeeID":"E9","lastAccepted":{"sequence":12.0,"effectiveAt":1790000000000,"time":1790000000000},"desired":{"employeeID":"E9","status":"active","terminated":false,"removal":{"none":{}}}}"#
        let fromFoundation = try? StateCoding.decoder.decode(EmployeeState.self, from: Data(state.utf8))
        #expect(try StateCoding.state(JSONValue.parse(Array(state.utf8))) == nil)
        #expect((try? StateCoding.decodeState(Data(state.utf8))) == fromFoundation)
        for broken in ["", "{}", #"{"employeeID":"E1"}"#, #"{"employeeID":"E1","desired":{"employeeID":"E1","status":"gone","terminated":false,"removal":{"none":{}}}}"#,
                       #"{"employeeID":"E1","desired":{"employeeID":"E1","status":"active","terminated":false,"removal":{"none":{},"trash":{}}}}"#] {
            #expect(throws: DecodingError.self, "\(broken)") { try StateCoding.decodeState(Data(broken.utf8)) }
            #expect(throws: DecodingError.self, "\(broken)") { try StateCoding.decodeCommand(Data(broken.utf8)) }
        }
    }
}
