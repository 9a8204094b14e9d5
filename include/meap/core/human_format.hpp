// Numbers for people: counts (3.95M), byte sizes (15.07 MiB), durations (1:02:03), as the
// CLI's summaries, progress bars and training log print them.
#pragma once

#include <cstdint>
#include <string>

namespace meap {

std::string human_count(double n);         // 1234567 -> "1.23M"; K, M, B, T, P, E
std::string human_bytes(double bytes);     // 1536 -> "1.50 KiB"
std::string human_duration(double seconds);  // 75 -> "1:15", 3725 -> "1:02:05"
// The reverse for sizes people type: "5GB" (10^9), "500MB", "2GiB" (2^30), "4096" (bytes);
// case-insensitive; throws meap::Error naming `what` for anything else.
uint64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace meap
