import Foundation
import LifecycleStore
import TestSupport

/// The stores every store test runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite, postgres
    var description: String { rawValue }

    func makeStore() async throws -> any LifecycleStore {
        switch self {
        case .sqlite: return try SQLiteLifecycleStore(path: StoreTests.tempPath())
        case .postgres: return try await TestPostgres.freshStore()
        }
    }
}
