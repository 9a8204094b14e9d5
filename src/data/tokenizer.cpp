#include "meap/data/tokenizer.hpp"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>

#include "meap/core/error.hpp"

namespace meap {

void Tokenizer::train(const TokenizerTrainOptions& o) {
  if (o.input_files.empty()) fail("tokenizer training needs at least one input file");
  if (o.vocab_size < 16) fail("tokenizer vocab_size must be at least 16, got ", o.vocab_size);
  std::string inputs;
  for (const std::string& f : o.input_files) {
    if (!std::filesystem::is_regular_file(f)) fail("tokenizer input '", f, "' is not a file");
    inputs += (inputs.empty() ? "" : ",") + f;
  }
  // identity normalization and no dummy prefix make decode(encode(x)) == x exactly;
  // byte_fallback covers every character the training sample never showed.
  const std::string args = str_cat(
      "--input=", inputs, " --model_prefix=", o.model_prefix, " --model_type=bpe",
      " --vocab_size=", o.vocab_size, " --byte_fallback=", o.byte_fallback ? "true" : "false",
      " --split_digits=", o.split_digits ? "true" : "false",
      " --normalization_rule_name=identity --remove_extra_whitespaces=false",
      " --add_dummy_prefix=false --character_coverage=0.9995",
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=3 --control_symbols=", kMaskPiece,
      " --input_sentence_size=", o.max_sentences, " --shuffle_input_sentence=true",
      " --num_threads=", o.num_threads, " --minloglevel=2 --max_sentence_length=65536");
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) fail("SentencePiece training failed: ", status.ToString());
}

Tokenizer Tokenizer::load(const std::string& model_path) {
  Tokenizer t;
  t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = t.sp_->Load(model_path);
  if (!status.ok())
    fail("cannot load tokenizer '", model_path, "': ", status.ToString());
  t.path_ = model_path;
  const int pieces = t.sp_->GetPieceSize();
  t.bos_id_ = t.sp_->bos_id();
  t.eos_id_ = t.sp_->eos_id();
  t.pad_id_ = t.sp_->pad_id();
  t.unk_id_ = t.sp_->unk_id();
  const int mask = t.sp_->PieceToId(kMaskPiece);
  if (mask != t.sp_->unk_id() && t.sp_->IsControl(mask)) {
    t.mask_id_ = mask;
    t.vocab_size_ = pieces;
  } else {
    t.mask_id_ = pieces;  // one row more in the embedding
    t.vocab_size_ = pieces + 1;
    t.mask_appended_ = true;
  }
  if (t.bos_id_ < 0 || t.eos_id_ < 0)
    fail("tokenizer '", model_path, "' defines no BOS or EOS piece; meap separates documents "
         "with EOS");
  return t;
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) fail("tokenizer encode failed: ", status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size_)
    fail("token id ", id, " is outside the tokenizer's vocabulary [0, ", vocab_size_, ")");
  if (id == mask_id_) return kMaskPiece;
  return sp_->IdToPiece(id);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  std::vector<int> run;  // consecutive ordinary ids decode together (byte pieces merge)
  auto flush = [&] {
    std::string piece;
    const auto status = sp_->Decode(run, &piece);
    if (!status.ok()) fail("tokenizer decode failed: ", status.ToString());
    out += piece;
    run.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_)
      fail("token id ", id, " is outside the tokenizer's vocabulary [0, ", vocab_size_, ")");
    if (id == mask_id_) {
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
