#include "meap/data/sft_records.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"
#include "meap/data/corpus.hpp"  // is_blank
#include "meap/data/tokenizer.hpp"

namespace meap {

namespace {

using json = nlohmann::json;

SftParseResult reject(SftRejectKind kind, std::string error) {
  SftParseResult r;
  r.kind = kind;
  r.error = std::move(error);
  return r;
}

// The string field `key` of `obj`: nullptr and a message when absent or not a string.
const std::string* string_field(const json& obj, const char* key, std::string& error) {
  const auto it = obj.find(key);
  if (it == obj.end()) {
    error = str_cat("no \"", key, "\" field");
    return nullptr;
  }
  if (!it->is_string()) {
    error = str_cat("\"", key, "\" is a JSON ", it->type_name(), ", not a string");
    return nullptr;
  }
  return &it->get_ref<const std::string&>();
}

bool speaker_of(const std::string& name, SftSpeaker& out) {
  if (name == "system") out = SftSpeaker::system;
  else if (name == "user" || name == "human") out = SftSpeaker::user;
  else if (name == "assistant" || name == "gpt") out = SftSpeaker::assistant;
  else return false;
  return true;
}

// `messages` (role/content) or `conversations` (from/value).
SftParseResult parse_turns(const json& list, const char* field, const char* role_key,
                           const char* text_key) {
  if (!list.is_array())
    return reject(SftRejectKind::missing_field,
                  str_cat("\"", field, "\" is a JSON ", list.type_name(), ", not an array"));
  SftParseResult r;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    if (!m.is_object())
      return reject(SftRejectKind::missing_field,
                    str_cat("\"", field, "\"[", i, "] is not an object"));
    std::string error;
    const std::string* role = string_field(m, role_key, error);
    const std::string* text = role ? string_field(m, text_key, error) : nullptr;
    if (!role || !text)
      return reject(SftRejectKind::missing_field, str_cat("\"", field, "\"[", i, "]: ", error));
    SftMessage msg;
    if (!speaker_of(*role, msg.speaker))
      return reject(SftRejectKind::missing_field,
                    str_cat("\"", field, "\"[", i, "]: unknown ", role_key, " \"", *role,
                            "\" (expected system, user/human or assistant/gpt)"));
    msg.text = *text;
    r.messages.push_back(std::move(msg));
  }
  r.ok = true;
  return r;
}

SftParseResult parse_object(const json& j) {
  if (const auto it = j.find("messages"); it != j.end())
    return parse_turns(*it, "messages", "role", "content");
  if (const auto it = j.find("conversations"); it != j.end())
    return parse_turns(*it, "conversations", "from", "value");
  std::string error;
  if (j.contains("instruction")) {  // Alpaca
    const std::string* instruction = string_field(j, "instruction", error);
    const std::string* output = instruction ? string_field(j, "output", error) : nullptr;
    if (!output) return reject(SftRejectKind::missing_field, "Alpaca record: " + error);
    std::string prompt = *instruction;
    if (const auto in = j.find("input"); in != j.end() && !in->is_null()) {
      if (!in->is_string())
        return reject(SftRejectKind::missing_field,
                      str_cat("Alpaca record: \"input\" is a JSON ", in->type_name(),
                              ", not a string"));
      const std::string& input = in->get_ref<const std::string&>();
      if (!is_blank(input)) prompt += "\n\n" + input;
    }
    SftParseResult r;
    r.ok = true;
    r.messages = {{SftSpeaker::user, std::move(prompt)}, {SftSpeaker::assistant, *output}};
    return r;
  }
  if (j.contains("prompt")) {
    const std::string* prompt = string_field(j, "prompt", error);
    const char* answer_key = j.contains("response") || !j.contains("completion") ? "response"
                                                                                 : "completion";
    const std::string* answer = prompt ? string_field(j, answer_key, error) : nullptr;
    if (!answer) return reject(SftRejectKind::missing_field, error);
    SftParseResult r;
    r.ok = true;
    r.messages = {{SftSpeaker::user, *prompt}, {SftSpeaker::assistant, *answer}};
    return r;
  }
  return reject(SftRejectKind::missing_field,
                "no known fields: expected \"messages\", \"conversations\", "
                "\"instruction\"/\"output\" or \"prompt\"/\"response\"");
}

void push_text(SftSample& s, const Tokenizer& tok, const std::string& text, SftRole role) {
  if (text.empty()) return;
  const std::vector<int32_t> ids = tok.encode(text);
  s.tokens.insert(s.tokens.end(), ids.begin(), ids.end());
  s.roles.insert(s.roles.end(), ids.size(), static_cast<uint8_t>(role));
}

}  // namespace

const char* sft_reject_kind_name(SftRejectKind kind) {
  switch (kind) {
    case SftRejectKind::not_json: return "not_json";
    case SftRejectKind::missing_field: return "missing_field";
    case SftRejectKind::empty_answer: return "empty_answer";
    case SftRejectKind::overlong: return "overlong";
  }
  return "?";
}

