// MDQA items: the synthetic generator and the lost-in-the-middle JSONL reader.
#include "meap/eval/mdqa.hpp"

#include <algorithm>
#include <fstream>
#include <numeric>

#include "meap/core/error.hpp"
#include "meap/eval/eval_rng.hpp"

namespace meap {

namespace {

constexpr const char* kNames[] = {"Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana",
                                  "Ivo", "Jon", "Kai", "Lea", "Max", "Nia", "Otto", "Pia",
                                  "Rex", "Sam", "Tia", "Uma", "Vic", "Wes", "Yan", "Zoe"};
constexpr const char* kCities[] = {"Rome", "Oslo", "Lima", "Kyiv", "Bern", "Cork", "Doha",
                                   "Graz", "Hue", "Ipoh", "Jena", "Kobe", "Lyon", "Nice",
                                   "Pisa", "Riga", "Sofia", "Turin", "Ulm", "Vigo", "Wuhan",
                                   "York", "Zug", "Baku"};
constexpr int64_t kNumNames = sizeof(kNames) / sizeof(kNames[0]);
constexpr int64_t kNumCities = sizeof(kCities) / sizeof(kCities[0]);

// k distinct indices in [0, n), in random order.
std::vector<int64_t> draw_distinct(EvalRng& rng, int64_t n, int64_t k) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), int64_t{0});
  for (int64_t i = 0; i < k; ++i) std::swap(ids[i], ids[i + rng.below(n - i)]);
  ids.resize(static_cast<size_t>(k));
  return ids;
}

}  // namespace

std::string mdqa_document(int64_t index, const std::string& title, const std::string& text) {
  return "Document [" + std::to_string(index) + "]" + (title.empty() ? "" : " (Title: " + title + ")") +
         " " + text;
}

std::string mdqa_prompt(const std::vector<std::string>& documents, const std::string& question) {
  std::string p;
  for (const std::string& d : documents) p += d + "\n";
  return p + "Question: " + question + "\nAnswer:";
}

std::vector<ChoiceItem> make_mdqa_items(const MdqaOptions& o) {
  if (o.documents < 2 || o.documents > std::min(kNumNames, kNumCities))
    fail("--mdqa-documents must be in [2, ", std::min(kNumNames, kNumCities), "], got ",
         o.documents);
  if (o.samples < 1) fail("--mdqa-samples must be at least 1");
  std::vector<ChoiceItem> items;
  for (int64_t q = 0; q < o.samples; ++q) {
    EvalRng rng(o.seed, static_cast<uint64_t>(q));
    const std::vector<int64_t> names = draw_distinct(rng, kNumNames, o.documents);
    const std::vector<int64_t> cities = draw_distinct(rng, kNumCities, o.documents);
    // Choice order: a random permutation of the facts, the same for every p.
    const std::vector<int64_t> choice_order = draw_distinct(rng, o.documents, o.documents);
    // facts[0] is the asked one; the others keep their drawn order around it.
    for (int64_t p = 1; p <= o.documents; ++p) {
      std::vector<int64_t> order;  // fact index at each document position
      for (int64_t f = 1; f < o.documents; ++f) order.push_back(f);
      order.insert(order.begin() + (p - 1), 0);
      std::vector<std::string> docs;
      for (int64_t i = 0; i < o.documents; ++i) {
        const int64_t f = order[static_cast<size_t>(i)];
        docs.push_back(mdqa_document(i + 1, "", std::string(kNames[names[f]]) +
                                                    " was born in " + kCities[cities[f]] + "."));
      }
      ChoiceItem item;
      item.id = "mdqa-q" + std::to_string(q) + "-p" + std::to_string(p);
      item.context = mdqa_prompt(docs, std::string("Where was ") + kNames[names[0]] + " born?");
      for (int64_t f : choice_order) item.choices.push_back(std::string(" ") + kCities[cities[f]]);
      item.gold = static_cast<int>(std::find(choice_order.begin(), choice_order.end(), 0) -
                                   choice_order.begin());
      item.answers = {kCities[cities[0]]};
      item.meta = {{"position", p}, {"documents", o.documents}, {"question", q},
                   {"gold_document", docs[static_cast<size_t>(p - 1)]}};
      items.push_back(std::move(item));
    }
  }
  return items;
}

