/// Fast canonical JSON for the cost service's output (one usage event per response), byte-identical to
/// `EventCoding.encode` (checked by the canonical JSON tests on every example).
extension CostBreakdown: CanonicalJSONEncodable {
    public func writeCanonicalJSON(to output: inout CanonicalJSONWriter) {
        output.beginObject()
        output.key("audio_input"); output.integer(audioInput.nanoUSD)
        output.key("audio_output"); output.integer(audioOutput.nanoUSD)
        output.key("cache_write_1h"); output.integer(cacheWrite1h.nanoUSD)
        output.key("cache_write_5m"); output.integer(cacheWrite5m.nanoUSD)
        output.key("cached_input_read"); output.integer(cachedInputRead.nanoUSD)
        output.key("input"); output.integer(input.nanoUSD)
        output.key("output"); output.integer(self.output.nanoUSD)
        output.key("reasoning"); output.integer(reasoning.nanoUSD)
        output.key("total"); output.integer(total.nanoUSD)
        output.endObject()
    }
}

extension UsageData: CanonicalJSONEncodable {
    public func writeCanonicalJSON(to output: inout CanonicalJSONWriter) {
        output.beginObject()
        output.key("catalog_version"); output.string(catalogVersion)
        output.key("cost_nano_usd"); output.value(costNanoUSD)
        output.member("price_effective_date", priceEffectiveDate)
        output.key("priced"); output.bool(priced)
        output.key("priced_at"); output.date(pricedAt)
        output.key("response"); output.value(response)
        output.member("unpriced_reason", unpricedReason)
        output.endObject()
    }
}
