import Foundation
import JSONText
import Lifecycle

/// The stored JSON of employees' state and commands, written by hand: `JSONEncoder` was a quarter
/// of ingest's time (every event saves a state and a command). The document is the one the types'
/// `Codable` conformances read and `JSONEncoder` (with ``StateCoding/encoder``'s settings) writes:
/// members absent when `nil`, dates as milliseconds since 1970, a removal as its case's object.
/// Only the order differs: `JSONEncoder` orders members by hash, this writes them in declaration
/// order and groups sorted, so one state always gives the same bytes. Reading stays with
/// `JSONDecoder`; a test holds the two together.
extension StateCoding {
    static func encode(_ state: EmployeeState) -> Data {
        var json = JSONText()
        json.beginObject()
        json.key("employeeID"); json.string(state.employeeID)
        if let ordering = state.lastAccepted {
            json.key("lastAccepted")
            json.beginObject()
            if let sequence = ordering.sequence { json.key("sequence"); json.int(sequence) }
            json.key("effectiveAt"); date(ordering.effectiveAt, &json)
            json.key("time"); date(ordering.time, &json)
            json.endObject()
        }
        json.key("desired"); desired(state.desired, &json)
        if let id = state.duoUserID { json.key("duoUserID"); json.string(id) }
        if let at = state.activeFrom { json.key("activeFrom"); date(at, &json) }
        if let at = state.terminationEffectiveAt { json.key("terminationEffectiveAt"); date(at, &json) }
        if let names = state.knownUsernames {
            json.key("knownUsernames")
            json.beginArray()
            for name in names { json.string(name) }
            json.endArray()
        }
        if let locked = state.lockedOut { json.key("lockedOut"); json.bool(locked) }
        json.endObject()
        return Data(json.bytes)
    }

    static func encode(_ command: ProvisioningCommand) -> Data {
        var json = JSONText()
        json.beginObject()
        json.key("employeeID"); json.string(command.employeeID)
        json.key("desired"); desired(command.desired, &json)
        json.key("priority"); json.int(Int64(command.priority.rawValue))
        json.key("eventID"); json.string(command.eventID)
        json.key("eventSource"); json.string(command.eventSource)
        json.key("eventType"); json.string(command.eventType.rawValue)
        if let at = command.applyAt { json.key("applyAt"); date(at, &json) }
        json.endObject()
        return Data(json.bytes)
    }

    /// The profile's fields beside the others, as `DesiredDuoState`'s coding has them.
    private static func desired(_ d: DesiredDuoState, _ json: inout JSONText) {
        json.beginObject()
        let p = d.profile
        if let v = p.username { json.key("username"); json.string(v) }
        if let v = p.email { json.key("email"); json.string(v) }
        if let v = p.firstName { json.key("firstName"); json.string(v) }
        if let v = p.lastName { json.key("lastName"); json.string(v) }
        if let v = p.displayName { json.key("displayName"); json.string(v) }
        json.key("employeeID"); json.string(d.employeeID)
        json.key("status"); json.string(d.status.rawValue)
        if let groups = d.groups {
            json.key("groups")
            json.beginArray()
            for group in groups.sorted() { json.string(group) }
            json.endArray()
        }
        json.key("terminated"); json.bool(d.terminated)
        json.key("removal")
        json.beginObject()
        switch d.removal {
        case .none:
            json.key("none"); json.beginObject(); json.endObject()
        case .delete(let at):
            json.key("delete"); json.beginObject(); json.key("at"); date(at, &json); json.endObject()
        case .trash:
            json.key("trash"); json.beginObject(); json.endObject()
        }
        json.endObject()
        json.endObject()
    }

    /// A date as `JSONEncoder`'s `.millisecondsSince1970` writes it: the double of milliseconds
    /// since 1970, a whole number without a fraction.
    private static func date(_ date: Date, _ json: inout JSONText) {
        let ms = 1000.0 * date.timeIntervalSince1970
        if ms.rounded() == ms && abs(ms) < 9e15 { json.int(Int64(ms)) } else { json.double(ms) }
    }
}
