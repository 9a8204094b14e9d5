// meap prepare: corpus reading (text, JSONL, directories), the train/val split, shards that
// decode back to the documents, thread-count independence and the refusals.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <zlib.h>
#include <zstd.h>

#include "meap/data/corpus.hpp"
#include "meap/core/error.hpp"
#include "meap/data/prepare.hpp"
#include "meap/data/token_shard.hpp"
#include "meap/data/tokenizer.hpp"
#include "fixtures.hpp"

namespace fs = std::filesystem;
using meap::PrepareOptions;
using meap::PrepareSummary;

namespace {

const fs::path& root() {
  static const meap_test::TempDir r("meap_prepare_test");
  return r.path();
}

using meap_test::slurp;
using meap_test::write_text;

struct Corpus {
  std::vector<std::string> inputs;
  std::vector<std::string> docs;  // what the reader must produce, in order
};

// Few distinct characters, so a 300-piece vocab (256 bytes + 5 reserved + characters +
// merges) can be trained.
std::string sentence(uint32_t& state, int n_words) {
  static const char* words[] = {"the", "light", "of", "day", "and", "night", "water", "earth",
                                "heaven", "said", "god", "unto", "them", "was", "good", "sea",
                                "moon", "stars", "dry", "land", "herb", "seed", "tree", "fruit"};
  std::string s;
  for (int i = 0; i < n_words; ++i) {
    state = state * 1664525u + 1013904223u;
    s += (i ? " " : "") + std::string(words[(state >> 16) % 24]);
  }
  return s + (state % 3 ? "." : ",");
}

// A text file with every blank-line rule, a JSONL file with the edge cases, and a directory
// with a nested file and hidden entries.
const Corpus& corpus() {
  static const Corpus c = [] {
    Corpus c;
    const fs::path dir = root() / "corpus";
    uint32_t state = 12345;

    std::string a = "\n \n";  // leading blank lines make no document
    const char* separators[] = {"\n", "\n\n\n", " \t \n", "\r\n"};
    for (int d = 0; d < 20; ++d) {
      std::string doc;
      for (int l = 0; l < 1 + d % 4; ++l) {
        std::string line = sentence(state, 5 + (d + l) % 8);
        if (d == 3 && l == 0) line = "    " + line;  // indentation is kept
        doc += (l ? "\n" : "") + line;
        a += line + (d == 5 ? "\r\n" : "\n");  // CRLF lines read like LF ones
      }
      c.docs.push_back(doc);
      if (d + 1 < 20) a += separators[d % 4];
    }
    a.pop_back();  // the last document ends without a newline
    write_text(dir / "a.txt", a);
    c.inputs.push_back((dir / "a.txt").string());

    std::string b;
    for (int d = 0; d < 15; ++d) {
      std::string doc = sentence(state, 6 + d % 5);
      if (d % 5 == 0) doc += "\n" + sentence(state, 4);  // internal newline kept verbatim
      if (d == 7) doc = "  padded\ttext " + doc + " ";
      if (d == 11) doc += " caf\xC3\xA9";  // a character outside the training sample
      b += nlohmann::json{{"id", d}, {"text", doc}}.dump() + "\n";
      c.docs.push_back(doc);
      if (d == 4) b += "{\"text\": \"\"}\n\n{\"text\": \" \\n \"}\n";  // dropped, skipped, dropped
    }
    write_text(dir / "b.jsonl", b);
    c.inputs.push_back((dir / "b.jsonl").string());

    const std::string d1 = sentence(state, 9), d2 = sentence(state, 7);
    const std::string d3 = sentence(state, 8), d4 = sentence(state, 6);
    write_text(dir / "sub" / "b_dir" / "c.txt", d3 + "\n\n" + d4 + "\n");
    write_text(dir / "sub" / "a.txt", d1 + "\n\n" + d2 + "\n");
    write_text(dir / "sub" / ".hidden.txt", "never read\n");
    write_text(dir / "sub" / ".git" / "config", "never read\n");
    c.docs.insert(c.docs.end(), {d1, d2, d3, d4});  // sorted by path: sub/a.txt first
    c.inputs.push_back((dir / "sub").string());
    return c;
  }();
  return c;
}

PrepareOptions options(const std::string& out, int threads) {
  PrepareOptions o;
  o.out_dir = (root() / out).string();
  o.inputs = corpus().inputs;
  o.vocab_size = 300;
  o.val_fraction = 0.2;
  o.shard_tokens = 500;
  o.threads = threads;
  o.seed = 7;
  return o;
}

// The reference run, once per process.
const PrepareSummary& reference_run() {
  static const PrepareSummary s = meap::prepare_corpus(options("run1", 1));
  return s;
}

std::vector<int32_t> read_stream(const std::vector<meap::ShardEntry>& shards) {
  std::vector<int32_t> all;
  for (const meap::ShardEntry& e : shards) {
    const auto r = meap::ShardReader::open(e.path);
    const size_t at = all.size();
    all.resize(at + r.size());
    r.read(0, r.size(), all.data() + at);
  }
  return all;
}

std::vector<std::vector<int32_t>> split_at(const std::vector<int32_t>& stream, int32_t eos) {
  std::vector<std::vector<int32_t>> docs(1);
  for (int32_t t : stream) {
    if (t == eos)
      docs.emplace_back();
    else
      docs.back().push_back(t);
  }
  REQUIRE(docs.back().empty());  // the stream ends with an EOS
  docs.pop_back();
  return docs;
}

std::map<std::string, std::string> dir_contents(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    files[e.path().filename().string()] = slurp(e.path());
  return files;
}

// A file of a prepare output with the tokenizer's checksum blanked: it depends on the
// --out path when the tokenizer was trained there (tokenizer.model records the path of its
// training text). Shards: header bytes 48..63 (checksum, tokenizer checksum); prepare.json:
// its "checksum" line.
std::string without_tokenizer_checksum(const std::string& name, std::string bytes) {
  if (name.ends_with(".bin") && bytes.size() >= 64) std::fill(bytes.begin() + 48, bytes.begin() + 64, '\0');
  if (name == "prepare.json") {
    const size_t at = bytes.find("\"checksum\": \"xxh3-64:");
    REQUIRE(at != std::string::npos);
    bytes.erase(at, bytes.find('\n', at) - at);
  }
  return bytes;
}

// The split the docs promise: the hash for every document, but the last goes to val when
// none did.
std::vector<bool> expected_split(size_t n, uint64_t seed, double fraction) {
  std::vector<bool> val(n);
  bool any = false;
  for (size_t i = 0; i + 1 < n; ++i) any |= (val[i] = meap::hashes_to_val(seed, i, fraction));
  if (n == 1)
    val[0] = false;
  else
    val[n - 1] = (fraction > 0 && !any) || meap::hashes_to_val(seed, n - 1, fraction);
  return val;
}

}  // namespace

