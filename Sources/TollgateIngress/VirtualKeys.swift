public import Foundation
import Crypto
public import TollgateEvents

/// Virtual keys: the secrets clients send instead of provider keys.
///
/// A secret looks like `tg-` followed by 43 base-62 characters (about 256 bits of randomness). Only its
/// SHA-256 leaves the process that created it: the control event holds the hash and a display prefix.
public enum VirtualKeys {
    /// Characters shown of a secret in listings (`tg-AbCd12`).
    public static let displayPrefixLength = 9

    /// A new random secret.
    public static func makeSecret() -> String {
        "tg-" + randomString(length: 43)
    }

    /// A new key id (`key_` + 16 base-62 characters).
    public static func makeKeyID() -> String {
        "key_" + randomString(length: 16)
    }

    /// The SHA-256 of a secret as 64 lowercase hex digits.
    public static func sha256Hex(_ secret: String) -> String {
        let digest = SHA256.hash(data: Data(secret.utf8))
        // Straight into one buffer: this runs on every proxied call.
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: SHA256.byteCount * 2) { buffer in
            var index = 0
            for byte in digest {
                buffer[index] = digits.utf8Start[Int(byte >> 4)]
                buffer[index + 1] = digits.utf8Start[Int(byte & 0x0F)]
                index += 2
            }
            return index
        }
    }

    /// Compares two strings in time that depends only on their lengths, not on where they differ.
    public static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<a.count { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Creates a key: the secret (to show once) and the control event data (hash only).
    public static func create(team: String, project: String, name: String? = nil, customer: String? = nil,
                              tags: [String: String] = [:], models: [String] = [], expiresAt: Date? = nil,
                              readOnly: Bool = false, now: Date = Date()) -> (secret: String, data: KeyCreatedData) {
        let secret = makeSecret()
        let data = KeyCreatedData(
            keyID: makeKeyID(), keySHA256: sha256Hex(secret), keyPrefix: String(secret.prefix(displayPrefixLength)),
            name: name, team: team, project: project, customer: customer, tags: tags, models: models,
            expiresAt: expiresAt, createdAt: now, readOnly: readOnly)
        return (secret, data)
    }

    private static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// Uniformly random base-62 characters from the system's secure generator.
    static func randomString(length: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        while bytes.count < length {
            // Rejection sampling keeps the distribution uniform (248 = 4 × 62).
            let byte = UInt8.random(in: 0...255, using: &generator)
            if byte < 248 { bytes.append(alphabet[Int(byte % 62)]) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The keys a process knows, folded from the control topic.
///
/// A pure value: ``apply(_:)`` takes control events in log order. Lookup is by the SHA-256 of the
/// presented secret, so no comparison ever runs over the secret itself; the stored and computed hashes are
/// compared in constant time as well.
public struct KeyTable: Sendable {
    /// A key as the ingress needs it.
    public struct Entry: Sendable, Hashable {
        public var data: KeyCreatedData
        public var revokedAt: Date?

        public var keyID: String { data.keyID }
    }

    /// Why a presented key was refused.
    public enum Refusal: Error, Sendable, Hashable {
        case missing
        case unknown
        case revoked
        case expired
        case readOnly

        /// The message clients see (never echoing the secret).
        public var message: String {
            switch self {
            case .missing: return "No API key provided. Send a Tollgate virtual key as the provider's API key."
            case .unknown: return "Invalid API key: this key is not a known Tollgate virtual key."
            case .revoked: return "This Tollgate virtual key has been revoked."
            case .expired: return "This Tollgate virtual key has expired."
            case .readOnly: return "This Tollgate virtual key is read-only: it can query usage but not call models."
            }
        }
    }

    private var byHash: [String: Entry] = [:]
    private var hashByID: [String: String] = [:]

    public init() {}

    /// Every key, revoked ones included, by creation time.
    public var entries: [Entry] {
        byHash.values.sorted { ($0.data.createdAt, $0.keyID) < ($1.data.createdAt, $1.keyID) }
    }

    public func entry(id: String) -> Entry? {
        hashByID[id].flatMap { byHash[$0] }
    }

    /// Applies one control event (events about budgets and routes are ignored here).
    public mutating func apply(_ event: AnyControlEvent) {
        switch event {
        case .keyCreated(let created):
            let data = created.data
            if let previous = hashByID[data.keyID], previous != data.keySHA256 { byHash[previous] = nil }
            byHash[data.keySHA256] = Entry(data: data, revokedAt: nil)
            hashByID[data.keyID] = data.keySHA256
        case .keyRevoked(let revoked):
            if let hash = hashByID[revoked.data.keyID] {
                byHash[hash]?.revokedAt = revoked.data.revokedAt
            }
        case .budgetSet, .budgetDeleted, .routeSet, .routeDeleted, .alertRuleSet, .alertRuleDeleted:
            break
        }
    }

    /// The key for a presented secret, or why it is refused.
    public func authenticate(_ secret: String?, now: Date = Date(), forModels: Bool = true) -> Result<Entry, Refusal> {
        guard let secret, !secret.isEmpty else { return .failure(.missing) }
        let hash = VirtualKeys.sha256Hex(secret)
        guard let entry = byHash[hash], VirtualKeys.constantTimeEquals(entry.data.keySHA256, hash) else {
            return .failure(.unknown)
        }
        if entry.revokedAt != nil { return .failure(.revoked) }
        if let expiry = entry.data.expiresAt, expiry <= now { return .failure(.expired) }
        if forModels && entry.data.readOnly { return .failure(.readOnly) }
        return .success(entry)
    }
}

extension KeyTable.Entry {
    /// Whether this key may use `model` (an empty allow-list allows every model).
    public func allows(model: String?) -> Bool {
        let allowed = data.models
        if allowed.isEmpty { return true }
        guard let model else { return false }
        return allowed.contains(model)
    }
}
