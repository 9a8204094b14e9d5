// tokenizer.json's "pre_tokenizer": cuts normalized text into the pieces BPE runs on, each
// piece separately. Supported: Split (regex or string pattern, every behavior, invert),
// Digits, and ByteLevel (add_prefix_space, use_regex: GPT-2's pattern), alone or as the last
// step of a Sequence. meap reads byte-level models only, so a ByteLevel step is required;
// pieces stay raw bytes (the byte-level alphabet is applied to the vocabulary instead).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace meap::hf {

class PreTokenizer {
 public:
  PreTokenizer(const nlohmann::json& spec, const std::string& what);
  PreTokenizer(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // Appends the non-empty pieces of `text` (valid UTF-8) to `pieces`.
  void split(std::string_view text, std::vector<std::string>& pieces) const;

 private:
  struct Step;
  void add(const nlohmann::json& spec, const std::string& what);
  std::vector<std::unique_ptr<Step>> steps_;
};

// GPT-2's pre-tokenizer pattern, which ByteLevel applies when use_regex is true.
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace meap::hf
