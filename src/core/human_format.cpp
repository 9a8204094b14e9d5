#include "meap/core/human_format.hpp"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <utility>

#include "meap/core/error.hpp"

namespace meap {

std::string human_count(double n) {
  const char* units[] = {"", "K", "M", "B", "T", "P", "E"};
  int u = 0;
  while (std::abs(n) >= 1000 && u < 6) {
    n /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f%s" : "%.0f%s", n, units[u]);
  return buf;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string human_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

uint64_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::pair<const char*, uint64_t> units[] = {
      {"", 1},           {"B", 1},           {"KB", 1000ull},     {"MB", 1000ull * 1000},
      {"GB", 1000ull * 1000 * 1000},         {"KIB", 1ull << 10}, {"MIB", 1ull << 20},
      {"GIB", 1ull << 30}};
  if (digits > 0 && digits <= 12) {
    const uint64_t n = std::stoull(text.substr(0, digits));
    for (const auto& [name, scale] : units)
      if (unit == name && n > 0) return n * scale;
  }
  fail(what, " expects a positive size such as 5GB, 500MB, 2GiB or 4096 (bytes), got '", text,
       "'");
}

}  // namespace meap
