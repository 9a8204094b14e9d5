// score_items: log-likelihood ranks and greedy exact match for ChoiceItems.
#include "meap/eval/choice_scorer.hpp"

#include <algorithm>
#include <cctype>
#include <numeric>

#include "meap/core/error.hpp"

namespace meap {

namespace {

std::string normalize_answer(const std::string& s) {
  std::string out;
  bool space = false;
  for (unsigned char c : s) {
    if (std::isspace(c)) {
      space = !out.empty();
    } else if (std::ispunct(c)) {
      continue;
    } else {
      if (space) out += ' ';
      space = false;
      out += static_cast<char>(std::tolower(c));
    }
  }
  return out;
}

}  // namespace

bool answer_matches(const std::string& generated, const std::vector<std::string>& answers) {
  const std::string g = normalize_answer(generated);
  for (const std::string& a : answers) {
    const std::string n = normalize_answer(a);
    if (n.empty() || g.compare(0, n.size(), n) != 0) continue;
    if (g.size() == n.size() || !std::isalnum(static_cast<unsigned char>(g[n.size()])))
      return true;
  }
  return false;
}

std::vector<ItemScore> score_items(LanguageModel& model, const TextCodec& codec,
                                   const std::vector<ChoiceItem>& items,
                                   const ScoreOptions& options, Progress* progress) {
  std::vector<ItemScore> out;
  out.reserve(items.size());
  for (const ChoiceItem& item : items) {
    if (item.choices.empty() || item.gold < 0 ||
        item.gold >= static_cast<int>(item.choices.size()))
      fail("item ", item.id, ": gold index ", item.gold, " is not one of its ",
           item.choices.size(), " choices");
    const EncodedItem enc = encode_item(item, codec);
    const std::vector<ContinuationScore> sc = model.score(enc.context, enc.choices);
    ItemScore s;
    for (size_t c = 1; c < sc.size(); ++c)
      if (sc[c].log_likelihood > sc[static_cast<size_t>(s.predicted)].log_likelihood)
        s.predicted = static_cast<int>(c);
    const double g = sc[static_cast<size_t>(item.gold)].log_likelihood;
    s.gold_log_likelihood = g;
    s.gold_rank = 1;
    for (size_t c = 0; c < sc.size(); ++c) {
      if (static_cast<int>(c) == item.gold) continue;
      if (sc[c].log_likelihood > g || (sc[c].log_likelihood == g && static_cast<int>(c) < item.gold))
        ++s.gold_rank;
    }
    if (options.greedy) {
      size_t longest = 0;
      for (const std::string& a : item.answers) longest = std::max(longest, codec.encode(" " + a).size());
      longest = std::max(longest, enc.choices[static_cast<size_t>(item.gold)].size());
      const std::vector<int32_t> gen = model.generate_greedy(
          enc.context, static_cast<int64_t>(longest) + options.extra_new_tokens, codec.eos_id());
      s.generated = codec.decode(gen);
      s.greedy_match = answer_matches(s.generated, item.answers);
    }
    out.push_back(std::move(s));
    if (progress) progress->advance();
  }
  return out;
}

ChoiceAccuracy summarize(const std::vector<ChoiceItem>& items,
                         const std::vector<ItemScore>& scores, const std::vector<size_t>& subset) {
  ChoiceAccuracy a;
  for (size_t i : subset) {
    ++a.n;
    a.accuracy += scores[i].gold_rank == 1;
    a.greedy_em += scores[i].greedy_match;
    a.mean_rank += scores[i].gold_rank;
    a.chance += 1.0 / static_cast<double>(items[i].choices.size());
  }
  if (a.n > 0) {
    const double n = static_cast<double>(a.n);
    a.accuracy /= n;
    a.greedy_em /= n;
    a.mean_rank /= n;
    a.chance /= n;
  }
  return a;
}

ChoiceAccuracy summarize_all(const std::vector<ChoiceItem>& items,
                             const std::vector<ItemScore>& scores) {
  std::vector<size_t> all(items.size());
  std::iota(all.begin(), all.end(), size_t{0});
  return summarize(items, scores, all);
}

nlohmann::json to_json(const ChoiceAccuracy& a) {
  return {{"n", a.n},
          {"accuracy", a.accuracy},
          {"greedy_em", a.greedy_em},
          {"mean_rank", a.mean_rank},
          {"chance", a.chance}};
}

}  // namespace meap
