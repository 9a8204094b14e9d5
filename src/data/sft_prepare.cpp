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
#include "meap/data/corpus.hpp"  // is_blank, list_input_files
#include "meap/data/tokenizer.hpp"
#include "data/shard_series.hpp"

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

using SftShardSeries = ShardSeries<SftShardWriter>;

std::vector<fs::path> existing_outputs(const fs::path& dir) {
  static const std::regex pattern(R"(sft-(train|val)-[0-9]{5,}\.bin(\.tmp)?|sft-rejected\.jsonl)");
  return files_matching(dir, pattern);
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
    fs::copy_file(o.tokenizer, model, fs::copy_options::overwrite_existing);
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
        (is_val ? val : train)
            .append(sample.tokens.data(), sample.roles.data(), sample.tokens.size());
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
  return list_input_files(inputs, exclude_dirs, is_sft_name, "SFT ",
                          ".jsonl, .jsonl.gz or .jsonl.zst");
}

SftPrepareSummary prepare_sft(const SftPrepareOptions& options) {
  try {
    return run(options);
  } catch (const fs::filesystem_error& e) {
    fail(e.what());
  }
}

}  // namespace meap
