// How much host memory this process may still use, read before a large allocation so that
// a model or batch that cannot fit fails with a message naming the config instead of
// std::bad_alloc or the OOM killer.
#pragma once

#include <cstdint>
#include <optional>

namespace meap {

// MemAvailable from /proc/meminfo in bytes, or nothing where it cannot be read.
std::optional<uint64_t> available_host_memory();

}  // namespace meap
