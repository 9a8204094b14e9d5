// TextCodec: what the evaluations need of a tokenizer -- text to ids and back, and the token
// a document starts after. An adapter wraps meap's Tokenizer; tests use a byte codec, so the
// item generators and scorers do not depend on one tokenizer implementation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meap {

class Tokenizer;

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Control ids decode to nothing.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The token every training document follows: meap's shards separate documents by EOS and
  // carry no BOS, so an evaluation context starts with EOS ("a new document starts here").
  virtual int32_t document_start_id() const = 0;
  virtual int32_t eos_id() const = 0;
  // [MASK] (never generated); -1 when the tokenizer has none.
  virtual int32_t mask_id() const = 0;
};

// meap's Tokenizer (SentencePiece or tokenizer.json) as a TextCodec; it must outlive this.
class TokenizerCodec : public TextCodec {
 public:
  explicit TokenizerCodec(const Tokenizer& tokenizer) : tok_(tokenizer) {}
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t document_start_id() const override;
  int32_t eos_id() const override;
  int32_t mask_id() const override;

 private:
  const Tokenizer& tok_;
};

}  // namespace meap
