/// A JSON document read from bytes (RFC 8259), for documents read on every command: the stored
/// employee state and command, and Duo's bulk answers. `JSONDecoder` and `JSONSerialization`
/// took a fifth of the worker's time at full throughput reading them.
///
/// Members keep their order and numbers their text, so integers beyond 2^53 read exactly and a
/// value written again (``JSONText/value(_:)``) is the same document. Reading is strict: anything
/// RFC 8259 does not allow (a control character in a string, invalid UTF-8, text after the value,
/// a trailing comma unless asked to let it pass) is a ``JSONValue/SyntaxError``, and so is
/// nesting deeper than ``JSONValue/maxDepth``.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A number, as its text in the document.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([Member])

    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue
        public init(_ key: String, _ value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// Where and why a document is not JSON.
    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        /// The byte offset where reading stopped.
        public var offset: Int
        public var reason: String
        public var description: String { "Not JSON at byte \(offset): \(reason)" }
    }

    /// Arrays and objects nested deeper than this are refused, so a hostile document cannot
    /// exhaust the stack.
    public static let maxDepth = 512

    /// Reads one JSON value that makes up the whole of `bytes` (whitespace around it allowed).
    /// With `trailingCommas`, a comma before an array's or object's end is let pass, as
    /// `JSONSerialization` lets it.
    public static func parse(_ bytes: some Collection<UInt8>, trailingCommas: Bool = false) throws(SyntaxError) -> JSONValue {
        func read(_ buffer: UnsafeBufferPointer<UInt8>) throws -> JSONValue {
            var reader = Reader(bytes: buffer, trailingCommas: trailingCommas)
            return try reader.document()
        }
        do {
            if let value = try bytes.withContiguousStorageIfAvailable(read) { return value }
            return try Array(bytes).withUnsafeBufferPointer(read)
        } catch let error as SyntaxError {
            throw error
        } catch {
            throw SyntaxError(offset: 0, reason: "\(error)")  // the reader throws nothing else
        }
    }

    /// The member named `key` of an object (the last, if the document repeats it, as
    /// `JSONSerialization` and JavaScript read it); nil for anything else.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        for m in members.reversed() where m.key == key { return m.value }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var objectValue: [Member]? { if case .object(let m) = self { m } else { nil } }
    public var isNull: Bool { if case .null = self { true } else { false } }
    /// An integer written without a fraction or exponent that fits 64 bits; nil otherwise.
    public var int64Value: Int64? { if case .number(let text) = self { Int64(text) } else { nil } }
    /// The number as the nearest `Double` (as `strtod` reads it).
    public var doubleValue: Double? { if case .number(let text) = self { Double(text) } else { nil } }
}

/// A value reads as its JSON text (members in their order, numbers as their text), so an error
/// that names one shows what was received.
extension JSONValue: CustomStringConvertible {
    public var description: String {
        var json = JSONText()
        json.value(self)
        return String(decoding: json.bytes, as: UTF8.self)
    }
}

extension JSONText {
    /// Writes a value read by ``JSONValue/parse(_:)``: members in their order, numbers as their text.
    public mutating func value(_ v: JSONValue) {
        switch v {
        case .null: null()
        case .bool(let b): bool(b)
        case .number(let text): number(text: text)
        case .string(let s): string(s)
        case .array(let items):
            beginArray()
            for item in items { value(item) }
            endArray()
        case .object(let members):
            beginObject()
            for m in members {
                key(m.key)
                value(m.value)
            }
            endObject()
        }
    }
}

