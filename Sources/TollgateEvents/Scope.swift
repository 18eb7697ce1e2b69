/// An upstream LLM provider that Tollgate speaks the dialect of.
///
/// The raw value is the JSON spelling. Adding a provider is a change to the contract: consumers that
/// switch over providers must handle it.
public enum Provider: String, Sendable, Hashable, Codable, CaseIterable {
    /// OpenAI (Chat Completions, Responses, Embeddings APIs).
    case openai
    /// Anthropic (Messages API).
    case anthropic
    /// Google Gemini (Generative Language API).
    case gemini
}

/// What spend is aggregated over: everything, one key, project, team, customer or feature tag.
///
/// Budgets, budget decisions and alerts all name their scope. In JSON a scope is
/// `{"kind": "team", "id": "search"}`. Two kinds have a fixed id shape:
///
/// - `global`: the id is `"*"`.
/// - `tag`: the id is `"name=value"` (the tag's name, an equals sign, its value); the name is not
///   empty and does not contain `=`.
///
/// Decoding rejects scopes that break these rules. ``description`` is the compact form
/// `kind:id` (`team:search`, `tag:feature=summarize`, `global:*`), suitable as a map or message key.
public struct Scope: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The kind of scope.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// All traffic through the gateway.
        case global
        /// One virtual key (by key id).
        case key
        /// One project.
        case project
        /// One team.
        case team
        /// One end customer (the request's customer attribution).
        case customer
        /// One value of one feature tag.
        case tag
    }

    /// The kind of scope.
    public var kind: Kind
    /// The scoped entity's id: `"*"` for global, `"name=value"` for a tag.
    public var id: String

    /// Creates a scope without checking the id's shape (see ``isValid``).
    public init(kind: Kind, id: String) {
        self.kind = kind
        self.id = id
    }

    /// All traffic.
    public static let global = Scope(kind: .global, id: "*")

    /// One virtual key.
    public static func key(_ id: String) -> Scope { Scope(kind: .key, id: id) }
    /// One project.
    public static func project(_ id: String) -> Scope { Scope(kind: .project, id: id) }
    /// One team.
    public static func team(_ id: String) -> Scope { Scope(kind: .team, id: id) }
    /// One end customer.
    public static func customer(_ id: String) -> Scope { Scope(kind: .customer, id: id) }
    /// One value of a feature tag.
    public static func tag(name: String, value: String) -> Scope {
        Scope(kind: .tag, id: name + "=" + value)
    }

    /// Whether the id has the shape its kind requires (non-empty; `"*"` for global; `name=value`
    /// for a tag).
    public var isValid: Bool {
        switch kind {
        case .global:
            return id == "*"
        case .tag:
            guard let equals = id.firstIndex(of: "=") else { return false }
            return equals != id.startIndex
        case .key, .project, .team, .customer:
            return !id.isEmpty
        }
    }

    /// For a tag scope, the tag's name and value.
    public var tag: (name: String, value: String)? {
        guard kind == .tag, let equals = id.firstIndex(of: "=") else { return nil }
        return (String(id[..<equals]), String(id[id.index(after: equals)...]))
    }

    /// `kind:id`, such as `team:search`.
    public var description: String { "\(kind.rawValue):\(id)" }

    enum CodingKeys: String, CodingKey {
        case kind
        case id
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            kind: try container.decode(Kind.self, forKey: .kind),
            id: try container.decode(String.self, forKey: .id))
        guard isValid else {
            throw DecodingError.dataCorruptedError(
                forKey: .id, in: container,
                debugDescription: "invalid id \"\(id)\" for scope kind \(kind.rawValue)")
        }
    }
}
