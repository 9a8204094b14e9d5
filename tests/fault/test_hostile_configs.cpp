// Hostile configs: every key of configs/tiny.yaml (all of the schema, as config_to_yaml
// writes it) set to each value of a palette of wrong types, quoted numbers, overflowing,
// zero, negative and non-finite sizes, tags, aliases and paths to devices, directories and
// FIFOs; plus whole-document damage (several documents, %YAML 9.9, tags, alias bombs,
// deep nesting, binary, huge files) and hostile command-line overrides. Each case runs
// `meap inspect` (and, for data paths and a sample of values, `meap train` on the micro
// corpus) with a timeout. The promise: no crash (signal, "internal error", exit 3), no
// hang, bounded memory, and every refusal names the key (or, for YAML syntax, the file).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <regex>

#include <yaml-cpp/yaml.h>

#include "fault/fault_fixture.hpp"
#include "meap/train/config.hpp"

using namespace meap_fault;

namespace {

// Peak memory any case may reach: inspect and a one-step micro run need a few tens of MiB
// (ASan's shadow included); the issue's n_layers=2^31 grew to 5.2 GB.
constexpr long kMaxRssKb = 1024 * 1024;
constexpr double kTimeoutS = 30;

// The leaf keys of a YAML mapping, dotted, in document order.
void leaf_keys(const YAML::Node& node, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& kv : node) {
    const std::string key = prefix + kv.first.as<std::string>();
    if (kv.second.IsMap())
      leaf_keys(kv.second, key + ".", out);
    else
      out.push_back(key);
  }
}

// `base` with the value of dotted `key` replaced by the raw YAML text `value`.
std::string with_value(const std::string& base, const std::string& key, const std::string& value) {
  YAML::Node root = YAML::Load(base);
  YAML::Node node = root;
  std::vector<std::string> parts;
  for (size_t at = 0, dot; at <= key.size(); at = dot + 1) {
    dot = key.find('.', at);
    if (dot == std::string::npos) dot = key.size();
    parts.push_back(key.substr(at, dot - at));
  }
  std::vector<YAML::Node> chain = {root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) chain.push_back(chain.back()[parts[i]]);
  chain.back()[parts.back()] = "MUTANTVALUE7f3a";
  YAML::Emitter out;
  out << root;
  std::string text = out.c_str();
  const size_t at = text.find("MUTANTVALUE7f3a");
  REQUIRE(at != std::string::npos);
  // A multi-line value (a block list) needs the key's indentation on every line: use flow.
  return text.replace(at, 15, value) + "\n";
}

struct Case {
  std::string what;                 // for messages
  std::string key;                  // the key a refusal must name ("" for document damage)
  std::vector<std::string> names;   // what a refusal may name instead (the file, a path)
  bool must_refuse = false;         // the issue's "accepted without a word" cases
};

struct Runner {
  fs::path dir;
  Tally tally;
  long worst_rss_kb = 0;
  double slowest_s = 0;

  void run(const Case& c, const std::vector<std::string>& args) {
    const Ran r = run_command(args, dir / "case.log", kTimeoutS);
    worst_rss_kb = std::max(worst_rss_kb, r.max_rss_kb);
    slowest_s = std::max(slowest_s, r.seconds);
    const std::string cmd = args.front();
    const std::string detail = meap::str_cat(cmd, " ", c.what, ": ", r.describe(), ", ",
                                             r.max_rss_kb / 1024, " MiB\n", tail(r.log));
    if (r.timed_out) return tally.fail(cmd + ": hang", detail);
    if (r.signalled() || sanitizer_report(r.log))
      return tally.fail(cmd + ": crash (signal or sanitizer report)", detail);
    if (contains(r.log, "internal error") || r.exited(3))
      return tally.fail(cmd + ": internal error", detail);
    if (r.max_rss_kb > kMaxRssKb) return tally.fail(cmd + ": memory beyond the bound", detail);
    if (r.exited(0)) {
      if (c.must_refuse) return tally.fail(cmd + ": accepted, must be refused", detail);
      // inspect's numbers stay non-negative (the issue's dim=2^31 printed a negative total).
      if (cmd == "inspect" && std::regex_search(r.log, std::regex("(^|[\\s(])-[0-9]")))
        return tally.fail(cmd + ": a negative count or size", detail);
      return tally.ok(cmd + ": accepted (a valid config)");
    }
    if (!r.exited(1) && !r.exited(2)) return tally.fail(cmd + ": unexpected exit", detail);
    if (!c.key.empty() && contains(r.log, c.key))
      return tally.ok(cmd + ": refused naming the key");
    for (const std::string& n : c.names)
      if (contains(r.log, n)) return tally.ok(cmd + ": refused naming the file or value");
    tally.fail(cmd + ": refused without naming the key or file", detail);
  }
};

