import DuoAdmin
import Foundation
import Hummingbird

extension DuoEmulator {
    /// The Admin API routes. Signature verification has already run: the handlers read the
    /// verified caller and the parameters from the context.
    func addAdminRoutes(to admin: RouterGroup<EmulatorRequestContext>) {
        let d = directory
        // Users
        admin.get("v1/users") { _, c in try page(d.listUsers(c.duoParameters)) }
        admin.post("v1/users") { _, c in try DuoEnvelope.ok(d.createUser(c.duoParameters, caller: c.caller)) }
        admin.post("v1/users/enroll") { _, c in try DuoEnvelope.ok(d.enroll(c.duoParameters, caller: c.caller)) }
        admin.post("v1/users/bulk_send_to_trash") { _, c in try DuoEnvelope.ok(d.trash(c.duoParameters, restore: false, caller: c.caller)) }
        admin.post("v1/bulk") { _, c in try DuoEnvelope.ok(d.bulk(c.duoParameters, caller: c.caller)) }
        admin.post("v1/users/bulk_restore") { _, c in try DuoEnvelope.ok(d.trash(c.duoParameters, restore: true, caller: c.caller)) }
        admin.get("v1/users/{id}") { _, c in try DuoEnvelope.ok(d.getUser(c.parameters.require("id"))) }
        admin.post("v1/users/{id}") { _, c in try DuoEnvelope.ok(d.modifyUser(c.parameters.require("id"), c.duoParameters, caller: c.caller)) }
        admin.delete("v1/users/{id}") { _, c in try DuoEnvelope.ok(d.deleteUser(c.parameters.require("id"), caller: c.caller)) }
        admin.get("v1/users/{id}/groups") { _, c in try page(d.userGroups(c.parameters.require("id"), c.duoParameters)) }
        admin.post("v1/users/{id}/groups") { _, c in try DuoEnvelope.ok(d.addUserGroup(c.parameters.require("id"), c.duoParameters, caller: c.caller)) }
        admin.delete("v1/users/{id}/groups/{group_id}") { _, c in
            try DuoEnvelope.ok(d.removeUserGroup(c.parameters.require("id"), c.parameters.require("group_id"), caller: c.caller))
        }
        // Groups
        admin.get("v1/groups") { _, c in try page(d.listGroups(c.duoParameters)) }
        admin.post("v1/groups") { _, c in try DuoEnvelope.ok(d.createGroup(c.duoParameters, caller: c.caller)) }
        admin.get("v1/groups/{id}") { _, c in try DuoEnvelope.ok(d.getGroup(c.parameters.require("id"))) }
        admin.post("v1/groups/{id}") { _, c in try DuoEnvelope.ok(d.modifyGroup(c.parameters.require("id"), c.duoParameters, caller: c.caller)) }
        admin.delete("v1/groups/{id}") { _, c in try DuoEnvelope.ok(d.deleteGroup(c.parameters.require("id"), caller: c.caller)) }
        admin.get("v2/groups/{id}") { _, c in try DuoEnvelope.ok(d.getGroup(c.parameters.require("id"))) }
        admin.get("v2/groups/{id}/users") { _, c in try page(d.groupMembers(c.parameters.require("id"), c.duoParameters)) }
    }
}

private func page(_ result: (Data, DuoPageMetadata?)) -> Response { DuoEnvelope.ok(result.0, metadata: result.1) }
