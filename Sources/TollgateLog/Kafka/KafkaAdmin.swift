import CRdKafka

/// Topic administration on a real cluster through librdkafka's admin API (CreateTopics, CreatePartitions).
/// Every call blocks: run it through ``RdKafka/blocking(_:)``.
///
/// librdkafka's mock cluster has no admin API (requests time out), so ``KafkaLog`` uses the mock API
/// there instead; this path runs only against a real cluster.
struct KafkaAdmin: @unchecked Sendable {
    // Safe: `client` belongs to the log's producer handle, which outlives every admin call (the log holds
    // it), and librdkafka's admin API is thread-safe.
    let client: OpaquePointer
    let timeout: Duration

    /// Creates topics with their partitions, cleanup policy and retention. A topic that already exists
    /// is not an error (provisioning is idempotent).
    func createTopics(_ specs: [TopicSpec]) throws {
        if specs.isEmpty { return }
        let errorSize = 512
        var errorText = [CChar](repeating: 0, count: errorSize)
        var topics: [OpaquePointer?] = []
        defer { for topic in topics { rd_kafka_NewTopic_destroy(topic) } }
        for spec in specs {
            // Replication -1: the broker's default.
            guard let topic = rd_kafka_NewTopic_new(spec.name, Int32(spec.partitions), -1, &errorText, errorSize) else {
                throw LogError.invalidTopicSpec("topic '\(spec.name)': \(RdKafka.string(errorText))")
            }
            topics.append(topic)
            rd_kafka_NewTopic_set_config(topic, "cleanup.policy", spec.cleanupPolicy.rawValue)
            if let retention = spec.retentionMilliseconds {
                let name = spec.cleanupPolicy == .compact ? "delete.retention.ms" : "retention.ms"
                rd_kafka_NewTopic_set_config(topic, name, "\(retention)")
            }
            if let bytes = spec.retentionBytes { rd_kafka_NewTopic_set_config(topic, "retention.bytes", "\(bytes)") }
        }
        try run(RD_KAFKA_ADMIN_OP_CREATETOPICS, action: "CreateTopics", tolerated: RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            options, queue in
            rd_kafka_CreateTopics(client, &topics, topics.count, options, queue)
        } results: { event in
            var count = 0
            let result = rd_kafka_event_CreateTopics_result(event)
            return (rd_kafka_CreateTopics_result_topics(result, &count), count)
        }
    }

    /// Grows topics to the spec's partition count.
    func createPartitions(_ specs: [TopicSpec]) throws {
        if specs.isEmpty { return }
        let errorSize = 512
        var errorText = [CChar](repeating: 0, count: errorSize)
        var requests: [OpaquePointer?] = []
        defer { for request in requests { rd_kafka_NewPartitions_destroy(request) } }
        for spec in specs {
            guard let request = rd_kafka_NewPartitions_new(spec.name, spec.partitions, &errorText, errorSize) else {
                throw LogError.invalidTopicSpec("topic '\(spec.name)': \(RdKafka.string(errorText))")
            }
            requests.append(request)
        }
        try run(RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, action: "CreatePartitions", tolerated: nil) { options, queue in
            rd_kafka_CreatePartitions(client, &requests, requests.count, options, queue)
        } results: { event in
            var count = 0
            let result = rd_kafka_event_CreatePartitions_result(event)
            return (rd_kafka_CreatePartitions_result_topics(result, &count), count)
        }
    }

    /// Sends one admin request, waits for its result event and checks every topic's error.
    private func run(_ operation: rd_kafka_admin_op_t, action: String, tolerated: rd_kafka_resp_err_t?,
                     send: (OpaquePointer?, OpaquePointer?) -> Void,
                     results: (OpaquePointer?) -> (UnsafeMutablePointer<OpaquePointer?>?, Int)) throws {
        guard let queue = rd_kafka_queue_new(client) else { throw LogError.storage("rd_kafka_queue_new failed") }
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client, operation)
        defer { rd_kafka_AdminOptions_destroy(options) }
        let errorSize = 512
        var errorText = [CChar](repeating: 0, count: errorSize)
        rd_kafka_AdminOptions_set_request_timeout(options, timeout.wholeMilliseconds, &errorText, errorSize)
        rd_kafka_AdminOptions_set_operation_timeout(options, timeout.wholeMilliseconds, &errorText, errorSize)
        send(options, queue)
        guard let event = rd_kafka_queue_poll(queue, timeout.wholeMilliseconds + 1_000) else {
            throw LogError.storage("Kafka \(action) timed out (the broker did not answer)")
        }
        defer { rd_kafka_event_destroy(event) }
        let code = rd_kafka_event_error(event)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw LogError.storage("Kafka \(action) failed: \(String(cString: rd_kafka_event_error_string(event)))")
        }
        let (topics, count) = results(event)
        var refused: [String] = []
        for index in 0..<count {
            guard let topic = topics?[index] else { continue }
            let error = rd_kafka_topic_result_error(topic)
            if error == RD_KAFKA_RESP_ERR_NO_ERROR || error == tolerated { continue }
            let reason = rd_kafka_topic_result_error_string(topic).map { String(cString: $0) } ?? RdKafka.describe(error)
            refused.append("'\(String(cString: rd_kafka_topic_result_name(topic)))': \(reason)")
        }
        if !refused.isEmpty {
            throw LogError.invalidTopicSpec("the broker refused \(action) for \(refused.joined(separator: "; "))")
        }
    }
}
