#include "data/sentencepiece_tokenizer.hpp"

#include <sentencepiece_processor.h>

#include "meap/core/error.hpp"

namespace meap {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = sp_->Load(path);
  if (!status.ok()) fail("cannot load tokenizer '", path, "': ", status.ToString());
  const int mask = sp_->PieceToId(kMaskPiece);
  if (mask != sp_->unk_id() && sp_->IsControl(mask)) mask_ = mask;
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

int32_t SentencePieceTokenizer::n_ids() const { return sp_->GetPieceSize(); }

TokenizerRoles SentencePieceTokenizer::roles() const {
  return {sp_->bos_id(), sp_->eos_id(), sp_->pad_id(), sp_->unk_id(), mask_};
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  // SentencePieceProcessor::Encode is const and safe to call from several threads.
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) fail("tokenizer encode failed: ", status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::piece(int32_t id) const {
  if (id == mask_) return kMaskPiece;
  return sp_->IdToPiece(id);
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  std::vector<int> run;  // consecutive ordinary ids decode together (byte pieces merge)
  auto flush = [&] {
    std::string text;
    const auto status = sp_->Decode(run, &text);
    if (!status.ok()) fail("tokenizer decode failed: ", status.ToString());
    out += text;
    run.clear();
  };
  for (int32_t id : ids) {
    if (id == mask_) {
      flush();
      out += kMaskPiece;
    } else {
      run.push_back(id);
    }
  }
  flush();
  return out;
}

}  // namespace meap
