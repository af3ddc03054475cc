import NIOHTTP1

/// Every item of a paged list endpoint, fetched page by page as the sequence is iterated. It
/// follows `metadata.next_offset` until Duo reports no next page.
public struct DuoPagedSequence<Element: Decodable & Sendable>: AsyncSequence, Sendable {
    let client: DuoAdminClient
    let path: String
    let parameters: [DuoParameter]
    let limit: Int

    public struct AsyncIterator: AsyncIteratorProtocol {
        let sequence: DuoPagedSequence
        var buffer: [Element] = []
        var index = 0
        var nextOffset: Int? = 0

        public mutating func next() async throws -> Element? {
            while index >= buffer.count {
                guard let offset = nextOffset else { return nil }
                let params = sequence.parameters + [DuoParameter("limit", String(sequence.limit)), DuoParameter("offset", String(offset))]
                let response = try await sequence.client.call(.GET, sequence.path, parameters: params)
                buffer = try response.decode([Element].self, request: "GET \(sequence.path)")
                index = 0
                // Stop on a missing next offset, and never loop on a server that repeats an offset.
                nextOffset = response.metadata?.nextOffset.flatMap { $0 > offset ? $0 : nil }
                if buffer.isEmpty { nextOffset = nil }
            }
            defer { index += 1 }
            return buffer[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(sequence: self) }

    /// Collects every item.
    public func collect() async throws -> [Element] {
        var all: [Element] = []
        for try await item in self { all.append(item) }
        return all
    }
}
