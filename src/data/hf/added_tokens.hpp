// tokenizer.json's "added_tokens" as the encoder sees them: strings found in the text before
// the BPE model runs and replaced by their id, leftmost first and, where several start at the
// same place, the longest (the tokenizers library's AddedVocabulary). Tokens marked
// "normalized" are looked for in the normalized text, the others in the raw text; lstrip /
// rstrip take the white space beside a match with it, single_word refuses matches inside a
// word.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meap::hf {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

// A piece of text after the added tokens were taken out: either text still to encode
// (id < 0) or one added token's id.
struct Segment {
  std::string text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is the string searched for tokens[i] (its content, normalized when the
  // token is).
  void add(const AddedToken& token, std::string pattern);
  bool empty() const { return entries_.empty(); }

  // Cuts `text` into segments; empty text segments are left out.
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  struct Entry {
    std::string pattern;
    AddedToken token;
  };
  std::vector<Entry> entries_;
  // Per first byte: indices into entries_, longest pattern first.
  std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

}  // namespace meap::hf
