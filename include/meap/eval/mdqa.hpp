// The `mdqa` task's items: multi-document QA in the lost-in-the-middle style. k short
// documents, one of which (the gold one) answers the question, with the gold document at
// position p = 1..k; accuracy is reported by p. Items come from a built-in synthetic
// generator or from a JSONL in the lost-in-the-middle format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meap/eval/choice_item.hpp"

namespace meap {

struct MdqaOptions {
  int64_t documents = 5;   // k
  int64_t samples = 4;     // questions; each gives k items (gold at p = 1..k)
  int64_t candidates = 0;  // JSONL only: choices per item (0 = k); synthetic: the k docs' answers
  uint64_t seed = 1;
};

// Synthetic: document i reads "Document [i] NAME was born in CITY." with k distinct names
// and cities; the question asks where one of them was born; the choices are the k cities
// (all in the context, so only retrieval tells them apart). meta: position (1-based gold
// document), documents, question (sample index).
std::vector<ChoiceItem> make_mdqa_items(const MdqaOptions& options);

// Lost-in-the-middle JSONL: one question per line with "question", "answers" (strings)
// and "ctxs" (objects with "title", "text" and "isgold" or "hasanswer"). The gold context
// and the first k - 1 others are laid out with the gold one at each p; the choices are the
// gold answers[0] and answers[0] of other questions (seeded), all greedy answers accepted.
// Throws meap::Error naming the file and line for malformed input.
std::vector<ChoiceItem> read_mdqa_jsonl(const std::string& path, const MdqaOptions& options);

// The text of one document and the prompt around them (shared by both sources).
std::string mdqa_document(int64_t index, const std::string& title, const std::string& text);
std::string mdqa_prompt(const std::vector<std::string>& documents, const std::string& question);

}  // namespace meap
