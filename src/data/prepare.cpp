#include "meap/data/prepare.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "meap/data/corpus.hpp"
#include "meap/core/checksum.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"
#include "meap/core/human_format.hpp"
#include "meap/core/rng.hpp"
#include "meap/data/tokenizer.hpp"
#include "data/shard_series.hpp"

namespace fs = std::filesystem;

namespace meap {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Philox streams of this file, so the split and the tokenizer sample draw independent bits
// for the same (seed, ordinal).
constexpr uint32_t kStreamValSplit = 0x76616C31;   // "val1"
constexpr uint32_t kStreamTokSample = 0x746F6B31;  // "tok1"

// Uniform in [0, 1) with 53 random bits.
double uniform01(uint64_t seed, uint32_t stream, uint64_t ordinal) {
  const PhiloxCounter r = philox4x32(
      {static_cast<uint32_t>(ordinal), static_cast<uint32_t>(ordinal >> 32), stream, 0},
      philox_key(seed));
  const uint64_t bits = (static_cast<uint64_t>(r[0]) << 32 | r[1]) >> 11;
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

// SentencePiece records num_threads in the model file, so a value that followed --threads
// would make tokenizer.model differ between otherwise identical runs. Its BPE trainer gains
// little from threads (KJV, vocab 4096: 1.40 s on 1 thread, 1.23 s on 2).
constexpr int kTokenizerTrainThreads = 4;
// SentencePiece skips training sentences longer than its max_sentence_length (64 KiB as
// Tokenizer::train sets it); longer lines are cut, at a space where there is one.
constexpr size_t kMaxTrainLine = 16384;


// Decides train or val document by document, in corpus order. Every document but the last
// follows hashes_to_val; the last one is held back until the end is known, so that it can go
// to val when the hash sent no document there (and stay in train when it is the only one).
template <class T, class Emit>
class SplitDecider {
 public:
  SplitDecider(uint64_t seed, double val_fraction, Emit emit)
      : seed_(seed), val_fraction_(val_fraction), emit_(std::move(emit)) {}

  void push(T item) {
    if (has_pending_) decide(hashes_to_val(seed_, n_ - 1, val_fraction_));
    pending_ = std::move(item);
    has_pending_ = true;
    ++n_;
  }

  void finish() {
    if (!has_pending_) return;
    bool val;
    if (n_ == 1)
      val = false;
    else if (val_fraction_ > 0 && n_val_ == 0)
      val = true;
    else
      val = hashes_to_val(seed_, n_ - 1, val_fraction_);
    decide(val);
  }

  uint64_t n_train() const { return n_train_; }
  uint64_t n_val() const { return n_val_; }

 private:
  void decide(bool val) {
    ++(val ? n_val_ : n_train_);
    has_pending_ = false;
    emit_(std::move(pending_), val, n_ - 1);
  }

  uint64_t seed_;
  double val_fraction_;
  Emit emit_;
  T pending_{};  // (not std::optional: GCC 12 warns falsely about its vector payload)
  bool has_pending_ = false;
  uint64_t n_ = 0, n_train_ = 0, n_val_ = 0;
};

using TokenShardSeries = ShardSeries<ShardWriter>;

// A chunk of consecutive documents, encoded by one worker.
struct EncodeJob {
  std::vector<std::string> docs;
  std::vector<std::vector<int32_t>> tokens;  // tokens[i] encodes docs[i]
  uint64_t bytes_end = 0;                    // reader position after the chunk (progress)
  std::exception_ptr error;
  bool done = false;
};

// Worker threads that encode jobs in any order; the caller collects them in submission order,
// which is what keeps the output independent of the thread count.
class EncodePool {
 public:
  EncodePool(const Tokenizer& tokenizer, int threads) : tokenizer_(tokenizer) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }

  ~EncodePool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  void submit(std::shared_ptr<EncodeJob> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(job));
    }
    work_cv_.notify_one();
  }

  // Blocks until `job` is encoded; rethrows what its worker caught.
  void wait(EncodeJob& job) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return job.done; });
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  void work() {
    for (;;) {
      std::shared_ptr<EncodeJob> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        job->tokens.resize(job->docs.size());
        // SentencePieceProcessor::Encode is const and safe to call from several threads.
        for (size_t i = 0; i < job->docs.size(); ++i)
          job->tokens[i] = tokenizer_.encode(job->docs[i]);
        std::vector<std::string>().swap(job->docs);
      } catch (...) {
        job->error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        job->done = true;
      }
      done_cv_.notify_all();
    }
  }

  const Tokenizer& tokenizer_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::shared_ptr<EncodeJob>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Removes a file when it goes out of scope (the tokenizer's training text).
struct RemovedOnExit {
  fs::path path;
  ~RemovedOnExit() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

// Writes one document's lines as SentencePiece training sentences (one per line, blank ones
// skipped, long ones cut). Returns the number of lines written.
uint64_t write_training_lines(std::string_view doc, std::ostream& out, uint64_t& bytes) {
  uint64_t lines = 0;
  while (!doc.empty()) {
    const size_t nl = doc.find('\n');
    std::string_view line = doc.substr(0, nl);
    doc.remove_prefix(nl == std::string_view::npos ? doc.size() : nl + 1);
    while (!is_blank(line)) {
      size_t cut = line.size();
      if (cut > kMaxTrainLine) {
        cut = line.rfind(' ', kMaxTrainLine);
        if (cut == std::string_view::npos || cut < kMaxTrainLine / 2) {
          cut = kMaxTrainLine;  // no space nearby: cut before a UTF-8 lead byte
          while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
        }
      }
      const std::string_view piece = line.substr(0, cut);
      line.remove_prefix(cut);
      if (is_blank(piece)) continue;
      out.write(piece.data(), static_cast<std::streamsize>(piece.size()));
      out.put('\n');
      bytes += piece.size() + 1;
      ++lines;
    }
  }
  return lines;
}

void say(const PrepareOptions& o, const std::string& message) {
  if (o.on_message) o.on_message(message);
}

// Pass 1: the training documents (a deterministic sample of them when the corpus is larger
// than tokenizer_sample_bytes) written as one sentence per line, then SentencePiece BPE.
void train_tokenizer(const PrepareOptions& o, const std::vector<CorpusFile>& files,
                     const fs::path& dir) {
  RemovedOnExit text{dir / ".tokenizer-train.txt"};
  const uint64_t max_lines = static_cast<uint64_t>(TokenizerTrainOptions{}.max_sentences);
  uint64_t total = 0;
  for (const CorpusFile& f : files) total += f.bytes;
  const double rate =
      total <= o.tokenizer_sample_bytes ? 1.0 : double(o.tokenizer_sample_bytes) / total;
  uint64_t lines = 0, bytes = 0;
  {
    std::ofstream out(text.path, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot create '", text.path.string(), "'");
    auto emit = [&](std::string&& doc, bool val, uint64_t ordinal) {
      if (val || (rate < 1.0 && uniform01(o.seed, kStreamTokSample, ordinal) >= rate)) return;
      lines += write_training_lines(doc, out, bytes);
    };
    SplitDecider<std::string, decltype(emit)> split(o.seed, o.val_fraction, emit);
    DocumentReader reader(files, o.jsonl_field);
    std::string doc;
    bool capped = false;
    while (reader.next(doc)) {
      split.push(std::move(doc));
      // Staying under SentencePiece's own sentence limit means it never samples (with an
      // unseeded shuffle) on its side: the tokenizer is a pure function of the corpus.
      if (lines >= max_lines || bytes >= o.tokenizer_sample_bytes) {
        capped = true;
        break;
      }
    }
    if (!capped) split.finish();
    out.close();
    if (!out) fail("cannot write '", text.path.string(), "'");
    if (split.n_train() + split.n_val() == 0)
      fail("the inputs hold no documents (only blank lines or empty texts)");
  }
  if (lines == 0)
    fail("no training text for the tokenizer: no document of the train split was sampled");
  say(o, str_cat("training a BPE tokenizer (vocab ", o.vocab_size, ") on ", human_bytes(bytes),
                 " of training text (", lines, " lines)"));

  TokenizerTrainOptions t;
  t.input_files = {text.path.string()};
  t.model_prefix = (dir / ".tokenizer-tmp").string();
  t.vocab_size = o.vocab_size;
  t.max_sentences = static_cast<int64_t>(std::max(max_lines, lines));
  t.num_threads = kTokenizerTrainThreads;
  Tokenizer::train(t);
  // SentencePiece writes its files in place; renaming them keeps a half-written model from
  // ever sitting at tokenizer.model.
  fs::rename(t.model_prefix + ".model", dir / "tokenizer.model");
  fs::rename(t.model_prefix + ".vocab", dir / "tokenizer.vocab");
}

// The file names of one tokenizer kind in an output directory.
std::vector<std::string> tokenizer_files(TokenizerKind kind) {
  if (kind == TokenizerKind::sentencepiece) return {"tokenizer.model", "tokenizer.vocab"};
  return {"tokenizer.json"};
}

// Removes what a run with a tokenizer of another kind left in `dir`, so that the directory
// names one tokenizer only.
void remove_other_kind(const fs::path& dir, TokenizerKind kind) {
  const TokenizerKind other =
      kind == TokenizerKind::sentencepiece ? TokenizerKind::hf_bpe : TokenizerKind::sentencepiece;
  std::error_code ec;
  for (const std::string& name : tokenizer_files(other)) fs::remove(dir / name, ec);
}

// Copies an existing tokenizer into the output directory: a SentencePiece model (and its
// .vocab, when there is one) as tokenizer.model, a tokenizer.json as tokenizer.json.
// Returns the copy's path.
fs::path copy_tokenizer(const std::string& source, const fs::path& dir) {
  const TokenizerKind kind = Tokenizer::detect_kind(source);
  remove_other_kind(dir, kind);
  const fs::path target = dir / tokenizer_files(kind).front();
  std::error_code ec;
  if (!fs::equivalent(source, target, ec))
    fs::copy_file(source, target, fs::copy_options::overwrite_existing);
  if (kind != TokenizerKind::sentencepiece) return target;
  const fs::path vocab = fs::path(source).replace_extension(".vocab");
  const fs::path vocab_target = dir / "tokenizer.vocab";
  if (fs::is_regular_file(vocab, ec)) {
    if (!fs::equivalent(vocab, vocab_target, ec))
      fs::copy_file(vocab, vocab_target, fs::copy_options::overwrite_existing);
  } else {
    fs::remove(vocab_target, ec);  // it would describe another model
  }
  return target;
}

// Shard files (and their temporary files) of an earlier run in `dir`.
std::vector<fs::path> existing_shards(const fs::path& dir) {
  static const std::regex pattern(R"((train|val)-[0-9]{5,}\.bin(\.tmp)?)");
  return files_matching(dir, pattern);
}

// The manifest holds no timings or thread counts: the output directory is reproducible bit
// for bit.
std::string manifest_json(const PrepareOptions& o, const PrepareSummary& s,
                          const std::vector<CorpusFile>& files) {
  nlohmann::ordered_json j;
  j["format"] = "meap-prepare";
  j["version"] = 2;  // 2: tokenizer.checksum, shards of format version 2
  j["inputs"] = o.inputs;
  j["input_files"] = nlohmann::ordered_json::array();
  for (const CorpusFile& f : files)
    j["input_files"].push_back({{"path", f.path},
                                {"format", f.format == CorpusFormat::jsonl ? "jsonl" : "text"},
                                {"bytes", f.bytes}});
  nlohmann::ordered_json tok;
  tok["model"] = fs::path(s.tokenizer_path).filename().string();
  tok["kind"] = tokenizer_kind_name(s.tokenizer_kind);
  tok["checksum"] = checksum_string(s.tokenizer_checksum);
  tok["trained"] = s.tokenizer_trained;
  if (s.tokenizer_trained)
    tok["sample_bytes"] = o.tokenizer_sample_bytes;
  else
    tok["source"] = o.tokenizer;
  tok["vocab_size"] = s.vocab_size;
  tok["bos"] = s.special.bos;
  tok["eos"] = s.special.eos;
  tok["pad"] = s.special.pad;
  tok["mask"] = s.special.mask;
  // Which id [MASK] is: the file's own (a [MASK] piece, a reserved special token) or one
  // appended after the file's last id.
  tok["mask_piece"] = s.mask_piece;
  tok["mask_appended"] = s.mask_appended;
  j["tokenizer"] = tok;
  j["seed"] = o.seed;
  j["val_fraction"] = o.val_fraction;
  j["shard_tokens"] = o.shard_tokens;
  j["documents"] = {{"train", s.train_documents},
                    {"val", s.val_documents},
                    {"empty_dropped", s.empty_documents}};
  j["tokens"] = {{"train", s.train_tokens}, {"val", s.val_tokens}};
  j["train_unigram_entropy_nats"] = s.train_unigram_entropy;
  j["shards"] = {{"train", shard_list(s.train_shards)}, {"val", shard_list(s.val_shards)}};
  return j.dump(2) + "\n";
}

void validate(const PrepareOptions& o) {
  if (o.out_dir.empty()) fail("no output directory given (--out DIR)");
  if (o.inputs.empty()) fail("no input files or directories given");
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
    fail("val_fraction must be in [0, 1), got ", o.val_fraction);
  if (o.shard_tokens == 0) fail("shard_tokens must be at least 1");
  if (o.jsonl_field.empty()) fail("the JSONL field name (--jsonl-field) is empty");
  if (o.chunk_bytes == 0) fail("chunk_bytes must be at least 1");
  if (o.threads < 0) fail("threads must be at least 1 (0 = hardware concurrency), got ", o.threads);
  if (o.tokenizer.empty()) {
    if (o.vocab_size < 16) fail("vocab_size must be at least 16, got ", o.vocab_size);
    if (o.tokenizer_sample_bytes == 0) fail("tokenizer_sample_bytes must be at least 1");
  } else if (!fs::is_regular_file(o.tokenizer)) {
    fail("tokenizer '", o.tokenizer, "' is not a file");
  }
}

}  // namespace

std::string shard_names(const std::vector<ShardEntry>& shards) {
  if (shards.empty()) return "none";
  auto name = [](const ShardEntry& e) { return fs::path(e.path).filename().string(); };
  std::string s = str_cat(shards.size(), " (", name(shards.front()));
  if (shards.size() > 1) s += str_cat(" .. ", name(shards.back()));
  return s + ")";
}

bool hashes_to_val(uint64_t seed, uint64_t ordinal, double val_fraction) {
  return uniform01(seed, kStreamValSplit, ordinal) < val_fraction;
}

namespace {

PrepareSummary run_prepare(const PrepareOptions& o) {
  const Clock::time_point t_start = Clock::now();
  if (o.out_dir.empty()) fail("no output directory given (--out DIR)");
  const fs::path dir = o.out_dir;
  const fs::path manifest = dir / "prepare.json";
  std::error_code ec;
  if (fs::exists(manifest, ec) && !o.force)
    fail("'", manifest.string(), "' exists: '", o.out_dir, "' holds the output of an earlier "
         "`meap prepare`; pass --force to replace it, or choose another --out");
  validate(o);
  const std::vector<fs::path> stale = existing_shards(dir);
  if (!stale.empty() && !o.force)
    fail("'", o.out_dir, "' holds shards of an earlier run that did not finish (",
         stale.front().filename().string(), (stale.size() > 1 ? ", ..." : ""),
         ", no prepare.json); pass --force to replace them, or choose another --out");

  const std::vector<CorpusFile> files = list_corpus_files(o.inputs, {o.out_dir});
  PrepareSummary s;
  for (const CorpusFile& f : files) {
    s.input_files.push_back(f.path);
    s.input_bytes += f.bytes;
  }
  // A bad tokenizer is refused before the output directory is touched. (Kept: its copy
  // is the same file, and a large tokenizer.json takes a while to load.)
  std::optional<Tokenizer> given;
  const Clock::time_point t_given = Clock::now();
  if (!o.tokenizer.empty()) given.emplace(Tokenizer::load(o.tokenizer));
  const double seconds_given = seconds_since(t_given);

  fs::create_directories(dir);
  if (o.force) {  // the manifest first: it must never describe shards that are gone
    fs::remove(manifest);
    for (const fs::path& p : stale) fs::remove(p);
  }
  s.threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  say(o, str_cat(files.size(), " input file", files.size() == 1 ? "" : "s", ", ",
                 human_bytes(static_cast<double>(s.input_bytes))));

  // ---- tokenizer
  const Clock::time_point t_tok = Clock::now();
  if (o.tokenizer.empty()) {
    remove_other_kind(dir, TokenizerKind::sentencepiece);
    train_tokenizer(o, files, dir);
    s.tokenizer_trained = true;
    s.tokenizer_path = (dir / "tokenizer.model").string();
  } else {
    s.tokenizer_path = copy_tokenizer(o.tokenizer, dir).string();
  }
  const Tokenizer tokenizer = given ? std::move(*given) : Tokenizer::load(s.tokenizer_path);
  s.seconds_tokenizer = seconds_since(t_tok) + seconds_given;
  s.vocab_size = tokenizer.vocab_size();
  s.special = {tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id(), tokenizer.mask_id()};
  s.tokenizer_kind = tokenizer.kind();
  s.tokenizer_checksum = file_xxh3(s.tokenizer_path);
  s.mask_appended = tokenizer.mask_appended();
  s.mask_piece = tokenizer.piece(tokenizer.mask_id());
  char took[32];
  std::snprintf(took, sizeof took, "%.1f s", s.seconds_tokenizer);
  say(o, str_cat("tokenizer ", s.tokenizer_path, " (", s.tokenizer_trained ? "trained" : "copied",
                 " in ", took, "): vocab ", s.vocab_size, ", bos ", s.special.bos, ", eos ",
                 s.special.eos, ", pad ", s.special.pad, ", [MASK] ", s.special.mask));

  // ---- encoding: documents read here, encoded by the pool, written here in corpus order
  const uint32_t vocab = static_cast<uint32_t>(s.vocab_size);
  TokenShardSeries train(dir, "train", o.shard_tokens, vocab, s.special, s.tokenizer_checksum);
  TokenShardSeries val(dir, "val", o.shard_tokens, vocab, s.special, s.tokenizer_checksum);
  const int32_t eos = s.special.eos;
  std::vector<uint64_t> train_counts(vocab, 0);  // for the unigram-entropy baseline
  auto emit = [&](std::vector<int32_t>&& tokens, bool is_val, uint64_t) {
    TokenShardSeries& out = is_val ? val : train;
    out.append(tokens.data(), tokens.size());
    out.append(&eos, 1);
    if (!is_val) {
      for (int32_t t : tokens) ++train_counts[t];
      ++train_counts[eos];
    }
  };
  try {
    say(o, str_cat("encoding with ", s.threads, " thread", s.threads == 1 ? "" : "s"));
    const Clock::time_point t_enc = Clock::now();
    SplitDecider<std::vector<int32_t>, decltype(emit)> split(o.seed, o.val_fraction, emit);
    DocumentReader reader(files, o.jsonl_field);
    {
      EncodePool pool(tokenizer, s.threads);
      // Enough chunks in flight to keep every worker busy while the head one is written.
      const size_t window = 2 * static_cast<size_t>(s.threads) + 1;
      // Smaller jobs for a small corpus, so that every thread gets some (at least 64 KiB
      // each, so the queue stays cheap).
      const size_t chunk_bytes = std::min<size_t>(
          o.chunk_bytes,
          std::max<uint64_t>(reader.total_bytes() / (8 * static_cast<uint64_t>(s.threads)),
                             size_t{64} << 10));
      std::deque<std::shared_ptr<EncodeJob>> in_flight;
      bool more = true;
      uint64_t documents = 0, encoded = 0;
      while (more || !in_flight.empty()) {
        while (more && in_flight.size() < window) {
          auto job = std::make_shared<EncodeJob>();
          size_t bytes = 0;
          std::string doc;
          while (bytes < chunk_bytes && (more = reader.next(doc))) {
            bytes += doc.size();
            job->docs.push_back(std::move(doc));
          }
          if (job->docs.empty()) break;
          job->bytes_end = reader.bytes_read();
          pool.submit(job);
          in_flight.push_back(std::move(job));
        }
        if (in_flight.empty()) break;
        const std::shared_ptr<EncodeJob> job = std::move(in_flight.front());
        in_flight.pop_front();
        pool.wait(*job);
        for (std::vector<int32_t>& t : job->tokens) {
          encoded += t.size() + 1;  // counted here: the last document is written only at the end
          split.push(std::move(t));
        }
        documents += job->tokens.size();
        if (o.on_progress)
          o.on_progress(
              {job->bytes_end, reader.total_bytes(), documents, encoded, seconds_since(t_enc)});
      }
    }
    split.finish();
    train.finish();
    val.finish();
    s.seconds_encode = seconds_since(t_enc);
    s.empty_documents = reader.dropped_empty();
    s.train_documents = split.n_train();
    s.val_documents = split.n_val();
    if (s.train_documents + s.val_documents == 0)
      fail("the inputs hold no documents (only blank lines or empty texts)");
    if (s.train_documents == 0)
      fail("all ", s.val_documents, " documents fell into the val split; lower --val-fraction");
    if (s.val_documents == 0)
      say(o, o.val_fraction > 0 ? "only one document: the val split is empty"
                                : "val_fraction is 0: the val split is empty");
    s.train_tokens = train.total();
    s.val_tokens = val.total();
    for (uint64_t c : train_counts)
      if (c > 0) {
        const double p = static_cast<double>(c) / static_cast<double>(s.train_tokens);
        s.train_unigram_entropy -= p * std::log(p);
      }
    s.train_shards = train.shards();
    s.val_shards = val.shards();
    s.manifest_path = manifest.string();
    write_file_atomic(manifest.string(), manifest_json(o, s, files));
  } catch (...) {
    train.remove_committed();
    val.remove_committed();
    throw;
  }
  s.seconds_total = seconds_since(t_start);
  return s;
}

}  // namespace

PrepareSummary prepare_corpus(const PrepareOptions& options) {
  try {
    return run_prepare(options);
  } catch (const fs::filesystem_error& e) {
    // Permissions, a full disk, a file where a directory should be: the user's to fix.
    fail(e.what());
  }
}

}  // namespace meap
