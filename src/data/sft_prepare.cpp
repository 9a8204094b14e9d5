#include "meap/data/sft_prepare.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>

#include "meap/core/checksum.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"
#include "meap/data/line_reader.hpp"
#include "meap/data/corpus.hpp"  // is_blank
#include "meap/data/tokenizer.hpp"

namespace fs = std::filesystem;

namespace meap {

namespace {

bool is_sft_name(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* ext : {".jsonl", ".jsonl.gz", ".jsonl.zst"}) {
    const std::string e = ext;
    if (n.size() > e.size() && n.compare(n.size() - e.size(), e.size(), e) == 0) return true;
  }
  return false;
}

// One split's shards: whole samples, a new file when the next sample would pass
// shard_tokens (a sample longer than that gets a shard of its own).
class SftShardSeries {
 public:
  SftShardSeries(fs::path dir, std::string prefix, uint64_t shard_tokens, uint32_t vocab,
                 SpecialTokens special, uint64_t tokenizer_checksum)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), shard_tokens_(shard_tokens),
        vocab_(vocab), special_(special), tokenizer_checksum_(tokenizer_checksum) {}

  void append(const SftSample& s) {
    if (current_ && current_->n_tokens() + s.tokens.size() > shard_tokens_) commit();
    if (!current_) {
      char name[64];
      std::snprintf(name, sizeof name, "%s-%05zu.bin", prefix_.c_str(), done_.size());
      current_.emplace((dir_ / name).string(), vocab_, special_, tokenizer_checksum_);
    }
    current_->append(s.tokens.data(), s.roles.data(), s.tokens.size());
  }
  void finish() {
    if (current_) commit();
  }
  void remove_committed() noexcept {
    for (const ShardEntry& e : done_) {
      std::error_code ec;
      fs::remove(e.path, ec);
    }
  }
  const std::vector<ShardEntry>& shards() const { return done_; }

 private:
  void commit() {
    current_->finish();
    done_.push_back({current_->path(), current_->n_tokens()});
    current_.reset();
  }
  fs::path dir_;
  std::string prefix_;
  uint64_t shard_tokens_;
  uint32_t vocab_;
  SpecialTokens special_;
  uint64_t tokenizer_checksum_;
  std::optional<SftShardWriter> current_;
  std::vector<ShardEntry> done_;
};

std::vector<fs::path> existing_outputs(const fs::path& dir) {
  static const std::regex pattern(R"(sft-(train|val)-[0-9]{5,}\.bin(\.tmp)?|sft-rejected\.jsonl)");
  std::vector<fs::path> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (std::regex_match(it->path().filename().string(), pattern)) found.push_back(it->path());
  std::sort(found.begin(), found.end());
  return found;
}

nlohmann::ordered_json shard_list(const std::vector<ShardEntry>& shards) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ShardEntry& s : shards)
    list.push_back({{"file", fs::path(s.path).filename().string()}, {"tokens", s.n_tokens}});
  return list;
}

std::string manifest_json(const SftPrepareOptions& o, const SftTemplate& t,
                          const SftPrepareSummary& s) {
  nlohmann::ordered_json j;
  j["format"] = "meap-sft-prepare";
  j["version"] = 2;  // 2: XXH3 checksums ("xxh3-64:..."), SFT shards of format version 2
  j["inputs"] = o.inputs;
  j["input_files"] = s.input_files;
  j["tokenizer"] = {{"model", "tokenizer.model"},
                    {"source", o.tokenizer},
                    {"checksum", checksum_string(s.tokenizer_checksum)},
                    {"vocab_size", s.vocab_size},
                    {"bos", s.special.bos},
                    {"eos", s.special.eos},
                    {"pad", s.special.pad},
                    {"mask", s.special.mask}};
  j["template"] = {{"name", t.name},
                   {"system_prefix", t.system_prefix},
                   {"system_suffix", t.system_suffix},
                   {"user_prefix", t.user_prefix},
                   {"user_suffix", t.user_suffix},
                   {"assistant_prefix", t.assistant_prefix}};
  j["seq_len"] = o.seq_len;
  j["overlong"] = sft_overlong_name(o.overlong);
  j["seed"] = o.seed;
  j["val_fraction"] = o.val_fraction;
  j["shard_tokens"] = o.shard_tokens;
  nlohmann::ordered_json rejected;
  for (int k = 0; k < kSftRejectKinds; ++k)
    rejected[sft_reject_kind_name(static_cast<SftRejectKind>(k))] = s.rejected[k];
  j["records"] = {{"read", s.records},
                  {"train", s.train_samples},
                  {"val", s.val_samples},
                  {"truncated", s.truncated},
                  {"answers_over_50_tokens", s.answers_over_50},
                  {"rejected", rejected}};
  j["tokens"] = {{"train", s.train_tokens}, {"val", s.val_tokens}};
  j["answer_tokens"] = {{"train", s.train_answer_tokens}, {"val", s.val_answer_tokens}};
  j["shards"] = {{"train", shard_list(s.train_shards)}, {"val", shard_list(s.val_shards)}};
  return j.dump(2) + "\n";
}

