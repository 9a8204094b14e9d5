// UTF-8 helpers of the tokenizer.json implementation: validation with the replacement
// rule Rust's String::from_utf8_lossy and Python's errors="replace" share, and code points.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace meap::hf {

// The length of the well-formed UTF-8 sequence at s[i], or 0 when none starts there.
size_t utf8_sequence_length(std::string_view s, size_t i);

bool is_valid_utf8(std::string_view s);

// s with every maximal ill-formed subsequence replaced by U+FFFD (Unicode's "maximal
// subpart" practice: what the tokenizers library's byte-level decoder does).
std::string utf8_lossy(std::string_view s);

// The code point of the well-formed sequence at s[i] of length n.
char32_t utf8_code_point(std::string_view s, size_t i, size_t n);
void append_utf8(char32_t c, std::string& out);

}  // namespace meap::hf
