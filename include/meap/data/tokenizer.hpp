// Tokenizer: text <-> token ids, for every layer above the data layer. One interface
// (TokenizerModel) with two implementations -- a SentencePiece model (trained here or loaded)
// and a Hugging Face tokenizer.json (byte-level BPE) -- plus meap's reserved ids: BOS, EOS,
// PAD and [MASK]. No input text ever encodes to an appended [MASK].
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace meap {

inline constexpr const char* kMaskPiece = "[MASK]";

enum class TokenizerKind {
  sentencepiece,  // a SentencePiece .model (protobuf)
  hf_bpe,         // a Hugging Face tokenizer.json with a byte-level BPE model
};
const char* tokenizer_kind_name(TokenizerKind kind);  // "sentencepiece", "hf-bpe"

// The ids a tokenizer file defines for meap's roles; -1 = the file has none. `mask` is the
// id meap may use as [MASK] (a [MASK] piece, or a reserved, never-trained special token).
struct TokenizerRoles {
  int32_t bos = -1, eos = -1, pad = -1, unk = -1, mask = -1;
};

// What each tokenizer file format implements. Methods are const and safe to call from
// several threads at once (meap prepare encodes on every core).
class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;
  virtual TokenizerKind kind() const = 0;
  // Ids of the file: [0, n_ids()). An appended [MASK] is not one of them.
  virtual int32_t n_ids() const = 0;
  virtual TokenizerRoles roles() const = 0;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Ids inside [0, n_ids()), decoded as the format's own library decodes them.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The id's text in the file's vocabulary ("▁the", "Ġthe", "<|endoftext|>", ...).
  virtual std::string piece(int32_t id) const = 0;
};

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
  // Trains a SentencePiece BPE model. Ids: 0 <unk>, 1 <s> (BOS), 2 </s> (EOS), 3 <pad>,
  // 4 [MASK].
  static void train(const TokenizerTrainOptions& options);
  // A SentencePiece model or a tokenizer.json, told apart by content (not by file name: a
  // checkpoint's copy is always called tokenizer.model).
  static Tokenizer load(const std::string& path);
  static TokenizerKind detect_kind(const std::string& path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  TokenizerKind kind() const;
  // Includes an appended [MASK] when the file had no id to use for it.
  int32_t vocab_size() const { return vocab_size_; }
  int32_t bos_id() const { return roles_.bos; }
  int32_t eos_id() const { return roles_.eos; }
  int32_t pad_id() const { return roles_.pad; }
  int32_t mask_id() const { return roles_.mask; }
  int32_t unk_id() const { return roles_.unk; }
  // True when the file has no id for [MASK] and mask_id() is the appended last id.
  bool mask_appended() const { return mask_appended_; }
  // The piece's text ("<s>", "▁the", "Ġthe", ...); "[MASK]" for an appended mask_id().
  std::string piece(int32_t id) const;
  const std::string& path() const { return path_; }
  // The conventional file name of this kind: "tokenizer.model" or "tokenizer.json".
  const char* file_name() const;

  std::vector<int32_t> encode(std::string_view text) const;
  // SentencePiece: control ids (BOS, EOS, PAD) decode to nothing and [MASK] to "[MASK]".
  // tokenizer.json: as the tokenizers library's decode(ids, skip_special_tokens=False);
  // an appended [MASK] decodes to "[MASK]".
  std::string decode(const std::vector<int32_t>& ids) const;

  const TokenizerModel& model() const { return *model_; }

 private:
  Tokenizer() = default;
  std::unique_ptr<TokenizerModel> model_;
  std::string path_;
  TokenizerRoles roles_;
  int32_t vocab_size_ = 0;
  bool mask_appended_ = false;
};

// The tokenizer file in a directory (a checkpoint, a prepare output, an HF model):
// tokenizer.json when there is one, else tokenizer.model; "" when neither exists.
std::string find_tokenizer_file(const std::string& dir);

}  // namespace meap
