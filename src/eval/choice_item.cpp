// ChoiceItem encoding (the lm-evaluation-harness rule) and its JSONL form.
#include "meap/eval/choice_item.hpp"

#include <cctype>
#include <fstream>

#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

EncodedItem encode_item(const ChoiceItem& item, const TextCodec& codec) {
  EncodedItem out;
  std::string context = item.context;
  size_t keep = context.size();
  while (keep > 0 && std::isspace(static_cast<unsigned char>(context[keep - 1]))) --keep;
  const std::string moved = context.substr(keep);
  context.resize(keep);
  const std::vector<int32_t> context_ids = codec.encode(context);
  out.context.reserve(context_ids.size() + 1);
  out.context.push_back(codec.document_start_id());
  out.context.insert(out.context.end(), context_ids.begin(), context_ids.end());
  for (const std::string& choice : item.choices) {
    const std::vector<int32_t> whole = codec.encode(context + moved + choice);
    if (whole.size() <= context_ids.size())
      fail("item ", item.id, ": choice '", choice, "' adds no tokens to its context");
    out.choices.emplace_back(whole.begin() + static_cast<std::ptrdiff_t>(context_ids.size()),
                             whole.end());
  }
  return out;
}

void write_items_jsonl(const std::string& path, const std::vector<ChoiceItem>& items) {
  std::string text;
  for (const ChoiceItem& it : items) {
    const nlohmann::json j = {{"id", it.id},       {"context", it.context},
                              {"choices", it.choices}, {"gold", it.gold},
                              {"answers", it.answers}, {"meta", it.meta}};
    text += j.dump() + "\n";
  }
  write_file_atomic(path, text);
}

}  // namespace meap
