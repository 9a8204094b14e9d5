// The generic YAML config reader behind ConfigSchema: dotted keys, did-you-mean, strict
// scalar types, overrides, and YAML out again. No key of any layer is named here.
#include "meap/core/config_schema.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <sstream>

#include "meap/core/error.hpp"

namespace meap {

namespace {

std::string_view parent_of(std::string_view dotted) {
  auto dot = dotted.rfind('.');
  return dot == std::string_view::npos ? std::string_view{} : dotted.substr(0, dot);
}

std::string join(std::string_view prefix, std::string_view leaf) {
  return prefix.empty() ? std::string(leaf) : str_cat(prefix, ".", leaf);
}

// Levenshtein distance with adjacent transpositions ("modle" -> "model" is one edit),
// ignoring case.
size_t edit_distance(std::string_view a, std::string_view b) {
  auto same = [&](size_t i, size_t j) {
    return std::tolower(static_cast<unsigned char>(a[i])) ==
           std::tolower(static_cast<unsigned char>(b[j]));
  };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (same(i - 1, j - 1) ? 0 : 1)});
      if (i > 1 && j > 1 && same(i - 1, j - 2) && same(i - 2, j - 1))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// The closest candidate, if close enough to be a typo: up to 2 edits, fewer for short
// names so that "xx" does not suggest "lr".
std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    size_t allowed = std::clamp<size_t>(c.size() / 3, 1, 2);
    if (d <= allowed && d < best_d) best = c, best_d = d;
  }
  return best;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

struct Value {
  YAML::Node node;
  std::string where;  // "tiny.yaml (line 12)" or "override 'optim.lr=1e-3'"
};

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  if (node.Tag() == "!") return str_cat("the quoted string '", node.Scalar(), "'");
  return str_cat("'", node.Scalar(), "'");
}

[[noreturn]] void fail_type(std::string_view key, std::string_view expected, const Value& v) {
  fail(key, " must be ", expected, ", got ", describe(v.node), " (", v.where, ")");
}

// A scalar written without quotes: only these are numbers and booleans.
bool plain_scalar(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "?"; }

template <class T>
bool parse_number(const std::string& s, T& out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

// Integers may be written 1000 or 1e3, never 1.5.
int64_t read_int(std::string_view key, const Value& v) {
  if (!plain_scalar(v.node)) fail_type(key, "an integer", v);
  int64_t i = 0;
  if (parse_number(v.node.Scalar(), i)) return i;
  double d = 0;
  if (parse_number(v.node.Scalar(), d) && std::isfinite(d) && d == std::floor(d) &&
      std::abs(d) < 9.2e18)
    return static_cast<int64_t>(d);
  fail_type(key, "an integer", v);
}

double read_double(std::string_view key, const Value& v) {
  double d = 0;
  if (!plain_scalar(v.node) || !parse_number(v.node.Scalar(), d) || !std::isfinite(d))
    fail_type(key, "a finite number", v);
  return d;
}

void read_value(std::string_view key, ConfigSlot slot, const Value& v) {
  std::visit(
      [&](auto p) {
        using T = decltype(p);
        if constexpr (std::is_same_v<T, int64_t*>) {
          *p = read_int(key, v);
        } else if constexpr (std::is_same_v<T, uint64_t*>) {
          if (!plain_scalar(v.node) || !parse_number(v.node.Scalar(), *p))
            fail_type(key, "a non-negative integer", v);
        } else if constexpr (std::is_same_v<T, double*>) {
          *p = read_double(key, v);
        } else if constexpr (std::is_same_v<T, bool*>) {
          if (!plain_scalar(v.node) || !YAML::convert<bool>::decode(v.node, *p))
            fail_type(key, "true or false", v);
        } else if constexpr (std::is_same_v<T, std::string*>) {
          if (v.node.IsNull()) *p = "";  // "val:" with nothing after it: no such data
          else if (v.node.IsScalar()) *p = v.node.Scalar();
          else fail_type(key, "a string", v);
        } else if constexpr (std::is_same_v<T, ConfigChoice>) {
          std::string choices;
          for (auto n : p.names) choices += (choices.empty() ? "" : ", ") + std::string(n);
          const std::string rule = str_cat("one of ", choices);
          if (!v.node.IsScalar()) fail_type(key, rule, v);
          const auto it = std::find(p.names.begin(), p.names.end(), v.node.Scalar());
          if (it == p.names.end()) fail_type(key, rule, v);
          p.set(p.value, static_cast<int>(it - p.names.begin()));
        } else {
          if (!v.node.IsSequence() || v.node.size() != 2)
            fail_type(key, "a list of two numbers like [0.9, 0.95]", v);
          std::string name(key);
          *p.first = read_double(name + "[0]", Value{v.node[0], v.where});
          *p.second = read_double(name + "[1]", Value{v.node[1], v.where});
        }
      },
      slot);
}

std::string at_line(const std::string& source, const YAML::Node& node) {
  return str_cat(source, " (line ", node.Mark().line + 1, ")");
}

// Shortest text that reads back as the same double, always with a '.', so that YAML 1.1
// readers (PyYAML) also see a float.
std::string format_double(double d) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  MEAP_CHECK(ec == std::errc{});
  std::string s(buf, end);
  if (s.find_first_of(".n") == std::string::npos) {  // n: inf/nan, never valid here
    auto e = s.find('e');
    s.insert(e == std::string::npos ? s.size() : e, ".0");
  }
  return s;
}

