#include "data/hf/pre_tokenizer.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "data/hf/regex.hpp"
#include "data/hf/utf8.hpp"
#include "data/hf/whitespace.hpp"
#include "meap/core/error.hpp"

namespace meap::hf {

using nlohmann::json;

namespace {

// What happens to the matches of a Split pattern (the tokenizers library's
// SplitDelimiterBehavior).
enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct Span {
  size_t begin, end;
  bool match;
};

// The text cut into alternating non-match / match spans covering all of it.
template <class FindMatches>
std::vector<Span> spans_of(std::string_view text, bool invert, FindMatches find) {
  std::vector<Span> spans;
  if (text.empty()) return {{0, 0, false}};
  size_t prev = 0;
  find([&](size_t b, size_t e) {
    if (b != prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  });
  if (prev != text.size()) spans.push_back({prev, text.size(), invert});
  return spans;
}

// Applies `behavior` to the spans; appends the kept, non-empty pieces.
void emit(std::string_view text, const std::vector<Span>& spans, Behavior behavior,
          std::vector<std::string>& out) {
  std::vector<std::pair<size_t, size_t>> pieces;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::isolated:
      for (const Span& s : spans) pieces.emplace_back(s.begin, s.end);
      break;
    case Behavior::removed:
      for (const Span& s : spans)
        if (!s.match) pieces.emplace_back(s.begin, s.end);
      break;
    case Behavior::contiguous:
      for (const Span& s : spans) {
        if (s.match == previous_match && !pieces.empty())
          pieces.back().second = s.end;
        else
          pieces.emplace_back(s.begin, s.end);
        previous_match = s.match;
      }
      break;
    case Behavior::merged_with_previous:
      for (const Span& s : spans) {
        if (s.match && !previous_match && !pieces.empty())
          pieces.back().second = s.end;
        else
          pieces.emplace_back(s.begin, s.end);
        previous_match = s.match;
      }
      break;
    case Behavior::merged_with_next:
      for (size_t i = spans.size(); i-- > 0;) {
        const Span& s = spans[i];
        if (s.match && !previous_match && !pieces.empty())
          pieces.back().first = s.begin;
        else
          pieces.emplace_back(s.begin, s.end);
        previous_match = s.match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  for (const auto& [b, e] : pieces)
    if (e > b) out.emplace_back(text.substr(b, e - b));
}

Behavior parse_behavior(const json& spec, const std::string& what) {
  const std::string b = spec.contains("behavior") && spec["behavior"].is_string()
                            ? spec["behavior"].get<std::string>()
                            : "";
  if (b == "Removed") return Behavior::removed;
  if (b == "Isolated") return Behavior::isolated;
  if (b == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (b == "MergedWithNext") return Behavior::merged_with_next;
  if (b == "Contiguous") return Behavior::contiguous;
  fail(what, ": a Split needs \"behavior\" Removed, Isolated, MergedWithPrevious, "
       "MergedWithNext or Contiguous, got '", b, "'");
}

}  // namespace

struct PreTokenizer::Step {
  enum class Type { split_regex, split_string, digits, byte_level } type;
  std::unique_ptr<Regex> regex;  // split_regex; byte_level with use_regex
  std::string literal;           // split_string
  Behavior behavior = Behavior::isolated;
  bool invert = false;
  bool individual_digits = false;  // digits
  bool add_prefix_space = false;   // byte_level

  void apply(std::string_view text, std::vector<std::string>& out) const {
    switch (type) {
      case Type::split_regex:
        emit(text, spans_of(text, invert, [&](auto on) { regex->for_each_match(text, on); }),
             behavior, out);
        break;
      case Type::split_string:
        emit(text,
             spans_of(text, invert,
                      [&](auto on) {
                        for (size_t p = 0; (p = text.find(literal, p)) != std::string_view::npos;
                             p += literal.size())
                          on(p, p + literal.size());
                      }),
             behavior, out);
        break;
      case Type::digits: {
        // Every numeric character (Rust's char::is_numeric: Nd, Nl, No) is a match of its
        // own; Contiguous then joins runs of them.
        auto find = [&](auto on) {
          for (size_t i = 0; i < text.size();) {
            const size_t n = std::max<size_t>(1, utf8_sequence_length(text, i));
            if (is_numeric(utf8_code_point(text, i, n))) on(i, i + n);
            i += n;
          }
        };
        emit(text, spans_of(text, false, find),
             individual_digits ? Behavior::isolated : Behavior::contiguous, out);
        break;
      }
      case Type::byte_level: {
        std::string prefixed;
        if (add_prefix_space && (text.empty() || text[0] != ' ')) {
          prefixed = " ";
          prefixed.append(text);
          text = prefixed;
        }
        if (regex)
          emit(text, spans_of(text, false, [&](auto on) { regex->for_each_match(text, on); }),
               Behavior::isolated, out);
        else if (!text.empty())
          out.emplace_back(text);
        break;
      }
    }
  }
};

PreTokenizer::PreTokenizer(const json& spec, const std::string& what) {
  add(spec, what);
  if (steps_.empty() || steps_.back()->type != Step::Type::byte_level)
    fail(what, ": meap reads byte-level BPE tokenizers only, and this pre_tokenizer has no "
         "ByteLevel step (a SentencePiece-style tokenizer.json comes with a tokenizer.model: "
         "use that)");
}

PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::add(const json& spec, const std::string& what) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    fail(what, ": a pre_tokenizer must be an object with a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  auto step = std::make_unique<Step>();
  if (type == "Sequence") {
    if (!spec.contains("pretokenizers") || !spec["pretokenizers"].is_array())
      fail(what, ": a Sequence pre_tokenizer needs a \"pretokenizers\" list");
    const json& list = spec["pretokenizers"];
    for (size_t i = 0; i < list.size(); ++i)
      add(list[i], str_cat(what, ".pretokenizers[", i, "]"));
    return;
  }
  if (!steps_.empty() && steps_.back()->type == Step::Type::byte_level)
    fail(what, ": a ", type, " step after ByteLevel is not supported (it would see the "
         "byte-level alphabet instead of text)");
  if (type == "Split") {
    const json& p = spec.contains("pattern") ? spec["pattern"] : json();
    if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) {
      step->type = Step::Type::split_regex;
      step->regex = std::make_unique<Regex>(p["Regex"].get<std::string>(), what + ".pattern");
    } else if (p.is_object() && p.contains("String") && p["String"].is_string()) {
      step->type = Step::Type::split_string;
      step->literal = p["String"].get<std::string>();
      if (step->literal.empty()) fail(what, ": a Split's string pattern is empty");
    } else {
      fail(what, ": a Split needs a pattern {\"Regex\": ...} or {\"String\": ...}");
    }
    step->behavior = parse_behavior(spec, what);
    step->invert = spec.value("invert", false);
  } else if (type == "Digits") {
    step->type = Step::Type::digits;
    step->individual_digits = spec.value("individual_digits", false);
  } else if (type == "ByteLevel") {
    step->type = Step::Type::byte_level;
    step->add_prefix_space = spec.value("add_prefix_space", true);
    if (spec.value("use_regex", true))
      step->regex = std::make_unique<Regex>(kGpt2SplitPattern, what + " (GPT-2 pattern)");
  } else {
    fail(what, ": pre_tokenizer type '", type, "' is not supported (meap reads Split, Digits, "
         "ByteLevel and Sequence)");
  }
  steps_.push_back(std::move(step));
}

void PreTokenizer::split(std::string_view text, std::vector<std::string>& pieces) const {
  if (text.empty()) return;
  std::vector<std::string> current{std::string(text)}, next;
  for (const auto& step : steps_) {
    next.clear();
    for (const std::string& piece : current) step->apply(piece, next);
    current.swap(next);
  }
  for (std::string& p : current) pieces.push_back(std::move(p));
}

}  // namespace meap::hf
