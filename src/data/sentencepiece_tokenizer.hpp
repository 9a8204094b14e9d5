// The SentencePiece implementation of TokenizerModel (Debian's libsentencepiece): a .model
// file as meap trains it (identity normalisation, byte fallback) or as Llama 2 ships it.
#pragma once

#include <memory>
#include <string>

#include "meap/data/tokenizer.hpp"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace meap {

class SentencePieceTokenizer final : public TokenizerModel {
 public:
  explicit SentencePieceTokenizer(const std::string& path);
  ~SentencePieceTokenizer() override;

  TokenizerKind kind() const override { return TokenizerKind::sentencepiece; }
  int32_t n_ids() const override;
  // BOS, EOS, PAD, UNK as the model defines them; [MASK] when it has a control piece of
  // that name.
  TokenizerRoles roles() const override;
  std::vector<int32_t> encode(std::string_view text) const override;
  // Control pieces decode to nothing, except [MASK] which decodes to "[MASK]".
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string piece(int32_t id) const override;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int32_t mask_ = -1;
};

}  // namespace meap