std::string rejects_jsonl(const std::vector<SftReject>& all) {
  std::string out;
  for (const SftReject& r : all) {
    nlohmann::ordered_json j = {{"file", r.file},
                                {"line", r.line},
                                {"kind", sft_reject_kind_name(r.kind)},
                                {"message", r.message}};
    out += j.dump() + "\n";
  }
  return out;
}

void say(const SftPrepareOptions& o, const std::string& m) {
  if (o.on_message) o.on_message(m);
}

SftPrepareSummary run(const SftPrepareOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.out_dir.empty()) fail("no output directory given (--out DIR)");
  if (o.tokenizer.empty())
    fail("--tokenizer MODEL is required: SFT data must use the tokenizer of the model it "
         "fine-tunes");
  if (o.seq_len < 2) fail("--seq-len must be at least 2, got ", o.seq_len);
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
    fail("--val-fraction must be in [0, 1), got ", o.val_fraction);
  if (o.shard_tokens == 0) fail("--shard-tokens must be positive");
  const fs::path dir = o.out_dir;
  const fs::path manifest = dir / "sft-prepare.json";
  std::error_code ec;
  if (fs::exists(manifest, ec) && !o.force)
    fail("'", manifest.string(), "' exists: '", o.out_dir, "' holds the output of an earlier "
         "`meap prepare --sft`; pass --force to replace it, or choose another --out");
  const std::vector<fs::path> stale = existing_outputs(dir);
  if (!stale.empty() && !o.force)
    fail("'", o.out_dir, "' holds SFT shards of an earlier run that did not finish (",
         stale.front().filename().string(), "); pass --force to replace them");

  SftPrepareSummary s;
  s.input_files = list_sft_files(o.inputs, {o.out_dir});
  const SftTemplate tmpl = SftTemplate::load(o.template_name);
  const Tokenizer probe = Tokenizer::load(o.tokenizer);  // refused before anything is written
  (void)probe;

  fs::create_directories(dir);
  if (o.force) {
    fs::remove(manifest);
    for (const fs::path& p : stale) fs::remove(p);
  }
  const fs::path model = dir / "tokenizer.model";
  if (!fs::equivalent(o.tokenizer, model, ec))
    copy_file_durable(o.tokenizer, model.string());
  s.tokenizer_path = model.string();
  const Tokenizer tok = Tokenizer::load(s.tokenizer_path);
  s.tokenizer_checksum = file_xxh3(s.tokenizer_path);
  s.vocab_size = tok.vocab_size();
  s.special = {tok.bos_id(), tok.eos_id(), tok.pad_id(), tok.mask_id()};
  say(o, str_cat(s.input_files.size(), " input file", s.input_files.size() == 1 ? "" : "s",
                 ", tokenizer ", o.tokenizer, " (vocab ", s.vocab_size, "), template ",
                 tmpl.name, ", seq_len ", o.seq_len, ", overlong ", sft_overlong_name(o.overlong)));

  const uint32_t vocab = static_cast<uint32_t>(s.vocab_size);
  SftShardSeries train(dir, "sft-train", o.shard_tokens, vocab, s.special, s.tokenizer_checksum);
  SftShardSeries val(dir, "sft-val", o.shard_tokens, vocab, s.special, s.tokenizer_checksum);
  std::vector<SftReject> all_rejects;
  try {
    uint64_t usable = 0;
    auto reject = [&](const std::string& file, uint64_t line, SftRejectKind kind,
                      std::string message) {
      ++s.rejected[static_cast<int>(kind)];
      all_rejects.push_back({file, line, kind, std::move(message)});
    };
    for (const std::string& file : s.input_files) {
      LineReader reader(file);
      std::string_view line;
      while (reader.next(line)) {
        if (is_blank(line)) continue;
        ++s.records;
        SftParseResult r = parse_sft_record(line);
        if (!r.ok) {
          reject(file, reader.line_number(), r.kind, std::move(r.error));
          continue;
        }
        SftSample sample = render_sft_sample(r.messages, tmpl, tok);
        const int64_t answers = sample.answer_tokens();
        if (answers == 0) {
          reject(file, reader.line_number(), SftRejectKind::empty_answer,
                 "the answer encodes to no token");
          continue;
        }
        const size_t before = sample.tokens.size();
        bool truncated = false;
        if (!fit_sft_sample(sample, o.seq_len, o.overlong, &truncated)) {
          reject(file, reader.line_number(), SftRejectKind::overlong,
                 str_cat(before, " tokens do not fit --seq-len ", o.seq_len, " (at most ",
                         o.seq_len + 1, " tokens)",
                         o.overlong == SftOverlong::drop
                             ? " and --overlong is drop"
                             : " even with the whole prompt before the first answer cut"));
          continue;
        }
        s.truncated += truncated;
        s.answers_over_50 += answers > 50;
        const bool is_val = hashes_to_val(o.seed, usable++, o.val_fraction);
        (is_val ? val : train).append(sample);
        (is_val ? s.val_samples : s.train_samples) += 1;
        (is_val ? s.val_tokens : s.train_tokens) += sample.tokens.size();
        (is_val ? s.val_answer_tokens : s.train_answer_tokens) += answers;
      }
    }
    if (!all_rejects.empty()) {
      s.rejects_path = (dir / "sft-rejected.jsonl").string();
      write_file_atomic(s.rejects_path, rejects_jsonl(all_rejects));
    }
    if (usable == 0) {
      std::string counts;
      for (int k = 0; k < kSftRejectKinds; ++k)
        if (s.rejected[k])
          counts += str_cat(counts.empty() ? "" : ", ", s.rejected[k], " ",
                            sft_reject_kind_name(static_cast<SftRejectKind>(k)));
      if (all_rejects.empty()) fail("the SFT inputs hold no record (only blank lines)");
      const SftReject& first = all_rejects.front();
      fail("no usable SFT record among the ", s.records, " records read (", counts,
           "); the first: ", first.file, ":", first.line, ": ", first.message, " (all are listed in ",
           s.rejects_path, ")");
    }
    if (s.train_samples == 0)
      fail("all ", s.val_samples, " usable records fell into the val split; lower --val-fraction");
    train.finish();
    val.finish();
    s.train_shards = train.shards();
    s.val_shards = val.shards();
    s.manifest_path = manifest.string();
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_file_atomic(s.manifest_path, manifest_json(o, tmpl, s));
  } catch (...) {
    train.remove_committed();
    val.remove_committed();
    throw;
  }
  const size_t keep = std::min(all_rejects.size(), o.max_listed_rejects);
  s.rejects.assign(std::make_move_iterator(all_rejects.begin()),
                   std::make_move_iterator(all_rejects.begin() + keep));
  return s;
}

}  // namespace

