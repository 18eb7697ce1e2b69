/// A bounded set of recently seen ids, oldest forgotten first: how a fold drops an event published twice
/// (delivery is at least once) without remembering every id. Codable, so a fold's snapshot keeps it.
public struct RecentIDs: Sendable, Codable, Hashable {
    public let capacity: Int
    private var members = Set<String>()
    private var order: [String] = []
    private var head = 0

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Inserts; false when the id was already there.
    public mutating func insert(_ id: String) -> Bool {
        guard members.insert(id).inserted else { return false }
        if order.count < capacity {
            order.append(id)
        } else {
            members.remove(order[head])
            order[head] = id
            head = (head + 1) % capacity
        }
        return true
    }

    enum CodingKeys: String, CodingKey {
        case capacity
        case order
        case head
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        capacity = max(1, try c.decode(Int.self, forKey: .capacity))
        order = try c.decode([String].self, forKey: .order)
        head = try c.decode(Int.self, forKey: .head)
        if order.count > capacity { order = Array(order.suffix(capacity)) }
        if head >= max(order.count, 1) { head = 0 }
        members = Set(order)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(capacity, forKey: .capacity)
        try c.encode(order, forKey: .order)
        try c.encode(head, forKey: .head)
    }
}
