// librdkafka for Swift: the client API and the in-process mock cluster (Debian librdkafka-dev).
// Only TollgateLog/Kafka imports this module; no C type appears in a public Swift API.
#pragma once
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