std::vector<ChoiceItem> read_mdqa_jsonl(const std::string& path, const MdqaOptions& o) {
  std::ifstream in(path);
  if (!in) fail("--mdqa-jsonl: cannot read ", path);
  struct Question {
    std::string question;
    std::vector<std::string> answers;
    std::pair<std::string, std::string> gold;
    std::vector<std::pair<std::string, std::string>> others;  // (title, text)
  };
  std::vector<Question> qs;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto where = [&] { return path + ":" + std::to_string(line_no); };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      fail(where(), ": not JSON (", e.what(), ")");
    }
    Question q;
    try {
      q.question = j.at("question").get<std::string>();
      q.answers = j.at("answers").get<std::vector<std::string>>();
      bool have_gold = false;
      for (const auto& c : j.at("ctxs")) {
        const std::pair<std::string, std::string> doc{c.value("title", std::string()),
                                                      c.at("text").get<std::string>()};
        const bool gold = c.value("isgold", false) ||
                          (!c.contains("isgold") && c.value("hasanswer", false));
        if (gold && !have_gold) {
          q.gold = doc;
          have_gold = true;
        } else {
          q.others.push_back(doc);
        }
      }
      if (!have_gold) fail(where(), ": no context has isgold (or hasanswer) true");
    } catch (const nlohmann::json::exception& e) {
      fail(where(), ": expected question, answers and ctxs[].text (", e.what(), ")");
    }
    if (q.answers.empty()) fail(where(), ": answers is empty");
    if (static_cast<int64_t>(q.others.size()) < o.documents - 1)
      fail(where(), ": ", q.others.size() + 1, " contexts, fewer than --mdqa-documents ",
           o.documents);
    qs.push_back(std::move(q));
  }
  if (qs.empty()) fail("--mdqa-jsonl: ", path, " holds no question");
  const int64_t n_choices = o.candidates > 0 ? o.candidates : o.documents;
  std::vector<ChoiceItem> items;
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(qs.size()), o.samples);
  for (int64_t qi = 0; qi < n; ++qi) {
    const Question& q = qs[static_cast<size_t>(qi)];
    EvalRng rng(o.seed, static_cast<uint64_t>(qi));
    // Distractor answers: answers[0] of other questions, distinct from the gold one.
    std::vector<std::string> choices{" " + q.answers[0]};
    for (int64_t tries = 0;
         static_cast<int64_t>(choices.size()) < n_choices && tries < 100 * n_choices; ++tries) {
      const std::string c = " " + qs[static_cast<size_t>(rng.below(qs.size()))].answers[0];
      if (std::find(choices.begin(), choices.end(), c) == choices.end()) choices.push_back(c);
    }
    if (static_cast<int64_t>(choices.size()) < 2)
      fail("--mdqa-jsonl: ", path, " needs questions with different answers for distractors");
    for (int64_t i = static_cast<int64_t>(choices.size()) - 1; i > 0; --i)
      std::swap(choices[i], choices[rng.below(i + 1)]);
    const int gold = static_cast<int>(std::find(choices.begin(), choices.end(), " " + q.answers[0]) -
                                      choices.begin());
    for (int64_t p = 1; p <= o.documents; ++p) {
      std::vector<std::string> docs;
      int64_t other = 0;
      for (int64_t i = 0; i < o.documents; ++i) {
        const auto& d = i == p - 1 ? q.gold : q.others[static_cast<size_t>(other++)];
        docs.push_back(mdqa_document(i + 1, d.first, d.second));
      }
      ChoiceItem item;
      item.id = "mdqa-q" + std::to_string(qi) + "-p" + std::to_string(p);
      item.context = mdqa_prompt(docs, q.question);
      item.choices = choices;
      item.gold = gold;
      item.answers = q.answers;
      item.meta = {{"position", p}, {"documents", o.documents}, {"question", qi},
                   {"gold_document", docs[static_cast<size_t>(p - 1)]}};
      items.push_back(std::move(item));
    }
  }
  return items;
}

}  // namespace meap
