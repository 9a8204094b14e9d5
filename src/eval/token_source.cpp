// load_token_source: shards or raw text files as one token stream.
#include "meap/eval/token_source.hpp"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "meap/core/error.hpp"
#include "meap/data/token_shard.hpp"

namespace fs = std::filesystem;

namespace meap {

std::vector<std::string> expand_pattern(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

TokenSource load_token_source(const std::vector<std::string>& patterns, const TextCodec& codec,
                              int64_t vocab_size, int64_t max_tokens, const std::string& what) {
  TokenSource src;
  const auto full = [&] {
    return max_tokens > 0 && static_cast<int64_t>(src.tokens.size()) >= max_tokens;
  };
  for (const std::string& pattern : patterns) {
    const std::vector<std::string> files = expand_pattern(pattern);
    if (files.empty()) fail(what, ": '", pattern, "' matches no file");
    for (const std::string& file : files) {
      if (full()) break;
      src.files.push_back(file);
      if (fs::path(file).extension() == ".bin") {
        const ShardReader shard = ShardReader::open(file);
        if (static_cast<int64_t>(shard.info().vocab_size) != vocab_size)
          fail("shard ", file, " has a vocabulary of ", shard.info().vocab_size,
               " tokens but the model has ", vocab_size, " (", what,
               " must be tokenized with the run's tokenizer)");
        uint64_t n = shard.size();
        if (max_tokens > 0)
          n = std::min<uint64_t>(n, static_cast<uint64_t>(max_tokens) - src.tokens.size());
        const size_t at = src.tokens.size();
        src.tokens.resize(at + n);
        shard.read(0, n, src.tokens.data() + at);
      } else {
        std::ifstream in(file, std::ios::binary);
        if (!in) fail(what, ": cannot read ", file);
        std::stringstream ss;
        ss << in.rdbuf();
        src.tokens.push_back(codec.document_start_id());
        const std::vector<int32_t> ids = codec.encode(ss.str());
        src.tokens.insert(src.tokens.end(), ids.begin(), ids.end());
        if (max_tokens > 0 && static_cast<int64_t>(src.tokens.size()) > max_tokens)
          src.tokens.resize(static_cast<size_t>(max_tokens));
      }
    }
  }
  return src;
}

}  // namespace meap