private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    let trailingCommas: Bool
    var at = 0
    var depth = 0

    init(bytes: UnsafeBufferPointer<UInt8>, trailingCommas: Bool) {
        self.bytes = bytes
        self.trailingCommas = trailingCommas
    }

    /// After a comma: whether the container ends here (a trailing comma, when let pass).
    mutating func endsAfterComma(_ close: UInt8) -> Bool {
        guard trailingCommas else { return false }
        skipSpace()
        guard at < bytes.count, bytes[at] == close else { return false }
        at += 1
        depth -= 1
        return true
    }

    func fail(_ reason: String) -> JSONValue.SyntaxError { JSONValue.SyntaxError(offset: at, reason: reason) }

    mutating func document() throws(JSONValue.SyntaxError) -> JSONValue {
        let v = try value()
        skipSpace()
        guard at == bytes.count else { throw fail("text after the value") }
        return v
    }

    mutating func skipSpace() {
        while at < bytes.count {
            switch bytes[at] {
            case 0x20, 0x09, 0x0A, 0x0D: at += 1
            default: return
            }
        }
    }

    mutating func value() throws(JSONValue.SyntaxError) -> JSONValue {
        skipSpace()
        guard at < bytes.count else { throw fail("the document ends where a value should be") }
        switch bytes[at] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONValue.SyntaxError) {
        let n = word.utf8CodeUnitCount
        guard bytes.count - at >= n else { throw fail("unexpected end") }
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: n)
        for i in 0..<n where bytes[at + i] != expected[i] { throw fail("unexpected character") }
        at += n
    }

    mutating func nest() throws(JSONValue.SyntaxError) {
        depth += 1
        guard depth <= JSONValue.maxDepth else { throw fail("nested deeper than \(JSONValue.maxDepth)") }
    }

    mutating func object() throws(JSONValue.SyntaxError) -> JSONValue {
        try nest()
        at += 1
        var members: [JSONValue.Member] = []
        skipSpace()
        if at < bytes.count && bytes[at] == UInt8(ascii: "}") {
            at += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw fail("a member's name must be a string") }
            let key = try string()
            skipSpace()
            guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw fail("expected ':' after a member's name") }
            at += 1
            members.append(JSONValue.Member(key, try value()))
            skipSpace()
            guard at < bytes.count else { throw fail("the document ends inside an object") }
            if bytes[at] == UInt8(ascii: ",") {
                at += 1
                if endsAfterComma(UInt8(ascii: "}")) { return .object(members) }
                continue
            }
            guard bytes[at] == UInt8(ascii: "}") else { throw fail("expected ',' or '}' in an object") }
            at += 1
            depth -= 1
            return .object(members)
        }
    }

    mutating func array() throws(JSONValue.SyntaxError) -> JSONValue {
        try nest()
        at += 1
        var items: [JSONValue] = []
        skipSpace()
        if at < bytes.count && bytes[at] == UInt8(ascii: "]") {
            at += 1
            depth -= 1
            return .array(items)
        }
        while true {
            items.append(try value())
            skipSpace()
            guard at < bytes.count else { throw fail("the document ends inside an array") }
            if bytes[at] == UInt8(ascii: ",") {
                at += 1
                if endsAfterComma(UInt8(ascii: "]")) { return .array(items) }
                continue
            }
            guard bytes[at] == UInt8(ascii: "]") else { throw fail("expected ',' or ']' in an array") }
            at += 1
            depth -= 1
            return .array(items)
        }
    }

    /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    mutating func number() throws(JSONValue.SyntaxError) -> String {
        let start = at
        func digits(_ r: inout Reader) -> Int {
            let s = r.at
            while r.at < r.bytes.count && r.bytes[r.at] >= UInt8(ascii: "0") && r.bytes[r.at] <= UInt8(ascii: "9") { r.at += 1 }
            return r.at - s
        }
        if bytes[at] == UInt8(ascii: "-") { at += 1 }
        guard at < bytes.count else { throw fail("a number needs digits") }
        if bytes[at] == UInt8(ascii: "0") {
            at += 1
        } else if digits(&self) == 0 {
            throw fail("a number needs digits")
        }
        if at < bytes.count && bytes[at] == UInt8(ascii: ".") {
            at += 1
            guard digits(&self) > 0 else { throw fail("a fraction needs digits") }
        }
        if at < bytes.count && (bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E")) {
            at += 1
            if at < bytes.count && (bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-")) { at += 1 }
            guard digits(&self) > 0 else { throw fail("an exponent needs digits") }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
    }

    mutating func string() throws(JSONValue.SyntaxError) -> String {
        at += 1
        let start = at
        // Most strings have no escape: their bytes are the string's.
        while at < bytes.count {
            let b = bytes[at]
            if b == UInt8(ascii: "\"") {
                let run = UnsafeBufferPointer(rebasing: bytes[start..<at])
                guard let s = String(validating: run, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
                at += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            guard b >= 0x20 else { throw fail("a control character in a string must be escaped") }
            at += 1
        }
        var out = Array(UnsafeBufferPointer(rebasing: bytes[start..<at]))
        while at < bytes.count {
            let b = bytes[at]
            switch b {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
                at += 1
                return s
            case UInt8(ascii: "\\"):
                at += 1
                guard at < bytes.count else { throw fail("the document ends inside a string") }
                let e = bytes[at]
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard bytes.count - at >= 6, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                            throw fail("a lone surrogate in a string")
                        }
                        at += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("a lone surrogate in a string") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("a lone surrogate in a string")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("an invalid escape") }
                    out.append(contentsOf: UTF8.encode(u)!)
                default:
                    throw fail("an invalid escape")
                }
            default:
                guard b >= 0x20 else { throw fail("a control character in a string must be escaped") }
                out.append(b)
                at += 1
            }
        }
        throw fail("the document ends inside a string")
    }

    mutating func hex4() throws(JSONValue.SyntaxError) -> UInt32 {
        guard bytes.count - at >= 4 else { throw fail("an escape needs four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[at]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw fail("an escape needs four hex digits")
            }
            v = v << 4 | d
            at += 1
        }
        return v
    }
}
