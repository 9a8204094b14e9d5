// A compiled PCRE2 pattern in UTF + Unicode-property mode (\s, \w, \p{L}, \p{N} by Unicode
// tables), JIT-compiled where the platform allows. tokenizer.json's split patterns are
// Oniguruma syntax; the constructs they use (classes, \p{..}, (?i:..), lookahead, {m,n})
// mean the same in PCRE2.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace meap::hf {

class Regex {
 public:
  // `what` names the pattern in errors (the file and JSON field).
  Regex(const std::string& pattern, const std::string& what);
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Calls on_match(begin, end) for each successive non-overlapping match in text, leftmost
  // first; after an empty match the search moves on by one character. text must be valid
  // UTF-8 (not checked again). Safe to call from several threads at once.
  void for_each_match(std::string_view text,
                      const std::function<void(size_t, size_t)>& on_match) const;
  // Whether the pattern matches starting exactly at text[pos] (anchored), and where it ends.
  bool match_at(std::string_view text, size_t pos, size_t& end) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
  std::string what_;
};

}  // namespace meap::hf
