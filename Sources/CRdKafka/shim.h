// librdkafka for Swift: the client API and the in-process mock cluster (Debian librdkafka-dev).
// Only TollgateLog/Kafka imports this module; no C type appears in a public Swift API.
#pragma once
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#if defined(__linux__)
#include <sys/prctl.h>
/// Names the calling thread (the kernel keeps 15 bytes), so that `top` and `perf` tell the engine's
/// threads apart. `prctl` is variadic, which Swift cannot call.
static inline void tollgate_name_current_thread(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
}
#endif