// Values every key gets (YAML text as written in the file).
const std::vector<std::string>& value_palette() {
  static const std::vector<std::string> v = {
      "'12'", "\"1e-3\"", "abc",        "true",   "[1, 2]",  "{a: 1}",    "~",
      "0",    "-1",       "2147483648", "9223372036854775808", "1e400", ".nan", "-.inf",
      "1.5",  "0x10",     "!!str 5",    "!custom 3", "*undefined", "/dev/zero"};
  return v;
}

// Paths that are not what a key expects: devices, a directory, a FIFO, nothing, a file of
// garbage, the proc file of this very process' memory.
std::vector<std::string> hostile_paths(const fs::path& dir) {
  const fs::path fifo = dir / "a-fifo";
  if (!fs::exists(fifo)) REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  write_text(dir / "garbage.bin", std::string(4096, '\x9c'));
  fs::create_directories(dir / "a-dir");
  return {"/dev/zero", "/dev/null",         "/dev/urandom",
          "/",         (dir / "a-dir").string(), fifo.string(),
          (dir / "no-such-file").string(), (dir / "garbage.bin").string(),
          "/proc/self/mem", "''"};
}

std::string tiny_yaml() { return slurp(fs::path(MEAP_SOURCE_DIR) / "configs" / "tiny.yaml"); }

// Relative paths a case may give (run.out_dir: 0) land in the scratch directory.
struct WorkingDirectory {
  fs::path before = fs::current_path();
  explicit WorkingDirectory(const fs::path& p) { fs::current_path(p); }
  ~WorkingDirectory() { fs::current_path(before); }
};

}  // namespace

