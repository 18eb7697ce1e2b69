import CRdKafka

/// librdkafka's in-process mock Kafka cluster: real Kafka protocol over loopback TCP, nothing durable.
///
/// For tests and for trying a multi-process deployment on one machine. It listens on 127.0.0.1 on random
/// ports (see ``bootstrapServers``); other processes can connect to it. It has no admin API: topics are
/// created with ``createTopic(name:partitions:)`` (``KafkaLog/provision(_:)`` does that when the log was
/// made with the cluster). It does not compact, and keeps only the newest ~5 MiB of each partition.
/// The cluster stops when the last reference to this object goes away.
///
/// ```swift
/// let cluster = try KafkaMockCluster()
/// let log = try KafkaLog(configuration: cluster.configuration(), mockCluster: cluster)
/// ```
public final class KafkaMockCluster: Sendable {
    /// The `host:port,…` list a client bootstraps from.
    public let bootstrapServers: String

    // Both handles are set once in `init` and freed only in `deinit`; librdkafka's mock API is
    // thread-safe (every call is a request to the mock cluster's own thread).
    private let handles: Handles

    private final class Handles: @unchecked Sendable {
        // Safe: immutable pointers, used only through librdkafka's thread-safe mock API, freed in deinit
        // when no other reference exists.
        let client: OpaquePointer
        let cluster: OpaquePointer

        init(client: OpaquePointer, cluster: OpaquePointer) {
            self.client = client
            self.cluster = cluster
        }

        deinit {
            rd_kafka_mock_cluster_destroy(cluster)
            rd_kafka_destroy(client)
        }
    }

    /// Starts a mock cluster with `brokers` brokers.
    public init(brokers: Int = 1) throws {
        // The mock cluster needs a client handle to live in; it is otherwise unused.
        let client = try RdKafka.makeClient(RD_KAFKA_PRODUCER, properties: [("log_level", "3")])
        guard let cluster = rd_kafka_mock_cluster_new(client, Int32(brokers)) else {
            rd_kafka_destroy(client)
            throw LogError.storage("cannot start librdkafka's mock cluster")
        }
        handles = Handles(client: client, cluster: cluster)
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    /// Creates a topic (replication factor 1). Creating an existing topic is not an error.
    public func createTopic(name: String, partitions: Int) throws {
        let code = rd_kafka_mock_topic_create(handles.cluster, name, Int32(partitions), 1)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR || code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS else {
            throw RdKafka.error(code, topic: nil, while: "mock topic creation of '\(name)'")
        }
    }

    /// Fault injection: the next `count` produce requests the cluster receives fail with the Kafka
    /// protocol error `errorCode` (for example 29, TOPIC_AUTHORIZATION_FAILED, which is not retried).
    public func failNextProduceRequests(_ count: Int, errorCode: Int32) {
        let errors = [rd_kafka_resp_err_t](repeating: rd_kafka_resp_err_t(rawValue: errorCode), count: count)
        rd_kafka_mock_push_request_errors_array(handles.cluster, 0 /* Produce */, count, errors)
    }

    /// Fault injection: takes broker `id` (1-based) down. It drops its connections and refuses new ones
    /// until ``setBrokerUp(_:)``; with every broker down, clients see the cluster as unreachable.
    public func setBrokerDown(_ id: Int = 1) {
        rd_kafka_mock_broker_set_down(handles.cluster, Int32(id))
    }

    /// Brings broker `id` (1-based) back after ``setBrokerDown(_:)``.
    public func setBrokerUp(_ id: Int = 1) {
        rd_kafka_mock_broker_set_up(handles.cluster, Int32(id))
    }

    /// Fault injection: adds `delay` to every response of broker `id` (1-based) — a slow broker.
    public func setBrokerRoundTrip(_ id: Int = 1, delay: Duration) {
        rd_kafka_mock_broker_set_rtt(handles.cluster, Int32(id), Int32(delay.wholeMilliseconds))
    }

    /// Settings for a ``KafkaLog`` on this cluster, tuned for the mock (short fetch waits, since an empty
    /// fetch is not woken by new data).
    public func configuration(clientID: String = "tollgate") -> KafkaConfiguration {
        KafkaConfiguration(brokers: [bootstrapServers], clientID: clientID, fetchWaitMaximum: .milliseconds(10))
    }
}
