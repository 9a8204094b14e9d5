#include "data/hf/whitespace.hpp"

#include <utf8proc.h>

#include "data/hf/utf8.hpp"

namespace meap::hf {

namespace {

// The start of the character that ends at s.size() (valid UTF-8, s not empty).
size_t last_char_start(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool is_word_char(char32_t c) {
  if (c == '_' || c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

bool is_numeric(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

size_t whitespace_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0 || !is_whitespace(utf8_code_point(s, i, n))) break;
    i += n;
  }
  return i;
}

size_t whitespace_suffix(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    const size_t b = last_char_start(s.substr(0, end));
    const size_t n = end - b;
    if (utf8_sequence_length(s, b) != n || !is_whitespace(utf8_code_point(s, b, n))) break;
    end = b;
  }
  return s.size() - end;
}

bool starts_with_word_char(std::string_view s) {
  if (s.empty()) return false;
  const size_t n = utf8_sequence_length(s, 0);
  return n > 0 && is_word_char(utf8_code_point(s, 0, n));
}

bool ends_with_word_char(std::string_view s) {
  if (s.empty()) return false;
  const size_t b = last_char_start(s);
  const size_t n = s.size() - b;
  return utf8_sequence_length(s, b) == n && is_word_char(utf8_code_point(s, b, n));
}

}  // namespace meap::hf
