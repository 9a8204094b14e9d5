// The text an evaluation reads (perplexity, NIAH haystacks, attention analysis): token
// shards (files ending in .bin, globs allowed) or raw text files, as one stream of ids.
// Each raw text file is one document and follows the document-start token, as documents
// do in meap's shards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meap/eval/text_codec.hpp"

namespace meap {

struct TokenSource {
  std::vector<int32_t> tokens;
  std::vector<std::string> files;  // the files read, in order
};

// Reads patterns in order until max_tokens (0 = all). Shards must have the model's
// vocab_size (meap::Error naming the shard otherwise); a pattern that matches nothing is
// an error naming `what` (the option it came from).
TokenSource load_token_source(const std::vector<std::string>& patterns, const TextCodec& codec,
                              int64_t vocab_size, int64_t max_tokens, const std::string& what);

// Files matching a glob pattern, sorted; a plain path is returned as is when it exists.
std::vector<std::string> expand_pattern(const std::string& pattern);

}  // namespace meap