SftParseResult parse_sft_record(std::string_view line) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::parse_error& e) {
    return reject(SftRejectKind::not_json, str_cat("not valid JSON (", e.what(), ")"));
  }
  if (!j.is_object())
    return reject(SftRejectKind::not_json, str_cat("a JSON ", j.type_name(), ", not an object"));
  SftParseResult r = parse_object(j);
  if (!r.ok) return r;
  while (!r.messages.empty() && r.messages.back().speaker != SftSpeaker::assistant)
    r.messages.pop_back();
  if (r.messages.empty())
    return reject(SftRejectKind::missing_field, "no assistant message: nothing to train on");
  for (const SftMessage& m : r.messages)
    if (m.speaker == SftSpeaker::assistant && is_blank(m.text))
      return reject(SftRejectKind::empty_answer, "an assistant answer is empty");
  return r;
}

SftTemplate SftTemplate::plain() { return SftTemplate{}; }

SftTemplate SftTemplate::chat() {
  SftTemplate t;
  t.name = "chat";
  t.system_prefix = "<|system|>\n";
  t.system_suffix = "\n";
  t.user_prefix = "<|user|>\n";
  t.user_suffix = "\n";
  t.assistant_prefix = "<|assistant|>\n";
  return t;
}

SftTemplate SftTemplate::load(const std::string& name_or_path) {
  if (name_or_path == "plain") return plain();
  if (name_or_path == "chat") return chat();
  std::error_code ec;
  if (!std::filesystem::exists(name_or_path, ec))
    fail("--template '", name_or_path, "' is neither plain, chat nor a readable JSON file");
  const std::string text = read_small_file(name_or_path, kMaxConfigBytes, "--template");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(name_or_path, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(name_or_path, ": a template file holds one JSON object");
  SftTemplate t;
  t.name = name_or_path;
  t.system_suffix = t.user_suffix = "";
  const std::pair<const char*, std::string*> keys[] = {{"system_prefix", &t.system_prefix},
                                                      {"system_suffix", &t.system_suffix},
                                                      {"user_prefix", &t.user_prefix},
                                                      {"user_suffix", &t.user_suffix},
                                                      {"assistant_prefix", &t.assistant_prefix}};
  for (const auto& [key, value] : j.items()) {
    std::string* target = nullptr;
    for (const auto& [name, field] : keys)
      if (key == name) target = field;
    if (!target)
      fail(name_or_path, ": unknown template key \"", key, "\" (known: system_prefix, "
           "system_suffix, user_prefix, user_suffix, assistant_prefix)");
    if (!value.is_string()) fail(name_or_path, ": \"", key, "\" must be a string");
    *target = value.get<std::string>();
  }
  return t;
}

int64_t SftSample::answer_tokens() const {
  int64_t n = 0;
  for (uint8_t r : roles) n += r == static_cast<uint8_t>(SftRole::answer);
  return n;
}

SftSample render_sft_sample(const std::vector<SftMessage>& messages, const SftTemplate& t,
                            const Tokenizer& tok) {
  SftSample s;
  s.tokens.push_back(tok.bos_id());
  s.roles.push_back(static_cast<uint8_t>(SftRole::template_text));
  for (const SftMessage& m : messages) {
    switch (m.speaker) {
      case SftSpeaker::system:
        push_text(s, tok, t.system_prefix, SftRole::template_text);
        push_text(s, tok, m.text, SftRole::prompt);
        push_text(s, tok, t.system_suffix, SftRole::template_text);
        break;
      case SftSpeaker::user:
        push_text(s, tok, t.user_prefix, SftRole::template_text);
        push_text(s, tok, m.text, SftRole::prompt);
        push_text(s, tok, t.user_suffix, SftRole::template_text);
        break;
      case SftSpeaker::assistant:
        push_text(s, tok, t.assistant_prefix, SftRole::template_text);
        push_text(s, tok, m.text, SftRole::answer);
        s.tokens.push_back(tok.eos_id());
        s.roles.push_back(static_cast<uint8_t>(SftRole::answer_end));
        break;
    }
  }
  return s;
}

SftOverlong parse_sft_overlong(const std::string& text) {
  if (text == "truncate_prompt") return SftOverlong::truncate_prompt;
  if (text == "drop") return SftOverlong::drop;
  fail("--overlong must be truncate_prompt or drop, got '", text, "'");
}

const char* sft_overlong_name(SftOverlong policy) {
  return policy == SftOverlong::truncate_prompt ? "truncate_prompt" : "drop";
}

bool fit_sft_sample(SftSample& s, int64_t seq_len, SftOverlong policy, bool* truncated) {
  if (truncated) *truncated = false;
  const int64_t n = static_cast<int64_t>(s.tokens.size());
  const int64_t excess = n - 1 - seq_len;
  if (excess <= 0) return true;
  if (policy == SftOverlong::drop) return false;
  constexpr uint8_t kPrompt = static_cast<uint8_t>(SftRole::prompt);
  int64_t first_answer = 0, prompt_before = 0;
  while (first_answer < n && s.roles[first_answer] != static_cast<uint8_t>(SftRole::answer))
    prompt_before += s.roles[first_answer++] == kPrompt;
  if (prompt_before < excess) return false;
  // Keep every token but the first `excess` prompt tokens (BOS and template text stay).
  int64_t removed = 0, w = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (removed < excess && i < first_answer && s.roles[i] == kPrompt) {
      ++removed;
      continue;
    }
    s.tokens[w] = s.tokens[i];
    s.roles[w] = s.roles[i];
    ++w;
  }
  s.tokens.resize(w);
  s.roles.resize(w);
  if (truncated) *truncated = true;
  return true;
}

}  // namespace meap
