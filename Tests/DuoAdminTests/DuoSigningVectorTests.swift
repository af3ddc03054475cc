import DuoAdmin
import Foundation
import Testing

/// The signing vectors from Duo's official clients' test suites, in `../shared/vectors/duo-signing.json`.
enum SigningVectors {
    struct CanonCase: Decodable, Sendable, CustomTestStringConvertible {
        var name: String
        var params: [String: [String]]
        var expected: String
        var testDescription: String { name }
    }

    struct SignatureCase: Decodable, Sendable, CustomTestStringConvertible {
        var name: String
        var ikey: String
        var skey: String
        var host: String
        var method: String
        var path: String
        var date: String
        var params: [String: [String]]
        var body: String
        var x_duo_headers: [String: String]
        var version: Int
        var digest: String
        var canonical: String
        var signature: String
        var authorization: String
        var testDescription: String { name }
    }

    struct File: Decodable { var canon_params: [CanonCase]; var signatures: [SignatureCase] }

    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("shared/vectors/duo-signing.json")

    static let file: File? = (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode(File.self, from: $0) }
    static var canon: [CanonCase] { file?.canon_params ?? [] }
    static var signatures: [SignatureCase] { file?.signatures ?? [] }

    static func parameters(_ p: [String: [String]]) -> [DuoParameter] {
        p.flatMap { key, values in values.map { DuoParameter(key, $0) } }
    }
}

@Suite("Duo signing vectors")
struct DuoSigningVectorTests {
    @Test("The vector file is present and complete")
    func vectorsLoaded() {
        #expect(SigningVectors.file != nil, "missing or unreadable: \(SigningVectors.url.path)")
        #expect(SigningVectors.canon.count == 8)
        #expect(SigningVectors.signatures.count == 8)
    }

    @Test("canon_params", arguments: SigningVectors.canon)
    func canonParams(_ c: SigningVectors.CanonCase) {
        #expect(DuoSigning.canonicalParameters(SigningVectors.parameters(c.params)) == c.expected)
    }

    @Test("signatures", arguments: SigningVectors.signatures)
    func signature(_ c: SigningVectors.SignatureCase) throws {
        let digest = try #require(DuoDigest(rawValue: c.digest))
        let canonical = DuoSigning.canonicalRequest(
            version: c.version, date: c.date, method: c.method, host: c.host, path: c.path,
            parameters: SigningVectors.parameters(c.params), body: Array(c.body.utf8),
            xDuoHeaders: c.x_duo_headers.map { (name: $0.key, value: $0.value) })
        #expect(canonical == c.canonical)
        let signature = DuoSigning.signature(canonical: canonical, secretKey: DuoSecretKey(c.skey), digest: digest)
        #expect(signature == c.signature)
        #expect(DuoSigning.authorization(integrationKey: c.ikey, signature: signature) == c.authorization)
    }

    @Test("Dates are RFC 2822 in English whatever the locale, and parse back")
    func dates() {
        let date = Date(timeIntervalSince1970: 1_345_570_158)  // Tue, 21 Aug 2012 17:29:18 UTC
        #expect(DuoSigning.rfc2822Date(date) == "Tue, 21 Aug 2012 17:29:18 -0000")
        #expect(DuoSigning.parseRFC2822Date("Tue, 21 Aug 2012 17:29:18 -0000") == date)
        #expect(DuoSigning.parseRFC2822Date("Tue, 21 Aug 2012 19:29:18 +0200") == date)
        #expect(DuoSigning.parseRFC2822Date("Tue, 21 Aug 2012 17:29:18 GMT") == date)
        #expect(DuoSigning.parseRFC2822Date("Di, 21 Aug 2012 17:29:18 -0000") == date)
        #expect(DuoSigning.parseRFC2822Date("21 Foo 2012 17:29:18") == nil)
    }

    @Test("A secret key never shows in descriptions")
    func secretRedacted() {
        let key = DuoSecretKey("super-secret-value")
        #expect("\(key)" == "<redacted>")
        #expect(String(reflecting: key) == "<redacted>")
        var config = DuoAdminConfiguration(endpoint: .host("api-x.duosecurity.com"), integrationKey: "DI", secretKey: key)
        config.signature = .v2
        #expect(!"\(config)".contains("super-secret-value"))
    }
}