TEST_CASE("corpus reader: blank lines, CRLF, JSONL, sorted directories", "[prepare]") {
  const Corpus& c = corpus();
  CHECK(meap::read_documents(c.inputs) == c.docs);

  meap::DocumentReader reader(meap::list_corpus_files(c.inputs));
  std::string doc;
  size_t n = 0;
  while (reader.next(doc)) ++n;
  CHECK(n == c.docs.size());
  CHECK(reader.dropped_empty() == 2);
  CHECK(reader.bytes_read() == reader.total_bytes());
}

TEST_CASE("prepare: shards decode back to exactly the documents of each split", "[prepare]") {
  const Corpus& c = corpus();
  const PrepareSummary& s = reference_run();
  const meap::Tokenizer tok = meap::Tokenizer::load(s.tokenizer_path);
  CHECK(tok.vocab_size() == 300);
  CHECK(s.vocab_size == 300);
  CHECK((s.special.bos == 1 && s.special.eos == 2 && s.special.pad == 3 && s.special.mask == 4));

  const std::vector<bool> is_val = expected_split(c.docs.size(), 7, 0.2);
  std::vector<std::string> train_docs, val_docs;
  uint64_t train_tokens = 0, val_tokens = 0;
  for (size_t i = 0; i < c.docs.size(); ++i) {
    (is_val[i] ? val_docs : train_docs).push_back(c.docs[i]);
    (is_val[i] ? val_tokens : train_tokens) += tok.encode(c.docs[i]).size() + 1;  // + EOS
  }
  REQUIRE(!val_docs.empty());
  CHECK(s.train_documents == train_docs.size());
  CHECK(s.val_documents == val_docs.size());
  CHECK(s.empty_documents == 2);
  CHECK(s.train_tokens == train_tokens);
  CHECK(s.val_tokens == val_tokens);

  // Shards: full ones of exactly shard_tokens, the last one shorter; headers as promised.
  REQUIRE(s.train_shards.size() == (train_tokens + 499) / 500);
  for (size_t i = 0; i < s.train_shards.size(); ++i) {
    const auto r = meap::ShardReader::open(s.train_shards[i].path);
    char name[32];
    std::snprintf(name, sizeof name, "train-%05zu.bin", i);
    CHECK(fs::path(r.path()).filename() == name);
    CHECK(r.size() == (i + 1 < s.train_shards.size() ? 500 : train_tokens - 500 * i));
    CHECK(r.info().vocab_size == 300);
    CHECK((r.info().special.bos == 1 && r.info().special.eos == 2 &&
           r.info().special.pad == 3 && r.info().special.mask == 4));
  }

  const auto train = split_at(read_stream(s.train_shards), s.special.eos);
  const auto val = split_at(read_stream(s.val_shards), s.special.eos);
  REQUIRE(train.size() == train_docs.size());
  REQUIRE(val.size() == val_docs.size());
  for (size_t i = 0; i < val.size(); ++i) CHECK(tok.decode(val[i]) == val_docs[i]);
  for (size_t i = 0; i < train.size(); ++i) CHECK(tok.decode(train[i]) == train_docs[i]);

  // The manifest, and nothing temporary left behind.
  const auto m = nlohmann::json::parse(slurp(s.manifest_path));
  CHECK(m["tokenizer"]["vocab_size"] == 300);
  CHECK(m["tokenizer"]["eos"] == 2);
  CHECK(m["documents"]["val"] == val_docs.size());
  CHECK(m["tokens"]["train"] == train_tokens);
  CHECK(m["shards"]["train"].size() == s.train_shards.size());
  CHECK(m["shards"]["val"][0]["file"] == "val-00000.bin");
  CHECK(m["seed"] == 7);
  CHECK(m["input_files"].size() == 4);
  for (const auto& [name, bytes] : dir_contents(fs::path(s.manifest_path).parent_path())) {
    INFO(name);
    CHECK(name.find("tmp") == std::string::npos);
    CHECK(name[0] != '.');
  }
}