TEST_CASE("hostile configs under meap inspect: no crash, no hang, the key named",
          "[fault][config][slow]") {
  ScratchDir d("fault-configs-inspect");
  const WorkingDirectory cwd(d.path);
  const std::string tiny = tiny_yaml();
  // Every key of the schema, with tiny.yaml's values.
  const std::string full = meap::config_to_yaml(meap::parse_config(tiny, {}, "configs/tiny.yaml"));
  std::vector<std::string> keys;
  leaf_keys(YAML::Load(full), "", keys);
  REQUIRE(keys.size() > 30);
  Runner runner{d.path, Tally{"hostile configs under meap inspect"}};
  const fs::path cfg = d.path / "case.yaml";
  const auto inspect = [&](const Case& c, const std::string& text,
                           const std::vector<std::string>& extra = {}) {
    write_text(cfg, text);
    std::vector<std::string> args = {"inspect", cfg.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    runner.run(c, args);
  };

  // 1. Every key x every palette value, in the file.
  for (const std::string& key : keys)
    for (const std::string& v : value_palette())
      inspect({key + ": " + v, key, {cfg.string()}}, with_value(full, key, v));

  // 2. The same keys as command-line overrides, a few values each.
  for (const std::string& key : keys)
    for (const std::string& v : {"'7'", "2147483648", "["})
      inspect({"override " + key + "=" + v, key, {cfg.string()}}, full, {key + "=" + v});

  // 3. The issue's cases, which must be refused.
  const auto refuse = [&](const std::string& what, const std::string& key,
                          const std::string& text, const std::vector<std::string>& extra = {}) {
    inspect({what, key, {cfg.string()}, true}, text, extra);
  };
  refuse("model.n_layers=2^31", "model.n_layers", tiny, {"model.n_layers=2147483648"});
  refuse("model.dim=2^31", "model.dim", tiny, {"model.dim=2147483648"});
  refuse("keep_last: '12'", "checkpoint.keep_last", with_value(full, "checkpoint.keep_last", "'12'"));
  refuse("a second YAML document", "", tiny + "---\nrun: {name: second}\n");
  refuse("%YAML 9.9", "", "%YAML 9.9\n---\n" + tiny);
  refuse("a custom tag on a value", "run.name", with_value(full, "run.name", "!custom x"));
  refuse("a custom tag on a section", "", std::regex_replace(tiny, std::regex("\nmodel:\n"), "\nmodel: !custom\n"));
  refuse("a standard tag", "run.seed", with_value(full, "run.seed", "!!int 5"));
  refuse("a sequence as the document", "", "[1, 2, 3]\n");
  refuse("a scalar as the document", "", "42\n");
  refuse("an unknown key", "model.dimm", std::regex_replace(tiny, std::regex("\nmodel:\n"), "\nmodel:\n  dimm: 4\n"));
  refuse("an unknown key as an override", "model.dimm", tiny, {"model.dimm=4"});
  refuse("an unknown section", "nosuch", tiny + "nosuch: {a: 1}\n");
  refuse("a section as a scalar", "optim", with_value(full, "optim", "5"));

  // 4. Whole-document damage: accepted or refused, but clearly and quickly.
  const auto any = [&](const std::string& what, const std::string& text) {
    inspect({what, "", {cfg.string()}}, text);
  };
  any("empty file", "");
  any("comments only", "# nothing\n");
  any("%YAML 1.2", "%YAML 1.2\n---\n" + tiny);
  any("a %TAG directive", "%TAG !e! tag:example.com,2000:\n---\n" + tiny);
  any("a UTF-8 BOM", "\xEF\xBB\xBF" + tiny);
  any("a NUL byte", tiny.substr(0, 200) + std::string(1, '\0') + tiny.substr(200));
  any("tabs for indentation", std::regex_replace(tiny, std::regex("\n  "), "\n\t"));
  any("an unterminated quote", "run: {name: 'abc\n" + tiny);
  any("an unbalanced bracket", "optim: {betas: [0.9, 0.95}\n");
  any("a duplicated key", tiny + "\nrun:\n  name: again\n");
  any("invalid UTF-8 in a string", with_value(full, "run.name", "\"\xff\xfe\""));
  any("100000 nested lists", "model: {dim: " + std::string(100000, '[') + "1" +
                                 std::string(100000, ']') + "}\n");
  any("100000 nested maps", [] {
    std::string s = "run: ";
    for (int i = 0; i < 100000; ++i) s += "{a: ";
    s += "1";
    for (int i = 0; i < 100000; ++i) s += "}";
    return s + "\n";
  }());
  // A billion laughs: 10^9 list elements through aliases, under a key that takes a list.
  any("an alias bomb in optim.betas", [&] {
    std::string s = "defs:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char c = 'b'; c <= 'i'; ++c) {
      s += meap::str_cat("  ", c, ": &", c, " [");
      for (int i = 0; i < 10; ++i) s += meap::str_cat(i ? ", " : "", "*", static_cast<char>(c - 1));
      s += "]\n";
    }
    return with_value(full, "optim.betas", "*i") .insert(0, s);
  }());
  any("an alias bomb alone", [] {
    std::string s = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char c = 'b'; c <= 'i'; ++c) {
      s += meap::str_cat(c, ": &", c, " [");
      for (int i = 0; i < 10; ++i) s += meap::str_cat(i ? ", " : "", "*", static_cast<char>(c - 1));
      s += "]\n";
    }
    return s;
  }());
  any("a 10 MB value", with_value(full, "run.name", std::string(10'000'000, 'x')));
  any("a 1000-character key", tiny + std::string(1000, 'k') + ": 1\n");
  {
    std::mt19937_64 rng = seeded_rng("config garbage");
    for (int i = 0; i < 20; ++i) {
      std::string bytes(1 + rng() % 2000, '\0');
      for (char& b : bytes) b = static_cast<char>(rng());
      any(meap::str_cat("random bytes #", i), bytes);
    }
  }

  // 5. The config path itself is hostile.
  for (const std::string& p : hostile_paths(d.path)) {
    if (p == "''") continue;
    runner.run({"config path " + p, "", {p}}, {"inspect", p});
  }

  // 6. Malformed overrides.
  for (const std::string& o : {"model.dim", "=5", "model.dim=", "model..dim=3", "model=5",
                               "model.dim.x=1", ".=.", "model.dim=[1"})
    inspect({"override " + o, "", {o, cfg.string()}}, full, {o});

  runner.tally.print();
  std::printf("  peak RSS of any case %ld MiB (bound %ld MiB), slowest case %.2f s (timeout %.0f s)\n",
              runner.worst_rss_kb / 1024, kMaxRssKb / 1024, runner.slowest_s, kTimeoutS);
  INFO(runner.tally.failure_list());
  CHECK(runner.tally.failures.empty());
  CHECK(runner.tally.trials >= 1000);
}

