public import Foundation
public import TollgatePricing

/// The catalog a process prices with: the built-in one, with the user's pricing file applied.
public enum PricingSetup {
    /// - Parameter file: a pricing file (YAML or JSON, `schemas/catalog.schema.json`); `nil` for none.
    ///   Default from `TOLLGATE_PRICING_FILE`.
    public static func pricer(file: String? = ProcessInfo.processInfo.environment["TOLLGATE_PRICING_FILE"])
        throws -> Pricer {
        var catalog = try Catalog.builtIn()
        if let file, !file.isEmpty {
            catalog = catalog.merging(try Catalog.load(URL(fileURLWithPath: file)))
        }
        return try Pricer(catalog: catalog)
    }
}
