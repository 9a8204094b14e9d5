// make_niah_items: needle-in-a-haystack items over a (length x depth) grid.
#include "meap/eval/niah.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "meap/core/error.hpp"
#include "meap/eval/eval_rng.hpp"

namespace meap {

namespace {

constexpr const char* kKeys[] = {"amber", "birch", "cobalt", "delta", "ember", "falcon",
                                 "garnet", "harbor", "indigo", "jasper", "kestrel", "lotus",
                                 "maple", "nectar", "onyx", "pepper", "quartz", "raven",
                                 "saffron", "tundra", "umber", "velvet", "willow", "zephyr"};
constexpr int64_t kNumKeys = sizeof(kKeys) / sizeof(kKeys[0]);

std::string random_value(EvalRng& rng, int64_t digits) {
  std::string v(1, static_cast<char>('1' + rng.below(9)));
  for (int64_t i = 1; i < digits; ++i) v += static_cast<char>('0' + rng.below(10));
  return v;
}

std::string join_list(const std::vector<std::string>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i > 0) s += i + 1 == xs.size() ? " and " : ", ";
    s += xs[i];
  }
  return s;
}

// " text ": a needle as it sits in the haystack, spaces on both sides.
std::string spaced(const std::string& text) {
  std::string s = " ";
  s += text;
  s += ' ';
  return s;
}

// Haystack tokens [begin, end) as text. The document separators (EOS) of the shards decode
// to nothing, so they become line breaks: documents stay apart in the text.
std::string haystack_text(const TextCodec& codec, const std::vector<int32_t>& hay, int64_t begin,
                          int64_t end) {
  std::string text;
  std::vector<int32_t> run;
  for (int64_t i = begin; i < end; ++i) {
    if (hay[static_cast<size_t>(i)] == codec.eos_id()) {
      text += codec.decode(run) + "\n";
      run.clear();
    } else {
      run.push_back(hay[static_cast<size_t>(i)]);
    }
  }
  return text + codec.decode(run);
}

// The question ending the context: about keys[0], or about every key in order.
std::string niah_question(const std::vector<std::string>& keys, bool ask_all) {
  if (ask_all)
    return " What are the special magic numbers for " + join_list(keys) +
           "? The special magic numbers for " + join_list(keys) + " are";
  return " What is the special magic number for " + keys[0] + "? The special magic number for " +
         keys[0] + " is";
}

}  // namespace

int64_t niah_min_length(const TextCodec& codec, const NiahOptions& o) {
  // The needles, question and answer of the worst case: the keys whose needles encode
  // longest, values of o.digits digits; then 16 haystack tokens and the seam slack.
  const std::string value(static_cast<size_t>(std::max<int64_t>(o.digits, 1)), '7');
  std::vector<std::pair<int64_t, std::string>> by_length;
  for (const char* key : kKeys)
    by_length.emplace_back(
        static_cast<int64_t>(codec.encode(spaced(niah_needle(key, value))).size()), key);
  std::sort(by_length.rbegin(), by_length.rend());
  const int64_t k = std::clamp<int64_t>(o.needles, 1, kNumKeys);
  std::vector<std::string> keys, values;
  int64_t fixed = 1;
  for (int64_t n = 0; n < k; ++n) {
    fixed += by_length[static_cast<size_t>(n)].first;
    keys.push_back(by_length[static_cast<size_t>(n)].second);
    values.push_back(value);
  }
  int64_t question = 0;
  for (const auto& [len, key] : by_length)  // ask one: the longest question of any key
    question = std::max<int64_t>(question, static_cast<int64_t>(codec.encode(niah_question({key}, false)).size()));
  if (o.ask_all) question = static_cast<int64_t>(codec.encode(niah_question(keys, true)).size());
  fixed += question + static_cast<int64_t>(
                          codec.encode(" " + (o.ask_all ? join_list(values) : value)).size());
  return fixed + 2 + 16;
}

std::string niah_needle(const std::string& key, const std::string& value) {
  return "The special magic number for " + key + " is " + value + ".";
}

int64_t find_tokens(const std::vector<int32_t>& tokens, const std::vector<int32_t>& needle,
                    int64_t from) {
  if (needle.empty()) return -1;
  const auto it = std::search(tokens.begin() + std::min<int64_t>(from, tokens.size()),
                              tokens.end(), needle.begin(), needle.end());
  return it == tokens.end() ? -1 : static_cast<int64_t>(it - tokens.begin());
}