TEST_CASE("prepare: the output is the same bit for bit with 1 and 2 threads", "[prepare]") {
  const PrepareSummary& one = reference_run();
  // tokenizer.model records the path of SentencePiece's training text, so whole directories
  // are compared for runs into the same --out path.
  // Small jobs: many of them in flight at once, finishing out of order.
  PrepareOptions o2 = options("same", 2);
  o2.chunk_bytes = 64;
  std::vector<meap::PrepareProgress> progress;
  o2.on_progress = [&](const meap::PrepareProgress& p) { progress.push_back(p); };
  const PrepareSummary two = meap::prepare_corpus(o2);
  CHECK(two.threads == 2);
  REQUIRE(progress.size() > 10);
  for (size_t i = 1; i < progress.size(); ++i) {
    CHECK(progress[i].bytes_done > progress[i - 1].bytes_done);
    CHECK(progress[i].tokens > progress[i - 1].tokens);
  }
  CHECK(progress.back().bytes_done == progress.back().bytes_total);
  CHECK(progress.back().tokens == two.train_tokens + two.val_tokens);
  CHECK(progress.back().documents == two.train_documents + two.val_documents);
  fs::rename(root() / "same", root() / "same-2threads");
  meap::prepare_corpus(options("same", 1));
  const auto a = dir_contents(root() / "same"), b = dir_contents(root() / "same-2threads");
  CHECK(a.size() == 3 + one.train_shards.size() + one.val_shards.size());  // + model, vocab, json
  REQUIRE(a.size() == b.size());
  for (const auto& [name, bytes] : a) {
    INFO(name);
    REQUIRE(b.count(name));
    CHECK(b.at(name) == bytes);
  }
  // Elsewhere, everything else is identical: pieces, scores, shards, manifest (but for the
  // tokenizer's checksum).
  const auto r = dir_contents(root() / "run1");
  REQUIRE(r.size() == a.size());
  for (const auto& [name, bytes] : r) {
    INFO(name);
    if (name != "tokenizer.model")
      CHECK(without_tokenizer_checksum(name, a.at(name)) == without_tokenizer_checksum(name, bytes));
  }

  // An existing tokenizer instead of training one: the same shards again.
  PrepareOptions o = options("run3", 2);
  o.tokenizer = one.tokenizer_path;
  const PrepareSummary three = meap::prepare_corpus(o);
  CHECK(!three.tokenizer_trained);
  const auto c = dir_contents(root() / "run3");
  REQUIRE(c.size() == r.size());
  for (const auto& [name, bytes] : r) {
    INFO(name);
    if (name != "prepare.json") CHECK(c.at(name) == bytes);  // it names the tokenizer's source
  }
}

