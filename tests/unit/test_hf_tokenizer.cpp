// The tokenizer.json reader's parts on a tiny handwritten file: BPE merge order, added
// tokens, an appended [MASK], UTF-8 replacement, the byte-level alphabet, kind detection and
// the refusals. (Equality with the tokenizers library on real files: tests/tokenizer.)
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/hf/byte_level.hpp"
#include "data/hf/utf8.hpp"
#include "meap/core/error.hpp"
#include "meap/data/prepare.hpp"
#include "meap/data/tokenizer.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using Catch::Matchers::Contains;

namespace {

// One directory per test process (ctest -j runs cases as parallel processes), removed at exit.
struct TestDir {
  fs::path path =
      fs::temp_directory_path() / ("meap_hf_tokenizer_test-" + std::to_string(::getpid()));
  TestDir() { fs::create_directories(path); }
  ~TestDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

fs::path test_dir() {
  static const TestDir dir;
  return dir.path;
}

// ids: a 0, b 1, c 2, "Ġ" (space) 3, aa 4, aab 5, Ġa 6; <|endoftext|> 7 (added, special).
json tiny_spec() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 7, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false, "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                      "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null,
              "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
              "byte_fallback": false, "ignore_merges": false,
              "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "aa": 4, "aab": 5, "\u0120a": 6},
              "merges": ["a a", ["aa", "b"], "\u0120 a"]}
  })");
}

std::string write_spec(const json& spec, const std::string& name) {
  const fs::path p = test_dir() / name;
  std::ofstream(p) << spec.dump(2);
  return p.string();
}

void check_refused(const json& spec, const std::string& needle) {
  const std::string path = write_spec(spec, "bad.json");
  try {
    (void)meap::Tokenizer::load(path);
    FAIL("loaded a tokenizer that should be refused: " << needle);
  } catch (const meap::Error& e) {
    CHECK_THAT(e.what(), Contains(needle));
    CHECK_THAT(e.what(), Contains(path));
  }
}

}  // namespace

TEST_CASE("tokenizer.json: BPE merges by rank, added tokens, appended [MASK]", "[tokenizer]") {
  const meap::Tokenizer t = meap::Tokenizer::load(write_spec(tiny_spec(), "tiny.json"));
  CHECK(t.kind() == meap::TokenizerKind::hf_bpe);
  CHECK(std::string(t.file_name()) == "tokenizer.json");
  CHECK(t.eos_id() == 7);
  CHECK(t.bos_id() == -1);
  CHECK(t.mask_appended());
  CHECK(t.mask_id() == 8);
  CHECK(t.vocab_size() == 9);
  CHECK(t.piece(6) == "\xC4\xA0" "a");  // as written in the file
  CHECK(t.piece(8) == "[MASK]");
  // "aab" -> aa + b -> aab; " aaa": the (a, a) merge (rank 0) beats (Ġ, a) (rank 2) and the
  // leftmost pair goes first; " c" has no merge; "x" has no token and no unk: dropped.
  const std::vector<int32_t> ids = t.encode("aab aaa c<|endoftext|>x");
  CHECK(ids == std::vector<int32_t>{5, 3, 4, 0, 3, 2, 7});
  CHECK(t.decode(ids) == "aab aaa c<|endoftext|>");
  CHECK(t.decode({0, 8, 3, 8}) == "a[MASK] [MASK]");
  CHECK_THROWS_WITH(t.decode({9}), Contains("outside the tokenizer's vocabulary"));
  CHECK(t.encode("").empty());

  // Shared by threads, as meap prepare's encoding pool shares it.
  std::vector<std::vector<int32_t>> got(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < 200; ++k) got[i] = t.encode("aab aaa c aab aaa ab ba");
    });
  for (auto& th : threads) th.join();
  CHECK(got[0] == got[1]);
  CHECK(got[0] == t.encode("aab aaa c aab aaa ab ba"));
}

TEST_CASE("tokenizer.json: a reserved special token becomes [MASK]", "[tokenizer]") {
  json spec = tiny_spec();
  spec["added_tokens"].push_back({{"id", 9}, {"content", "<|reserved_special_token_1|>"},
                                  {"special", true}, {"normalized", false}});
  spec["added_tokens"].push_back({{"id", 8}, {"content", "<|reserved_special_token_0|>"},
                                  {"special", true}, {"normalized", false}});
  const meap::Tokenizer t = meap::Tokenizer::load(write_spec(spec, "reserved.json"));
  CHECK(!t.mask_appended());
  CHECK(t.mask_id() == 8);  // the lowest reserved id
  CHECK(t.vocab_size() == 10);
  CHECK(t.piece(t.mask_id()) == "<|reserved_special_token_0|>");
}

TEST_CASE("tokenizer.json: UTF-8 replacement and the byte-level alphabet", "[tokenizer]") {
  using meap::hf::utf8_lossy;
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(utf8_lossy("ok \xC3\xA9") == "ok \xC3\xA9");
  CHECK(utf8_lossy("\xE4\xB8") == fffd);                      // a cut 3-byte sequence: one
  CHECK(utf8_lossy("\xF0\x9F\x98" "a") == fffd + "a");        // a cut 4-byte sequence: one
  CHECK(utf8_lossy("\xED\xA0\x80") == fffd + fffd + fffd);    // a surrogate: one per byte
  CHECK(utf8_lossy("\xC0\xAF") == fffd + fffd);               // overlong: one per byte
  CHECK(utf8_lossy("\x80\xFF") == fffd + fffd);
  CHECK(meap::hf::byte_level_char(' ') == 0x120);
  CHECK(meap::hf::byte_level_char('\n') == 0x10A);
  CHECK(meap::hf::byte_level_char('A') == 'A');
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string back;
  REQUIRE(meap::hf::byte_level_to_bytes(meap::hf::bytes_to_byte_level(all), back));
  CHECK(back == all);
  // Invalid UTF-8 in the text is read as U+FFFD, as the library's str input would hold it.
  const meap::Tokenizer t = meap::Tokenizer::load(write_spec(tiny_spec(), "tiny.json"));
  CHECK(t.encode("a\xFF" "a") == t.encode("a" + fffd + "a"));
}