std::string value_text(ConfigSlot slot) {
  return std::visit(
      [](auto p) -> std::string {
        using T = decltype(p);
        if constexpr (std::is_same_v<T, double*>) return format_double(*p);
        else if constexpr (std::is_same_v<T, std::string*>) return *p;
        else if constexpr (std::is_same_v<T, bool*>) return *p ? "true" : "false";
        else if constexpr (std::is_same_v<T, ConfigChoice>)
          return std::string(p.names[static_cast<size_t>(p.get(p.value))]);
        else if constexpr (std::is_same_v<T, ConfigPair>)
          return str_cat("[", format_double(*p.first), ", ", format_double(*p.second), "]");
        else return std::to_string(*p);
      },
      slot);
}

}  // namespace

// The schema's key table seen as sections of dotted names.
class ConfigSchemaReader {
 public:
  explicit ConfigSchemaReader(const ConfigSchema& schema) : keys_(schema.keys_) {}

  const ConfigSchema::Key* find(std::string_view name) const {
    for (const auto& k : keys_)
      if (k.name == name) return &k;
    return nullptr;
  }

  bool is_section(std::string_view name) const {
    if (name.empty()) return true;
    for (const auto& k : keys_)
      if (k.name.size() > name.size() && k.name.starts_with(name) && k.name[name.size()] == '.')
        return true;
    return false;
  }

  // Direct children (keys and sub-sections) of a section, in table order; "" is the root.
  std::vector<std::string> children_of(std::string_view section) const {
    std::vector<std::string> out;
    for (const auto& k : keys_) {
      std::string_view rest = k.name;
      if (!section.empty()) {
        if (!(rest.size() > section.size() && rest.starts_with(section) &&
              rest[section.size()] == '.'))
          continue;
        rest.remove_prefix(section.size() + 1);
      }
      std::string child(rest.substr(0, rest.find('.')));
      if (std::find(out.begin(), out.end(), child) == out.end()) out.push_back(child);
    }
    return out;
  }

