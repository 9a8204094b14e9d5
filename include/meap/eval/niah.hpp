// The `niah` task's items: needle in a haystack. A needle sentence "The special magic
// number for KEY is VALUE." is inserted at a grid of depths into haystacks of a grid of
// lengths cut from given text; a question about the key ends the context and the
// candidates are the true value and distractor values (with several needles, the other
// needles' values are among them). Depth d means the needle starts after round(d * H) of
// the haystack's H tokens; each item records where the needle really is.
#pragma once

#include <cstdint>
#include <vector>

#include "meap/eval/choice_item.hpp"
#include "meap/eval/text_codec.hpp"

namespace meap {

struct NiahOptions {
  std::vector<int64_t> lengths;  // context lengths in tokens (context + answer <= max_seq_len)
  std::vector<double> depths;    // needle depths in [0, 1]
  int64_t samples = 2;           // items per (length, depth) cell
  int64_t needles = 1;           // needles per haystack; the others at random depths
  bool ask_all = false;          // ask for every needle's value (in order) instead of one
  int64_t candidates = 10;       // choices per item, the gold one included
  int64_t digits = 5;            // digits of each value
  uint64_t seed = 1;
};

// haystack: the token stream haystacks are cut from (at seeded offsets); needs more
// tokens than the longest haystack. meta of each item: length (target), tokens (the
// encoded context, start token included), depth (target), depth_actual, needle_token
// (index of the asked needle's first token in the encoded context), needle_tokens (its
// length), haystack_tokens. Throws meap::Error naming the option when a length is too short
// for the needles and the question, or the haystack text too short.
std::vector<ChoiceItem> make_niah_items(const std::vector<int32_t>& haystack,
                                        const TextCodec& codec, const NiahOptions& options);

// A context length that leaves at least 16 haystack tokens for any item of these options
// (the longest-encoding keys): the shortest default NIAH length worth running.
int64_t niah_min_length(const TextCodec& codec, const NiahOptions& options);

// The needle sentence for a key and value (the generator's and the tests' one definition).
std::string niah_needle(const std::string& key, const std::string& value);

// Index of the first occurrence of needle in tokens at or after from; -1 when absent.
int64_t find_tokens(const std::vector<int32_t>& tokens, const std::vector<int32_t>& needle,
                    int64_t from = 0);

}  // namespace meap
