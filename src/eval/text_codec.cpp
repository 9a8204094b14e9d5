// TokenizerCodec: meap's Tokenizer behind the TextCodec interface.
#include "meap/eval/text_codec.hpp"

#include "meap/data/tokenizer.hpp"

namespace meap {

std::vector<int32_t> TokenizerCodec::encode(std::string_view text) const {
  return tok_.encode(text);
}
std::string TokenizerCodec::decode(const std::vector<int32_t>& ids) const {
  return tok_.decode(ids);
}
int32_t TokenizerCodec::document_start_id() const { return tok_.eos_id(); }
int32_t TokenizerCodec::eos_id() const { return tok_.eos_id(); }
int32_t TokenizerCodec::mask_id() const { return tok_.mask_id(); }

}  // namespace meap