TEST_CASE("prepare: refuses an existing output unless forced", "[prepare]") {
  const PrepareSummary& s = reference_run();
  PrepareOptions o = options("run5", 1);
  o.tokenizer = s.tokenizer_path;
  meap::prepare_corpus(o);
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o),
                      Catch::Contains("prepare.json") && Catch::Contains("--force"));

  // A forced run replaces the output, shards of the earlier run included.
  write_text(root() / "run5" / "train-00099.bin", "stale");
  o.force = true;
  o.val_fraction = 0;
  o.tokenizer = (root() / "run5" / "tokenizer.model").string();  // copying onto itself is fine
  const PrepareSummary again = meap::prepare_corpus(o);
  CHECK(!fs::exists(root() / "run5" / "train-00099.bin"));
  CHECK(!fs::exists(root() / "run5" / "val-00000.bin"));
  CHECK(again.val_documents == 0);
  CHECK(again.val_shards.empty());
  CHECK(again.train_documents == corpus().docs.size());
  CHECK(meap::Tokenizer::load(o.tokenizer).vocab_size() == 300);

  // Shards without a manifest (an interrupted run) are refused too.
  write_text(root() / "run4" / "val-00000.bin", "stale");
  PrepareOptions o4 = options("run4", 1);
  o4.tokenizer = s.tokenizer_path;
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o4),
                      Catch::Contains("val-00000.bin") && Catch::Contains("--force"));
}

TEST_CASE("prepare: bad input is refused with its location", "[prepare]") {
  const PrepareSummary& s = reference_run();
  const fs::path bad = root() / "bad";
  write_text(bad / "bad.jsonl", "{\"text\": \"fine\"}\n{\"txt\": \"no text field\"}\n");
  PrepareOptions o = options("out-bad", 2);
  o.inputs = {corpus().inputs[0], (bad / "bad.jsonl").string()};
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o),
                      Catch::Contains("bad.jsonl:2") && Catch::Contains("\"text\""));
  o.tokenizer = s.tokenizer_path;  // fails in the encoding pass instead of tokenizer training
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o), Catch::Contains("bad.jsonl:2"));
  for (const auto& [name, bytes] : dir_contents(root() / "out-bad")) {
    INFO(name);  // no shard and no manifest of a failed run
    CHECK(name.find(".bin") == std::string::npos);
    CHECK(name != "prepare.json");
  }

  write_text(bad / "notjson.jsonl", "{\"text\": \"ok\"}\n\n[1, 2]\n");
  o.inputs = {(bad / "notjson.jsonl").string()};
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o), Catch::Contains("notjson.jsonl:3"));

  write_text(bad / "latin1.txt", "fine\n\ncaf\xE9\n");
  o.inputs = {(bad / "latin1.txt").string()};
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o),
                      Catch::Contains("latin1.txt:3") && Catch::Contains("UTF-8"));

  write_text(bad / "blank.txt", "\n  \n\t\n");
  o.inputs = {(bad / "blank.txt").string()};
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o), Catch::Contains("no documents"));
  o.tokenizer.clear();  // the tokenizer's training pass says so too
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o), Catch::Contains("no documents"));
  o.tokenizer = s.tokenizer_path;

  o.inputs = {corpus().inputs[0], (bad / "missing.txt").string()};
  REQUIRE_THROWS_WITH(meap::prepare_corpus(o),
                      Catch::Contains("missing.txt") && Catch::Contains("does not exist"));
  CHECK_THROWS_WITH(meap::read_documents({(bad / "missing").string()}),
                    Catch::Contains("does not exist"));
}

