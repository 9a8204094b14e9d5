#include "data/hf_bpe_tokenizer.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/hf/byte_level.hpp"
#include "data/hf/utf8.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

using nlohmann::json;

namespace {

json read_json_file(const std::string& path) {
  const std::string text = read_small_file(path, kMaxTokenizerBytes, "tokenizer");
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("tokenizer '", path, "' is not valid JSON: ", e.what());
  }
}

bool flag(const json& spec, const char* key) {
  return spec.contains(key) && spec[key].is_boolean() && spec[key].get<bool>();
}

// The first special token of a TemplateProcessing's "single" template (Llama 3's BOS), found
// in the post_processor directly or inside a Sequence of processors; -1 if none.
int32_t template_leading_special(const json& p) {
  if (!p.is_object()) return -1;
  const std::string type = p.value("type", std::string());
  if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
    for (const json& q : p["processors"]) {
      const int32_t id = template_leading_special(q);
      if (id >= 0) return id;
    }
    return -1;
  }
  if (type != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array() ||
      p["single"].empty())
    return -1;
  const json& first = p["single"][0];
  if (!first.is_object() || !first.contains("SpecialToken")) return -1;
  const json& name = first["SpecialToken"].value("id", json());
  if (!name.is_string() || !p.contains("special_tokens")) return -1;
  const json& entry = p["special_tokens"].value(name.get<std::string>(), json());
  if (!entry.is_object() || !entry.contains("ids") || !entry["ids"].is_array() ||
      entry["ids"].size() != 1 || !entry["ids"][0].is_number_integer())
    return -1;
  return entry["ids"][0].get<int32_t>();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

HfBpeTokenizer::HfBpeTokenizer(const std::string& path) {
  const json j = read_json_file(path);
  if (!j.is_object()) fail("tokenizer '", path, "' is not a JSON object");
  if (!j.contains("model") || !j["model"].is_object())
    fail(path, ": has no \"model\" object; is this a Hugging Face tokenizer.json?");
  model_ = std::make_unique<hf::BpeModel>(j["model"], path + ": model");
  normalizer_ = std::make_unique<hf::Normalizer>(j.value("normalizer", json()), path + ": normalizer");
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null())
    fail(path, ": has no pre_tokenizer; meap reads byte-level BPE tokenizers (a ByteLevel "
         "pre_tokenizer) only");
  pre_tokenizer_ = std::make_unique<hf::PreTokenizer>(j["pre_tokenizer"], path + ": pre_tokenizer");
  const json decoder = j.value("decoder", json());
  if (!decoder.is_object() || decoder.value("type", std::string()) != "ByteLevel")
    fail(path, ": decoder must be ByteLevel (got ", decoder.dump(), "); meap reads byte-level "
         "BPE tokenizers only");

  n_ids_ = model_->n_ids();
  if (j.contains("added_tokens")) {
    if (!j["added_tokens"].is_array()) fail(path, ": added_tokens must be a list");
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      const json& a = j["added_tokens"][i];
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          a["id"].get<int64_t>() < 0 || !a.contains("content") || !a["content"].is_string())
        fail(path, ": added_tokens[", i, "] needs an \"id\" and a \"content\"");
      hf::AddedToken t;
      t.id = a["id"].get<int32_t>();
      t.content = a["content"].get<std::string>();
      t.special = flag(a, "special");
      t.normalized = flag(a, "normalized");
      t.lstrip = flag(a, "lstrip");
      t.rstrip = flag(a, "rstrip");
      t.single_word = flag(a, "single_word");
      n_ids_ = std::max(n_ids_, t.id + 1);
      added_by_id_[t.id] = added_.size();
      added_.push_back(t);
    }
  }
  for (const hf::AddedToken& t : added_) {
    if (!t.normalized)
      raw_matcher_.add(t, t.content);
    else
      normalized_matcher_.add(t, normalizer_->empty() ? t.content
                                                      : normalizer_->apply(hf::utf8_lossy(t.content)));
  }

  // The roles meap needs.
  // Only added tokens qualify: a BPE vocabulary may hold "<s>" as ordinary text (Qwen's does).
  auto find = [&](std::initializer_list<const char*> names) -> int32_t {
    for (const char* name : names)
      for (const hf::AddedToken& t : added_)
        if (t.content == name) return t.id;
    return -1;
  };
  roles_.bos = template_leading_special(j.value("post_processor", json()));
  if (roles_.bos < 0) roles_.bos = find({"<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>"});
  roles_.eos = find({"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<|eos|>", "<EOT>"});
  roles_.pad = find({"<pad>", "<|pad|>", "[PAD]", "<PAD>"});
  roles_.unk = model_->unk_id();
  for (const hf::AddedToken& t : added_)
    if (t.special && (t.content == kMaskPiece || t.content == "<mask>")) roles_.mask = t.id;
  if (roles_.mask < 0) {
    for (const hf::AddedToken& t : added_)
      if (t.special && lower(t.content).find("reserved") != std::string::npos &&
          (roles_.mask < 0 || t.id < roles_.mask))
        roles_.mask = t.id;
  }
}

HfBpeTokenizer::~HfBpeTokenizer() = default;

std::string HfBpeTokenizer::piece(int32_t id) const {
  const auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return added_[it->second].content;
  return model_->has_id(id) ? model_->token(id) : std::string();
}

void HfBpeTokenizer::encode_text(const std::string& text, std::vector<int32_t>& out) const {
  thread_local std::vector<std::string> pieces;
  pieces.clear();
  pre_tokenizer_->split(text, pieces);
  for (const std::string& p : pieces) model_->encode_piece(p, out);
}

std::vector<int32_t> HfBpeTokenizer::encode(std::string_view input) const {
  std::string valid;
  if (!hf::is_valid_utf8(input)) {
    valid = hf::utf8_lossy(input);
    input = valid;
  }
  std::vector<int32_t> out;
  out.reserve(input.size() / 3);
  // The raw text's added tokens first, then each remaining segment normalized and searched
  // for the normalized added tokens, then pre-tokenized and run through BPE.
  std::vector<hf::Segment> raw, normalized;
  if (raw_matcher_.empty())
    raw.push_back({std::string(input), -1});
  else
    raw_matcher_.split(input, raw);
  for (const hf::Segment& s : raw) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    std::string text = normalizer_->empty() ? s.text : normalizer_->apply(s.text);
    if (normalized_matcher_.empty()) {
      encode_text(text, out);
      continue;
    }
    normalized.clear();
    normalized_matcher_.split(text, normalized);
    for (const hf::Segment& n : normalized) {
      if (n.id >= 0)
        out.push_back(n.id);
      else
        encode_text(n.text, out);
    }
  }
  return out;
}

std::string HfBpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  // Every token, added ones included, goes through the ByteLevel decoder (as in the
  // library); the bytes are then read as UTF-8 with U+FFFD for what is not.
  std::string bytes;
  for (int32_t id : ids) {
    const auto it = added_by_id_.find(id);
    if (it != added_by_id_.end())
      hf::append_byte_level_decoded(added_[it->second].content, bytes);
    else if (model_->has_id(id))
      hf::append_byte_level_decoded(model_->token(id), bytes);
  }
  return hf::utf8_lossy(bytes);
}

}  // namespace meap