uint64_t SftPrepareSummary::rejected_total() const {
  uint64_t n = 0;
  for (uint64_t r : rejected) n += r;
  return n;
}

std::vector<std::string> list_sft_files(const std::vector<std::string>& inputs,
                                        const std::vector<std::string>& exclude_dirs) {
  if (inputs.empty()) fail("no SFT input files or directories given");
  std::vector<fs::path> excluded;
  for (const std::string& d : exclude_dirs) {
    std::error_code ec;
    if (fs::is_directory(d, ec)) excluded.push_back(fs::canonical(d));
  }
  auto is_excluded = [&](const fs::path& dir) {
    std::error_code ec;
    const fs::path c = fs::canonical(dir, ec);
    return !ec && std::find(excluded.begin(), excluded.end(), c) != excluded.end();
  };
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(input, ec);
    if (ec || !fs::exists(st)) fail("input '", input, "' does not exist");
    if (fs::is_regular_file(st)) {
      if (!is_sft_name(fs::path(input).filename().string()))
        fail("input '", input, "': SFT inputs are .jsonl, .jsonl.gz or .jsonl.zst files");
      files.push_back(input);
      continue;
    }
    if (!fs::is_directory(st)) fail("input '", input, "' is neither a file nor a directory");
    if (is_excluded(input)) fail("input '", input, "' is the output directory");
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(input, ec);
    if (ec) fail("cannot read directory '", input, "': ", ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) fail("cannot read directory '", input, "': ", ec.message());
      const std::string name = it->path().filename().string();
      if ((!name.empty() && name[0] == '.') || (it->is_directory(ec) && is_excluded(it->path()))) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec) && is_sft_name(name)) found.push_back(it->path());
    }
    std::sort(found.begin(), found.end());
    for (const fs::path& p : found) files.push_back(p.string());
  }
  if (files.empty())
    fail("the inputs hold no .jsonl, .jsonl.gz or .jsonl.zst file (hidden files are skipped)");
  return files;
}

SftPrepareSummary prepare_sft(const SftPrepareOptions& options) {
  try {
    return run(options);
  } catch (const fs::filesystem_error& e) {
    fail(e.what());
  }
}

}  // namespace meap
