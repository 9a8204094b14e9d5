// Character classes the tokenizers library takes from Rust: white space as
// char::is_whitespace (the Unicode White_Space property) and word characters as the regex
// crate's \w. Used by Strip, Digits and the added tokens' lstrip / rstrip / single_word.
#pragma once

#include <cstddef>
#include <string_view>

namespace meap::hf {

bool is_whitespace(char32_t c);
bool is_word_char(char32_t c);
bool is_numeric(char32_t c);  // Rust's char::is_numeric: categories Nd, Nl, No

// Bytes of white space at the start / end of s (valid UTF-8).
size_t whitespace_prefix(std::string_view s);
size_t whitespace_suffix(std::string_view s);
// Whether s starts / ends with a word character.
bool starts_with_word_char(std::string_view s);
bool ends_with_word_char(std::string_view s);

}  // namespace meap::hf
