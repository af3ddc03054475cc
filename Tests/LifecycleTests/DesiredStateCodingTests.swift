import Foundation
import Lifecycle
import Testing

@Suite("Desired state as stored")
struct DesiredStateCodingTests {
    @Test("A desired state stored before EmployeeProfile existed (flat profile fields) still loads, and is written the same way")
    func flatProfileFields() throws {
        let stored = #"{"employeeID":"E1","username":"ada","email":"ada@example.com","firstName":"Ada","lastName":"Lovelace","#
            + #""status":"disabled","groups":["VPN"],"terminated":true,"removal":{"none":{}}}"#
        let decoded = try JSONDecoder().decode(DesiredDuoState.self, from: Data(stored.utf8))
        #expect(decoded.profile == EmployeeProfile(username: "ada", email: "ada@example.com", firstName: "Ada", lastName: "Lovelace"))
        #expect(decoded.status == .disabled && decoded.terminated && decoded.groups == ["VPN"] && decoded.removal == .none)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let object = try #require(try JSONSerialization.jsonObject(with: encoder.encode(decoded)) as? [String: Any])
        #expect(object["username"] as? String == "ada" && object["firstName"] as? String == "Ada" && object["profile"] == nil)
        #expect(try JSONDecoder().decode(DesiredDuoState.self, from: encoder.encode(decoded)) == decoded)
    }
}