TEST_CASE("hostile configs and data paths under meap train", "[fault][config][slow]") {
  micro_corpus();
  ScratchDir d("fault-configs-train");
  const WorkingDirectory cwd(d.path);
  // The micro config: a valid mutation trains one step in a moment.
  const std::string base = micro_config_yaml(d.path / "run");
  std::vector<std::string> keys;
  leaf_keys(YAML::Load(meap::config_to_yaml(meap::parse_config(base, {}, "micro"))), "", keys);
  Runner runner{d.path, Tally{"hostile configs and paths under meap train"}};
  const fs::path cfg = d.path / "case.yaml";
  const auto train = [&](const Case& c, const std::string& text) {
    write_text(cfg, text);
    runner.run(c, {"train", cfg.string(), "train.max_steps=1"});
    // What an accepted case wrote: the run, and whatever it put into the hostile paths.
    for (const char* p : {"run", "a-dir", "no-such-file"}) fs::remove_all(d.path / p);
    fs::create_directories(d.path / "a-dir");
  };
  const std::string full = meap::config_to_yaml(meap::parse_config(base, {}, "micro"));

  // Every path-valued key x every hostile path.
  for (const std::string& key : {"data.train", "data.val", "data.tokenizer", "run.out_dir",
                                 "checkpoint.init_from"})
    for (const std::string& p : hostile_paths(d.path))
      if (!(p == "/" && std::string(key) == "run.out_dir"))  // a valid place to write, as root
        train({key + ": " + p, key, {cfg.string(), p}},
            with_value(full, key, p == "''" ? p : "'" + p + "'"));
  // The issue's: run.out_dir a file, and below a file; data.tokenizer /dev/zero.
  write_text(d.path / "a-file", "x");
  train({"run.out_dir a file", "run.out_dir", {}, true},
        with_value(full, "run.out_dir", "'" + (d.path / "a-file").string() + "'"));
  train({"run.out_dir below a file", "run.out_dir", {}, true},
        with_value(full, "run.out_dir", "'" + (d.path / "a-file" / "run").string() + "'"));
  train({"data.tokenizer /dev/zero", "data.tokenizer", {}, true},
        with_value(full, "data.tokenizer", "/dev/zero"));
  // Every other key x a few values (the run's length is the command line's train.max_steps=1;
  // train.max_epochs, which would replace it, stays 0: its bound is a unit test's).
  for (const std::string& key : keys) {
    if (key == "train.max_steps" || key == "train.max_epochs") continue;
    for (const std::string& v : {"'12'", "0", "2147483648", ".nan"})
      train({key + ": " + v, key, {cfg.string()}}, with_value(full, key, v));
  }
  runner.tally.print();
  std::printf("  peak RSS of any case %ld MiB (bound %ld MiB), slowest case %.2f s (timeout %.0f s)\n",
              runner.worst_rss_kb / 1024, kMaxRssKb / 1024, runner.slowest_s, kTimeoutS);
  INFO(runner.tally.failure_list());
  CHECK(runner.tally.failures.empty());
}
