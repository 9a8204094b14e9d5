#include "meap/train/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>
#include <variant>

#include "meap/core/error.hpp"

namespace meap {

namespace {

// ---- the schema: one row per YAML key ----------------------------------------------
// A row maps a dotted key to the Config member it fills. The stringized member path is
// the key itself (MEAP_KEY(optim.lr) -> "optim.lr"), so the table cannot drift from the
// structs; optim.betas, two members behind one key, is the only hand-written row.

struct Betas {
  double* beta1;
  double* beta2;
};
using Slot = std::variant<int64_t*, uint64_t*, double*, bool*, std::string*, Betas>;

struct Key {
  std::string_view name;
  Slot (*slot)(Config&);
};

#define MEAP_KEY(path) \
  Key { #path, [](Config& c) -> Slot { return &c.path; } }

const Key kKeys[] = {
    MEAP_KEY(run.name),
    MEAP_KEY(run.out_dir),
    MEAP_KEY(run.seed),
    MEAP_KEY(model.vocab_size),
    MEAP_KEY(model.dim),
    MEAP_KEY(model.n_layers),
    MEAP_KEY(model.n_heads),
    MEAP_KEY(model.n_kv_heads),
    MEAP_KEY(model.ffn_dim),
    MEAP_KEY(model.max_seq_len),
    MEAP_KEY(model.rope_theta),
    MEAP_KEY(model.norm_eps),
    MEAP_KEY(model.tie_embeddings),
    MEAP_KEY(model.init_std),
    MEAP_KEY(data.train),
    MEAP_KEY(data.val),
    MEAP_KEY(data.tokenizer),
    MEAP_KEY(data.seq_len),
    MEAP_KEY(data.meap.mask_ratio),
    MEAP_KEY(data.meap.keep_special_unmasked),
    MEAP_KEY(optim.lr),
    MEAP_KEY(optim.min_lr),
    MEAP_KEY(optim.warmup_steps),
    MEAP_KEY(optim.weight_decay),
    Key{"optim.betas",
        [](Config& c) -> Slot { return Betas{&c.optim.beta1, &c.optim.beta2}; }},
    MEAP_KEY(optim.eps),
    MEAP_KEY(optim.grad_clip),
    MEAP_KEY(train.global_batch_size),
    MEAP_KEY(train.micro_batch_size),
    MEAP_KEY(train.max_steps),
    MEAP_KEY(train.device),
    MEAP_KEY(train.precision),
    MEAP_KEY(train.recompute),
    MEAP_KEY(checkpoint.interval),
    MEAP_KEY(checkpoint.keep_last),
    MEAP_KEY(checkpoint.init_from),
    MEAP_KEY(eval.interval),
    MEAP_KEY(eval.steps),
    MEAP_KEY(log.interval),
    MEAP_KEY(dist.timeout_s),
    MEAP_KEY(dist.zero1),
    MEAP_KEY(dist.bucket_mb),
};

#undef MEAP_KEY

const Key* find_key(std::string_view name) {
  for (const Key& k : kKeys)
    if (k.name == name) return &k;
  return nullptr;
}

std::string_view parent_of(std::string_view dotted) {
  auto dot = dotted.rfind('.');
  return dot == std::string_view::npos ? std::string_view{} : dotted.substr(0, dot);
}

std::string join(std::string_view prefix, std::string_view leaf) {
  return prefix.empty() ? std::string(leaf) : str_cat(prefix, ".", leaf);
}

// Direct children (keys and sub-sections) of a section, in table order; "" is the root.
std::vector<std::string> children_of(std::string_view section) {
  std::vector<std::string> out;
  for (const Key& k : kKeys) {
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

bool is_section(std::string_view name) {
  if (name.empty()) return true;
  for (const Key& k : kKeys)
    if (k.name.size() > name.size() && k.name.starts_with(name) && k.name[name.size()] == '.')
      return true;
  return false;
}

// ---- did-you-mean --------------------------------------------------------------------

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

// "unknown key 'optim.lrr' in tiny.yaml (line 3); did you mean 'optim.lr'?"
[[noreturn]] void fail_unknown(const std::string& dotted, const std::string& where) {
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
    for (const Key& k : kKeys) all.emplace_back(k.name);
  guess = closest(dotted, all);
  if (!guess.empty())
    fail("unknown ", what, " '", dotted, "' in ", where, "; did you mean '", guess, "'?");
  fail("unknown ", what, " '", dotted, "' in ", where, "; known ",
       section.empty() ? "sections" : str_cat("keys of '", section, "'"), ": ", joined(children));
}

// ---- reading values ------------------------------------------------------------------

struct Value {
  YAML::Node node;
  std::string where;  // "tiny.yaml (line 12)" or "override 'optim.lr=1e-3'"
};

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return str_cat("'", node.Scalar(), "'");
}

[[noreturn]] void fail_type(std::string_view key, const char* expected, const Value& v) {
  fail(key, " must be ", expected, ", got ", describe(v.node), " (", v.where, ")");
}

template <class T>
bool parse_number(const std::string& s, T& out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

// Integers may be written 1000 or 1e3, never 1.5.
int64_t read_int(std::string_view key, const Value& v) {
  if (!v.node.IsScalar()) fail_type(key, "an integer", v);
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
  if (!v.node.IsScalar() || !parse_number(v.node.Scalar(), d) || !std::isfinite(d))
    fail_type(key, "a finite number", v);
  return d;
}

void read_value(const Key& key, Config& config, const Value& v) {
  std::visit(
      [&](auto slot) {
        using T = decltype(slot);
        if constexpr (std::is_same_v<T, int64_t*>) {
          *slot = read_int(key.name, v);
        } else if constexpr (std::is_same_v<T, uint64_t*>) {
          if (!v.node.IsScalar() || !parse_number(v.node.Scalar(), *slot))
            fail_type(key.name, "a non-negative integer", v);
        } else if constexpr (std::is_same_v<T, double*>) {
          *slot = read_double(key.name, v);
        } else if constexpr (std::is_same_v<T, bool*>) {
          if (!v.node.IsScalar() || !YAML::convert<bool>::decode(v.node, *slot))
            fail_type(key.name, "true or false", v);
        } else if constexpr (std::is_same_v<T, std::string*>) {
          if (v.node.IsNull()) *slot = "";  // "val:" with nothing after it: no such data
          else if (v.node.IsScalar()) *slot = v.node.Scalar();
          else fail_type(key.name, "a string", v);
        } else {
          if (!v.node.IsSequence() || v.node.size() != 2)
            fail_type(key.name, "a list of two numbers like [0.9, 0.95]", v);
          std::string name(key.name);
          *slot.beta1 = read_double(name + "[0]", Value{v.node[0], v.where});
          *slot.beta2 = read_double(name + "[1]", Value{v.node[1], v.where});
        }
      },
      key.slot(config));
}

std::string at_line(const std::string& source, const YAML::Node& node) {
  return str_cat(source, " (line ", node.Mark().line + 1, ")");
}

// Flattens the YAML mapping of `section` into dotted keys, refusing unknown ones.
void collect(const YAML::Node& map, const std::string& section, const std::string& source,
             std::map<std::string, Value>& out) {
  if (!map.IsMap()) {
    if (section.empty())
      fail(source, ": a config must be a YAML mapping of sections (run, model, data, ...), got ",
           describe(map));
    fail("'", section, "' in ", at_line(source, map), " must be a mapping of keys, got ",
         describe(map));
  }
  for (const auto& kv : map) {
    if (!kv.first.IsScalar())
      fail("config keys must be plain names (", at_line(source, kv.first), ")");
    std::string dotted = join(section, kv.first.Scalar());
    if (find_key(dotted)) {
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
                    std::map<std::string, Value>& out) {
  auto eq = text.find('=');
  if (eq == std::string::npos)
    fail("override '", text, "' has no '='; write key=value, e.g. optim.lr=1e-3 or ",
         "optim.betas=[0.9,0.99]");
  std::string key = text.substr(0, eq);
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  std::string where = str_cat("override '", text, "'");
  if (!find_key(key)) {
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

void emit_value(YAML::Emitter& out, Slot slot) {
  std::visit(
      [&](auto p) {
        using T = decltype(p);
        if constexpr (std::is_same_v<T, double*>) {
          out << format_double(*p);
        } else if constexpr (std::is_same_v<T, std::string*>) {
          out << YAML::DoubleQuoted << *p;  // a name like "true" or "" stays a string
        } else if constexpr (std::is_same_v<T, bool*>) {
          out << (*p ? "true" : "false");
        } else if constexpr (std::is_same_v<T, Betas>) {
          out << YAML::Flow << YAML::BeginSeq << format_double(*p.beta1)
              << format_double(*p.beta2) << YAML::EndSeq;
        } else {
          out << std::to_string(*p);
        }
      },
      slot);
}

void emit_section(YAML::Emitter& out, Config& config, const std::string& section) {
  out << YAML::BeginMap;
  for (const auto& child : children_of(section)) {
    std::string dotted = join(section, child);
    out << YAML::Key << child << YAML::Value;
    if (const Key* key = find_key(dotted)) emit_value(out, key->slot(config));
    else emit_section(out, config, dotted);
  }
  out << YAML::EndMap;
}

// ---- range checks ----------------------------------------------------------------

void require(bool ok, const std::string& key, const char* rule, const auto& value) {
  if (!ok) fail(key, " must be ", rule, ", got ", value);
}

}  // namespace

bool operator==(const Config& a, const Config& b) {
  Config x = a, y = b;  // the key table hands out mutable pointers
  for (const Key& k : kKeys) {
    bool same = std::visit(
        [&](auto p) {
          auto q = std::get<decltype(p)>(k.slot(y));
          if constexpr (std::is_same_v<decltype(p), Betas>)
            return *p.beta1 == *q.beta1 && *p.beta2 == *q.beta2;
          else
            return *p == *q;
        },
        k.slot(x));
    if (!same) return false;
  }
  return true;
}

Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                    const std::string& source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    fail(source_name, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ",
         e.msg);
  }
  std::map<std::string, Value> values;
  if (!root.IsNull()) collect(root, "", source_name, values);
  for (const auto& o : overrides) apply_override(o, source_name, values);

  Config config;
  for (const Key& key : kKeys)  // table order, so the first error is the earliest key
    if (auto it = values.find(std::string(key.name)); it != values.end())
      read_value(key, config, it->second);
  if (config.model.n_kv_heads == 0) config.model.n_kv_heads = config.model.n_heads;
  try {
    validate_config(config);
  } catch (const Error& e) {
    fail(source_name, overrides.empty() ? "" : " (with overrides)", ": ", e.what());
  }
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open config file '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("cannot read config file '", path, "'");
  return parse_config(text.str(), overrides, path);
}

std::string config_to_yaml(const Config& config) {
  Config copy = config;
  YAML::Emitter out;
  emit_section(out, copy, "");
  MEAP_CHECK(out.good(), out.GetLastError());
  return str_cat(out.c_str(), "\n");
}

DType precision_dtype(const TrainConfig& train, Device device) {
  if (train.precision == "fp32") return DType::f32;
  if (train.precision == "bf16") return DType::bf16;
  MEAP_CHECK(train.precision == "auto", "train.precision '", train.precision, "'");
  return device == Device::cuda ? DType::bf16 : DType::f32;
}

void validate_config(const Config& c, int world_size) {
  MEAP_CHECK(world_size >= 1, "world_size = ", world_size);
  require(!c.run.name.empty(), "run.name", "a non-empty string", "\"\"");
  require(!c.run.out_dir.empty(), "run.out_dir", "a non-empty path", "\"\"");

  c.model.validate();

  require(c.data.seq_len > 0, "data.seq_len", "a positive integer", c.data.seq_len);
  if (c.data.seq_len > c.model.max_seq_len)
    fail("data.seq_len (", c.data.seq_len, ") must not exceed model.max_seq_len (",
         c.model.max_seq_len, "); raise model.max_seq_len or shorten data.seq_len");
  double mr = c.data.meap.mask_ratio;
  require(mr >= 0 && mr < 1, "data.meap.mask_ratio", "in [0, 1) (0 = plain next-token prediction)",
          mr);

  const OptimConfig& o = c.optim;
  require(o.lr > 0, "optim.lr", "positive", o.lr);
  if (!(o.min_lr >= 0 && o.min_lr <= o.lr))
    fail("optim.min_lr must be in [0, optim.lr] = [0, ", o.lr, "], got ", o.min_lr);
  require(o.warmup_steps >= 0, "optim.warmup_steps", ">= 0", o.warmup_steps);
  require(o.weight_decay >= 0, "optim.weight_decay", ">= 0", o.weight_decay);
  require(o.beta1 >= 0 && o.beta1 < 1, "optim.betas[0]", "in [0, 1)", o.beta1);
  require(o.beta2 >= 0 && o.beta2 < 1, "optim.betas[1]", "in [0, 1)", o.beta2);
  require(o.eps > 0, "optim.eps", "positive", o.eps);
  require(o.grad_clip >= 0, "optim.grad_clip", ">= 0 (0 = no clipping)", o.grad_clip);

  const TrainConfig& t = c.train;
  require(t.global_batch_size > 0, "train.global_batch_size", "a positive integer",
          t.global_batch_size);
  require(t.micro_batch_size > 0, "train.micro_batch_size", "a positive integer",
          t.micro_batch_size);
  require(t.max_steps > 0, "train.max_steps", "a positive integer", t.max_steps);
  require(t.device == "auto" || t.device == "cpu" || t.device == "cuda", "train.device",
          "one of auto, cpu, cuda", "'" + t.device + "'");
  require(t.precision == "auto" || t.precision == "fp32" || t.precision == "bf16",
          "train.precision", "one of auto, fp32, bf16", "'" + t.precision + "'");
  if (t.precision == "bf16" && t.device == "cpu")
    fail("train.precision=bf16 needs train.device=cuda: the CPU backend computes in fp32 "
         "only; set train.precision=auto (or fp32) to train on the CPU");
  require(t.recompute == "none" || t.recompute == "mlp" || t.recompute == "attention" ||
              t.recompute == "all",
          "train.recompute", "one of none, mlp, attention, all", "'" + t.recompute + "'");
  // Each optimizer step is world_size ranks x (accumulation steps) x micro-batches.
  if (t.global_batch_size % (t.micro_batch_size * world_size) != 0)
    fail("train.global_batch_size (", t.global_batch_size,
         ") must be divisible by train.micro_batch_size (", t.micro_batch_size,
         ") x world size (", world_size, ") = ", t.micro_batch_size * world_size);

  require(c.checkpoint.interval > 0, "checkpoint.interval", "a positive integer",
          c.checkpoint.interval);
  require(c.checkpoint.keep_last >= 1, "checkpoint.keep_last", ">= 1", c.checkpoint.keep_last);
  require(c.eval.interval > 0, "eval.interval", "a positive integer", c.eval.interval);
  require(c.eval.steps > 0, "eval.steps", "a positive integer", c.eval.steps);
  require(c.log.interval > 0, "log.interval", "a positive integer", c.log.interval);
  require(c.dist.timeout_s > 0, "dist.timeout_s", "a positive number of seconds",
          c.dist.timeout_s);
  require(c.dist.bucket_mb >= 0, "dist.bucket_mb", ">= 0 (0 = one all-reduce after the backward)",
          c.dist.bucket_mb);
  // The sharded update runs over host buffers (MPI, the CPU backend); NCCL is not built.
  if (c.dist.zero1 && c.train.device == "cuda")
    fail("dist.zero1 is built for the CPU backend only (MPI host buffers); set "
         "dist.zero1=false or train.device=cpu");
}

}  // namespace meap