std::vector<ChoiceItem> make_niah_items(const std::vector<int32_t>& haystack,
                                        const TextCodec& codec, const NiahOptions& o) {
  if (o.lengths.empty()) fail("--niah-lengths is empty");
  if (o.depths.empty()) fail("--niah-depths is empty");
  for (double d : o.depths)
    if (!(d >= 0 && d <= 1)) fail("--niah-depths: ", d, " is not in [0, 1]");
  if (o.samples < 1) fail("--niah-samples must be at least 1");
  if (o.needles < 1 || o.needles > kNumKeys)
    fail("--niah-needles must be in [1, ", kNumKeys, "], got ", o.needles);
  if (o.candidates < 2) fail("--niah-candidates must be at least 2");
  if (o.digits < 2 || o.digits > 18) fail("--niah-digits must be in [2, 18]");

  std::vector<ChoiceItem> items;
  uint64_t stream = 0;
  for (int64_t length : o.lengths) {
    for (double depth : o.depths) {
      for (int64_t s = 0; s < o.samples; ++s) {
        EvalRng rng(o.seed, stream++);
        // Distinct keys and values for the needles; needle 0 is the one asked about.
        std::vector<int64_t> key_ids(kNumKeys);
        std::iota(key_ids.begin(), key_ids.end(), int64_t{0});
        std::vector<std::string> keys, values;
        for (int64_t n = 0; n < o.needles; ++n) {
          std::swap(key_ids[n], key_ids[n + rng.below(kNumKeys - n)]);
          keys.push_back(kKeys[key_ids[n]]);
          std::string v;
          do v = random_value(rng, o.digits);
          while (std::find(values.begin(), values.end(), v) != values.end());
          values.push_back(v);
        }
        const std::string question = niah_question(keys, o.ask_all);
        const std::string gold = " " + (o.ask_all ? join_list(values) : values[0]);
        // Candidates: gold, the other needles' values (or orders), then random values.
        std::vector<std::string> choices{gold};
        const auto add = [&](const std::string& value) {  // a candidate, after a space
          std::string c = " ";
          c += value;
          if (std::find(choices.begin(), choices.end(), c) == choices.end()) choices.push_back(c);
        };
        for (int64_t n = 1; n < o.needles && static_cast<int64_t>(choices.size()) < o.candidates;
             ++n) {
          if (o.ask_all) {
            std::vector<std::string> swapped = values;
            std::swap(swapped[0], swapped[n]);
            add(join_list(swapped));
          } else {
            add(values[n]);
          }
        }
        while (static_cast<int64_t>(choices.size()) < o.candidates) {
          if (o.ask_all) {
            std::vector<std::string> other;
            for (int64_t n = 0; n < o.needles; ++n) other.push_back(random_value(rng, o.digits));
            add(join_list(other));
          } else {
            add(random_value(rng, o.digits));
          }
        }
        // Shuffle so the gold one's index says nothing.
        for (int64_t i = o.candidates - 1; i > 0; --i)
          std::swap(choices[i], choices[rng.below(i + 1)]);
        const int gold_index =
            static_cast<int>(std::find(choices.begin(), choices.end(), gold) - choices.begin());

        // Haystack budget: the target length less the start token, needles, question and
        // the gold answer (context + answer must fit the length).
        std::vector<std::string> needle_texts;
        int64_t fixed = 1 + static_cast<int64_t>(codec.encode(question).size()) +
                        static_cast<int64_t>(codec.encode(gold).size());
        for (int64_t n = 0; n < o.needles; ++n) {
          needle_texts.push_back(niah_needle(keys[n], values[n]));
          fixed += static_cast<int64_t>(codec.encode(spaced(needle_texts.back())).size());
        }
        const int64_t H = length - fixed - 2;  // 2: slack for merges at the seams
        if (H < 4)
          fail("--niah-lengths: ", length, " tokens leave no room for a haystack (the needles, "
               "question and answer take ", fixed, "); use longer lengths or fewer needles");
        if (static_cast<int64_t>(haystack.size()) < H + 1)
          fail("the NIAH haystack text has ", haystack.size(), " tokens, fewer than the ", H,
               " a length-", length, " item needs (--niah-haystack)");
        const int64_t offset = rng.below(static_cast<int64_t>(haystack.size()) - H + 1);
        const std::vector<int32_t> hay(haystack.begin() + offset, haystack.begin() + offset + H);
        // Insertion points in haystack tokens: needle 0 at the grid depth, others random.
        std::vector<std::pair<int64_t, int64_t>> at;  // (token index, needle)
        at.emplace_back(static_cast<int64_t>(std::llround(depth * static_cast<double>(H))), 0);
        for (int64_t n = 1; n < o.needles; ++n) at.emplace_back(rng.below(H + 1), n);
        std::stable_sort(at.begin(), at.end());
        std::string context;
        int64_t prev = 0;
        for (const auto& [pos, n] : at) {
          context += haystack_text(codec, hay, prev, pos);
          context += spaced(needle_texts[n]);
          prev = pos;
        }
        context += haystack_text(codec, hay, prev, static_cast<int64_t>(hay.size()));
        context += question;

        ChoiceItem item;
        item.id = "niah-L" + std::to_string(length) + "-d" + std::to_string(depth).substr(0, 4) +
                  "-s" + std::to_string(s);
        item.context = context;
        item.choices = choices;
        item.gold = gold_index;
        item.answers = {gold.substr(1)};
        // Where the asked needle really is: its ids in the encoded context.
        const EncodedItem enc = encode_item(item, codec);
        const std::vector<int32_t> needle_ids = codec.encode(" " + needle_texts[0]);
        const int64_t found = find_tokens(enc.context, needle_ids);
        const int64_t question_start =
            static_cast<int64_t>(enc.context.size()) -
            static_cast<int64_t>(codec.encode(question).size());
        item.meta = {{"length", length},
                     {"tokens", static_cast<int64_t>(enc.context.size())},
                     {"depth", depth},
                     {"needles", o.needles},
                     {"needle_token", found},
                     {"needle_tokens", static_cast<int64_t>(needle_ids.size())},
                     {"haystack_tokens", H},
                     {"question_token", question_start},
                     {"key", keys[0]},
                     {"value", values[0]}};
        // depth_actual: haystack tokens before the asked needle over all haystack tokens,
        // counted in the encoded context (start token and other needles left out).
        if (found >= 0) {
          int64_t before = found - 1;  // the start token
          for (const auto& [pos, n] : at) {
            if (n == 0) break;  // needles placed before the asked one
            before -= static_cast<int64_t>(codec.encode(spaced(needle_texts[n])).size());
          }
          item.meta["depth_actual"] =
              std::clamp(static_cast<double>(before) / static_cast<double>(H), 0.0, 1.0);
        } else {
          item.meta["depth_actual"] = nullptr;
        }
        items.push_back(std::move(item));
      }
    }
  }
  return items;
}

}  // namespace meap
