// Tokenizer: a SentencePiece BPE model (trained here or loaded) plus meap's reserved
// ids: BOS, EOS, PAD and [MASK]. [MASK] is a control symbol, so no input text can ever
// encode to it; a model file without it gets [MASK] appended after its last piece.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace meap {

inline constexpr const char* kMaskPiece = "[MASK]";

struct TokenizerTrainOptions {
  std::vector<std::string> input_files;  // plain text, one sentence or line per line
  std::string model_prefix;              // writes PREFIX.model and PREFIX.vocab
  int vocab_size = 4096;                 // every reserved id included
  bool byte_fallback = true;             // unknown characters become bytes: no <unk> at all
  bool split_digits = true;              // numbers tokenized digit by digit
  int64_t max_sentences = 2'000'000;     // sample of input lines used for training
  int num_threads = 2;
};

class Tokenizer {
 public:
  // Trains a BPE model. Ids: 0 <unk>, 1 <s> (BOS), 2 </s> (EOS), 3 <pad>, 4 [MASK].
  static void train(const TokenizerTrainOptions& options);
  static Tokenizer load(const std::string& model_path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Includes an appended [MASK] when the model file had none.
  int32_t vocab_size() const { return vocab_size_; }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t mask_id() const { return mask_id_; }
  int32_t unk_id() const { return unk_id_; }
  // True when the model file has no [MASK] piece and mask_id() is the appended last id.
  bool mask_appended() const { return mask_appended_; }
  // The piece's text ("<s>", "▁the", "<0x0A>", ...); "[MASK]" for mask_id().
  std::string piece(int32_t id) const;
  const std::string& path() const { return path_; }

  std::vector<int32_t> encode(std::string_view text) const;
  // Control ids (BOS, EOS, PAD) decode to nothing; [MASK] decodes to "[MASK]".
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  Tokenizer() = default;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  int32_t vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, mask_id_ = -1, unk_id_ = -1;
  bool mask_appended_ = false;
};

}  // namespace meap
