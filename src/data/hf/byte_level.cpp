#include "data/hf/byte_level.hpp"

#include <array>

#include "data/hf/utf8.hpp"

namespace meap::hf {

namespace {

bool printable(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

struct Alphabet {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // by code point (all < 0x144); -1 = not in the alphabet
  Alphabet() {
    to_byte.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

char32_t byte_level_char(uint8_t byte) { return alphabet().to_char[byte]; }

bool byte_level_to_bytes(std::string_view token, std::string& bytes) {
  const Alphabet& a = alphabet();
  bytes.clear();
  for (size_t i = 0; i < token.size();) {
    const size_t n = utf8_sequence_length(token, i);
    if (n == 0) return false;
    const char32_t c = utf8_code_point(token, i, n);
    if (c >= a.to_byte.size() || a.to_byte[c] < 0) return false;
    bytes += static_cast<char>(a.to_byte[c]);
    i += n;
  }
  return true;
}

void append_byte_level_decoded(std::string_view token, std::string& out) {
  const Alphabet& a = alphabet();
  for (size_t i = 0; i < token.size();) {
    size_t n = utf8_sequence_length(token, i);
    if (n == 0) {  // (a vocabulary is valid UTF-8; be safe anyway)
      out += token[i++];
      continue;
    }
    const char32_t c = utf8_code_point(token, i, n);
    if (c < a.to_byte.size() && a.to_byte[c] >= 0)
      out += static_cast<char>(a.to_byte[c]);
    else
      out.append(token.substr(i, n));
    i += n;
  }
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) append_utf8(alphabet().to_char[b], out);
  return out;
}

}  // namespace meap::hf
