import Foundation
import JSONText
import Lifecycle

/// The stored JSON of employees' state and commands, read by hand: `JSONDecoder` was a tenth of
/// the worker's time at full throughput (a command reads its employee's state twice). This reads
/// the document ``StateCoding/encode(_:)-(EmployeeState)`` writes and the `Codable` conformances
/// read, with their values: a member absent or `null` is `nil`, dates are milliseconds since
/// 1970 as `JSONDecoder`'s `.millisecondsSince1970` reads them. A document of another shape (a
/// store written by an older version, say) is read by `JSONDecoder` as before, which also gives
/// the error when it is not a state at all.
extension StateCoding {
    static func decodeState(_ data: Data) throws -> EmployeeState {
        if let value = try? JSONValue.parse(data), let state = state(value) { return state }
        return try decoder.decode(EmployeeState.self, from: data)
    }

    static func decodeCommand(_ data: Data) throws -> ProvisioningCommand {
        if let value = try? JSONValue.parse(data), let command = command(value) { return command }
        return try decoder.decode(ProvisioningCommand.self, from: data)
    }

    static func state(_ v: JSONValue) -> EmployeeState? {
        guard case .object = v, let employeeID = v["employeeID"]?.stringValue, let desiredValue = v["desired"], let desired = desired(desiredValue) else { return nil }
        var state = EmployeeState(employeeID: employeeID, desired: desired)
        guard let lastAccepted = optional(v["lastAccepted"], ordering),
              let duoUserID = optional(v["duoUserID"], \.stringValue),
              let activeFrom = optional(v["activeFrom"], date),
              let terminationEffectiveAt = optional(v["terminationEffectiveAt"], date),
              let knownUsernames = optional(v["knownUsernames"], strings),
              let lockedOut = optional(v["lockedOut"], \.boolValue)
        else { return nil }
        state.lastAccepted = lastAccepted
        state.duoUserID = duoUserID
        state.activeFrom = activeFrom
        state.terminationEffectiveAt = terminationEffectiveAt
        state.knownUsernames = knownUsernames
        state.lockedOut = lockedOut
        return state
    }

    static func command(_ v: JSONValue) -> ProvisioningCommand? {
        guard case .object = v, let employeeID = v["employeeID"]?.stringValue, let desiredValue = v["desired"], let desired = desired(desiredValue),
              let priority = v["priority"]?.int64Value.flatMap({ Int(exactly: $0) }).flatMap(CommandPriority.init(rawValue:)),
              let eventID = v["eventID"]?.stringValue, let eventSource = v["eventSource"]?.stringValue,
              let eventType = v["eventType"]?.stringValue.flatMap(LifecycleEventType.init(rawValue:)),
              let applyAt = optional(v["applyAt"], date)
        else { return nil }
        var command = ProvisioningCommand(employeeID: employeeID, desired: desired, priority: priority, eventID: eventID, eventSource: eventSource, eventType: eventType)
        command.applyAt = applyAt
        return command
    }

    private static func desired(_ v: JSONValue) -> DesiredDuoState? {
        guard case .object = v, let employeeID = v["employeeID"]?.stringValue,
              let status = v["status"]?.stringValue.flatMap(DesiredDuoState.Status.init(rawValue:)),
              let terminated = v["terminated"]?.boolValue,
              let removalValue = v["removal"], let removal = removal(removalValue),
              let groups = optional(v["groups"], strings),
              let username = optional(v["username"], \.stringValue), let email = optional(v["email"], \.stringValue),
              let firstName = optional(v["firstName"], \.stringValue), let lastName = optional(v["lastName"], \.stringValue),
              let displayName = optional(v["displayName"], \.stringValue)
        else { return nil }
        return DesiredDuoState(employeeID: employeeID,
                               profile: EmployeeProfile(username: username, email: email, firstName: firstName, lastName: lastName, displayName: displayName),
                               status: status, groups: groups.map(Set.init), terminated: terminated, removal: removal)
    }

    /// The enum's synthesised coding: an object with one member named after the case.
    private static func removal(_ v: JSONValue) -> DesiredDuoState.Removal? {
        guard let members = v.objectValue, members.count == 1, case .object = members[0].value else { return nil }
        switch members[0].key {
        case "none": return DesiredDuoState.Removal.none
        case "trash": return .trash
        case "delete": return members[0].value["at"].flatMap(date).map { .delete(at: $0) }
        default: return nil
        }
    }

    private static func ordering(_ v: JSONValue) -> EventOrdering? {
        guard case .object = v, let effectiveAt = v["effectiveAt"].flatMap(date), let time = v["time"].flatMap(date),
              let sequence = optional(v["sequence"], \.int64Value) else { return nil }
        return EventOrdering(sequence: sequence, effectiveAt: effectiveAt, time: time)
    }

    /// As `JSONDecoder`'s `.millisecondsSince1970`: the number over 1,000.
    private static func date(_ v: JSONValue) -> Date? {
        v.doubleValue.map { Date(timeIntervalSince1970: $0 / 1000.0) }
    }

    private static func strings(_ v: JSONValue) -> [String]? {
        guard let items = v.arrayValue else { return nil }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard let s = item.stringValue else { return nil }
            out.append(s)
        }
        return out
    }

    /// An optional member: `.some(nil)` when absent or `null`, `.some(value)` when it reads,
    /// `nil` when it is there but of another shape.
    private static func optional<T>(_ v: JSONValue?, _ read: (JSONValue) -> T?) -> T?? {
        guard let v, !v.isNull else { return .some(nil) }
        guard let value = read(v) else { return nil }
        return .some(value)
    }
}