  // "unknown key 'optim.lrr' in tiny.yaml (line 3); did you mean 'optim.lr'?"
  [[noreturn]] void fail_unknown(const std::string& dotted, const std::string& where) const {
    // The deepest known section the key claims to be in; its children are the candidates.
    std::string section(parent_of(dotted));
    while (!is_section(section)) section = std::string(parent_of(section));
    std::string rest = section.empty() ? dotted : dotted.substr(section.size() + 1);
    const char* what = dotted.find('.') == std::string::npos ? "section" : "key";
    auto children = children_of(section);
    std::string guess = closest(rest.substr(0, rest.find('.')), children);
    if (!guess.empty()) {
      std::string suggestion = join(section, guess);
      if (rest.find('.') != std::string::npos && is_section(suggestion))
        suggestion += rest.substr(rest.find('.'));
      fail("unknown ", what, " '", dotted, "' in ", where, "; did you mean '", suggestion, "'?");
    }
    // A misspelt section in an override ("optm.lr"): compare whole dotted names.
    std::vector<std::string> all;
    if (section.empty())
      for (const auto& k : keys_) all.emplace_back(k.name);
    guess = closest(dotted, all);
    if (!guess.empty())
      fail("unknown ", what, " '", dotted, "' in ", where, "; did you mean '", guess, "'?");
    fail("unknown ", what, " '", dotted, "' in ", where, "; known ",
         section.empty() ? "sections" : str_cat("keys of '", section, "'"), ": ",
         joined(children));
  }

  // Flattens the YAML mapping of `section` into dotted keys, refusing unknown ones.
  void collect(const YAML::Node& map, const std::string& section, const std::string& source,
               std::map<std::string, Value>& out) const {
    if (!map.IsMap()) {
      if (section.empty())
        fail(source, ": a config must be a YAML mapping of sections (",
             joined(children_of("")), "), got ", describe(map));
      fail("'", section, "' in ", at_line(source, map), " must be a mapping of keys, got ",
           describe(map));
    }
    if (map.Tag() != "?" && !map.Tag().empty() && map.Tag() != "tag:yaml.org,2002:map")
      fail(at_line(source, map), ": YAML tags (", map.Tag(), ") are not used in meap configs");
    for (const auto& kv : map) {
      if (!plain_scalar(kv.first) && !(kv.first.IsScalar() && kv.first.Tag() == "!"))
        fail("config keys must be plain names (", at_line(source, kv.first), ")");
      const std::string& tag = kv.second.Tag();
      if (!tag.empty() && tag != "?" && tag != "!" && tag != "tag:yaml.org,2002:map" &&
          tag != "tag:yaml.org,2002:seq")
        fail(at_line(source, kv.second), ": YAML tags (", tag,
             ") are not used in meap configs; write the plain value");
      std::string dotted = join(section, kv.first.Scalar());
      if (find(dotted)) {
        if (out.count(dotted))
          fail("key '", dotted, "' appears twice in ", source, " (lines ",
               out[dotted].node.Mark().line + 1, " and ", kv.second.Mark().line + 1, ")");
        out[dotted] = Value{kv.second, at_line(source, kv.second)};
      } else if (is_section(dotted)) {
        // "meap:" with nothing under it leaves the defaults.
        if (!kv.second.IsNull()) collect(kv.second, dotted, source, out);
      } else {
        fail_unknown(dotted, at_line(source, kv.first));
      }
    }
  }