TEST_CASE("tokenizer files are told apart by content", "[tokenizer]") {
  const fs::path dir = test_dir() / "kinds";
  fs::create_directories(dir);
  CHECK(meap::find_tokenizer_file(dir.string()).empty());
  const std::string json_path = write_spec(tiny_spec(), "kinds/tokenizer.json");
  CHECK(meap::find_tokenizer_file(dir.string()) == json_path);
  // A checkpoint's copy is always named tokenizer.model; its content decides.
  fs::copy_file(json_path, dir / "tokenizer.model");
  CHECK(meap::find_tokenizer_file(dir.string()) == (dir / "tokenizer.model").string());
  CHECK(meap::Tokenizer::detect_kind((dir / "tokenizer.model").string()) ==
        meap::TokenizerKind::hf_bpe);
  std::ofstream(dir / "proto.model") << "\x0A\x05hello";
  CHECK(meap::Tokenizer::detect_kind((dir / "proto.model").string()) ==
        meap::TokenizerKind::sentencepiece);
  std::ofstream(dir / "empty.json") << "";
  CHECK_THROWS_WITH(meap::Tokenizer::load((dir / "empty.json").string()), Contains("is empty"));
}

TEST_CASE("tokenizer.json: what meap cannot read is refused naming the file", "[tokenizer]") {
  json spec = tiny_spec();
  spec["model"]["type"] = "WordPiece";
  check_refused(spec, "model type 'WordPiece' is not supported");

  spec = tiny_spec();
  spec["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}};
  check_refused(spec, "pre_tokenizer type 'Metaspace' is not supported");

  spec = tiny_spec();
  spec["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}},
                           {"behavior", "Isolated"}, {"invert", false}};
  check_refused(spec, "has no ByteLevel step");

  spec = tiny_spec();
  spec["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}"}}}, {"behavior", "Isolated"}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  check_refused(spec, "pre_tokenizer.pretokenizers[0].pattern: cannot compile");

  spec = tiny_spec();
  spec["decoder"] = nullptr;
  check_refused(spec, "decoder must be ByteLevel");

  spec = tiny_spec();
  spec["normalizer"] = {{"type", "Lowercase"}};
  check_refused(spec, "normalizer type 'Lowercase' is not supported");

  spec = tiny_spec();
  spec["model"]["merges"].push_back("a zz");
  check_refused(spec, "merges[3] (a zz) uses a token that is not in the vocabulary");

  spec = tiny_spec();
  spec["model"]["dropout"] = 0.1;
  check_refused(spec, "dropout");

  spec = tiny_spec();
  spec["added_tokens"] = json::array();  // no EOS anywhere
  check_refused(spec, "defines no EOS token");

  const fs::path broken = test_dir() / "broken.json";
  std::ofstream(broken) << "{\"model\": ";
  CHECK_THROWS_WITH(meap::Tokenizer::load(broken.string()), Contains("is not valid JSON"));
}

TEST_CASE("meap prepare with a tokenizer.json copies it as tokenizer.json", "[tokenizer]") {
  const fs::path dir = test_dir() / "prepare";
  fs::create_directories(dir / "corpus");
  std::ofstream(dir / "corpus" / "a.txt") << "aab aaa c\n\nc aab\n\naaa aaa aab\n";
  fs::create_directories(dir / "out");
  std::ofstream(dir / "out" / "tokenizer.model") << "stale";  // of an earlier run's kind
  meap::PrepareOptions o;
  o.out_dir = (dir / "out").string();
  o.inputs = {(dir / "corpus").string()};
  o.tokenizer = write_spec(tiny_spec(), "prepare/tiny.json");
  o.val_fraction = 0;
  o.threads = 2;
  const meap::PrepareSummary s = meap::prepare_corpus(o);
  CHECK(s.tokenizer_path == (dir / "out" / "tokenizer.json").string());
  CHECK(s.tokenizer_kind == meap::TokenizerKind::hf_bpe);
  CHECK(!fs::exists(dir / "out" / "tokenizer.model"));
  CHECK((s.special.eos == 7 && s.special.mask == 8 && s.vocab_size == 9 && s.mask_appended));
  // 3 documents: [5] [3 4 0] [3 2] EOS, [2] [3 5] EOS, [4 0] [3 4 0] [3 5] EOS
  CHECK(s.train_tokens == 7 + 4 + 8);
  const auto m = nlohmann::json::parse(std::ifstream(s.manifest_path));
  CHECK(m["tokenizer"]["model"] == "tokenizer.json");
  CHECK(m["tokenizer"]["kind"] == "hf-bpe");
  CHECK(m["tokenizer"]["mask_piece"] == "[MASK]");
  CHECK(m["tokenizer"]["mask_appended"] == true);
  CHECK(meap::find_tokenizer_file((dir / "out").string()) == s.tokenizer_path);
}
