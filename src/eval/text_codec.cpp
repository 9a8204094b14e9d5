// TokenizerCodec: meap's Tokenizer behind the TextCodec interface.
#include "meap/eval/text_codec.hpp"

#include "meap/data/tokenizer.hpp"

namespace meap {

std::vector<int32_t> TokenizerCodec::encode(std::string_view text) const {
  return tok_.encode(text);
}
std::string TokenizerCodec::decode(const std::vector<int32_t>& ids) const {
  // SentencePiece decodes BOS, EOS and PAD to nothing, a tokenizer.json to their text
  // ("</s>"): drop them first, so text and byte counts mean the same for both.
  std::vector<int32_t> text_ids;
  text_ids.reserve(ids.size());
  for (int32_t id : ids)
    if (id != tok_.bos_id() && id != tok_.eos_id() && id != tok_.pad_id()) text_ids.push_back(id);
  return tok_.decode(text_ids);
}
int32_t TokenizerCodec::document_start_id() const { return tok_.eos_id(); }
int32_t TokenizerCodec::eos_id() const { return tok_.eos_id(); }
int32_t TokenizerCodec::mask_id() const { return tok_.mask_id(); }

}  // namespace meap
