#include "data/hf/utf8.hpp"

namespace meap::hf {

namespace {

// The valid range of the second byte after a lead byte (Unicode Table 3-7); 0 = not a lead.
struct LeadRule {
  size_t length;
  unsigned char lo, hi;
};

LeadRule lead_rule(unsigned char b) {
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};  // at most U+10FFFF
  return {0, 0, 0};
}

bool continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// How many bytes from s[i] form a maximal subpart: a lead byte followed by the valid
// continuation bytes it allows (at least 1).
size_t maximal_subpart(std::string_view s, size_t i) {
  const LeadRule r = lead_rule(static_cast<unsigned char>(s[i]));
  if (r.length == 0) return 1;
  size_t n = 1;
  if (i + 1 < s.size()) {
    const unsigned char b = static_cast<unsigned char>(s[i + 1]);
    if (b < r.lo || b > r.hi) return 1;
    n = 2;
    while (n < r.length && i + n < s.size() && continuation(static_cast<unsigned char>(s[i + n])))
      ++n;
  }
  return n;
}

}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
  const unsigned char b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  const LeadRule r = lead_rule(b0);
  if (r.length == 0 || i + r.length > s.size()) return 0;
  const unsigned char b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < r.lo || b1 > r.hi) return 0;
  for (size_t k = 2; k < r.length; ++k)
    if (!continuation(static_cast<unsigned char>(s[i + k]))) return 0;
  return r.length;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = static_cast<unsigned char>(s[i]) < 0x80 ? 1 : utf8_sequence_length(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += maximal_subpart(s, i);
    }
  }
  return out;
}

char32_t utf8_code_point(std::string_view s, size_t i, size_t n) {
  const unsigned char b0 = static_cast<unsigned char>(s[i]);
  if (n == 1) return b0;
  char32_t c = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return c;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

}  // namespace meap::hf
