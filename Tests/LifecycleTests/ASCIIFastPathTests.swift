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

    @Test("A header's name matches in any case, in ASCII byte by byte and otherwise as lowercased() says")
    func headerNamesMatchInAnyCase() {
        #expect(LifecycleRecord.sameName("CE_ID", "ce_id"))
        #expect(LifecycleRecord.sameName("Content-Type", "content-type"))
        #expect(!LifecycleRecord.sameName("ce_idx", "ce_id"))
        #expect(!LifecycleRecord.sameName("ce_i", "ce_id"))
        #expect(!LifecycleRecord.sameName("ce[id", "ce{id"))  // "[" is not "{" in upper case
        #expect(LifecycleRecord.sameName("\u{C9}T\u{C9}", "\u{E9}t\u{E9}"))
        let record = LifecycleRecord(key: nil, value: nil, headers: [MessageHeader(name: "CE_ID", value: Array("1".utf8)),
                                                                      MessageHeader(name: "ce_id", value: Array("2".utf8))])
        #expect(record.header("ce_id") == "2")
    }

    @Test("The username taken from an email is its local part, in ASCII byte by byte and otherwise by characters")
    func localPartAgreesWithCharacters() {
        for s in Self.addresses + ["@@a@b", "ab"] {
            #expect(MappingPolicy.localPart(s) == s.split(separator: "@").first.map(String.init), "\(s.debugDescription)")
        }
        #expect(MappingPolicy.localPart("zo\u{EB}@example.fr") == "zo\u{EB}")
    }
}
