#include "data/hf/added_tokens.hpp"

#include <algorithm>

#include "data/hf/whitespace.hpp"

namespace meap::hf {

void AddedTokenMatcher::add(const AddedToken& token, std::string pattern) {
  if (pattern.empty()) return;  // matches nothing (the library skips it too)
  const uint32_t index = static_cast<uint32_t>(entries_.size());
  std::vector<uint32_t>& list = by_first_byte_[static_cast<unsigned char>(pattern[0])];
  entries_.push_back({std::move(pattern), token});
  list.push_back(index);
  std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
    return entries_[a].pattern.size() > entries_[b].pattern.size();
  });
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  size_t emitted = 0;  // text before this is in `out`
  auto push_text = [&](size_t b, size_t e) {
    if (e > b) out.push_back({std::string(text.substr(b, e - b)), -1});
  };
  size_t pos = 0;
  while (pos < text.size()) {
    // The leftmost start of any pattern, and there the longest one.
    const Entry* found = nullptr;
    for (; pos < text.size() && !found; ++pos) {
      for (uint32_t i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
        const std::string& p = entries_[i].pattern;
        if (text.compare(pos, p.size(), p) == 0) {
          found = &entries_[i];
          break;
        }
      }
    }
    if (!found) break;
    size_t start = pos - 1, stop = start + found->pattern.size();
    pos = stop;  // the next search starts after this match, whether or not it is kept
    const AddedToken& t = found->token;
    if (t.single_word) {
      const bool word_before = ends_with_word_char(text.substr(0, start));
      const bool word_after = starts_with_word_char(text.substr(stop));
      if (word_before || word_after) continue;
    }
    if (t.lstrip) start = std::max(start - whitespace_suffix(text.substr(0, start)), emitted);
    if (t.rstrip) stop += whitespace_prefix(text.substr(stop));
    push_text(emitted, start);
    out.push_back({std::string(text.substr(start, stop - start)), t.id});
    emitted = stop;
  }
  push_text(emitted, text.size());
}

}  // namespace meap::hf
