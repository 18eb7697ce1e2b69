public import Foundation

/// Maps message keys to partitions exactly as Kafka's default partitioner does.
///
/// Kafka's Java client (and librdkafka with `partitioner=murmur2_random`) computes
/// `toPositive(murmur2(key)) % partitions`, where `toPositive(x) = x & 0x7fffffff`. Using the same
/// function on both engines means a key lands on the same partition number whichever engine runs.
public enum Partitioner {
    /// The partition for `key` among `partitions`.
    public static func partition(forKey key: Data, partitions: Int) -> Int {
        precondition(partitions > 0, "a topic has at least one partition")
        let hash = UInt32(bitPattern: murmur2(key)) & 0x7fff_ffff
        return Int(hash % UInt32(partitions))
    }

    /// Kafka's 32-bit murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`), seed `0x9747b28c`.
    public static func murmur2(_ data: Data) -> Int32 {
        let seed: UInt32 = 0x9747_b28c
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        let length = data.count
        var h: UInt32 = seed ^ UInt32(truncatingIfNeeded: length)

        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            let blocks = length / 4
            for block in 0..<blocks {
                let i = block * 4
                var k = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16
                    | UInt32(bytes[i + 3]) << 24
                k &*= m
                k ^= k >> r
                k &*= m
                h &*= m
                h ^= k
            }
            let tail = blocks * 4
            switch length % 4 {
            case 3:
                h ^= UInt32(bytes[tail + 2]) << 16
                h ^= UInt32(bytes[tail + 1]) << 8
                h ^= UInt32(bytes[tail])
                h &*= m
            case 2:
                h ^= UInt32(bytes[tail + 1]) << 8
                h ^= UInt32(bytes[tail])
                h &*= m
            case 1:
                h ^= UInt32(bytes[tail])
                h &*= m
            default:
                break
            }
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }
}