  void apply_override(const std::string& text, const std::string& source,
                      std::map<std::string, Value>& out) const {
    auto eq = text.find('=');
    if (eq == std::string::npos)
      fail("override '", text, "' has no '='; write key=value, e.g. optim.lr=1e-3 or ",
           "optim.betas=[0.9,0.99]");
    std::string key = text.substr(0, eq);
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
    std::string where = str_cat("override '", text, "'");
    if (!find(key)) {
      if (is_section(key))
        fail(where, " names the section '", key, "'; override one key, e.g. ", key, ".",
             children_of(key).front(), "=...");
      fail_unknown(key, str_cat("the overrides of ", source));
    }
    YAML::Node node;
    try {
      node = YAML::Load(text.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      fail(where, ": the value is not valid YAML: ", e.msg);
    }
    out[key] = Value{node, where};
  }

  void emit_section(YAML::Emitter& out, void* root, const std::string& section) const {
    out << YAML::BeginMap;
    for (const auto& child : children_of(section)) {
      std::string dotted = join(section, child);
      out << YAML::Key << child << YAML::Value;
      if (const auto* key = find(dotted)) emit_value(out, key->slot(root));
      else emit_section(out, root, dotted);
    }
    out << YAML::EndMap;
  }

 private:
  const std::vector<ConfigSchema::Key>& keys_;

  static void emit_value(YAML::Emitter& out, ConfigSlot slot) {
    if (auto* p = std::get_if<std::string*>(&slot)) {
      out << YAML::DoubleQuoted << **p;  // a name like "true" or "" stays a string
    } else if (auto* pair = std::get_if<ConfigPair>(&slot)) {
      out << YAML::Flow << YAML::BeginSeq << format_double(*pair->first)
          << format_double(*pair->second) << YAML::EndSeq;
    } else {
      out << value_text(slot);
    }
  }
};

namespace {

// Counts parser events and documents, and stops the parse (by throwing) past a budget.
class BoundedYamlCounter : public YAML::EventHandler {
 public:
  explicit BoundedYamlCounter(uint64_t budget) : budget_(budget) {}
  struct OverBudget {};
  void OnDocumentStart(const YAML::Mark&) override { tick(); }
  void OnDocumentEnd() override { tick(); }
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { tick(); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { tick(); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override { tick(); }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override { tick(); }
  void OnSequenceEnd() override { tick(); }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override { tick(); }
  void OnMapEnd() override { tick(); }

 private:
  void tick() {
    if (++events_ > budget_) throw OverBudget{};
  }
  uint64_t budget_, events_ = 0;
};

}  // namespace

// The number of YAML documents in `text`, counting stops at `at_most`; meap::Error for a
// syntax error or a parse of more than `budget` events.
static int count_yaml_documents(const std::string& text, int at_most, uint64_t budget,
                                const std::string& source) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  BoundedYamlCounter counter(budget);
  int documents = 0;
  try {
    while (documents < at_most && parser.HandleNextDocument(counter)) ++documents;
  } catch (const YAML::ParserException& e) {
    fail(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg);
  } catch (const BoundedYamlCounter::OverBudget&) {
    fail(source, " is not a config: its YAML parse went past ", budget, " events for ",
         text.size(), " bytes");
  }
  return documents;
}

void ConfigSchema::read_erased(void* root, const std::string& yaml_text,
                               const std::vector<std::string>& overrides,
                               const std::string& source) const {
  const ConfigSchemaReader reader(*this);
  // Counted first, by events, with a budget: yaml-cpp 0.7's LoadAll never returns on some
  // garbage (a 160-byte random file grew it past 2 GB, tests/fault), and a config is one
  // document of at most a few events per byte.
  const uint64_t event_budget = 1000 + 8 * static_cast<uint64_t>(yaml_text.size());
  constexpr int kCounted = 100;
  const int documents = count_yaml_documents(yaml_text, kCounted, event_budget, source);
  if (documents > 1)
    fail(source, " holds ", documents, documents == kCounted ? " or more" : "",
         " YAML documents (separated by '---'); a config is one document");
  YAML::Node doc;
  try {
    if (documents == 1) doc = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    fail(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg);
  }
  std::map<std::string, Value> values;
  if (doc.IsDefined() && !doc.IsNull()) reader.collect(doc, "", source, values);
  for (const auto& o : overrides) reader.apply_override(o, source, values);
  for (const Key& key : keys_)  // table order, so the first error is the earliest key
    if (auto it = values.find(key.name); it != values.end())
      read_value(key.name, key.slot(root), it->second);
}

std::string ConfigSchema::to_yaml_erased(void* root) const {
  YAML::Emitter out;
  ConfigSchemaReader(*this).emit_section(out, root, "");
  MEAP_CHECK(out.good(), out.GetLastError());
  return str_cat(out.c_str(), "\n");
}

bool ConfigSchema::equal_erased(void* a, void* b) const {
  return differences_erased(a, b).empty();
}

std::vector<std::string> ConfigSchema::differences_erased(void* a, void* b) const {
  std::vector<std::string> out;
  for (const Key& k : keys_) {
    const std::string x = value_text(k.slot(a)), y = value_text(k.slot(b));
    if (x != y) out.push_back(str_cat(k.name, ": ", x, " -> ", y));
  }
  return out;
}

}  // namespace meap
