// SFT records: one JSONL line -> a conversation (prompt/response, Alpaca, chat `messages`,
// ShareGPT `conversations`) -> template-rendered tokens with one SftRole each, fitted to
// seq_len by the overlong policy. The shapes and templates are documented in docs/data.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "meap/data/sft_shard.hpp"

namespace meap {

class Tokenizer;

enum class SftSpeaker { system, user, assistant };

struct SftMessage {
  SftSpeaker speaker = SftSpeaker::user;
  std::string text;
};

// Why a record was not used.
enum class SftRejectKind { not_json, missing_field, empty_answer, overlong };
constexpr int kSftRejectKinds = 4;
const char* sft_reject_kind_name(SftRejectKind kind);  // "not_json", "missing_field", ...

struct SftReject {
  std::string file;
  uint64_t line = 0;
  SftRejectKind kind = SftRejectKind::not_json;
  std::string message;
};

struct SftParseResult {
  bool ok = false;
  std::vector<SftMessage> messages;  // when ok: at least one assistant message, none blank
  SftRejectKind kind = SftRejectKind::not_json;  // when not ok
  std::string error;                             // when not ok: what is wrong
};

// One JSONL line. Recognised shapes, tried in this order:
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//   {"conversations": [{"from": "system"|"human"|"user"|"gpt"|"assistant", "value": "..."}]}
//   {"instruction": "...", "input": "..." (optional), "output": "..."}   (Alpaca)
//   {"prompt": "...", "response": "..."}  ("completion" is taken for "response")
// Messages after the last assistant message are dropped (nothing of theirs is trained).
SftParseResult parse_sft_record(std::string_view line);

// How messages become text around them: each message is prefix + content + suffix, except
// that an assistant message is prefix + content + EOS (its end is what the model learns).
// Template text has the template role, system and user content the prompt role,
// assistant content the answer role, the EOS the answer_end role. A sample starts with BOS.
struct SftTemplate {
  std::string name = "plain";
  std::string system_prefix, system_suffix = "\n\n";
  std::string user_prefix, user_suffix = "\n";
  std::string assistant_prefix;

  static SftTemplate plain();
  static SftTemplate chat();  // "<|system|>\n...\n", "<|user|>\n...\n", "<|assistant|>\n..."
  // "plain", "chat", or a JSON file with any of the keys system_prefix, system_suffix,
  // user_prefix, user_suffix, assistant_prefix (missing keys: empty). meap::Error for an
  // unknown name, an unreadable file, bad JSON or an unknown key.
  static SftTemplate load(const std::string& name_or_path);
};

struct SftSample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> roles;  // SftRole values
  int64_t answer_tokens() const;
};

// Renders and tokenizes the messages (each piece encoded on its own, so role boundaries are
// token boundaries).
SftSample render_sft_sample(const std::vector<SftMessage>& messages, const SftTemplate& tmpl,
                            const Tokenizer& tokenizer);

enum class SftOverlong {
  truncate_prompt,  // drop prompt tokens, oldest first, before the first answer token
  drop,             // reject the sample
};
SftOverlong parse_sft_overlong(const std::string& text);  // "truncate_prompt" | "drop"
const char* sft_overlong_name(SftOverlong policy);

// Makes the sample fit seq_len positions (n_tokens - 1 <= seq_len) by the policy. Returns
// false when it cannot (drop, or not enough prompt tokens before the first answer token);
// sets *truncated when prompt tokens were removed.
bool fit_sft_sample(SftSample& sample, int64_t seq_len, SftOverlong policy, bool* truncated);

}  // namespace meap
