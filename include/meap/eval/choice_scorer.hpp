// Scoring ChoiceItems two ways, both reported: the gold choice's log-likelihood rank among
// the candidates (rank 1 = the model's argmax, lm-evaluation-harness's `acc` rule: summed,
// not length-normalised, log-likelihoods; ties go to the earlier choice), and greedy
// generation (exact match: the greedy continuation starts with an accepted answer).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "meap/eval/choice_item.hpp"
#include "meap/eval/language_model.hpp"
#include "meap/eval/progress.hpp"

namespace meap {

struct ItemScore {
  int predicted = 0;          // argmax of the choices' log-likelihoods
  int gold_rank = 1;          // 1 + choices ranked above gold (ties before gold rank above)
  double gold_log_likelihood = 0;
  bool greedy_match = false;  // the greedy continuation starts with an accepted answer
  std::string generated;      // the greedy continuation's text ("" when greedy is off)
};

struct ScoreOptions {
  bool greedy = true;          // also run greedy generation
  int64_t extra_new_tokens = 2;  // greedy budget: the longest answer's tokens + this
};

std::vector<ItemScore> score_items(LanguageModel& model, const TextCodec& codec,
                                   const std::vector<ChoiceItem>& items,
                                   const ScoreOptions& options, Progress* progress = nullptr);

// Exact match after normalisation (lower case, punctuation dropped, whitespace collapsed,
// as lost-in-the-middle's scorer): generated starts with one of answers, followed by the
// end or a non-alphanumeric character ("4821937." matches 4821937, "48219370" does not).
bool answer_matches(const std::string& generated, const std::vector<std::string>& answers);

// Accuracy of a group of items.
struct ChoiceAccuracy {
  int64_t n = 0;
  double accuracy = 0;     // share with gold_rank 1 (log-likelihood scoring)
  double greedy_em = 0;    // share with greedy_match
  double mean_rank = 0;    // mean gold_rank (1 = best)
  double chance = 0;       // mean 1 / number of choices: what guessing scores
};

ChoiceAccuracy summarize(const std::vector<ChoiceItem>& items,
                         const std::vector<ItemScore>& scores, const std::vector<size_t>& subset);
ChoiceAccuracy summarize_all(const std::vector<ChoiceItem>& items,
                             const std::vector<ItemScore>& scores);
nlohmann::json to_json(const ChoiceAccuracy& a);

}  // namespace meap
