import Foundation
@testable import Lifecycle
import Testing

/// Checks that run for every event read ASCII byte by byte and anything else by characters. Both
/// ways must agree wherever the bytes are ASCII.
@Suite("ASCII fast paths")
struct ASCIIFastPathTests {
    static let addresses = [
        "ada@example.com", "a@b.c", "a@b.", "a@.c", "a@bc", "@b.c", "a@@b.c", "a@b@c.d", "", "@", "a@", "a@b..c", "a.b@c.d",
        "a @b.c", "a@b.c ", "\ta@b.c", "a@b.c\n", "a@b\u{0B}.c", "a@b\u{0C}.c", "a@b\r.c", "a@b\u{1F}.c", "first.last+tag@sub.example.co.uk",
        "a@b.c.", "a@.", "x@y.zz", "a\"b@c.d",
    ]

    @Test("An email in ASCII is judged byte by byte exactly as by characters")
    func asciiEmailAgreesWithCharacters() {
        for s in Self.addresses {
            #expect(LifecycleEventDecoder.isASCIIEmail(Array(s.utf8)) == LifecycleEventDecoder.isEmailByCharacters(s), "\(s.debugDescription)")
        }
        #expect(LifecycleEventDecoder.isEmail("ada@example.com"))
        #expect(!LifecycleEventDecoder.isEmail("ada@example"))
        // Not ASCII: by characters.
        #expect(LifecycleEventDecoder.isEmail("zo\u{EB}@exampl\u{E9}.fr"))
        #expect(!LifecycleEventDecoder.isEmail("zo\u{EB}@exa\u{A0}mple.fr"))
    }

    @Test("A CloudEvents header's name matches in any case, in ASCII byte by byte and otherwise as lowercased() says; the last of a name counts")
    func headerNamesMatchInAnyCase() {
        #expect(CloudEventHeaders.known("CE_ID") == "ce_id")
        #expect(CloudEventHeaders.known("Content-Type") == "content-type")
        #expect(CloudEventHeaders.known("ce_SpecVersion") == "ce_specversion")
        #expect(CloudEventHeaders.known("ce_idx") == nil)
        #expect(CloudEventHeaders.known("ce_i") == nil)
        #expect(CloudEventHeaders.known("ce[id") == nil)
        #expect(CloudEventHeaders.known("C\u{C9}_ID") == nil)  // É lower-cases to é, not e
        #expect(CloudEventHeaders.known("CE_\u{130}D") == nil)  // İ lower-cases to i and a dot
        let headers = CloudEventHeaders([MessageHeader(name: "CE_ID", value: Array("1".utf8)), MessageHeader(name: "ce_id", value: Array("2".utf8)),
                                         MessageHeader(name: "ce_source", value: [0xFF]), MessageHeader(name: "ce_type", value: nil)])
        #expect(headers.id == "2" && headers.source == nil && headers.type == nil)
    }

    @Test("The username taken from an email is its local part, in ASCII byte by byte and otherwise by characters")
    func localPartAgreesWithCharacters() {
        for s in Self.addresses + ["@@a@b", "ab"] {
            #expect(MappingPolicy.localPart(s) == s.split(separator: "@").first.map(String.init), "\(s.debugDescription)")
        }
        #expect(MappingPolicy.localPart("zo\u{EB}@example.fr") == "zo\u{EB}")
    }
}