TEST_CASE("prepare: the last document goes to val when the hash sent none there", "[prepare]") {
  const PrepareSummary& s = reference_run();
  const meap::Tokenizer tok = meap::Tokenizer::load(s.tokenizer_path);
  const fs::path small = root() / "small.txt";
  write_text(small, "the sea\n\nthe moon\n\nthe dry land\n");
  PrepareOptions o = options("run-small", 2);
  o.inputs = {small.string()};
  o.tokenizer = s.tokenizer_path;
  o.val_fraction = 1e-12;
  const PrepareSummary r = meap::prepare_corpus(o);
  CHECK(r.train_documents == 2);
  REQUIRE(r.val_documents == 1);
  CHECK(tok.decode(split_at(read_stream(r.val_shards), 2).at(0)) == "the dry land");

  // One document alone stays in train.
  write_text(small, "the sea\nthe moon\n");
  o.out_dir = (root() / "run-one").string();
  const PrepareSummary one = meap::prepare_corpus(o);
  CHECK(one.train_documents == 1);
  CHECK(one.val_documents == 0);
  CHECK(tok.decode(split_at(read_stream(one.train_shards), 2).at(0)) == "the sea\nthe moon");
}

namespace {

void gzip_to(const fs::path& dst, const std::string& bytes) {
  gzFile gz = gzopen(dst.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(gz) == Z_OK);
}

void zstd_to(const fs::path& dst, const std::string& bytes) {
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 3);
  REQUIRE(!ZSTD_isError(n));
  out.resize(n);
  write_text(dst, out);
}

}  // namespace

TEST_CASE("prepare: .jsonl.gz and .jsonl.zst give the shards of the plain file", "[prepare]") {
  const PrepareSummary& ref = reference_run();
  const fs::path dir = root() / "compressed";
  uint32_t state = 777;
  std::string jsonl;
  for (int d = 0; d < 40; ++d)  // the document under "content"; "text" is a decoy
    jsonl += nlohmann::json{{"text", "no"}, {"content", sentence(state, 5 + d % 7)}}.dump() + "\n";
  write_text(dir / "in" / "d.jsonl", jsonl);
  gzip_to(dir / "in" / "d.jsonl.gz", jsonl);
  zstd_to(dir / "in" / "d.jsonl.zst", jsonl);

  std::map<std::string, std::map<std::string, std::string>> outputs;
  for (const char* name : {"d.jsonl", "d.jsonl.gz", "d.jsonl.zst"}) {
    PrepareOptions o;
    o.out_dir = (dir / (std::string("out-") + name)).string();
    o.inputs = {(dir / "in" / name).string()};
    o.tokenizer = ref.tokenizer_path;
    o.jsonl_field = "content";
    o.val_fraction = 0.2;
    o.shard_tokens = 300;
    o.threads = 1;
    const PrepareSummary s = meap::prepare_corpus(o);
    CHECK(s.train_documents + s.val_documents == 40);
    outputs[name] = dir_contents(o.out_dir);
    outputs[name].erase("prepare.json");  // names the input file
  }
  const auto& plain = outputs["d.jsonl"];
  REQUIRE(plain.size() >= 3);  // tokenizer, train and val shards
  CHECK(outputs["d.jsonl.gz"] == plain);
  CHECK(outputs["d.jsonl.zst"] == plain);

  // The default field is "text": every document here would be "no".
  const auto docs = meap::read_documents({(dir / "in" / "d.jsonl.zst").string()});
  REQUIRE(docs.size() == 40);
  CHECK(docs[0] == "no");
  CHECK_THROWS_WITH(meap::read_documents({(dir / "in" / "d.jsonl.gz").string()}, "body"),
                    Catch::Contains("d.jsonl.gz:1") && Catch::Contains("no \"body\" field"));
}
