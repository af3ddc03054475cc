import Crypto
import Foundation

/// How requests are signed.
public enum DuoSignatureScheme: String, Sendable, CaseIterable, Codable {
    /// Duo's current scheme: HMAC-SHA512 over seven lines, with a hash of the body and of the
    /// `X-Duo-*` headers. Parameters of POST, PUT and PATCH travel as a JSON body.
    case v5
    /// The legacy five-line scheme with HMAC-SHA512; parameters travel form-encoded.
    case v2
    /// The legacy five-line scheme with HMAC-SHA1, as Duo's documentation shows it.
    case v2SHA1 = "v2-sha1"

    public var version: Int { self == .v5 ? 5 : 2 }
    public var digest: DuoDigest { self == .v2SHA1 ? .sha1 : .sha512 }
}

/// The HMAC digest of a signature.
public enum DuoDigest: String, Sendable { case sha1, sha512 }

/// A Duo secret key. Its description never shows the key, so it cannot leak into logs,
/// error messages or printed configuration by accident.
public struct DuoSecretKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The key itself. Read it only to compute a signature.
    public let secret: String
    public init(_ secret: String) { self.secret = secret }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// One request parameter. Order does not matter for signing; repeats are allowed.
public struct DuoParameter: Sendable, Hashable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// Duo's request canonicalisation and signing, shared by the client and the emulator.
public enum DuoSigning {
    /// The RFC 3986 unreserved set, as ASCII bytes. Every other byte is percent-encoded.
    private static let unreserved: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for b in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8) { table[Int(b)] = true }
        return table
    }()
    private static let hex = Array("0123456789ABCDEF".utf8)

    /// Percent-encodes the UTF-8 bytes of `string`: unreserved bytes stay, the rest become `%XX`
    /// with uppercase hex (a space is `%20`, never `+`).
    public static func percentEncode(_ string: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(string.utf8.count)
        for b in string.utf8 {
            if unreserved[Int(b)] {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes, and `+` as a space when `plusIsSpace` (form and query encoding).
    /// Returns nil for a malformed escape or bytes that are not UTF-8.
    public static func percentDecode(_ string: Substring, plusIsSpace: Bool = true) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(string.utf8.count)
        var it = string.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else { return nil }
                bytes.append(hv << 4 | lv)
            } else if plusIsSpace && b == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Parses `a=1&b=2` (a query string or a form body) into parameters.
    public static func parseQuery(_ query: Substring) -> [DuoParameter]? {
        var result: [DuoParameter] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = percentDecode(parts[0]), let value = percentDecode(parts.count > 1 ? parts[1] : "") else { return nil }
            result.append(DuoParameter(key, value))
        }
        return result
    }

    /// Canonical parameters: each key and value percent-encoded, sorted by encoded key and then
    /// encoded value, joined as `k=v&k=v`. No parameters give an empty string.
    public static func canonicalParameters(_ parameters: [DuoParameter]) -> String {
        parameters
            .map { (percentEncode($0.key), percentEncode($0.value)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// The same encoding, in the given order: what goes over the wire in a query string or form body.
    public static func encodeQuery(_ parameters: [DuoParameter]) -> String {
        parameters.map { "\(percentEncode($0.key))=\(percentEncode($0.value))" }.joined(separator: "&")
    }

    /// Lowercase hex SHA-512 of some bytes.
    public static func sha512Hex<D: DataProtocol>(_ data: D) -> String {
        hex(SHA512.hash(data: data))
    }

    /// The v5 hash of the `X-Duo-*` headers: names lowercased, sorted, then
    /// `name1 NUL value1 NUL name2 …` hashed with SHA-512. No headers hash the empty string.
    public static func xDuoHeadersHash(_ headers: [(name: String, value: String)]) -> String {
        let parts = headers
            .map { ($0.name.lowercased(), $0.value) }
            .sorted { $0.0 < $1.0 }
            .flatMap { [$0.0, $0.1] }
        return sha512Hex(Array(parts.joined(separator: "\u{0}").utf8))
    }

    /// The canonical string that is signed.
    ///
    /// - v2: `date`, `METHOD`, host, path, canonical parameters.
    /// - v5: the same five lines (parameters of the query string only), then the SHA-512 of the
    ///   body exactly as sent and the hash of the `X-Duo-*` headers.
    public static func canonicalRequest(version: Int, date: String, method: String, host: String, path: String,
                                        parameters: [DuoParameter], body: [UInt8] = [],
                                        xDuoHeaders: [(name: String, value: String)] = []) -> String {
        var lines = [date, method.uppercased(), host.lowercased(), path, canonicalParameters(parameters)]
        if version >= 5 {
            lines.append(sha512Hex(body))
            lines.append(xDuoHeadersHash(xDuoHeaders))
        }
        return lines.joined(separator: "\n")
    }

    /// Lowercase hex HMAC of the canonical string, keyed with the secret key.
    public static func signature(canonical: String, secretKey: DuoSecretKey, digest: DuoDigest) -> String {
        let key = SymmetricKey(data: Array(secretKey.secret.utf8))
        let message = Array(canonical.utf8)
        switch digest {
        case .sha1: return hex(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key))
        case .sha512: return hex(HMAC<SHA512>.authenticationCode(for: message, using: key))
        }
    }

    private static let lowerHex = Array("0123456789abcdef".utf8)

    /// Lowercase hex of some bytes (a lookup table: this is on every request's path).
    static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        for b in bytes {
            out.append(lowerHex[Int(b >> 4)])
            out.append(lowerHex[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `Basic base64(ikey:signature)`.
    public static func authorization(integrationKey: String, signature: String) -> String {
        "Basic " + Data("\(integrationKey):\(signature)".utf8).base64EncodedString()
    }

    /// Compares two strings in time that depends only on their lengths.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// An RFC 2822 date in UTC with English (POSIX) names, for example `Tue, 21 Aug 2012 17:29:18 -0000`.
    /// It never depends on the machine's locale.
    public static func rfc2822Date(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(weekdays[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) -0000"
    }

    /// Parses an RFC 2822 date with an optional zone (`-0000`, `+0200`, `GMT`, `UTC`, or none).
    public static func parseRFC2822Date(_ string: String) -> Date? {
        var s = Substring(string.trimmingCharacters(in: .whitespaces))
        if let comma = s.firstIndex(of: ",") { s = s[s.index(after: comma)...] }
        let parts = s.split(separator: " ")
        guard parts.count >= 4, let day = Int(parts[0]), let monthIndex = months.firstIndex(of: String(parts[1])),
              let year = Int(parts[2]) else { return nil }
        let hms = parts[3].split(separator: ":").compactMap { Int($0) }
        guard hms.count >= 2 else { return nil }
        var offset = 0
        if parts.count >= 5 {
            let zone = parts[4]
            if zone.first == "+" || zone.first == "-", zone.count == 5, let v = Int(zone.dropFirst()) {
                offset = (v / 100 * 3600 + v % 100 * 60) * (zone.first == "-" ? -1 : 1)
            } else if !["GMT", "UTC", "UT", "Z"].contains(String(zone)) {
                return nil
            }
        }
        var components = DateComponents()
        components.year = year; components.month = monthIndex + 1; components.day = day
        components.hour = hms[0]; components.minute = hms[1]; components.second = hms.count > 2 ? hms[2] : 0
        components.timeZone = .gmt
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar.date(from: components).map { $0.addingTimeInterval(TimeInterval(-offset)) }
    }
}
