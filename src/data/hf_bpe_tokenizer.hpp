// The Hugging Face tokenizer.json implementation of TokenizerModel: a byte-level BPE model
// (GPT-2, Llama 3, Qwen2.5, SmolLM2, ...) with its normalizer, pre-tokenizer, added tokens
// and ByteLevel decoder, encoding and decoding as the tokenizers library does
// (encode(text, add_special_tokens=False), decode(ids, skip_special_tokens=False)).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/hf/added_tokens.hpp"
#include "data/hf/bpe_model.hpp"
#include "data/hf/normalizer.hpp"
#include "data/hf/pre_tokenizer.hpp"
#include "meap/data/tokenizer.hpp"

namespace meap {

class HfBpeTokenizer final : public TokenizerModel {
 public:
  explicit HfBpeTokenizer(const std::string& path);
  ~HfBpeTokenizer() override;

  TokenizerKind kind() const override { return TokenizerKind::hf_bpe; }
  int32_t n_ids() const override { return n_ids_; }
  // tokenizer.json does not name the roles; meap reads them from the added tokens
  // (docs/data.md): BOS is the post-processor's leading special token or <|begin_of_text|>,
  // <s>, <bos>, <|startoftext|>; EOS is <|end_of_text|>, <|endoftext|>, </s>, <eos>, <EOT>;
  // PAD <pad>, <|pad|>, [PAD]; [MASK] an added special [MASK] / <mask>, else the first
  // special token named "reserved" (Llama 3's <|reserved_special_token_0|>).
  TokenizerRoles roles() const override { return roles_; }
  // Invalid UTF-8 in `text` is read as U+FFFD first (the library takes only valid strings).
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string piece(int32_t id) const override;

  const std::vector<hf::AddedToken>& added_tokens() const { return added_; }

 private:
  void encode_text(const std::string& normalized, std::vector<int32_t>& out) const;

  std::unique_ptr<hf::Normalizer> normalizer_;
  std::unique_ptr<hf::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<hf::BpeModel> model_;
  std::vector<hf::AddedToken> added_;
  std::unordered_map<int32_t, size_t> added_by_id_;  // id -> index into added_
  hf::AddedTokenMatcher raw_matcher_, normalized_matcher_;
  TokenizerRoles roles_;
  int32_t n_ids_ = 0;
};

}  // namespace meap
