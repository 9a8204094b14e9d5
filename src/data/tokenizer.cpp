#include "meap/data/tokenizer.hpp"

#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>

#include "data/hf_bpe_tokenizer.hpp"
#include "data/sentencepiece_tokenizer.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

namespace fs = std::filesystem;

const char* tokenizer_kind_name(TokenizerKind kind) {
  return kind == TokenizerKind::sentencepiece ? "sentencepiece" : "hf-bpe";
}

void Tokenizer::train(const TokenizerTrainOptions& o) {
  if (o.input_files.empty()) fail("tokenizer training needs at least one input file");
  if (o.vocab_size < 16) fail("tokenizer vocab_size must be at least 16, got ", o.vocab_size);
  std::string inputs;
  for (const std::string& f : o.input_files) {
    if (!fs::is_regular_file(f)) fail("tokenizer input '", f, "' is not a file");
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

TokenizerKind Tokenizer::detect_kind(const std::string& path) {
  // Checked before it is opened: opening a FIFO would block until a writer appears.
  check_small_file(path, kMaxTokenizerBytes, "tokenizer");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot load tokenizer '", path, "': the file does not exist or cannot be read");
  // A tokenizer.json is a JSON object; a SentencePiece model is a protobuf, whose first byte
  // is a field tag (0x0A for its pieces), never '{', white space or a byte-order mark.
  std::string head(3, '\0');
  in.read(head.data(), 3);
  head.resize(static_cast<size_t>(in.gcount()));
  size_t i = head == "\xEF\xBB\xBF" ? 3 : 0;
  for (char c;; ++i) {
    if (i < head.size())
      c = head[i];
    else if (!in.get(c))
      break;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == '{' ? TokenizerKind::hf_bpe : TokenizerKind::sentencepiece;
  }
  fail("tokenizer '", path, "' is empty");
}

Tokenizer Tokenizer::load(const std::string& path) {
  Tokenizer t;
  if (detect_kind(path) == TokenizerKind::hf_bpe)
    t.model_ = std::make_unique<HfBpeTokenizer>(path);
  else
    t.model_ = std::make_unique<SentencePieceTokenizer>(path);
  t.path_ = path;
  t.roles_ = t.model_->roles();
  const int32_t n = t.model_->n_ids();
  t.vocab_size_ = n;
  if (t.roles_.mask < 0) {
    t.roles_.mask = n;  // one row more in the embedding
    t.vocab_size_ = n + 1;
    t.mask_appended_ = true;
  }
  if (t.roles_.eos < 0)
    fail("tokenizer '", path, "' defines no EOS token; meap separates documents with EOS");
  if (t.model_->kind() == TokenizerKind::sentencepiece && t.roles_.bos < 0)
    fail("tokenizer '", path, "' defines no BOS piece");
  return t;
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

TokenizerKind Tokenizer::kind() const { return model_->kind(); }

const char* Tokenizer::file_name() const {
  return kind() == TokenizerKind::sentencepiece ? "tokenizer.model" : "tokenizer.json";
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  return model_->encode(text);
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size_)
    fail("token id ", id, " is outside the tokenizer's vocabulary [0, ", vocab_size_, ")");
  if (mask_appended_ && id == roles_.mask) return kMaskPiece;
  return model_->piece(id);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  for (int32_t id : ids)
    if (id < 0 || id >= vocab_size_)
      fail("token id ", id, " is outside the tokenizer's vocabulary [0, ", vocab_size_, ")");
  if (!mask_appended_) return model_->decode(ids);
  std::string out;
  std::vector<int32_t> run;  // ids of the file decode together (byte pieces join up)
  for (int32_t id : ids) {
    if (id != roles_.mask) {
      run.push_back(id);
      continue;
    }
    out += model_->decode(run);
    out += kMaskPiece;
    run.clear();
  }
  out += model_->decode(run);
  return out;
}

std::string find_tokenizer_file(const std::string& dir) {
  // tokenizer.model first: a Llama 2 directory ships both, and its tokenizer.json is the
  // SentencePiece-style one meap does not read.
  for (const char* name : {"tokenizer.model", "tokenizer.json"}) {
    const fs::path p = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

}  // namespace meap
