// tokenizer.json's "normalizer": the steps applied to text before pre-tokenization.
// Supported: NFC, NFD, NFKC, NFKD (utf8proc), Prepend, Replace (string or regex), Strip, and
// Sequence of those; null is none. Any other type is refused when the file is loaded.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/hf/regex.hpp"

namespace meap::hf {

class Normalizer {
 public:
  // `what` names the file and field in errors.
  Normalizer(const nlohmann::json& spec, const std::string& what);
  Normalizer(Normalizer&&) noexcept;
  ~Normalizer();

  bool empty() const { return steps_.empty(); }
  // text must be valid UTF-8; so is the result.
  std::string apply(std::string_view text) const;

 private:
  struct Step;
  void add(const nlohmann::json& spec, const std::string& what);
  std::vector<std::unique_ptr<Step>> steps_;
};

}  // namespace meap::hf
